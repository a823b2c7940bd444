//! CCA on the simulated host: `CEX8C` cards, `mkvps` in the kernel's CCA format with the forms
//! captured from real cards (zcrypt-sysfs.md 1.6, 1.6b), the TKE's key parts and set, and the
//! `pkcscca -m keys` stand-in's contract and faults (opencryptoki-ep11.md 5).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use mkplan_engine::ports::keys::KeyProber;
use mkplan_host::pkcscca::parse_migrate_output;

use super::spec_host::*;
use super::{PIN, text};

const CONF: &str = "/etc/opencryptoki/ccatok.conf";
const STORE: &str = "/var/lib/opencryptoki/ccatok";

/// A real CEX6 queue's `mkvps` (zcrypt-sysfs.md 1.6b): AES never loaded, APKA current, no
/// ASYM MK at all.
const CAPTURED: &str = "AES NEW: empty 0x0000000000000000\nAES CUR: invalid 0x0000000000000000\n\
AES OLD: invalid 0x0000000000000000\nAPKA NEW: empty 0x0000000000000000\n\
APKA CUR: valid 0x755cb8e7740dae51\nAPKA OLD: invalid 0x0000000000000000\n\
ASYM NEW: empty -\nASYM CUR: empty -\nASYM OLD: empty -\n";

/// One register as a reader must take it: a state word and a pattern (`None` for `-`), or
/// unknown (`- -`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reg {
    Known(String, Option<String>),
    Unknown,
}

/// A strict reader of CCA `mkvps`: every line `<AES|APKA|ASYM> <NEW|CUR|OLD>: <state> <vp>`,
/// the state words of 1.6 (and ASYM's captured `empty` on CUR/OLD), the pattern `-` or `0x`
/// with 16 hex digits (ASYM 32), or `- -` for unknown.
fn parse_cca_mkvps(text: &str) -> Result<BTreeMap<(String, String), Reg>, String> {
    let mut registers = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let [mk, reg, state, vp] = words[..] else {
            return Err(format!("not 4 tokens: {line:?}"));
        };
        let width = match mk {
            "AES" | "APKA" => 16,
            "ASYM" => 32,
            _ => return Err(format!("unknown MK type: {line:?}")),
        };
        let reg = reg.strip_suffix(':').ok_or(format!("no colon: {line:?}"))?;
        let words: &[&str] = match reg {
            "NEW" => &["empty", "partial", "full"],
            "CUR" | "OLD" if mk == "ASYM" => &["valid", "invalid", "empty"],
            "CUR" | "OLD" => &["valid", "invalid"],
            _ => return Err(format!("unknown register: {line:?}")),
        };
        let value = match (state, vp) {
            ("-", "-") => Reg::Unknown,
            (state, "-") if words.contains(&state) => Reg::Known(state.into(), None),
            (state, vp) if words.contains(&state) => {
                let hex = vp
                    .strip_prefix("0x")
                    .ok_or(format!("bad pattern: {line:?}"))?;
                if hex.len() != width
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(format!("bad pattern: {line:?}"));
                }
                Reg::Known(state.into(), Some(hex.into()))
            }
            _ => return Err(format!("bad state word: {line:?}")),
        };
        if registers
            .insert((mk.to_owned(), reg.to_owned()), value)
            .is_some()
        {
            return Err(format!("twice: {line:?}"));
        }
    }
    Ok(registers)
}

fn reg(map: &BTreeMap<(String, String), Reg>, mk: &str, register: &str) -> Reg {
    map[&(mk.to_owned(), register.to_owned())].clone()
}

fn known(state: &str, vp: Option<&str>) -> Reg {
    Reg::Known(
        state.to_owned(),
        vp.map(|v| v.trim_start_matches("0x").to_owned()),
    )
}

/// A CCA token with every MK type (old → new) on two APQNs.
fn cca_host(keys: usize) -> Host {
    let mut token = cca_token("cca", 5, &["0c.0011", "0d.0011"]);
    token["cca"]["mks"]["asym"] =
        json!({"current": "0x5555555555555555", "new": "0x6666666666666666"});
    token["cca"]["mks"]["sym"] =
        json!({"current": "0x7777777777777777", "new": "0x8888888888888888"});
    Host::new(json!({"tokens": [token]}), keys)
}

#[test]
fn mkvps_reproduces_the_captured_forms() {
    let mut cca = cca_token("cca", 5, &["0c.0011", "0d.0011"]);
    cca["cca"]["mks"] = json!({"apka": {"current": "0x755cb8e7740dae51", "new": APKA_NEW}});
    let mut ep11 = ep11_token("ep11", 4, &["0a.0011"]);
    ep11["ep11"]["wkvp_current"] = json!("0xef490ddfce10b330b86cfe6db2ae2db9");
    let host = Host::new(json!({"tokens": [ep11, cca]}), 2);
    assert_eq!(host.mkvps("0c.0011"), CAPTURED);
    let parsed = parse_cca_mkvps(CAPTURED).unwrap();
    assert_eq!(parsed, parse_cca_mkvps(&host.mkvps("0d.0011")).unwrap());
    assert_eq!(
        reg(&parsed, "APKA", "CUR"),
        known("valid", Some("755cb8e7740dae51"))
    );
    assert_eq!(reg(&parsed, "ASYM", "CUR"), known("empty", None));
    let ep11_text = host.mkvps("0a.0011");
    assert!(
        ep11_text.starts_with("WK CUR: valid 0xef490ddfce10b330b86cfe6db2ae2db9"),
        "{ep11_text}"
    );
    assert!(ep11_text.ends_with("\nWK NEW: empty -\n"));
    let card = host.root.join("sys/bus/ap/devices/card0c");
    assert_eq!(
        std::fs::read_to_string(card.join("type")).unwrap(),
        "CEX8C\n"
    );
    assert_eq!(
        std::fs::read_to_string(card.join("ap_functions")).unwrap(),
        "0x12800000\n"
    );
    assert_eq!(
        std::fs::read_to_string(card.join("serialnr"))
            .unwrap()
            .trim_end()
            .len(),
        8
    );

    // Interrupted reads: the APKA lines only (a mixed file), every line, and EP11's.
    for (fault, apqn) in [
        ("0c.0011:apka", "0c.0011"),
        ("0d.0011", "0d.0011"),
        ("0a.0011", "0a.0011"),
    ] {
        assert!(
            host.sim(&["fault", "interrupted-read", fault])
                .status
                .success()
        );
        let read = host.mkvps(apqn);
        if apqn == "0a.0011" {
            assert_eq!(read, "WK CUR: - -\nWK NEW: - -\n");
            continue;
        }
        let parsed = parse_cca_mkvps(&read).unwrap();
        for register in ["NEW", "CUR", "OLD"] {
            assert_eq!(reg(&parsed, "APKA", register), Reg::Unknown, "{read}");
            let aes = reg(&parsed, "AES", register);
            assert_eq!(aes == Reg::Unknown, apqn == "0d.0011", "{read}");
        }
    }
    assert_eq!(
        text(&host.sim(&["fault"]).stdout),
        "interrupted-read 0c.0011:apka\ninterrupted-read 0d.0011\ninterrupted-read 0a.0011\n"
    );
    assert!(host.sim(&["fault", "--clear"]).status.success());
    assert_eq!(host.mkvps("0c.0011"), CAPTURED);
    assert_eq!(host.mkvps("0d.0011"), CAPTURED);

    // A transient interruption: the next reads show `- -`, then the registers again.
    assert!(
        host.sim(&["fault", "interrupted-read", "0c.0011:apka:2"])
            .status
            .success()
    );
    let mut reads = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = host.mkvps("0c.0011");
        reads += 1;
        if read == CAPTURED {
            break;
        }
        assert!(read.contains("APKA CUR: - -\n"), "{read}");
        assert!(
            Instant::now() < deadline,
            "the interruption did not end after {reads} reads"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reads > 2,
        "at least 2 reads were interrupted, then one was whole: {reads}"
    );
    assert_eq!(
        host.sim(&["fault"]).stdout.len(),
        0,
        "the fault ended by itself"
    );

    // An offline queue answers nothing.
    assert!(host.sim(&["queue", "0d.0011", "offline"]).status.success());
    let offline = parse_cca_mkvps(&host.mkvps("0d.0011")).unwrap();
    assert!(offline.values().all(|r| *r == Reg::Unknown));
}

#[test]
fn older_kernels_print_fewer_registers() {
    for (form, lines) in [("aes-apka", 6), ("aes", 3), ("aes-apka-asym", 9)] {
        let host = Host::new(
            json!({"tokens": [cca_token("cca", 5, &["0c.0011"])], "cca_sysfs": form}),
            1,
        );
        let text = host.mkvps("0c.0011");
        assert_eq!(text.lines().count(), lines, "{form}: {text}");
        let parsed = parse_cca_mkvps(&text).unwrap();
        assert_eq!(reg(&parsed, "AES", "CUR"), known("valid", Some(AES_OLD)));
    }
}

#[test]
fn the_tke_loads_key_parts_sets_and_clears() {
    let host = cca_host(2);
    let read = || parse_cca_mkvps(&host.mkvps("0c.0011")).unwrap();
    host.tke(&["load", "--mk", "aes", "--partial", "--apqn", "0c.0011"]);
    assert_eq!(
        reg(&read(), "AES", "NEW"),
        known("partial", Some("0000000000000000"))
    );
    let refused = host.sim(&["tke", "set", "--mk", "aes"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("the AES NEW register is only partly loaded"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        reg(
            &parse_cca_mkvps(&host.mkvps("0d.0011")).unwrap(),
            "AES",
            "NEW"
        ),
        known("empty", Some("0000000000000000"))
    );
    host.tke(&["load", "--mk", "aes"]);
    assert_eq!(reg(&read(), "AES", "NEW"), known("full", Some(AES_NEW)));
    let again = host.sim(&["tke", "load", "--mk", "aes", "--partial"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a full register takes no more parts"
    );
    assert_eq!(
        host.sim(&["tke", "commit", "--apqn", "0c.0011"])
            .status
            .code(),
        Some(2),
        "CCA has no commit"
    );
    host.tke(&["set", "--mk", "aes"]);
    let set = read();
    assert_eq!(
        (
            reg(&set, "AES", "NEW"),
            reg(&set, "AES", "CUR"),
            reg(&set, "AES", "OLD")
        ),
        (
            known("empty", Some("0000000000000000")),
            known("valid", Some(AES_NEW)),
            known("valid", Some(AES_OLD))
        )
    );
    assert_eq!(
        reg(&set, "APKA", "CUR"),
        known("valid", Some(APKA_OLD)),
        "only AES was set"
    );
    host.tke(&["load", "--mk", "apka", "--mkvp", "0x0123456789abcdef"]);
    assert_eq!(
        reg(&read(), "APKA", "NEW"),
        known("full", Some("0123456789abcdef"))
    );
    host.tke(&["clear", "--mk", "apka"]);
    assert_eq!(
        reg(&read(), "APKA", "NEW"),
        known("empty", Some("0000000000000000"))
    );
    // ASYM's 16-byte pattern starts with the 8 bytes openCryptoki uses.
    let asym = reg(&read(), "ASYM", "CUR");
    let Reg::Known(_, Some(vp)) = asym else {
        panic!("{asym:?}")
    };
    assert!(vp.starts_with("5555555555555555") && vp.len() == 32, "{vp}");
}

/// The MK type of each key object's blob (its kind byte), counted by summary name.
fn keys_by_name(host: &Host) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for object in objects(&host.path(STORE)) {
        let (Some(blob), Some(_)) = (object["blob"].as_str(), object["key_type"].as_str()) else {
            continue;
        };
        let name = match u8::from_str_radix(&blob[16..18], 16).unwrap() {
            16 => "AES",
            17 => "AES XTS",
            18 => "HMAC",
            19 => "DES",
            20 => "DES2",
            21 => "DES3",
            22 => "EC",
            23 => "RSA (APKA)",
            24 => "IBM Dilithium",
            25 => "RSA (ASYM)",
            other => panic!("kind {other}"),
        };
        *counts.entry(name).or_default() += 1;
    }
    counts
}

fn pins() -> String {
    format!("{SO_PIN}\n{PIN}\n")
}

#[test]
fn pkcscca_reenciphers_old_to_current_one_mk_type_at_a_time() {
    let host = cca_host(20);
    let counts = keys_by_name(&host);
    let n = |name| counts.get(name).copied().unwrap_or(0);
    assert!(
        n("AES") > 0 && n("HMAC") > 0 && n("EC") > 0 && n("DES3") > 0 && n("RSA (ASYM)") > 0,
        "{counts:?}"
    );
    // CCA order: the new MK is loaded and set first, then EXPECTED_MKVPS names it.
    host.tke(&["load", "--mk", "aes"]);
    host.tke(&["set", "--mk", "aes"]);
    host.expect_mkvps(CONF, &[("AES", AES_NEW)]);
    let before = host.verify()["tokens"]["cca"].clone();
    let aes_keys = n("AES") + n("AES XTS") + n("HMAC");
    assert_eq!(before["unusable"], aes_keys, "under OLD: not migrated yet");
    // mkplan's key probe on the simulated token says the same.
    let probe = || {
        let module = std::path::Path::new("/usr/lib/opencryptoki/libopencryptoki.so");
        mkplan_sim::SimProber::new(&host.root)
            .probe(module, 5, &mkplan_engine::secret::Pin::new(PIN.to_owned()))
            .unwrap()
    };
    let inventory = probe();
    let unusable: Vec<_> = inventory
        .keys()
        .filter(|k| k.usable != mkplan_engine::record::probe::Usability::Usable)
        .collect();
    assert_eq!(unusable.len(), aes_keys, "{unusable:#?}");

    let out = host.pkcscca(&["-m", "keys", "-s", "5", "-k", "aes"], &pins());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // pkcscca.c's summary: AES and AES XTS keys count as AES; only nonzero counters.
    assert_eq!(
        text(&out.stdout),
        format!(
            "Enter the SO PIN: \nEnter the USER PIN: \nSuccessfully migrated: AES: {}. HMAC: {}. \n",
            n("AES") + n("AES XTS"),
            n("HMAC")
        )
    );
    let summary = parse_migrate_output(&text(&out.stdout)).unwrap();
    assert_eq!(
        (summary.migrated_total(), summary.failed_total()),
        (aes_keys as u64, 0)
    );
    let after = host.verify()["tokens"]["cca"].clone();
    assert_eq!(
        (
            after["unusable"].clone(),
            after["current_mkvps"]["AES"].clone()
        ),
        (json!(0), json!(AES_NEW))
    );
    assert_eq!(after["blobs_by_wkvp"][format!("AES {AES_NEW}")], aes_keys);
    assert_eq!(
        after["blobs_by_wkvp"][format!("APKA {APKA_OLD}")],
        n("EC") + n("RSA (APKA)") + n("IBM Dilithium")
    );

    // Again: every AES key is under the current MK already.
    let again = host.pkcscca(
        &["-m", "keys", "-s", "5", "-k", "aes", "-d", STORE],
        &pins(),
    );
    let lines = lines_of(&again.stdout);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("Skipping, ")).count(),
        aes_keys
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "Skipping, HMAC token is  wrapped with current master key. label=cca-hmac-0006, handle="
        )),
        "{lines:#?}"
    );
    // The tool counts a key already under the current MK as migrated.
    let summary = parse_migrate_output(&text(&again.stdout)).unwrap();
    assert_eq!(summary.skipped.len(), aes_keys);
    assert_eq!(
        (summary.migrated_total(), summary.failed_total()),
        (aes_keys as u64, 0)
    );

    // An MK type whose new MK was never set: nothing to do, and still exit 0.
    let apka = host.pkcscca(
        &["-m", "keys", "-s", "5", "-k", "apka", "-v", "info"],
        &pins(),
    );
    assert_eq!(apka.status.code(), Some(0));
    let summary = parse_migrate_output(&text(&apka.stdout)).unwrap();
    let apka_keys = n("EC") + n("RSA (APKA)") + n("IBM Dilithium");
    // Every key is under CUR already; old-format RSA keys are "not new" and counted as well.
    assert_eq!(summary.failed_total(), 0);
    assert_eq!(
        summary.migrated_total(),
        (apka_keys + n("RSA (ASYM)")) as u64
    );
    assert_eq!(summary.skipped.len(), apka_keys + n("RSA (ASYM)"));
    assert!(text(&apka.stdout).contains("Search for IBM ML-KEM keys\n"));
    // -k asym touches the old-format RSA keys only; with -v each key is named.
    host.tke(&["load", "--mk", "asym"]);
    host.tke(&["set", "--mk", "asym"]);
    // ccatok.conf has no ASYM pattern: the token does not use the ASYM MK.
    let asym = host.pkcscca(
        &["-m", "keys", "-s", "5", "-k", "asym", "-v", "info"],
        &pins(),
    );
    let lines = lines_of(&asym.stdout);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Successfully migrated RSA key. label=cca-rsa-crt-"))
            .count(),
        n("RSA (ASYM)")
    );
    // The new-format RSA keys are found too, skipped as "not old", and counted.
    assert_eq!(
        lines.last().unwrap(),
        &format!(
            "Successfully migrated: RSA: {}. ",
            n("RSA (ASYM)") + n("RSA (APKA)")
        )
    );
    let summary = parse_migrate_output(&text(&asym.stdout)).unwrap();
    assert_eq!(summary.skipped.len(), n("RSA (APKA)"));
    assert_eq!(host.verify()["total"]["unusable"], 0);
    let log = std::fs::read_to_string(host.root.join("var/log/mkplan-sim/pkcscca.log")).unwrap();
    assert!(!log.contains(PIN) && !log.contains(SO_PIN));
}

#[test]
fn pkcscca_faults_and_refusals() {
    let host = cca_host(12);
    let store = host.path(STORE);
    let snapshot = || objects(&store);
    let untouched = snapshot();
    let run = |args: &[&str], stdin: &str| host.pkcscca(args, stdin);
    let keys = ["-m", "keys", "-s", "5", "-k", "aes"];

    // Both PINs are asked, and checked against the data store before anything else.
    let wrong_so = run(&keys, &format!("87654321\n{PIN}\n"));
    assert_eq!(wrong_so.status.code(), Some(255));
    assert_eq!(
        text(&wrong_so.stdout),
        "Enter the SO PIN: \nEnter the USER PIN: \n"
    );
    assert_eq!(
        text(&wrong_so.stderr),
        "Failed to verify the SO PIN: it does not match the data store.\n"
    );
    let wrong_user = run(&keys, &format!("{SO_PIN}\nnope\n"));
    assert_eq!(wrong_user.status.code(), Some(255));
    let nvtok: Value =
        serde_json::from_slice(&std::fs::read(store.join("NVTOK.DAT")).unwrap()).unwrap();
    assert_eq!(
        nvtok["user_login_failures"], 0,
        "checked against the store, not a login"
    );
    assert_eq!(snapshot(), untouched);

    // The NEW register only partly loaded, the set never done: every key is "current".
    host.tke(&["load", "--mk", "aes", "--partial"]);
    let partial = run(&keys, &pins());
    assert_eq!(partial.status.code(), Some(0));
    let summary = parse_migrate_output(&text(&partial.stdout)).unwrap();
    assert_eq!(summary.failed_total(), 0);
    assert_eq!(summary.migrated_total() as usize, summary.skipped.len());
    assert!(
        text(&partial.stdout).contains("Skipping, AES token is  wrapped with current master key.")
    );
    assert!(
        host.mkvps("0c.0011")
            .starts_with("AES NEW: partial 0x0000000000000000\n")
    );
    assert_eq!(snapshot(), untouched);

    // Set, but EXPECTED_MKVPS still names the old MK: openCryptoki does not start the token.
    host.tke(&["load", "--mk", "aes"]);
    host.tke(&["set", "--mk", "aes"]);
    let not_present = run(&keys, &pins());
    assert_eq!(not_present.status.code(), Some(5));
    assert_eq!(
        text(&not_present.stderr),
        "C_OpenSession failed, rc = 0xE0 (CKR_TOKEN_NOT_PRESENT)\n"
    );
    host.expect_mkvps(CONF, &[("AES", AES_NEW)]);

    // One key fails on the card: counted, the others migrate, exit 0 all the same.
    assert!(
        host.sim(&["fault", "cca-fail-at-key", "2"])
            .status
            .success()
    );
    let one_failed = run(&keys, &pins());
    assert_eq!(one_failed.status.code(), Some(0));
    let lines = lines_of(&one_failed.stdout);
    let failed_line = lines.last().unwrap();
    assert!(failed_line.starts_with("Failed to migrate: "), "{lines:?}");
    let failed: usize = failed_line
        .split(". ")
        .filter_map(|part| {
            part.trim_end_matches('.')
                .rsplit(": ")
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(failed, 1, "{failed_line}");
    // As a pty carries it: the prompts, the failure on stderr (its last line has no newline),
    // then the rest of stdout.
    let stdout = text(&one_failed.stdout);
    let prompts = "Enter the SO PIN: \nEnter the USER PIN: \n";
    let rest = stdout.strip_prefix(prompts).unwrap();
    let stderr = text(&one_failed.stderr);
    assert!(
        !stderr.ends_with('\n') && stderr.contains(" key failed. label="),
        "{stderr}"
    );
    let summary = parse_migrate_output(&format!("{prompts}{stderr}{rest}")).unwrap();
    assert_eq!((summary.failed_total(), summary.failed_keys.len()), (1, 1));
    assert!(summary.errors[0].contains("(Key Token Change) failed. return code: 12"));
    assert_eq!(
        host.verify()["tokens"]["cca"]["unusable"],
        1,
        "the failed key is still under OLD"
    );
    assert!(host.sim(&["fault", "--clear"]).status.success());
    assert_eq!(run(&keys, &pins()).status.code(), Some(0));
    assert_eq!(host.verify()["total"]["unusable"], 0);

    for (args, code, message) in [
        (
            vec!["-m", "keys", "-s", "1024", "-k", "aes"],
            255,
            "invalid slot number '1024'",
        ),
        (
            vec!["-m", "keys", "-s", "x", "-k", "aes"],
            255,
            "invalid slot number 'x'",
        ),
        (
            vec!["-m", "keys", "-s", "5", "-k", "des"],
            255,
            "invalid master key type 'des'",
        ),
        (
            vec!["-s", "5", "-k", "aes"],
            255,
            "a mode is required (-m keys)",
        ),
        (
            vec!["-m", "keys", "-s", "9", "-k", "aes"],
            5,
            "C_OpenSession failed, rc = 0x3 (CKR_SLOT_ID_INVALID)",
        ),
    ] {
        let out = run(&args, &pins());
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            text(&out.stderr).starts_with(message),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(run(&["-h"], "").status.code(), Some(0));
    let stop = std::process::Command::new(host.root.join("usr/bin/systemctl"))
        .args(["stop", "pkcsslotd"])
        .output()
        .unwrap();
    assert!(stop.status.success());
    let no_daemon = run(&keys, &pins());
    assert_eq!(
        (no_daemon.status.code(), text(&no_daemon.stderr)),
        (
            Some(2),
            "C_Initialize failed, rc = 0x5 (CKR_GENERAL_ERROR)\n".to_owned()
        )
    );
}

/// CCA cards still take a key under the OLD MK: applications keep working between the set
/// and `pkcscca` (they are stopped anyway in the offline procedure).
#[test]
fn cca_keys_work_under_old_until_reenciphered() {
    let mut spec = json!({"tokens": [cca_token("cca", 5, &["0c.0011", "0d.0011"])]});
    spec["apps"] = json!([{"name": "signer", "interval_ms": 5}]);
    let host = Host::new(spec, 8);
    let since = host.ops_done("signer");
    host.wait_for_ops("signer", since, 5);
    host.tke(&["load", "--mk", "aes,apka"]);
    host.tke(&["set"]);
    let since = host.ops_done("signer");
    assert_eq!(host.wait_for_ops("signer", since, 10)["failed"], 0);
    assert!(host.verify()["total"]["unusable"].as_u64().unwrap() > 0);
    host.expect_mkvps(CONF, &[("AES", AES_NEW), ("APKA", APKA_NEW)]);
    for mk in ["aes", "apka"] {
        assert_eq!(
            host.pkcscca(&["-m", "keys", "-s", "5", "-k", mk], &pins())
                .status
                .code(),
            Some(0)
        );
    }
    assert_eq!(host.verify()["total"]["unusable"], 0);
    let since = host.ops_done("signer");
    assert_eq!(host.wait_for_ops("signer", since, 5)["failed"], 0);
}

/// `-s` and `-S` name the SYM and ASYM master keys: `list` names both types, but only the
/// SYM keys get a re-enciphered blob — openCryptoki's CCA token acts on SYM, AES and APKA
/// only (`cca_mkchange.c`), so the old RSA keys under the ASYM MK are left as they are.
#[test]
fn the_concurrent_change_reenciphers_only_the_named_mk_types() {
    let host = cca_host(20);
    let counts = keys_by_name(&host);
    host.tke(&["load", "--mk", "sym,asym"]);
    // An operation naming only the ASYM MK affects no CCA token at all.
    let asym = host.mk_change(
        &[
            "reencipher",
            "-a",
            "0c.0011,0d.0011",
            "-S",
            "7777777777777777",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(asym.status.code(), Some(1));
    assert!(
        text(&asym.stderr).contains("No token is affected by this master key change, aborting"),
        "{}",
        text(&asym.stderr)
    );
    let out = host.mk_change(
        &[
            "reencipher",
            "-a",
            "0c.0011,0d.0011",
            "--cca-sym-mkvp",
            "0x8888888888888888",
            "-S",
            "6666666666666666",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = created_id(&text(&out.stdout));
    let reenc: usize = objects(&host.path(STORE))
        .iter()
        .filter(|o| o["blob_reenc"].is_string())
        .count();
    let sym: usize = ["DES", "DES2", "DES3"]
        .iter()
        .map(|n| counts.get(n).copied().unwrap_or(0))
        .sum();
    assert!(
        sym > 0 && counts.get("RSA (ASYM)").is_some_and(|n| *n > 0),
        "{counts:?}"
    );
    assert_eq!(reenc, sym, "{counts:?}");
    let list = text(&host.mk_change(&["list", "-i", &id], "").stdout);
    assert!(
        list.contains("        Type:    CCA SYM\n        MKVP:    8888888888888888\n        Type:    CCA ASYM\n        MKVP:    6666666666666666\n"),
        "{list}"
    );
    // An AES change beside it is another MK type: it may run at the same time.
    host.tke(&["load", "--mk", "aes"]);
    let aes = host.mk_change(
        &["reencipher", "-a", "0c.0011,0d.0011", "-A", &AES_NEW[2..]],
        &format!("{PIN}\n"),
    );
    assert_eq!(aes.status.code(), Some(0), "{}", text(&aes.stderr));
    // The same MK type again is not; every shared APQN is named, AES as the tool spells it
    // there (`CCA_AES`).
    let aes_id = created_id(&text(&aes.stdout));
    let aes_again = host.mk_change(
        &["reencipher", "-a", "0c.0011,0d.0011", "-A", &AES_NEW[2..]],
        &format!("{PIN}\n"),
    );
    assert_eq!(aes_again.status.code(), Some(1));
    for apqn in ["0C.0011", "0D.0011"] {
        assert!(
            text(&aes_again.stderr).contains(&format!(
                "Operation '{aes_id}' also affects APQN {apqn} and MK type 'CCA_AES'"
            )),
            "{}",
            text(&aes_again.stderr)
        );
    }
    // The same MK type again is not.
    let again = host.mk_change(
        &[
            "reencipher",
            "-a",
            "0c.0011,0d.0011",
            "-s",
            "8888888888888888",
        ],
        &format!("{PIN}\n"),
    );
    assert!(
        text(&again.stderr).contains(&format!(
            "Operation '{id}' also affects APQN 0C.0011 and MK type 'CCA SYM'"
        )),
        "{}",
        text(&again.stderr)
    );
}

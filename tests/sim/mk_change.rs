//! The `pkcshsm_mk_change` stand-in against opencryptoki-ep11.md 2: each command, each
//! refusal, the operation files, `list`, the operation ID line, the prompts, and the signals
//! it ignores. PINs go through a pipe.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mkplan_engine::ports::keys::KeyProber;
use serde_json::{Value, json};

use super::spec_host::*;
use super::{PIN, text};

const CONF: &str = "/etc/opencryptoki/ep11tok.conf";
const APQNS: &str = "0a.0011,0b.0011";
const NEW_HEX: &str = "9b7d4e0a11f35c8822d0b6e4a7f1c3d9";

fn ep11_host(keys: usize) -> Host {
    Host::new(
        json!({"tokens": [ep11_token("ep11", 4, &["0a.0011", "0b.0011"])]}),
        keys,
    )
}

fn pins(n: usize) -> String {
    format!("{PIN}\n").repeat(n)
}

/// Loads and commits the new WK everywhere and re-enciphers; returns the operation ID.
fn reenciphered(host: &Host) -> String {
    host.tke(&["load"]);
    host.tke(&["commit"]);
    let out = host.mk_change(&["reencipher", "-a", APQNS, "-e", NEW_HEX], &pins(1));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    created_id(&text(&out.stdout))
}

fn stderr_lines(out: &std::process::Output) -> Vec<String> {
    lines_of(&out.stderr)
}

#[test]
fn reencipher_activate_and_finalize_follow_the_contract() {
    const KEYS: usize = 12;
    let host = ep11_host(KEYS);
    host.tke(&["load"]);
    host.tke(&["commit"]);
    let out = host.mk_change(
        &[
            "reencipher",
            "--apqns",
            "0a.0011 0b.0011",
            "--ep11-wkvp",
            &format!("0x{NEW_HEX}"),
        ],
        &pins(1),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = created_id(&stdout);
    assert_eq!(
        stdout,
        format!(
            "The following tokens are affected by this master key change:\n  Slot 4: Label: {:<32}\n\
             Enter the USER PIN for slot 4: \nRe-enciphering, please wait...\nCompleted.\n\n\
             Master key change operation '{id}' created.\n\n\
             Once the new master keys have been set/activated:\n \
             - If you specified EXPECTED_MKVPS in your token configuration file(s),\n   \
             you must now replace the old MKVPs with the new MKVPs. - Run 'pkcshsm_mk_change finalize --id {id}' when the new master\n   \
             keys have been set/activated.\n",
            "ep11"
        )
    );
    assert_eq!(out.stderr.len(), 0, "{}", text(&out.stderr));

    // The operation's files: the operation in state REENCIPHERED (11) and the slot's old WKVP.
    assert_eq!(host.op_files(), [id.clone(), format!("{id}-4")]);
    for file in host.op_files() {
        let mode = std::fs::metadata(host.ops_dir().join(&file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660, "{file}");
    }
    let op: Value =
        serde_json::from_slice(&std::fs::read(host.ops_dir().join(&id)).unwrap()).unwrap();
    assert_eq!(
        (op["state"].clone(), op["slots"].clone()),
        (json!(11), json!([4]))
    );
    let slot: Value =
        serde_json::from_slice(&std::fs::read(host.ops_dir().join(format!("{id}-4"))).unwrap())
            .unwrap();
    assert_eq!(
        slot["current_mkvps"][0]["mkvp"],
        OLD_WK.trim_start_matches("0x")
    );
    assert!(
        host.root
            .join("var/lock/opencryptoki/LCK..HSM_MK_CHANGElock")
            .is_file()
    );

    // Every key object keeps its old blob and has a re-enciphered one beside it.
    let store = host.path("/var/lib/opencryptoki/ep11tok");
    let keys: Vec<Value> = objects(&store)
        .into_iter()
        .filter(|o| o["blob"].is_string())
        .collect();
    assert_eq!(keys.len(), KEYS);
    for key in &keys {
        assert_eq!(
            &key["blob"].as_str().unwrap()[64..96],
            OLD_WK.trim_start_matches("0x"),
            "OPAQUE keeps the old blob"
        );
        assert_eq!(
            &key["blob_reenc"].as_str().unwrap()[64..96],
            NEW_HEX,
            "REENC is under the new WK"
        );
    }
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert_eq!(
        (verdict["usable"].clone(), verdict["reenc_blobs"].clone()),
        (json!(KEYS), json!(KEYS))
    );
    assert_eq!(verdict["operation"], id.as_str());

    let list = host.mk_change(&["list"], "");
    assert_eq!(list.status.code(), Some(0));
    assert_eq!(
        text(&list.stdout),
        format!(
            "Operation:       {id}\n    State:       Key objects have been re-enciphered,\n                 new master key(s) can now be set/activated\n\
             \x20   APQNs:\n        0A.0011\n        0B.0011\n\
             \x20   New master key verification patterns:\n        Type:    EP11\n        MKVP:    {}\n\
             \x20   Affected slots:\n        Slot: 4 Label: {:<32}\n\
             \x20           Current master key verification patterns:\n                Type:    EP11\n                MKVP:    {}\n",
            NEW_HEX.to_uppercase(),
            "ep11",
            OLD_WK.trim_start_matches("0x").to_uppercase()
        )
    );
    assert_eq!(
        text(&host.mk_change(&["list", "-i", &id], "").stdout),
        text(&list.stdout)
    );

    // The TKE activates one APQN at a time; finalize waits for all and for EXPECTED_WKVP.
    host.tke(&["activate", "--apqn", "0a.0011"]);
    let early = host.mk_change(&["finalize", "-i", &id], &pins(1));
    assert_eq!(early.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&early),
        [
            "pkcshsm_mk_change: Token in slot 4 is unable to finalize the master key change.",
            "pkcshsm_mk_change: At least one token is unable to finalize the master key change, aborting."
        ]
    );
    assert!(
        host.syslog()
            .contains("Slot 4: The current EP11 WK on APQN 0B.0011 does not match the new WK")
    );
    assert_eq!(text(&early.stdout), "", "no PIN prompt before the query");
    host.tke(&["activate", "--apqn", "0b.0011"]);
    let expected_old = host.mk_change(&["finalize", "--id", &id], &pins(1));
    assert_eq!(expected_old.status.code(), Some(1));
    assert!(host.syslog().contains(&format!(
        "Expected WKVP in config file '{CONF}' does not specify the new WKVP."
    )));
    host.expect_wkvp(CONF, NEW_WK);
    let done = host.mk_change(&["finalize", "--id", &id], &pins(1));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(
        text(&done.stdout),
        format!(
            "Enter the USER PIN for slot 4: \nFinalizing, please wait...\n\nMaster key change operation '{id}' successfully finalized.\n"
        )
    );
    assert_eq!(host.op_files(), Vec::<String>::new());
    assert!(host.syslog().contains(&format!(
        "Slot 4: Concurrent HSM master key change operation {id} is finalized, EP11 token now use multi-APQN mode"
    )));
    // REENC became OPAQUE, the old blob is kept as OLD; every key works under the new WK.
    for key in objects(&store)
        .into_iter()
        .filter(|o| o["blob"].is_string())
    {
        assert_eq!(&key["blob"].as_str().unwrap()[64..96], NEW_HEX);
        assert_eq!(
            &key["blob_old"].as_str().unwrap()[64..96],
            OLD_WK.trim_start_matches("0x")
        );
        assert!(key.get("blob_reenc").is_none());
    }
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert_eq!(
        (
            verdict["usable"].clone(),
            verdict["current_wkvp"].clone(),
            verdict["old_blobs"].clone()
        ),
        (json!(KEYS), json!(NEW_WK), json!(KEYS))
    );
    assert!(verdict.get("operation").is_none());
    let empty = host.mk_change(&["list"], "");
    assert_eq!((empty.status.code(), empty.stdout.len()), (Some(0), 0));
    let gone = host.mk_change(&["finalize", "-i", &id], &pins(1));
    assert_eq!(
        text(&gone.stderr),
        format!("pkcshsm_mk_change: HSM master key change operation '{id}' not found.\n")
    );
    // The PIN reached neither argv nor the environment.
    let log = std::fs::read_to_string(host.root.join("var/log/mkplan-sim/pkcshsm_mk_change.log"))
        .unwrap();
    assert!(!log.contains(PIN));
}

#[test]
fn reencipher_refusals_leave_no_operation() {
    let host = ep11_host(3);
    let refuse = |args: &[&str], why: &str| {
        let out = host.mk_change(args, &pins(1));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stdout)
        );
        assert_eq!(
            stderr_lines(&out),
            [
                "pkcshsm_mk_change: Token in slot 4 is unable to perform the master key change.",
                "pkcshsm_mk_change: At least one token is unable to perform the master key change, aborting."
            ],
            "{args:?}"
        );
        assert!(
            host.syslog().contains(why),
            "{why} not in {}",
            host.syslog()
        );
        assert_eq!(host.op_files(), Vec::<String>::new(), "{args:?}");
        assert!(
            !text(&out.stdout).contains("Enter the USER PIN"),
            "refused before any PIN"
        );
    };
    let e = ["-e", NEW_HEX];
    host.tke(&["load"]);
    refuse(
        &[&["reencipher", "-a", APQNS][..], &e].concat(),
        "Slot 4: No new EP11 wrapping key is set/committed on APQN 0A.0011",
    );
    host.tke(&["commit"]);
    refuse(
        &[&["reencipher", "-a", "0a.0011"][..], &e].concat(),
        "Slot 4: APQN 0B.0011 must be included into this operation.",
    );
    refuse(
        &["reencipher", "-a", APQNS, "-e", &"ab".repeat(16)],
        "Slot 4: The new EP11 WK on APQN 0A.0011 does not match the specified WKVP",
    );
    // EXPECTED_WKVP already naming the new WK: openCryptoki does not start the token, so
    // its slot has no token, the tool asks first, and then nothing is affected.
    host.expect_wkvp(CONF, NEW_WK);
    let early = host.mk_change(
        &[&["reencipher", "-a", APQNS][..], &e].concat(),
        &format!("y\n{PIN}\n"),
    );
    assert!(
        text(&early.stdout)
            .starts_with("WARNING: The following slots have no token present:\n  Slot 4\n")
    );
    assert_eq!(
        text(&early.stderr),
        "pkcshsm_mk_change: No token is affected by this master key change, aborting\n"
    );
    host.expect_wkvp(CONF, OLD_WK);
    assert!(
        host.sim(&["fault", "mk-change-refuse-initiate", "4"])
            .status
            .success()
    );
    refuse(
        &[&["reencipher", "-a", APQNS][..], &e].concat(),
        "Slot 4: the token answered the query event negatively",
    );
    assert!(host.sim(&["fault", "--clear"]).status.success());

    let none = host.mk_change(&["reencipher", "-a", "0c.0011", "-e", NEW_HEX], &pins(1));
    assert_eq!(
        (none.status.code(), text(&none.stderr)),
        (
            Some(1),
            "pkcshsm_mk_change: No token is affected by this master key change, aborting\n"
                .to_owned()
        )
    );
    let cca_only = host.mk_change(
        &["reencipher", "-a", APQNS, "-A", "2222222222222222"],
        &pins(1),
    );
    assert!(
        text(&cca_only.stderr).contains("No token is affected"),
        "EP11 tokens ignore CCA patterns"
    );

    // A wrong PIN: the login fails, and the operation is gone.
    let wrong = host.mk_change(&["reencipher", "-a", APQNS, "-e", NEW_HEX], "not-the-pin\n");
    assert_eq!(
        (wrong.status.code(), text(&wrong.stderr)),
        (
            Some(1),
            "pkcshsm_mk_change: Error logging in for slot 4: 0xA0 (CKR_PIN_INCORRECT)\n".to_owned()
        )
    );
    assert_eq!(host.op_files(), Vec::<String>::new());
    let eof = host.mk_change(&["reencipher", "-a", APQNS, "-e", NEW_HEX], "");
    assert_eq!(
        (eof.status.code(), text(&eof.stderr)),
        (Some(1), "pkcshsm_mk_change: Aborted by user.\n".to_owned())
    );
    let empty = host.mk_change(
        &["reencipher", "-a", APQNS, "-e", NEW_HEX],
        &format!("\n{PIN}\n"),
    );
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
    assert_eq!(
        text(&empty.stderr),
        "pkcshsm_mk_change: Empty pin entered, try again.\n"
    );
    assert_eq!(
        text(&empty.stdout)
            .matches("Enter the USER PIN for slot 4: ")
            .count(),
        2
    );

    // An operation of the same APQNs and MK type is running now.
    let second = host.mk_change(&["reencipher", "-a", "0b.0011", "-e", NEW_HEX], &pins(1));
    let id = created_id(&text(&empty.stdout));
    assert_eq!(
        (second.status.code(), stderr_lines(&second)),
        (
            Some(1),
            vec![
                format!(
                    "pkcshsm_mk_change: Operation '{id}' also affects APQN 0B.0011 and MK type 'EP11 WK'"
                ),
                "pkcshsm_mk_change: Intersecting master key operations are active, aborting"
                    .to_owned()
            ]
        )
    );
    assert_eq!(host.op_files(), [id.clone(), format!("{id}-4")]);
}

#[test]
fn finalize_and_cancel_refuse_what_the_tool_refuses() {
    let host = ep11_host(4);
    let id = reenciphered(&host);
    let refused = |command: &str| {
        let out = host.mk_change(&[command, "-i", &id], &pins(1));
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(
            text(&out.stderr).contains(&format!(
                "Token in slot 4 is unable to {command} the master key change."
            )),
            "{command}: {}",
            text(&out.stderr)
        );
    };
    // Finalize before activation.
    refused("finalize");
    // Cancel while EXPECTED_WKVP names the new WK already.
    host.expect_wkvp(CONF, NEW_WK);
    refused("cancel");
    assert!(host.syslog().contains(&format!(
        "Expected WKVP in config file '{CONF}' does not specify the current WKVP."
    )));
    host.expect_wkvp(CONF, OLD_WK);
    // Cancel once any APQN has activated; finalize until all have.
    host.tke(&["activate", "--apqn", "0b.0011"]);
    refused("cancel");
    assert!(
        host.syslog().contains(
            "Slot 4: The current EP11 WK on APQN 0B.0011 does not match the expected one"
        )
    );
    refused("finalize");
    // Half activated, every key still works through the operation (mkplan's probe too).
    let inventory = mkplan_sim::SimProber::new(&host.root)
        .probe(
            std::path::Path::new("/usr/lib/opencryptoki/libopencryptoki.so"),
            4,
            &mkplan_engine::secret::Pin::new(PIN.to_owned()),
        )
        .unwrap();
    assert_eq!(inventory.keys().count(), 4);
    assert!(
        inventory
            .keys()
            .all(|k| k.usable == mkplan_engine::record::probe::Usability::Usable)
    );
    // The forward fix: activate the rest, name the new WK, finalize.
    host.tke(&["activate", "--apqn", "0a.0011"]);
    host.expect_wkvp(CONF, NEW_WK);
    let done = host.mk_change(&["finalize", "-i", &id], &pins(1));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(host.verify()["total"]["unusable"], 0);
}

#[test]
fn cancel_removes_the_new_blobs_and_a_failed_pass_can_be_retried() {
    let host = ep11_host(5);
    let id = reenciphered(&host);
    assert!(
        host.sim(&["fault", "mk-change-fail-cancel", "2"])
            .status
            .success()
    );
    let failed = host.mk_change(&["cancel", "-i", &id], &pins(1));
    assert_eq!(
        (failed.status.code(), stderr_lines(&failed)),
        (
            Some(1),
            vec![
                "pkcshsm_mk_change: At least one token failed to cancel the master key change operation.".to_owned(),
                "pkcshsm_mk_change: Check the syslog for details about the errors reported by the tokens.".to_owned()
            ]
        )
    );
    let list = text(&host.mk_change(&["list", "-i", &id], "").stdout);
    assert!(
        list.contains("    State:       Finalizing or canceling has errored\n"),
        "{list}"
    );
    assert_eq!(
        host.verify()["tokens"]["ep11"]["reenc_blobs"],
        4,
        "one object was done before the failure"
    );
    assert!(host.sim(&["fault", "--clear"]).status.success());
    let again = host.mk_change(&["cancel", "-i", &id], &pins(1));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stdout).ends_with(&format!(
        "Canceling, please wait...\n\nMaster key change operation '{id}' successfully canceled.\n"
    )));
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert!(
        verdict.get("reenc_blobs").is_none() && verdict.get("old_blobs").is_none(),
        "{verdict:#}"
    );
    assert_eq!(
        (verdict["usable"].clone(), verdict["current_wkvp"].clone()),
        (json!(5), json!(OLD_WK))
    );
    assert_eq!(host.op_files(), Vec::<String>::new());
}

#[test]
fn a_failed_finalize_is_in_error_and_finalize_again_finishes_it() {
    let host = ep11_host(6);
    let id = reenciphered(&host);
    host.tke(&["activate"]);
    host.expect_wkvp(CONF, NEW_WK);
    assert!(
        host.sim(&["fault", "mk-change-fail-finalize", "3"])
            .status
            .success()
    );
    let failed = host.mk_change(&["finalize", "-i", &id], &pins(1));
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&failed)[0],
        "pkcshsm_mk_change: At least one token failed to finalize the master key change operation."
    );
    let op: Value =
        serde_json::from_slice(&std::fs::read(host.ops_dir().join(&id)).unwrap()).unwrap();
    assert_eq!(op["state"], 100);
    // Half finalized, every key still works through the operation.
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert_eq!(
        (verdict["usable"].clone(), verdict["old_blobs"].clone()),
        (json!(6), json!(2))
    );
    // Cancel is allowed from ERROR, but the APQNs are activated: the token refuses.
    let cancel = host.mk_change(&["cancel", "-i", &id], &pins(1));
    assert!(
        text(&cancel.stderr).contains("Token in slot 4 is unable to cancel"),
        "{}",
        text(&cancel.stderr)
    );
    assert!(host.sim(&["fault", "--clear"]).status.success());
    let done = host.mk_change(&["finalize", "-i", &id], &pins(1));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert_eq!(
        (
            verdict["usable"].clone(),
            verdict["old_blobs"].clone(),
            verdict["current_wkvp"].clone()
        ),
        (json!(6), json!(6), json!(NEW_WK))
    );
}

#[test]
fn a_failed_reencipher_cancels_by_itself() {
    let host = ep11_host(6);
    host.tke(&["load"]);
    host.tke(&["commit"]);
    assert!(
        host.sim(&["fault", "mk-change-fail-reencipher", "4"])
            .status
            .success()
    );
    let out = host.mk_change(&["reencipher", "-a", APQNS, "-e", NEW_HEX], &pins(1));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&out),
        [
            "pkcshsm_mk_change: At least one token failed to perform the key re-encryption.",
            "pkcshsm_mk_change: Check the syslog for details about the errors reported by the tokens."
        ]
    );
    assert!(text(&out.stdout).ends_with("Re-enciphering, please wait...\n"));
    assert!(
        host.syslog()
            .contains("Slot 4: Failed to re-encipher the key object")
    );
    assert_eq!(host.op_files(), Vec::<String>::new());
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert!(
        verdict.get("reenc_blobs").is_none(),
        "the 3 done were removed: {verdict:#}"
    );
    assert_eq!(verdict["usable"], 6);
}

#[test]
fn slots_without_a_token_are_confirmed_first() {
    let host = Host::new(
        json!({"tokens": [ep11_token("ep11", 4, &["0a.0011", "0b.0011"])], "absent_slots": [1, 2]}),
        3,
    );
    host.tke(&["load"]);
    host.tke(&["commit"]);
    let question = "WARNING: The following slots have no token present:\n  Slot 1\n  Slot 2\n\
                    ATTENTION: If you start a concurrent master key change operation while not\n\
                    all expected tokens are present, the key objects of those tokens may be lost,\n\
                    if the token would be affected by the master key change.\nContinue [y/N]? ";
    for answer in ["n\n", "\n", "", "Y\n"] {
        let out = host.mk_change(
            &["reencipher", "-a", APQNS, "-e", NEW_HEX],
            &format!("{answer}{PIN}\n"),
        );
        assert_eq!(out.status.code(), Some(1), "{answer:?}");
        assert_eq!(text(&out.stdout), question);
        assert_eq!(text(&out.stderr), "pkcshsm_mk_change: Aborted by user.\n");
        assert_eq!(host.op_files(), Vec::<String>::new());
    }
    let yes = host.mk_change(
        &["reencipher", "-a", APQNS, "-e", NEW_HEX],
        &format!("yes\n{PIN}\n"),
    );
    assert_eq!(yes.status.code(), Some(0), "{}", text(&yes.stderr));
    assert!(text(&yes.stdout).starts_with(&format!("{question}The following tokens are affected")));
    // A token openCryptoki would not start counts as missing too (and list needs no answer).
    host.expect_wkvp(CONF, &format!("0x{}", "5eed".repeat(8)));
    let list = host.mk_change(&["list"], "");
    assert_eq!(list.status.code(), Some(0));
    assert!(
        text(&list.stdout).contains("        Slot: 4\n"),
        "no label: {}",
        text(&list.stdout)
    );
    let finalize = host.mk_change(
        &["finalize", "-i", &created_id(&text(&yes.stdout))],
        &pins(1),
    );
    assert_eq!(
        text(&finalize.stderr),
        "pkcshsm_mk_change: The list of slots affected by this master key change has changed\nsince initiating this master key change operation.\n"
    );
}

#[test]
fn sigint_and_sigterm_are_ignored_and_sigkill_strands_the_operation() {
    let host = ep11_host(8);
    host.tke(&["load"]);
    host.tke(&["commit"]);
    assert!(
        host.sim(&["fault", "mk-change-slow", "150"])
            .status
            .success()
    );
    let run = |signals: &[i32]| {
        let mut child = Command::new(host.root.join("usr/sbin/pkcshsm_mk_change"))
            .args(["reencipher", "-a", APQNS, "-e", NEW_HEX])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), pins(1).as_bytes()).unwrap();
        // Wait until it is re-enciphering: the operation file says REENCIPHERING.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states: Vec<Value> = host
                .op_files()
                .iter()
                .filter(|f| !f.contains('-') && !f.ends_with(".tmp"))
                .filter_map(|f| {
                    serde_json::from_slice(&std::fs::read(host.ops_dir().join(f)).ok()?).ok()
                })
                .collect();
            if states.iter().any(|op| op["state"] == 10) {
                break;
            }
            assert!(Instant::now() < deadline, "never re-enciphering");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        for signal in signals {
            let signal = rustix::process::Signal::from_named_raw(*signal).unwrap();
            rustix::process::kill_process(pid, signal).unwrap();
        }
        child.wait_with_output().unwrap()
    };
    let survived = run(&[2, 15, 2]);
    assert_eq!(
        survived.status.code(),
        Some(0),
        "{}",
        text(&survived.stderr)
    );
    let id = created_id(&text(&survived.stdout));
    let cancel = host.mk_change(&["cancel", "-i", &id], &pins(1));
    assert_eq!(cancel.status.code(), Some(0));

    // SIGKILL cannot be ignored: the operation stays in REENCIPHERING, which neither
    // finalize nor cancel accepts.
    let killed = run(&[9]);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(9)
    );
    let id = host
        .op_files()
        .into_iter()
        .find(|f| !f.contains('-'))
        .unwrap();
    let list = text(&host.mk_change(&["list"], "").stdout);
    assert!(
        list.contains("    State:       Re-enciphering of key objects ongoing\n"),
        "{list}"
    );
    for (command, word) in [("finalize", "finalized"), ("cancel", "canceled")] {
        let out = host.mk_change(&[command, "-i", &id], &pins(1));
        assert_eq!(
            text(&out.stderr),
            format!(
                "pkcshsm_mk_change: The HSM master key change operation '{id}' is in a state where\nit can not be {word}.\n"
            )
        );
    }
}

#[test]
fn the_command_line_and_the_daemon() {
    let host = ep11_host(2);
    let help = host.mk_change(&["--help"], "");
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).starts_with("Usage: pkcshsm_mk_change COMMAND"));
    for (args, message) in [
        (
            vec!["rotate"],
            "pkcshsm_mk_change: unrecognized command 'rotate'\n",
        ),
        (
            vec!["list", "-a", APQNS],
            "pkcshsm_mk_change: option -a/--apqns is only valid for the 'reencipher' command\n",
        ),
        (
            vec!["finalize"],
            "pkcshsm_mk_change: option -i/--id is required for the 'finalize' command\n",
        ),
        (
            vec!["reencipher", "-e", NEW_HEX],
            "pkcshsm_mk_change: option -a/--apqns is required for the 'reencipher' command\n",
        ),
        (
            vec!["reencipher", "-a", APQNS],
            "pkcshsm_mk_change: at least one master key verification pattern must be specified\n",
        ),
        (
            vec!["reencipher", "-a", APQNS, "-e", "9b7d"],
            "pkcshsm_mk_change: option -e/--ep11-wkvp must specify at least 16 bytes\n",
        ),
        (
            vec!["reencipher", "-a", "0a:0011", "-e", NEW_HEX],
            "pkcshsm_mk_change: Invalid APQN specification: 0a:0011\n",
        ),
        (
            vec!["list", "stray"],
            "pkcshsm_mk_change: unrecognized option 'stray'\n",
        ),
        (
            vec!["list", "-i", "nosuch"],
            "pkcshsm_mk_change: HSM master key change operation 'nosuch' not found.\n",
        ),
    ] {
        let out = host.mk_change(&args, "");
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(1), message.to_owned()),
            "{args:?}"
        );
    }
    let long = host.mk_change(&["reencipher", "-a", APQNS, "--ep11wkvp", NEW_HEX], "");
    assert_eq!(long.status.code(), Some(1));
    assert!(text(&long.stderr).ends_with("pkcshsm_mk_change: unrecognized option '--ep11wkvp'\n"));

    // Without event support only `list` works; without pkcsslotd nothing does.
    assert!(
        host.sim(&["fault", "disable-event-support"])
            .status
            .success()
    );
    let no_events = host.mk_change(&["reencipher", "-a", APQNS, "-e", NEW_HEX], &pins(1));
    assert_eq!(
        text(&no_events.stderr),
        "pkcshsm_mk_change: Failed to connect to pkcsslotd's event socket: No such file or directory\n"
    );
    assert_eq!(host.mk_change(&["list"], "").status.code(), Some(0));
    assert!(host.sim(&["fault", "--clear"]).status.success());
    let stop = Command::new(host.root.join("usr/bin/systemctl"))
        .args(["stop", "pkcsslotd"])
        .output()
        .unwrap();
    assert!(stop.status.success());
    let no_daemon = host.mk_change(&["list"], "");
    assert_eq!(
        (no_daemon.status.code(), text(&no_daemon.stderr)),
        (
            Some(1),
            "pkcshsm_mk_change: Error initializing the PKCS11 library: 0x5 (CKR_GENERAL_ERROR)\n"
                .to_owned()
        )
    );
}

#[test]
fn tokens_sharing_a_label_answer_twice() {
    let mut second = ep11_token("ep11b", 6, &["0c.0011"]);
    second["label"] = json!("ep11");
    let host = Host::new(
        json!({"tokens": [ep11_token("ep11", 4, &["0a.0011", "0b.0011"]), second]}),
        2,
    );
    host.tke(&["load"]);
    host.tke(&["commit"]);
    let out = host.mk_change(
        &["reencipher", "-a", "0a.0011,0b.0011,0c.0011", "-e", NEW_HEX],
        &pins(2),
    );
    assert_eq!(
        (out.status.code(), stderr_lines(&out)),
        (
            Some(1),
            vec![
                "pkcshsm_mk_change: More than one token responded to the query event for slot 4"
                    .to_owned(),
                "pkcshsm_mk_change: Possibly multiple tokens use the same label?".to_owned()
            ]
        )
    );
    assert_eq!(host.op_files(), Vec::<String>::new());
}

/// A finalize killed in its first pass (some objects finalized, the state still
/// REENCIPHERED) is finished by running finalize again: objects already done are skipped.
#[test]
fn a_finalize_killed_half_way_is_finished_by_finalize_again() {
    const KEYS: usize = 10;
    let host = ep11_host(KEYS);
    let id = reenciphered(&host);
    host.tke(&["activate"]);
    host.expect_wkvp(CONF, NEW_WK);
    assert!(
        host.sim(&["fault", "mk-change-slow", "100"])
            .status
            .success()
    );
    let mut child = Command::new(host.root.join("usr/sbin/pkcshsm_mk_change"))
        .args(["finalize", "-i", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), pins(1).as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.verify()["tokens"]["ep11"]["old_blobs"]
        .as_u64()
        .unwrap_or(0)
        < 2
    {
        assert!(Instant::now() < deadline, "finalize made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let op: Value =
        serde_json::from_slice(&std::fs::read(host.ops_dir().join(&id)).unwrap()).unwrap();
    assert_eq!(op["state"], 11, "the state is saved after the first pass");
    let half = host.verify()["tokens"]["ep11"].clone();
    let done = half["old_blobs"].as_u64().unwrap();
    assert!((2..KEYS as u64).contains(&done), "{half:#}");
    assert_eq!(
        half["usable"], KEYS,
        "every key works through the operation meanwhile"
    );
    assert!(host.sim(&["fault", "--clear"]).status.success());
    let again = host.mk_change(&["finalize", "-i", &id], &pins(1));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let verdict = host.verify()["tokens"]["ep11"].clone();
    assert_eq!(
        (
            verdict["usable"].clone(),
            verdict["old_blobs"].clone(),
            verdict["current_wkvp"].clone()
        ),
        (json!(KEYS), json!(KEYS), json!(NEW_WK))
    );
}

//! End-to-end tests of the CCA plans (issue 15): the real `mkplan` binary rehearses
//! plans/cca-offline.yaml and plans/mixed-offline.yaml on a simulated host, with the
//! `pkcscca` faults, and each test proves its end state from the outside: `mkplan-sim
//! verify`, the store against the backup unpacked with plain `tar -xzf`, the journal's
//! failure text, the exit code, and no PIN (USER or SO) in any output or state file.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
const STORE: &str = "var/lib/opencryptoki/ccatok";
/// The simulator's SO PIN (`mkplan_sim::DEFAULT_SO_PIN`), which the rehearsal's SO PIN
/// source gives.
const SO_PIN: &str = mkplan_sim::DEFAULT_SO_PIN;
const KEYS: usize = 24;
/// plans/cca-offline.yaml's new MKVPs.
const NEW_AES: &str = "0x8e7f6a5b4c3d2e1f";
const NEW_APKA: &str = "0x3a1f0e9d8c7b6a59";
/// Its current AES MKVP, before the change.
const OLD_AES: &str = "0x1d2c3b4a59687706";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

struct Bench {
    root: PathBuf,
    state: PathBuf,
    outputs: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if self.root.join("var/lib/mkplan-sim/state.json").exists() {
            let _ = Command::new("timeout")
                .args(["60", SIM, "shutdown", "--root"])
                .arg(&self.root)
                .output();
        }
    }
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mkplan-cca-")
            .tempdir()
            .unwrap();
        let base = dir.path().canonicalize().unwrap();
        Self {
            root: base.join("host"),
            state: base.join("state"),
            outputs: Vec::new(),
            _dir: dir,
        }
    }

    /// `mkplan rehearse PLAN --keys KEYS --fault …`, kept for the PIN search; its exit code.
    fn rehearse(&mut self, plan: &str, faults: &[&str]) -> i32 {
        let mut c = Command::new("timeout");
        c.args(["180", MKPLAN, "--root"])
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("rehearse")
            .arg(repo(plan))
            .args(["--keys", &KEYS.to_string(), "--keep"]);
        for fault in faults {
            c.args(["--fault", fault]);
        }
        let out = c.output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.outputs.push(text);
        out.status.code().unwrap_or(-1)
    }

    fn output(&self) -> &str {
        self.outputs.last().unwrap()
    }

    fn verify(&self) -> Value {
        let out = Command::new("timeout")
            .args(["60", SIM, "verify", "--json", "--root"])
            .arg(&self.root)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn run_dir(&self) -> PathBuf {
        let mut ids: Vec<PathBuf> = std::fs::read_dir(self.state.join("runs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(ids.len(), 1, "one run per bench: {ids:?}");
        ids.pop().unwrap()
    }

    /// The CCA backup of this run, unpacked with plain `tar -xzf`.
    fn unpacked_backup(&self) -> PathBuf {
        let backups = self.root.join("var/backups/mkplan");
        let archive = std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-cca.tar.gz"))
            .expect("a CCA backup archive");
        let into = self.root.parent().unwrap().join("unpacked");
        std::fs::create_dir_all(&into).unwrap();
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&into)
            .output()
            .unwrap();
        assert!(out.status.success(), "tar -xzf: {out:?}");
        into.join("ccatok")
    }

    /// The store is byte-for-byte the backup: the same files, contents and modes.
    fn assert_store_is_the_backup(&self) {
        let backup = tree(&self.unpacked_backup());
        let store = tree(&self.root.join(STORE));
        assert!(!backup.is_empty());
        let differ: Vec<_> = backup
            .keys()
            .chain(store.keys())
            .filter(|k| backup.get(*k) != store.get(*k))
            .collect();
        assert!(
            differ.is_empty(),
            "the store differs from the backup: {differ:?}"
        );
    }

    /// Neither the USER PIN nor the SO PIN is in any output, or any file of the state dir
    /// (journal, report, html, signatures) or the report copy on the host.
    fn assert_pins_nowhere(&self) {
        let record: Value = serde_json::from_slice(
            &std::fs::read(self.root.join("var/lib/mkplan-sim/rehearsal.json")).unwrap(),
        )
        .unwrap();
        let user_pin = record["pin"].as_str().unwrap().to_owned();
        let mut files = Vec::new();
        walk(&self.state, &mut files);
        walk(&self.root.join("var/lib/mkplan/reports"), &mut files);
        walk(&self.root.join("var/log/mkplan-sim"), &mut files);
        for pin in [user_pin.as_str(), SO_PIN] {
            for (i, out) in self.outputs.iter().enumerate() {
                assert!(!out.contains(pin), "a PIN is in the output of run #{i}");
            }
            for file in &files {
                let bytes = std::fs::read(file).unwrap_or_default();
                assert!(
                    !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
                    "a PIN is in {}",
                    file.display()
                );
            }
        }
    }

    /// The journal's failure text of the failed step.
    fn step_error(&self) -> String {
        let journal = std::fs::read_to_string(self.run_dir().join("journal.jsonl")).unwrap();
        journal
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "step_failed")
            .filter_map(|e| e["data"]["error"].as_str().map(str::to_owned))
            .next()
            .unwrap_or_else(|| panic!("no step_failed in the journal:\n{journal}"))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Relative path → mode and SHA-256 of contents (directories: mode only).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn go(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, format!("d {:o}", meta.mode() & 0o7777));
                go(base, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
                out.insert(
                    rel,
                    format!("f {:o} {}", meta.mode() & 0o7777, hex::encode(digest)),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

fn assert_every_cca_key_under_the_new_mks(verify: &Value) {
    let token = &verify["tokens"]["cca"];
    assert_eq!(token["usable"], KEYS, "{token:#}");
    assert_eq!(token["unusable"], 0, "{token:#}");
    assert_eq!(token["current_mkvps"]["AES"], NEW_AES, "{token:#}");
    assert_eq!(token["current_mkvps"]["APKA"], NEW_APKA, "{token:#}");
    let blobs: BTreeMap<String, u64> =
        serde_json::from_value(token["blobs_by_wkvp"].clone()).unwrap();
    assert!(
        blobs
            .keys()
            .all(|k| *k == format!("AES {NEW_AES}") || *k == format!("APKA {NEW_APKA}")),
        "every blob is under a new MK: {blobs:?}"
    );
    assert_eq!(blobs.values().sum::<u64>(), KEYS as u64);
}

#[test]
fn the_cca_plan_rehearses_with_every_key_usable_under_the_new_mks() {
    let mut b = Bench::new();
    let code = b.rehearse("plans/cca-offline.yaml", &[]);
    assert_eq!(code, 0, "{}", b.output());
    assert_every_cca_key_under_the_new_mks(&b.verify());
    // set_expected_mkvps: the token's ccatok.conf expects the new MKs (else it would not
    // start, and pkcscca could not open a session).
    let conf = std::fs::read_to_string(b.root.join("etc/opencryptoki/ccatok.conf")).unwrap();
    assert!(
        conf.contains(&format!("AES = \"{NEW_AES}\""))
            && conf.contains(&format!("APKA = \"{NEW_APKA}\"")),
        "{conf}"
    );
    // The report's end state shows each APQN's CCA registers: the new MKs in CUR, the
    // previous ones in OLD, NEW empty (not the EP11 WK columns' "unknown").
    let report: Value =
        serde_json::from_slice(&std::fs::read(b.run_dir().join("report.json")).unwrap()).unwrap();
    let apqns = report["tokens"][0]["end"]["apqns"]["apqns"]
        .as_array()
        .unwrap_or_else(|| panic!("an end-state reading: {:#}", report["tokens"][0]["end"]));
    assert!(!apqns.is_empty());
    for apqn in apqns {
        let registers = apqn["cca"].as_array().unwrap();
        let aes = registers.iter().find(|r| r["mk"] == "AES").unwrap();
        assert_eq!(
            (&aes["cur_state"], &aes["cur_mkvp"], &aes["new_state"]),
            (&json!("valid"), &json!(NEW_AES), &json!("empty")),
            "{apqn:#}"
        );
        let apka = registers.iter().find(|r| r["mk"] == "APKA").unwrap();
        assert_eq!(apka["cur_mkvp"], NEW_APKA, "{apqn:#}");
    }
    // Before the change: the registers the first `assert_mk` read, the previous MK in CUR
    // and the new one loaded in NEW (not the reading after the set, nearest the migration).
    let before = &report["tokens"][0]["apqns_before"];
    assert_eq!(before["source"], "assert_mk", "{before:#}");
    let apqns = before["apqns"].as_array().unwrap();
    assert!(!apqns.is_empty());
    for apqn in apqns {
        let registers = apqn["cca"].as_array().unwrap();
        let aes = registers.iter().find(|r| r["mk"] == "AES").unwrap();
        assert_eq!(
            (&aes["cur_mkvp"], &aes["new_state"], &aes["new_mkvp"]),
            (&json!(OLD_AES), &json!("full"), &json!(NEW_AES)),
            "{apqn:#}"
        );
    }
    let html = std::fs::read_to_string(b.run_dir().join("report.html")).unwrap();
    assert!(
        html.contains("AES valid"),
        "the page shows the CCA registers"
    );
    assert!(
        html.contains("MKVPs current") && !html.contains("WKVP current"),
        "a CCA token's patterns are called MKVPs"
    );
    b.assert_pins_nowhere();
}

#[test]
fn the_mixed_plan_rehearses_with_every_key_of_both_tokens_usable_under_the_new_keys() {
    let mut b = Bench::new();
    let code = b.rehearse("plans/mixed-offline.yaml", &[]);
    assert_eq!(code, 0, "{}", b.output());
    let verify = b.verify();
    assert_every_cca_key_under_the_new_mks(&verify);
    let ep11 = &verify["tokens"]["ep11"];
    assert_eq!(ep11["usable"], KEYS, "{ep11:#}");
    assert_eq!(ep11["unusable"], 0, "{ep11:#}");
    assert_eq!(
        ep11["current_wkvp"], "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9",
        "{ep11:#}"
    );
    b.assert_pins_nowhere();
}

/// `pkcscca` exits 0 with `Failed to migrate: … 1.` after writing back the keys that
/// worked: mkplan fails the step and rescue restores the store byte-for-byte.
#[test]
fn a_key_that_fails_with_exit_zero_fails_the_step_and_the_store_is_restored() {
    let mut b = Bench::new();
    let code = b.rehearse("plans/cca-offline.yaml", &["cca-fail-at-key=3"]);
    assert_eq!(code, 1, "{}", b.output());
    let error = b.step_error();
    assert!(
        error.contains("exited 0, but 1 key(s) failed to migrate")
            && error.contains("rescue restores the verified backup"),
        "{error}"
    );
    assert!(
        b.output().contains("rescue restored `cca`"),
        "{}",
        b.output()
    );
    b.assert_store_is_the_backup();
    // What the restore replaced was partly migrated: the comparison sees a difference.
    let replaced = std::fs::read_dir(b.root.join("var/lib/opencryptoki"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("ccatok.replaced-"))
        .expect("the replaced store is kept");
    assert_ne!(tree(&replaced), tree(&b.root.join(STORE)));
    b.assert_pins_nowhere();
}

/// A wrong SO PIN: `pkcscca` refuses it before any key (exit 255); the store is untouched.
#[test]
fn a_wrong_so_pin_fails_before_any_key_and_leaves_the_store_untouched() {
    let mut b = Bench::new();
    let code = b.rehearse("plans/cca-offline.yaml", &["wrong-so-pin"]);
    assert_eq!(code, 1, "{}", b.output());
    let error = b.step_error();
    assert!(
        error.contains("exit 255")
            && error.contains("SO PIN")
            && error.contains("no key was re-enciphered"),
        "{error}"
    );
    b.assert_store_is_the_backup();
    let token = &b.verify()["tokens"]["cca"];
    assert_eq!(
        token["unusable"], KEYS,
        "keys stay under the previous MK, now in OLD: {token:#}"
    );
    b.assert_pins_nowhere();
}

/// The TKE loads only a first key part (NEW partial): `assert_mk` reads it on every APQN
/// and stops the run before the set; nothing is migrated and the keys stay usable under
/// the current MKs.
#[test]
fn a_partial_new_register_stops_before_the_migration_and_leaves_the_keys_usable() {
    let mut b = Bench::new();
    let code = b.rehearse("plans/cca-offline.yaml", &["cca-partial-new"]);
    assert_eq!(code, 1, "{}", b.output());
    let error = b.step_error();
    assert!(
        error.contains("NEW partial")
            && error.contains("the plan expects")
            && error.contains("NEW full"),
        "{error}"
    );
    b.assert_store_is_the_backup();
    let token = &b.verify()["tokens"]["cca"];
    assert_eq!(token["usable"], KEYS, "{token:#}");
    assert_eq!(
        token["current_mkvps"]["AES"], "0x1d2c3b4a59687706",
        "{token:#}"
    );
    b.assert_pins_nowhere();
}

//! End-to-end tests of the CCA plans (issue 15): the real `mkplan` binary rehearses
//! plans/cca-offline.yaml, plans/mixed-offline.yaml and the concurrent
//! plans/cca-concurrent.yaml (and an operation over an EP11 and a CCA token together) on a
//! simulated host, with the `pkcscca` and TKE faults, and each test proves its end state
//! from the outside: `mkplan-sim verify`, the store against the backup unpacked with plain
//! `tar -xzf`, the journal's failure text, the exit code, and no PIN (USER or SO) in any
//! output or state file.

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
        let mut args = vec![
            "rehearse".to_owned(),
            repo(plan).display().to_string(),
            "--keys".to_owned(),
            KEYS.to_string(),
            "--keep".to_owned(),
        ];
        for fault in faults {
            args.extend(["--fault".to_owned(), (*fault).to_owned()]);
        }
        self.mkplan(&args)
    }

    /// `mkplan rehearse PLAN --keys KEYS --keep --stop-at-park`: the run stops at its
    /// first park (exit 6) and the simulated TKE acts only on a resume.
    fn rehearse_to_park(&mut self, plan: &str) -> i32 {
        let args: Vec<String> = [
            "rehearse",
            &repo(plan).display().to_string(),
            "--keys",
            &KEYS.to_string(),
            "--keep",
            "--stop-at-park",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        self.mkplan(&args)
    }

    /// `mkplan resume RUN ARGS…` of this bench's one run; its exit code.
    fn resume(&mut self, extra: &[&str]) -> i32 {
        let id = self
            .run_dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut args = vec!["resume".to_owned(), id];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        self.mkplan(&args)
    }

    /// `mkplan --root ROOT --state-dir STATE ARGS…` with the root and the simulator in its
    /// environment (for a plan's `command` steps), kept for the PIN search; its exit code.
    fn mkplan(&mut self, args: &[String]) -> i32 {
        let out = Command::new("timeout")
            .args(["180", MKPLAN, "--root"])
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env("MKPLAN_E2E_ROOT", &self.root)
            .env("MKPLAN_E2E_SIM", SIM)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
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
        self.journal()
            .iter()
            .filter(|e| e["kind"] == "step_failed")
            .filter_map(|e| e["data"]["error"].as_str().map(str::to_owned))
            .next()
            .unwrap_or_else(|| panic!("no step_failed in the journal:\n{:#?}", self.journal()))
    }

    fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(self.run_dir().join("journal.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn report(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.run_dir().join("report.json")).unwrap()).unwrap()
    }

    /// The operation files `pkcshsm_mk_change` keeps: none once an operation has ended.
    fn operation_files(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("var/lib/opencryptoki/HSM_MK_CHANGE"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The simulated applications did operations and none failed.
    fn assert_apps_never_failed(&self) {
        let out = Command::new("timeout")
            .args(["60", SIM, "apps", "--json", "--root"])
            .arg(&self.root)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(report["total"]["ok"].as_u64().unwrap() > 0, "{report:#}");
        assert_eq!(report["total"]["failed"], 0, "{report:#}");
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

/// plans/cca-concurrent.yaml's current MKVPs.
const OLD_APKA: &str = "0x755cb8e7740dae51";

/// Every CCA key usable under the previous MKs, nothing re-enciphered left behind.
fn assert_every_cca_key_under_the_current_mks(verify: &Value) {
    let token = &verify["tokens"]["cca"];
    assert_eq!(token["usable"], KEYS, "{token:#}");
    assert_eq!(token["unusable"], 0, "{token:#}");
    assert_eq!(token["current_mkvps"]["AES"], OLD_AES, "{token:#}");
    let blobs: BTreeMap<String, u64> =
        serde_json::from_value(token["blobs_by_wkvp"].clone()).unwrap();
    assert_eq!(
        blobs,
        BTreeMap::from([
            (format!("AES {OLD_AES}"), (KEYS / 2) as u64),
            (format!("APKA {OLD_APKA}"), (KEYS / 2) as u64),
        ]),
        "{token:#}"
    );
}

/// The done condition for the concurrent CCA path: `mkplan rehearse
/// plans/cca-concurrent.yaml` parks for the TKE's set, resumes, finalizes, and every key is
/// usable under the new MKs while the applications never failed; the report names the
/// operation's CCA patterns and the registers each phase read.
#[test]
fn the_concurrent_cca_plan_rehearses_with_every_key_usable_under_the_new_mks() {
    let mut b = Bench::new();
    let code = b.rehearse("plans/cca-concurrent.yaml", &[]);
    assert_eq!(code, 0, "{}", b.output());
    assert!(
        b.output()
            .contains("PARKED at steps[5] `Set the new MKs on the TKE`"),
        "{}",
        b.output()
    );
    assert!(
        b.output().contains("every key also has a blob under the new AES MK 0x8e7f6a5b4c3d2e1f and APKA MK 0x3a1f0e9d8c7b6a59"),
        "{}",
        b.output()
    );
    assert_every_cca_key_under_the_new_mks(&b.verify());
    b.assert_apps_never_failed();
    assert_eq!(b.operation_files(), Vec::<String>::new());
    let conf = std::fs::read_to_string(b.root.join("etc/opencryptoki/ccatok.conf")).unwrap();
    assert!(
        conf.contains(&format!("AES = \"{NEW_AES}\""))
            && conf.contains(&format!("APKA = \"{NEW_APKA}\"")),
        "{conf}"
    );
    // The tool was given the CCA patterns and no EP11 WKVP.
    let reencipher = b
        .journal()
        .into_iter()
        .find(|e| {
            e["kind"] == "step_succeeded" && e["data"]["step"]["kind"] == "mk_change.reencipher"
        })
        .expect("the reencipher succeeded");
    let argv: Vec<String> =
        serde_json::from_value(reencipher["data"]["data"]["tool"]["argv"].clone()).unwrap();
    assert_eq!(
        argv[1..],
        [
            "reencipher",
            "--apqns",
            "0c.0011,0d.0011",
            "--cca-aes-mkvp",
            &NEW_AES[2..],
            "--cca-apka-mkvp",
            &NEW_APKA[2..]
        ],
        "{argv:?}"
    );
    let report = b.report();
    let operation = &report["concurrent"][0];
    assert_eq!(operation["outcome"], "finalized", "{operation:#}");
    assert_eq!(operation["new_wkvp"], "", "{operation:#}");
    assert_eq!(
        operation["new_cca_mkvps"],
        json!({"AES": &NEW_AES[2..], "APKA": &NEW_APKA[2..]}),
        "{operation:#}"
    );
    let phase = |name: &str| {
        operation["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phase"] == name)
            .unwrap_or_else(|| panic!("a {name} phase: {operation:#}"))
            .clone()
    };
    let before = phase("reencipher")["wk_state"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        before
            .starts_with("0c.0011: AES CUR valid 0x1d2c3b4a59687706, NEW full 0x8e7f6a5b4c3d2e1f"),
        "{before}"
    );
    let set = phase("activation")["wk_state"][1]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        set.starts_with(
            "0d.0011: AES CUR valid 0x8e7f6a5b4c3d2e1f, NEW empty, OLD valid 0x1d2c3b4a59687706"
        ),
        "{set}"
    );
    assert_eq!(phase("expected_mkvps")["status"], "succeeded");
    // The token's part: a CCA token, its readings before the change (`assert_mk`: NEW
    // full) and after the set (the `until`), by MK type.
    let token = &report["tokens"][0];
    assert_eq!(token["cca"], true, "{token:#}");
    assert_eq!(token["apqns_before"]["source"], "assert_mk", "{token:#}");
    let aes_before = token["apqns_before"]["apqns"][0]["cca"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mk"] == "AES")
        .unwrap()
        .clone();
    assert_eq!(
        (&aes_before["new_state"], &aes_before["new_mkvp"]),
        (&json!("full"), &json!(NEW_AES)),
        "{token:#}"
    );
    assert_eq!(
        token["apqns_after"]["source"], "checkpoint until",
        "{token:#}"
    );
    // The page's APQN tables show each MK type's registers, not the EP11 WK columns.
    let html = std::fs::read_to_string(b.run_dir().join("report.html")).unwrap();
    assert!(
        html.contains("<th>OLD</th>") && !html.contains("CUR WKVP"),
        "the page's APQN tables are CCA's"
    );
    b.assert_pins_nowhere();
}

/// One `pkcshsm_mk_change` operation covers an EP11 and a CCA token: one reencipher with
/// `--ep11-wkvp` and the CCA patterns, a park per token, one finalize; every key of both
/// tokens ends usable under its new key.
#[test]
fn one_operation_over_an_ep11_and_a_cca_token_changes_both() {
    let mut b = Bench::new();
    let code = b.rehearse("tests/fixtures/e2e/mixed-concurrent.yaml", &[]);
    assert_eq!(code, 0, "{}", b.output());
    let reencipher = b
        .journal()
        .into_iter()
        .find(|e| {
            e["kind"] == "step_succeeded" && e["data"]["step"]["kind"] == "mk_change.reencipher"
        })
        .expect("the reencipher succeeded");
    let argv: Vec<String> =
        serde_json::from_value(reencipher["data"]["data"]["tool"]["argv"].clone()).unwrap();
    assert_eq!(
        argv[1..],
        [
            "reencipher",
            "--apqns",
            "0a.0011,0b.0011,0c.0011,0d.0011",
            "--ep11-wkvp",
            "9b7d4e0a11f35c8822d0b6e4a7f1c3d9",
            "--cca-aes-mkvp",
            &NEW_AES[2..],
            "--cca-apka-mkvp",
            &NEW_APKA[2..]
        ],
        "{argv:?}"
    );
    let operations = b
        .journal()
        .iter()
        .filter(|e| {
            e["kind"] == "step_milestone"
                && e["data"]["milestone"]["milestone"] == "operation_created"
        })
        .count();
    assert_eq!(operations, 1);
    let verify = b.verify();
    assert_every_cca_key_under_the_new_mks(&verify);
    let ep11 = &verify["tokens"]["ep11"];
    assert_eq!(ep11["usable"], KEYS, "{ep11:#}");
    assert_eq!(ep11["unusable"], 0, "{ep11:#}");
    assert_eq!(
        ep11["current_wkvp"], "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9",
        "{ep11:#}"
    );
    assert_eq!(ep11["reenc_blobs"].as_u64().unwrap_or(0), 0, "{ep11:#}");
    assert_eq!(b.operation_files(), Vec::<String>::new());
    b.assert_apps_never_failed();
    b.assert_pins_nowhere();
}

/// The TKE clears one APQN's AES NEW register after `assert_mk` proved it full: the
/// reencipher's own live check refuses before the tool starts (no PIN typed, no operation),
/// rescue has nothing to cancel, and every key stays usable under the current MKs.
#[test]
fn a_new_register_emptied_after_the_assert_is_refused_before_the_tool_starts() {
    let mut b = Bench::new();
    let code = b.rehearse("tests/fixtures/e2e/cca-concurrent-tke-clears.yaml", &[]);
    assert_eq!(code, 1, "{}", b.output());
    let error = b.step_error();
    assert!(
        error.contains("refused before the tool started")
            && error.contains("APQN 0d.0011 (adapter 13, domain 17): AES is NEW empty")
            && error.contains("NEW full 0x8e7f6a5b4c3d2e1f"),
        "{error}"
    );
    let failed = b
        .journal()
        .into_iter()
        .find(|e| e["kind"] == "step_failed")
        .unwrap();
    assert_eq!(
        failed["data"]["step"]["kind"], "mk_change.reencipher",
        "{failed:#}"
    );
    assert!(
        failed["data"]["data"]["tool"].is_null(),
        "the tool never ran: {failed:#}"
    );
    assert!(b.output().contains("nothing to cancel"), "{}", b.output());
    assert_eq!(b.operation_files(), Vec::<String>::new());
    assert_every_cca_key_under_the_current_mks(&b.verify());
    b.assert_pins_nowhere();
}

/// EXPECTED_MKVPS is put back to the current MKs between `set_expected_mkvps` and the
/// finalize (mkplan killed in between): the finalize refuses before the tool runs and, the
/// new MKs being set, halts instead of cancelling; once the file is right, resume finishes.
#[test]
fn expected_mkvps_reverted_before_finalize_is_caught_and_halts() {
    let mut b = Bench::new();
    let code = b.rehearse_to_park("plans/cca-concurrent.yaml");
    assert_eq!(code, 6, "{}", b.output());
    // Die right after `set_expected_mkvps` succeeded (the 7th event this resume journals:
    // resumed, the checkpoint's 4, the step's 2).
    let after = (b.journal().len() + 6).to_string();
    let id = b
        .run_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let killed = Command::new("timeout")
        .args(["180", MKPLAN, "--root"])
        .arg(&b.root)
        .arg("--state-dir")
        .arg(&b.state)
        .args(["resume", &id])
        .env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", &after)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    b.outputs.push(format!(
        "{}\n{}",
        String::from_utf8_lossy(&killed.stdout),
        String::from_utf8_lossy(&killed.stderr)
    ));
    let last = b.journal().pop().unwrap();
    assert_eq!(last["kind"], "step_succeeded", "{last:#}");
    assert_eq!(
        last["data"]["step"]["kind"], "set_expected_mkvps",
        "{last:#}"
    );
    let conf = b.root.join("etc/opencryptoki/ccatok.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains(&NEW_AES[2..]), "{text}");
    std::fs::write(
        &conf,
        text.replace(&NEW_AES[2..], &OLD_AES[2..])
            .replace(&NEW_APKA[2..], &OLD_APKA[2..]),
    )
    .unwrap();

    let code = b.resume(&[]);
    assert_eq!(code, 1, "{}", b.output());
    assert!(b.output().contains("HALTED at steps[7]"), "{}", b.output());
    assert!(
        b.output().contains(
            "sets EXPECTED_MKVPS AES = 0x1d2c3b4a59687706 for token `cca`, but the new MK 0x8e7f6a5b4c3d2e1f is needed there"
        ),
        "{}",
        b.output()
    );
    let finalize_ran = b.journal().iter().any(|e| {
        e["kind"] == "step_failed"
            && e["data"]["data"]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    assert!(!finalize_ran, "the tool never ran");
    assert!(
        !b.journal().iter().any(|e| e["kind"] == "rescue_started"),
        "no cancel after the set"
    );
    std::fs::write(&conf, text).unwrap();
    let code = b.resume(&[]);
    assert_eq!(code, 0, "{}", b.output());
    assert_every_cca_key_under_the_new_mks(&b.verify());
    assert_eq!(b.operation_files(), Vec::<String>::new());
    b.assert_apps_never_failed();
    b.assert_pins_nowhere();
}

/// Denied while parked, before any set: rescue cancels the operation and every key stays
/// under the current MKs. Once the TKE has set a new MK on one APQN, a denial is refused
/// (the tool would refuse the cancel): the run stays parked and goes forward.
#[test]
fn deny_while_parked_cancels_before_the_set_and_is_refused_after() {
    let mut b = Bench::new();
    assert_eq!(
        b.rehearse_to_park("plans/cca-concurrent.yaml"),
        6,
        "{}",
        b.output()
    );
    let code = b.resume(&["--deny", "tke-set=alice"]);
    assert_eq!(code, 4, "{}", b.output());
    assert!(
        b.output().contains("rescue cancelled operation"),
        "{}",
        b.output()
    );
    assert_eq!(b.operation_files(), Vec::<String>::new());
    assert_every_cca_key_under_the_current_mks(&b.verify());
    b.assert_apps_never_failed();
    b.assert_pins_nowhere();

    let mut late = Bench::new();
    assert_eq!(
        late.rehearse_to_park("plans/cca-concurrent.yaml"),
        6,
        "{}",
        late.output()
    );
    let set = Command::new("timeout")
        .args(["60", SIM, "tke", "set", "--apqn", "0c.0011", "--root"])
        .arg(&late.root)
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let code = late.resume(&["--deny", "tke-set=alice"]);
    assert_eq!(code, 6, "{}", late.output());
    assert!(
        late.output().contains(
            "cannot abandon (denied by alice): 0c.0011 already has the new MK as current"
        ),
        "{}",
        late.output()
    );
    assert!(!late.journal().iter().any(|e| e["kind"] == "rescue_started"));
    let code = late.resume(&[]);
    assert_eq!(code, 0, "{}", late.output());
    assert_every_cca_key_under_the_new_mks(&late.verify());
    late.assert_apps_never_failed();
    late.assert_pins_nowhere();
}

/// While the run is parked, the TKE sets a third AES MK (neither the plan's current nor its
/// new one) on one APQN; the run is denied: rescue's cancel is refused by mkplan before the
/// tool starts (the tool's cancel query wants the current MK in CUR on every APQN), and the
/// operation is left for the operator, never half-cancelled.
#[test]
fn a_foreign_mk_set_on_one_apqn_makes_the_cancel_refused_before_the_tool() {
    let mut b = Bench::new();
    assert_eq!(
        b.rehearse_to_park("plans/cca-concurrent.yaml"),
        6,
        "{}",
        b.output()
    );
    for action in [
        &["clear"][..],
        &["load", "--mkvp", "0x0102030405060708"],
        &["set"],
    ] {
        let out = Command::new("timeout")
            .args(["60", SIM, "tke", "--root"])
            .arg(&b.root)
            .args(action)
            .args(["--apqn", "0c.0011", "--mk", "aes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{action:?}: {out:?}");
    }
    let code = b.resume(&["--deny", "tke-set=alice"]);
    assert_eq!(code, 1, "{}", b.output());
    let cancel = b
        .journal()
        .into_iter()
        .find(|e| e["kind"] == "step_failed" && e["data"]["step"]["kind"] == "mk_change.cancel")
        .unwrap_or_else(|| panic!("the cancel failed: {}", b.output()));
    let error = cancel["data"]["error"].as_str().unwrap();
    assert!(
        error.contains("cancel needs the current MKs still in CUR on every APQN")
            && error.contains("APQN 0c.0011 (adapter 12, domain 17): AES is NEW empty, CUR valid 0x0102030405060708"),
        "{error}"
    );
    assert!(
        cancel["data"]["data"]["attempts"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "the tool never ran: {cancel:#}"
    );
    assert_eq!(
        b.operation_files().len(),
        2,
        "the operation is left as it was"
    );
    b.assert_pins_nowhere();
}

/// An APQN's APKA lines read `- -` (an interrupted read that lasts) when the run resumes
/// after the TKE's set: the `until: {assert_mk}` cannot hold on an unknown register, so the
/// run parks again instead of finalizing; once the reads are whole, resume finishes.
#[test]
fn an_unknown_register_at_the_set_checkpoint_parks_again_and_never_finalizes() {
    let mut b = Bench::new();
    assert_eq!(
        b.rehearse_to_park("plans/cca-concurrent.yaml"),
        6,
        "{}",
        b.output()
    );
    let root = b.root.clone();
    let sim = |args: &[&str]| {
        let out = Command::new("timeout")
            .args(["60", SIM, "fault", "--root"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    sim(&["interrupted-read", "0d.0011:apka"]);
    let code = b.resume(&[]);
    assert_eq!(code, 6, "{}", b.output());
    assert!(
        b.output()
            .contains("APQN 0d.0011 (adapter 13, domain 17): the APKA registers read `- -`"),
        "{}",
        b.output()
    );
    let kinds: Vec<String> = b
        .journal()
        .iter()
        .filter(|e| e["kind"] == "step_started")
        .filter_map(|e| e["data"]["step"]["kind"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k == "mk_change.finalize" || k == "set_expected_mkvps"),
        "nothing after the set checkpoint ran: {kinds:?}"
    );
    sim(&["--clear"]);
    let code = b.resume(&[]);
    assert_eq!(code, 0, "{}", b.output());
    assert_every_cca_key_under_the_new_mks(&b.verify());
    assert_eq!(b.operation_files(), Vec::<String>::new());
    b.assert_apps_never_failed();
    b.assert_pins_nowhere();
}

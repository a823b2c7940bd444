//! The report as evidence (issue 18), through the real binaries: rehearsals of the real plan
//! on a simulated EP11 host, succeeded and rescued, and what their journal, `report.json`,
//! `report.html` and `mkplan report show` say — every time in one fixed width, and the end
//! state the operator leaves the host in, read after `always`, whatever the outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use regex::Regex;
use serde_json::Value;

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
/// The guard against hangs, in seconds (not a speed claim).
const GUARD_SECS: &str = "120";
/// `wkvp.current` and `wkvp.new` of plans/ep11-offline.yaml.
const OLD_WK: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5";
const NEW_WK: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
const APQNS: [&str; 2] = ["0a.0011", "0b.0011"];
const KEYS: usize = 40;

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One simulated host and one state dir; the host's processes are shut down on drop.
struct Bench {
    root: PathBuf,
    state: PathBuf,
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
            .prefix("mkplan-evidence-")
            .tempdir()
            .unwrap();
        let base = dir.path().canonicalize().unwrap();
        Self {
            root: base.join("host"),
            state: base.join("state"),
            _dir: dir,
        }
    }

    fn mkplan(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg(GUARD_SECS)
            .arg(MKPLAN)
            .arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `mkplan rehearse PLAN --keys KEYS --fault F…`, which must exit `code`.
    fn rehearse(&self, plan: &Path, faults: &[&str], code: i32) -> Output {
        let mut args = vec!["rehearse", plan.to_str().unwrap(), "--keys"];
        let keys = KEYS.to_string();
        args.push(&keys);
        for fault in faults {
            args.extend(["--fault", fault]);
        }
        let out = self.mkplan(&args);
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        out
    }

    fn run_dir(&self) -> PathBuf {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.state.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "one run per bench: {runs:?}");
        runs[0].clone()
    }

    fn report(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.run_dir().join("report.json")).unwrap()).unwrap()
    }

    /// `mkplan-sim verify --json`: the simulated host's own view of token `ep11`.
    fn sim_token(&self) -> Value {
        let out = Command::new("timeout")
            .args(["60", SIM, "verify", "--json", "--root"])
            .arg(&self.root)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["tokens"]["ep11"].clone()
    }

    /// `CUR` of `apqn` as the simulated sysfs shows it: (state, the first 16 bytes of its VP).
    fn sim_cur(&self, apqn: &str) -> (String, String) {
        let mkvps = self
            .root
            .join("sys/bus/ap/devices")
            .join(apqn)
            .join("mkvps");
        let text = std::fs::read_to_string(mkvps).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("WK CUR: "))
            .unwrap();
        let mut words = line.split_whitespace();
        let state = words.next().unwrap_or_default().to_owned();
        (
            state,
            words.next().unwrap_or_default().chars().take(34).collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Fixed-width times

/// Every RFC 3339 instant in `what`.
fn instants(what: &str) -> Vec<String> {
    let re = Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})").unwrap();
    re.find_iter(what).map(|m| m.as_str().to_owned()).collect()
}

fn assert_fixed_width(name: &str, what: &str) {
    let found = instants(what);
    assert!(!found.is_empty(), "{name} has no times at all");
    let fixed = Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$").unwrap();
    let odd: Vec<&String> = found.iter().filter(|t| !fixed.is_match(t)).collect();
    assert!(
        odd.is_empty(),
        "{name}: times not in the one fixed width (YYYY-MM-DDTHH:MM:SS.mmmZ): {odd:?}"
    );
}

#[test]
fn every_time_in_journal_report_html_show_and_backup_is_fixed_width() {
    let b = Bench::new();
    b.rehearse(&repo("plans/ep11-offline.yaml"), &["fail-at-key=7"], 1);
    let dir = b.run_dir();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_fixed_width("journal.jsonl", &read("journal.jsonl"));
    assert_fixed_width("report.json", &read("report.json"));
    assert_fixed_width("report.html", &read("report.html"));
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let shown = b.mkplan(&["report", "show", &run_id]);
    assert!(shown.status.success(), "{}", text(&shown));
    assert_fixed_width("report show", &String::from_utf8_lossy(&shown.stdout));
    let manifest = b
        .root
        .join("var/backups/mkplan")
        .join(format!("{run_id}-ep11.manifest.jsonl"));
    assert_fixed_width(
        "backup manifest",
        &std::fs::read_to_string(manifest).unwrap(),
    );
}

// ---------------------------------------------------------------------------------------
// The end state, always

/// The journal's event kinds in order.
fn kinds(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The end state of token `ep11` in the report agrees with the simulated host itself: every
/// APQN's CUR is `wk`, and every key works (as `mkplan-sim verify` counts them).
fn assert_end_state_is_the_hosts(b: &Bench, report: &Value, wk: &str) {
    let end = &report["tokens"][0]["end"];
    let apqns = end["apqns"]["apqns"]
        .as_array()
        .expect("the end APQNs were read");
    assert_eq!(apqns.len(), APQNS.len(), "{end:#}");
    for (row, apqn) in apqns.iter().zip(APQNS) {
        assert_eq!(row["apqn"], apqn);
        let (state, vp) = b.sim_cur(apqn);
        assert_eq!(
            (state.as_str(), &vp[..34]),
            ("valid", wk),
            "the host's CUR of {apqn}"
        );
        assert_eq!(row["cur_state"], "valid", "{row:#}");
        assert!(row["cur_wkvp"].as_str().unwrap().starts_with(wk), "{row:#}");
    }
    let sim = b.sim_token();
    assert_eq!(sim["usable"], KEYS, "{sim:#}");
    assert_eq!(end["keys"]["keys"], KEYS, "{end:#}");
    assert_eq!(end["keys"]["usable"], sim["usable"], "{end:#}");
    assert_eq!(end["keys"]["unusable"], 0, "{end:#}");
    let summary = report["tokens"][0]["key_summary"].as_array().unwrap();
    let end_total: u64 = summary
        .iter()
        .map(|s| s["end"]["total"].as_u64().unwrap())
        .sum();
    assert_eq!(end_total, KEYS as u64, "{summary:#?}");
}

#[test]
fn a_rescued_rehearsal_reports_the_restored_end_state_and_no_false_warning() {
    let b = Bench::new();
    b.rehearse(&repo("plans/ep11-offline.yaml"), &["fail-at-key=7"], 1);
    let dir = b.run_dir();
    let report = b.report();
    assert_eq!(report["run"]["outcome"], "rescued");
    assert_eq!(report["report_version"], 2);
    let end = &report["tokens"][0]["end"];
    assert_eq!(end["restored_by"], "rescue[0]", "{end:#}");
    assert_eq!(end["after"], "always[0]", "{end:#}");
    // The keys are the restored ones, under the old WK, which is current again.
    assert_end_state_is_the_hosts(&b, &report, OLD_WK);
    let warnings = report["warnings"].to_string();
    for false_warning in [
        "never probed",
        "no APQN reading",
        "not probed at the end",
        "cannot work",
    ] {
        assert!(!warnings.contains(false_warning), "{warnings}");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("APQNs at the end of the run (after rescue[0] restored the backup)"),
        "the page shows the restored end state"
    );
    assert!(
        !html.contains("No reading in this run"),
        "no empty after-activation table"
    );
    let run_id = report["run"]["id"].as_str().unwrap();
    let shown = b.mkplan(&["report", "show", run_id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("after rescue[0] restored the backup"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("keys at the end: {KEYS} of {KEYS} usable")),
        "{shown}"
    );
}

#[test]
fn a_succeeded_rehearsal_reads_the_end_state_after_always() {
    let b = Bench::new();
    b.rehearse(&repo("plans/ep11-offline.yaml"), &[], 0);
    let dir = b.run_dir();
    let kinds = kinds(&dir);
    let end = kinds
        .iter()
        .position(|k| k == "end_state")
        .expect("an end_state event");
    let last_step = kinds.iter().rposition(|k| k == "step_succeeded").unwrap();
    assert!(
        last_step < end,
        "read after the last `always` step: {kinds:?}"
    );
    assert_eq!(kinds[end + 1], "run_finished", "{kinds:?}");
    let report = b.report();
    assert_eq!(report["tokens"][0]["end"]["restored_by"], Value::Null);
    assert_end_state_is_the_hosts(&b, &report, NEW_WK);
    let warnings = report["warnings"].to_string();
    assert!(!warnings.contains("token `ep11`"), "{warnings}");
}

#[test]
fn the_end_state_says_why_it_could_not_be_read() {
    // A real run (no simulator) on an empty host root: no sysfs, no PKCS#11 module. The run
    // itself needs neither; its end state cannot read them, and says so.
    let b = Bench::new();
    std::fs::create_dir_all(b.root.join("etc")).unwrap();
    let plan = b.root.join("../plan.yaml");
    std::fs::write(
        &plan,
        "mkplan: 1\nname: look only\nchange: { ticket: CHG9, summary: Look only, approvers: [alice] }\n\
         tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n    apqns: [\"0a.0011\"]\n    pin: { env: MKPLAN_EVIDENCE_UNSET_PIN }\n\
         \x20   wkvp: { current: \"0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5\", new: \"0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9\" }\n\
         steps:\n  - name: Say hello\n    command: { argv: [\"echo hello\"], shell: true }\n",
    )
    .unwrap();
    let out = b.mkplan(&[
        "run",
        "--non-interactive",
        "--operator",
        "tester",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = b.report();
    let end = &report["tokens"][0]["end"];
    assert_eq!(end["apqns"], Value::Null, "{end:#}");
    assert!(
        end["apqns_not_read"].as_str().unwrap().contains("0a.0011"),
        "{end:#}"
    );
    assert_eq!(end["keys"], Value::Null, "{end:#}");
    assert!(
        !end["keys_not_read"].as_str().unwrap().is_empty(),
        "{end:#}"
    );
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("the keys were not probed at the end of the run"),
        "{warnings}"
    );
    assert!(
        warnings.contains("the WK state was not read at the end of the run"),
        "{warnings}"
    );
    let html = std::fs::read_to_string(b.run_dir().join("report.html")).unwrap();
    assert!(
        html.contains("Not probed at the end of the run"),
        "the page says it"
    );
}

// ---------------------------------------------------------------------------------------
// Older reports

#[test]
fn a_format_1_report_still_verifies_and_shows() {
    let b = Bench::new();
    let dir = b.root.join("../report-v1");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(repo("tests/fixtures/report-v1")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let dir = dir.to_str().unwrap();
    let verified = b.mkplan(&["report", "verify", dir]);
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(out.contains("version 1"), "{out}");
    let shown = b.mkplan(&["report", "show", dir]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.to_lowercase().contains("rescued"), "{shown}");
    assert!(
        shown.contains("end of run: no end state recorded"),
        "{shown}"
    );
    // An edit is still caught in format 1.
    let report = std::path::Path::new(dir).join("report.json");
    let edited = std::fs::read_to_string(&report)
        .unwrap()
        .replace("rescued", "succeeded");
    std::fs::write(&report, edited).unwrap();
    let verified = b.mkplan(&["report", "verify", dir]);
    assert_eq!(verified.status.code(), Some(1), "{}", text(&verified));
}

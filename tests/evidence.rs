//! The report as evidence (issue 18), through the real binaries: rehearsals of the real plan
//! on a simulated EP11 host, succeeded and rescued, and what their journal, `report.json`,
//! `report.html` and `mkplan report show` say — every time in one fixed width, and the end
//! state the operator leaves the host in, read after `always`, whatever the outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use regex::Regex;

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
/// The guard against hangs, in seconds (not a speed claim).
const GUARD_SECS: &str = "120";
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
        .join(format!("{run_id}-ep11.manifest.json"));
    assert_fixed_width(
        "backup manifest",
        &std::fs::read_to_string(manifest).unwrap(),
    );
}

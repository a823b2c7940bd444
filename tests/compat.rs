//! Journals written by earlier mkplans stay readable: every fixture under
//! `tests/fixtures/journals/v1/` (each a run's `journal.jsonl` and `plan.yaml`, made by
//! rehearsals and runs of the code as it was, see its README) still verifies, replays to
//! the state it ended in, and builds exactly the report it built then (the snapshots).

use std::path::{Path, PathBuf};

use mkplan_engine::journal::read_verified;
use mkplan_engine::state::RunState;
use mkplan_report::build::{Machine, build};
use mkplan_report::model::SigningFacts;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journals/v1");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("journal.jsonl").is_file())
        .collect();
    found.sort();
    assert!(found.len() >= 9, "fixtures missing in {}", dir.display());
    found
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_fixture_journal_verifies_and_replays_to_its_end_state() {
    let expected = [
        ("commands", "rescued"),
        ("deny", "aborted"),
        ("fail-at-key", "rescued"),
        ("retry", "succeeded"),
        ("seed", "succeeded"),
        ("stop-killed", "succeeded"),
        ("stray", "failed"),
        ("two-tokens", "succeeded"),
        ("unit-wont-stop", "failed"),
    ];
    for dir in fixtures() {
        let journal = read_verified(&dir.join("journal.jsonl"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(journal.torn_tail_at.is_none(), "{}", dir.display());
        let state = RunState::replay(&journal.entries);
        let want = expected
            .iter()
            .find(|(n, _)| *n == name(&dir))
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("no expected end state for {}", dir.display()));
        assert_eq!(state.state_name(), want, "{}", dir.display());
    }
}

#[test]
fn every_fixture_journal_builds_the_report_it_built_before() {
    let machine = Machine {
        hostname: "compat-host".to_owned(),
        kernel_release: "6.1.0-compat".to_owned(),
    };
    let signing = SigningFacts {
        method: "ephemeral".to_owned(),
        key: None,
        algorithm: "ecdsa-p256-sha256".to_owned(),
    };
    for dir in fixtures() {
        let plan = mkplan_plan::load_file(&dir.join("plan.yaml"))
            .plan
            .unwrap_or_else(|| panic!("{}: the plan copy validates", dir.display()));
        let journal = read_verified(&dir.join("journal.jsonl")).unwrap();
        let report = build(&dir, &plan, &journal, &machine, &signing).to_bytes();
        let text = String::from_utf8(report).unwrap();
        insta::assert_snapshot!(format!("compat-report-{}", name(&dir)), text);
    }
}

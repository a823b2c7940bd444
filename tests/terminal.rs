//! The parts of mkplan that talk to a person at a terminal, driven through a real pty:
//! checkpoint approvals with a typed confirmation, refusal of a mistyped one, and the
//! generated completions and man page.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

const PLAN: &str = "mkplan: 1
name: terminal test
change: { ticket: CHG7, summary: terminal approvals, approvers: [alice, bob] }
tokens:
  ep11:
    slot: 4
    store: /var/lib/opencryptoki/ep11tok
    apqns: [\"0a.0011\"]
    pin: { env: MKPLAN_TEST_PIN }
    wkvp: { current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }
steps:
  - name: The TKE has committed the new WK
    id: tke-commit
    checkpoint: { tke: commit, say: Commit the new WK., approvals: 2 }
  - name: after
    command: { argv: [\"true\"] }
";

fn session(dir: &std::path::Path) -> rexpect::session::PtySession {
    let plan = dir.join("plan.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let mut command = Command::cargo_bin("mkplan").unwrap();
    command
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("run")
        .arg(&plan);
    rexpect::session::spawn_command(command, Some(30_000)).unwrap()
}

fn journal_kinds(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let runs = dir.join("state/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read_to_string(run.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_people_approve_on_the_terminal_with_the_wkvp_digits() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = session(dir.path());
    p.exp_string("new WKVP 0xffeeddccbbaa99887766554433221100")
        .unwrap();
    p.exp_string("approver 1 of 2, your name: ").unwrap();
    p.send_line("alice").unwrap();
    p.exp_string("alice, type the last 4 hex digits of the new WKVP of `ep11` to approve: ")
        .unwrap();
    p.send_line("1100").unwrap();
    p.exp_string("approver 2 of 2, your name: ").unwrap();
    // The same person twice does not count twice; an unknown name is refused.
    p.send_line("Alice").unwrap();
    p.exp_string("approver 2 of 2, your name: ").unwrap();
    p.send_line("bob").unwrap();
    p.exp_string("to approve: ").unwrap();
    p.send_line("1100").unwrap();
    p.exp_eof().unwrap();
    let journal = journal_kinds(dir.path());
    let approved: Vec<_> = journal
        .iter()
        .filter(|e| e["kind"] == "checkpoint_approved")
        .collect();
    assert_eq!(approved.len(), 2);
    assert!(approved.iter().all(|a| a["data"]["method"] == "tty"));
    assert_eq!(
        journal
            .iter()
            .filter(|e| e["kind"] == "checkpoint_refused")
            .count(),
        1
    );
    assert_eq!(journal.last().unwrap()["data"]["outcome"], "succeeded");
}

#[test]
fn a_mistyped_confirmation_is_a_no() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = session(dir.path());
    p.exp_string("your name: ").unwrap();
    p.send_line("alice").unwrap();
    p.exp_string("to approve: ").unwrap();
    p.send_line("1101").unwrap();
    p.exp_eof().unwrap();
    let journal = journal_kinds(dir.path());
    assert!(journal.iter().any(|e| {
        e["kind"] == "checkpoint_denied"
            && e["data"]["reason"]
                .as_str()
                .unwrap()
                .contains("mistyped confirmation is a no")
    }));
    assert_eq!(journal.last().unwrap()["data"]["outcome"], "aborted");
}

#[test]
fn completions_and_man_page_come_from_the_same_definitions() {
    let out = Command::cargo_bin("mkplan")
        .unwrap()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && script.contains("rehearse") && script.contains("--approve"));
    let out = Command::cargo_bin("mkplan")
        .unwrap()
        .arg("man")
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(page.contains(".TH mkplan 1"), "{page}");
    assert!(page.contains("validate") && page.contains("rehearse"));
}

//! The execution engine through the real binary, with plans made of `command` and
//! `checkpoint` steps: rescue/always order, approvals (flag, file, denial, dual control),
//! the journal's hash chain, crash-and-resume after every journal event, the lock, plan
//! changes on resume, signals, timeouts, and a dry run that changes nothing.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use mkplan::engine::journal::read_verified;

/// A scratch area: a plan, a state dir, a log the steps append to, a host root.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A plan whose steps are the given YAML lists (each item indented for `steps:`).
    fn plan(&self, steps: &str, rescue: &str, always: &str) -> PathBuf {
        let mut text = String::from(
            "mkplan: 1\nname: engine test\nchange: { ticket: CHG1, summary: engine test, approvers: [alice, bob, carol] }\n\
             vars: { log: LOG }\n\
             tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n    apqns: [\"0a.0011\"]\n    pin: { env: MKPLAN_TEST_PIN }\n    wkvp: { current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }\n",
        )
        .replace("LOG", &self.path("log").display().to_string());
        text.push_str("steps:\n");
        text.push_str(steps);
        if !rescue.is_empty() {
            text.push_str("rescue:\n");
            text.push_str(rescue);
        }
        if !always.is_empty() {
            text.push_str("always:\n");
            text.push_str(always);
        }
        let path = self.path("plan.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn mkplan(&self) -> Command {
        let mut c = Command::cargo_bin("mkplan").unwrap();
        // The real root: these plans run only harmless commands, found on the system path.
        c.arg("--state-dir")
            .arg(self.path("state"))
            .stdin(Stdio::null());
        c
    }

    fn run(&self, plan: &Path, extra: &[&str]) -> Output {
        let mut c = self.mkplan();
        c.arg("run").arg("--non-interactive").args(extra).arg(plan);
        timed(c)
    }

    fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.path("state/runs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    fn journal(&self, run: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("state/runs").join(run).join("journal.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Runs with a guard against hangs (the guard is not a speed claim).
fn timed(command: Command) -> Output {
    let mut guard = Command::new("timeout");
    guard
        .arg("120")
        .arg(command.get_program())
        .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => guard.env(k, v),
            None => guard.env_remove(k),
        };
    }
    let out = guard.stdin(Stdio::null()).output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(124),
        "mkplan hung: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn step(name: &str, log: &str) -> String {
    format!("  - name: {name}\n    command: {{ argv: [\"echo {name} >> {log}\"], shell: true }}\n")
}

fn failing(name: &str, log: &str) -> String {
    format!(
        "  - name: {name}\n    command: {{ argv: [\"echo {name} >> {log}; exit 3\"], shell: true }}\n"
    )
}

fn gate(id: &str, approvals: u32) -> String {
    format!(
        "  - name: Gate {id}\n    id: {id}\n    checkpoint: {{ say: Proceed?, approvals: {approvals} }}\n"
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn kinds(journal: &[serde_json::Value]) -> Vec<String> {
    journal
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn rescue_then_always_run_after_a_failure() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(
        &[step("a", &log), failing("b", &log), step("c", &log)].concat(),
        &step("r", &log),
        &step("w", &log),
    );
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(b.log(), ["a", "b", "r", "w"]);
    let journal = b.journal(&b.run_ids()[0]);
    assert_eq!(journal.last().unwrap()["data"]["outcome"], "rescued");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RECAP"));
}

#[test]
fn success_runs_always_and_exits_zero() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(
        &[step("a", &log), step("b", &log)].concat(),
        &step("r", &log),
        &step("w", &log),
    );
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(b.log(), ["a", "b", "w"]);
    let journal = b.journal(&b.run_ids()[0]);
    assert_eq!(journal[0]["kind"], "run_started");
    assert_eq!(journal.last().unwrap()["data"]["outcome"], "succeeded");
    // Every event is announced before its outcome: each step_started precedes its result.
    let k = kinds(&journal);
    let started = k.iter().position(|x| x == "step_started").unwrap();
    let succeeded = k.iter().position(|x| x == "step_succeeded").unwrap();
    assert!(started < succeeded);
}

#[test]
fn approvals_by_flag_are_journaled_with_identity_and_digest() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(&[gate("gate", 2), step("a", &log)].concat(), "", "");
    let out = b.run(&plan, &["--approve", "gate=alice", "--approve", "gate=bob"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = b.journal(&b.run_ids()[0]);
    let shown: Vec<_> = journal
        .iter()
        .filter(|e| e["kind"] == "checkpoint_shown")
        .collect();
    let approved: Vec<_> = journal
        .iter()
        .filter(|e| e["kind"] == "checkpoint_approved")
        .collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(approved.len(), 2);
    for a in &approved {
        assert_eq!(a["data"]["method"], "flag");
        assert_eq!(a["data"]["shown_sha256"], shown[0]["data"]["shown_sha256"]);
    }
    assert!(shown[0]["data"]["text"].as_str().unwrap().contains("CHG1"));
    assert_eq!(b.log(), ["a"]);
}

#[test]
fn approvals_from_a_file_count() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(&[gate("gate", 2), step("a", &log)].concat(), "", "");
    let file = b.path("approvals.yaml");
    std::fs::write(&file, "approvals:\n  - { checkpoint: gate, approver: carol }\n  - { checkpoint: Gate gate, approver: bob }\n").unwrap();
    let out = b.run(&plan, &["--approvals", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = b.journal(&b.run_ids()[0]);
    assert_eq!(
        journal
            .iter()
            .filter(|e| e["kind"] == "checkpoint_approved" && e["data"]["method"] == "file")
            .count(),
        2
    );
}

#[test]
fn without_a_terminal_a_missing_approval_is_an_immediate_deny() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(
        &[step("a", &log), gate("gate", 1), step("never", &log)].concat(),
        &step("r", &log),
        &step("w", &log),
    );
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--approve gate=NAME"),
        "{}",
        stderr(&out)
    );
    assert_eq!(b.log(), ["a", "r", "w"]);
    let journal = b.journal(&b.run_ids()[0]);
    assert!(kinds(&journal).contains(&"checkpoint_denied".to_owned()));
    assert_eq!(journal.last().unwrap()["data"]["outcome"], "aborted");
}

#[test]
fn dual_control_needs_distinct_allowed_people() {
    for (approvals, refusal) in [
        (["gate=alice", "gate=ALICE"], "already approved"),
        (["gate=alice", "gate=mallory"], "not an allowed approver"),
    ] {
        // A bench per run: two runs in one second would not sort in start order.
        let b = Bench::new();
        let log = b.path("log").display().to_string();
        let plan = b.plan(&[gate("gate", 2), step("a", &log)].concat(), "", "");
        let out = b.run(
            &plan,
            &["--approve", approvals[0], "--approve", approvals[1]],
        );
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        let journal = b.journal(&b.run_ids()[0]);
        let refused: Vec<_> = journal
            .iter()
            .filter(|e| e["kind"] == "checkpoint_refused")
            .collect();
        assert_eq!(refused.len(), 1, "{approvals:?}");
        assert!(
            refused[0]["data"]["reason"]
                .as_str()
                .unwrap()
                .contains(refusal),
            "{refused:?}"
        );
        assert!(b.log().is_empty());
    }
}

#[test]
fn an_approval_for_no_checkpoint_is_a_usage_error_with_a_suggestion() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(
        &[
            gate("tke-commit", 1),
            step("a", &log),
            gate("tke-activate", 1),
        ]
        .concat(),
        "",
        "",
    );
    let file = b.path("approvals.yaml");
    std::fs::write(
        &file,
        "approvals:
  - { checkpoint: tke-commit, approver: alice }
  - { checkpoint: Gate tke-activat, approver: bob }
",
    )
    .unwrap();
    let file_arg = file.display().to_string();
    for (args, names, suggestion) in [
        (
            &["--approve", "tke-comit=alice"][..],
            "`--approve tke-comit=alice` names `tke-comit`".to_owned(),
            Some("did you mean `tke-commit`?"),
        ),
        (
            &["--approve", "steps[0]=alice", "--approve", "steps[3]=bob"],
            "`--approve steps[3]=bob` names `steps[3]`".to_owned(),
            Some("did you mean `steps[2]`?"),
        ),
        (
            &["--approvals", &file_arg],
            format!("`approvals[1]` of `{file_arg}` names `Gate tke-activat`"),
            Some("did you mean `Gate tke-activate`?"),
        ),
        (
            &["--approve", "a=alice"],
            "`--approve a=alice` names `a`, which is no checkpoint of this plan (it is a `command` step)".to_owned(),
            None,
        ),
    ] {
        let out = b.run(&plan, args);
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains(&names), "{args:?}: {said}");
        let checkpoints = "this plan's checkpoints: `tke-commit` (Gate tke-commit), `tke-activate` (Gate tke-activate)";
        assert!(said.contains(checkpoints), "{args:?}: {said}");
        match suggestion {
            Some(suggestion) => assert!(said.contains(suggestion), "{args:?}: {said}"),
            None => assert!(!said.contains("did you mean"), "{args:?}: {said}"),
        }
        assert!(b.run_ids().is_empty(), "nothing started: {args:?}");
        assert!(b.log().is_empty(), "{args:?}");
    }
}

#[test]
fn templates_see_normalized_apqns_and_wkvps_never_the_plan_notation() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.path("plan.yaml");
    let say = "{{ tokens.ep11.apqns }} | {{ tokens.ep11.apqns[0].adapter }} {{ tokens.ep11.apqns[0].domain }} {{ tokens.ep11.apqns[1].lszcrypt }} | {{ tokens.ep11.wkvp.current }} {{ tokens.ep11.wkvp.new }}";
    std::fs::write(
        &plan,
        format!(
            "mkplan: 1\nname: templates\nchange: {{ ticket: CHG1, summary: templates, approvers: [alice] }}\n\
             tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n\
             \x20   apqns: [{{ adapter: \"010\", domain: \"0x30\" }}, \"0B.0011\"]\n    pin: {{ env: MKPLAN_TEST_PIN }}\n\
             \x20   wkvp: {{ current: \"0X00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\", new: \"ffeeddccbbaa99887766554433221100\" }}\n\
             steps:\n  - name: Show\n    when: tokens.ep11.apqns[0].adapter == 8\n\
             \x20   command: {{ argv: [\"printf '%s\\\\n' '{say}' >> {log}\"], shell: true }}\n"
        ),
    )
    .unwrap();
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        b.log(),
        [
            "[08.0030 (adapter 8, domain 48), 0b.0011 (adapter 11, domain 17)] | 8 48 0b.0011 | 0x00112233445566778899aabbccddeeff 0xffeeddccbbaa99887766554433221100"
        ]
    );
}

#[test]
fn the_journal_chain_detects_any_edit() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(
        &[gate("gate", 1), step("a", &log), step("b", &log)].concat(),
        "",
        &step("w", &log),
    );
    assert_eq!(
        b.run(&plan, &["--approve", "gate=alice"]).status.code(),
        Some(0)
    );
    let path = b
        .path("state/runs")
        .join(&b.run_ids()[0])
        .join("journal.jsonl");
    let original = std::fs::read(&path).unwrap();
    let verified = read_verified(&path).unwrap();
    assert!(verified.entries.len() > 8);
    let step = (original.len() / 97).max(1);
    for at in (0..original.len() - 1)
        .step_by(step)
        .chain([0, original.len() - 2])
    {
        let mut edited = original.clone();
        edited[at] = if edited[at] == b'0' { b'1' } else { b'0' };
        if edited == original {
            continue;
        }
        std::fs::write(&path, &edited).unwrap();
        let result = read_verified(&path);
        assert!(
            result.is_err() || result.unwrap().entries.len() < verified.entries.len(),
            "an edit at byte {at} went unnoticed"
        );
    }
}

/// Runs `resume` until the run finishes, deciding `--retry-step` whenever asked.
fn resume_to_the_end(b: &Bench, run: &str, extra: &[&str]) -> (i32, Vec<i32>) {
    let mut codes = Vec::new();
    let mut decide = false;
    for _ in 0..10 {
        let mut c = b.mkplan();
        c.arg("resume")
            .arg(run)
            .arg("--non-interactive")
            .args(extra);
        if decide {
            c.arg("--retry-step");
        }
        let out = timed(c);
        let code = out.status.code().unwrap_or(-1);
        codes.push(code);
        match code {
            5 => {
                assert!(stderr(&out).contains("--retry-step"), "{}", stderr(&out));
                decide = true;
            }
            _ => return (code, codes),
        }
    }
    panic!("resume did not finish: {codes:?}");
}

#[test]
fn killed_after_every_journal_event_the_run_resumes_without_repeating_a_step() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let steps = [
        step("a", &log),
        gate("gate", 1),
        step("b", &log),
        step("c", &log),
    ]
    .concat();
    let plan = b.plan(&steps, &step("r", &log), &step("w", &log));
    let full = b.run(&plan, &["--approve", "gate=alice"]);
    assert_eq!(full.status.code(), Some(0));
    let events = b.journal(&b.run_ids()[0]).len();
    let mut table = vec![format!(
        "{:>3}  {:<22} {:<14} {}",
        "k", "killed after", "resume exits", "log"
    )];
    for k in 0..events - 1 {
        let b = Bench::new();
        let plan = b.plan(
            &steps.replace(&log, &b.path("log").display().to_string()),
            &step("r", &b.path("log").display().to_string()),
            &step("w", &b.path("log").display().to_string()),
        );
        let mut c = b.mkplan();
        c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", k.to_string())
            .arg("run")
            .arg("--non-interactive")
            .args(["--approve", "gate=alice"])
            .arg(&plan);
        let out = timed(c);
        assert_eq!(out.status.signal(), Some(9), "k={k}: {}", stderr(&out));
        let run = b.run_ids().pop().unwrap();
        let killed_after = b.journal(&run)[k]["kind"].as_str().unwrap().to_owned();
        // A new run is refused while this one is unfinished.
        let again = b.run(&plan, &["--approve", "gate=alice"]);
        assert_eq!(again.status.code(), Some(3), "k={k}: {}", stderr(&again));
        assert!(stderr(&again).contains(&format!("mkplan resume {run}")));
        let (code, codes) = resume_to_the_end(&b, &run, &["--approve", "gate=alice"]);
        assert_eq!(code, 0, "k={k}: resume codes {codes:?}");
        let logged = b.log();
        assert_eq!(
            logged,
            ["a", "b", "c", "w"],
            "k={k}: every step ran exactly once"
        );
        let journal = b.journal(&run);
        assert_eq!(journal.last().unwrap()["data"]["outcome"], "succeeded");
        assert!(read_verified(&b.path("state/runs").join(&run).join("journal.jsonl")).is_ok());
        // Approvals given before the crash are not asked again (they are not repeated).
        let approvals = journal
            .iter()
            .filter(|e| e["kind"] == "checkpoint_approved")
            .count();
        assert_eq!(approvals, 1, "k={k}");
        table.push(format!(
            "{k:>3}  {killed_after:<22} {:<14} {}",
            format!("{codes:?}"),
            logged.join(" ")
        ));
    }
    println!("{}", table.join("\n"));
}

#[test]
fn one_run_at_a_time_per_state_dir() {
    let b = Bench::new();
    let plan = b.plan(
        "  - name: slow\n    command: { argv: [sleep, \"3\"] }\n",
        "",
        "",
    );
    let mut first = b.mkplan();
    first
        .arg("run")
        .arg("--non-interactive")
        .arg(&plan)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut first = first.spawn().unwrap();
    let journal_exists = || {
        b.run_ids()
            .iter()
            .any(|r| b.path("state/runs").join(r).join("journal.jsonl").exists())
    };
    for _ in 0..200 {
        if journal_exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = b.run(&plan, &[]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    let text = stderr(&second);
    assert!(
        text.contains("holds the lock") && text.contains(&format!("pid {}", first.id())),
        "{text}"
    );
    assert!(first.wait().unwrap().success());
}

#[test]
fn resume_refuses_a_changed_plan() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(&[step("a", &log), step("b", &log)].concat(), "", "");
    let mut c = b.mkplan();
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", "3")
        .arg("run")
        .arg("--non-interactive")
        .arg(&plan);
    assert_eq!(timed(c).status.signal(), Some(9));
    let run = b.run_ids().pop().unwrap();
    std::fs::write(
        &plan,
        std::fs::read_to_string(&plan).unwrap() + "# edited\n",
    )
    .unwrap();
    let mut c = b.mkplan();
    c.arg("resume").arg(&run).arg("--non-interactive");
    let out = timed(c);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the plan changed"),
        "{}",
        stderr(&out)
    );
    // With the run's own copy it goes on.
    let copy = b.path("state/runs").join(&run).join("plan.yaml");
    let mut c = b.mkplan();
    c.arg("resume")
        .arg(&run)
        .arg("--non-interactive")
        .arg("--plan")
        .arg(&copy)
        .arg("--retry-step");
    let out = timed(c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn sigint_waits_for_a_changing_command_then_stops_at_a_safe_point() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let steps = [
        step("a", &log),
        format!(
            "  - name: b\n    command: {{ argv: [\"sleep 1; echo b >> {log}\"], shell: true }}\n"
        ),
        step("c", &log),
    ]
    .concat();
    let plan = b.plan(&steps, "", &step("w", &log));
    let mut c = b.mkplan();
    c.arg("run")
        .arg("--non-interactive")
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    for _ in 0..200 {
        if b.log() == ["a"] {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(b.log(), ["a", "b"], "b finished, c did not start");
    assert!(
        stderr(&out).contains("waiting for the command to finish"),
        "{}",
        stderr(&out)
    );
    let run = b.run_ids().pop().unwrap();
    assert!(kinds(&b.journal(&run)).contains(&"interrupted".to_owned()));
    let (code, _) = resume_to_the_end(&b, &run, &[]);
    assert_eq!(code, 0);
    assert_eq!(b.log(), ["a", "b", "c", "w"]);
}

#[test]
fn a_step_timeout_fails_the_step() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(
        "  - name: slow\n    timeout: 1s\n    command: { argv: [sleep, \"30\"] }\n",
        &step("r", &log),
        "",
    );
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("timeout"), "{}", stderr(&out));
    assert_eq!(b.log(), ["r"]);
}

#[test]
fn when_tags_and_list_steps() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let steps = format!(
        "{}  - name: tagged\n    tags: [extra]\n    command: {{ argv: [\"echo tagged >> {log}\"], shell: true }}\n  - name: never\n    when: \"vars.log == 'nope'\"\n    command: {{ argv: [\"echo never >> {log}\"], shell: true }}\n",
        step("plain", &log)
    );
    let plan = b.plan(&steps, "", "");
    let out = b.run(&plan, &["--skip-tags", "extra"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(b.log(), ["plain"]);
    let mut c = b.mkplan();
    c.arg("run").arg("--list-steps").arg(&plan);
    let out = timed(c);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("tagged") && listed.contains("when vars.log == 'nope'"),
        "{listed}"
    );
    assert_eq!(b.log(), ["plain"], "--list-steps runs nothing");
}

#[test]
fn resume_of_a_finished_run_is_refused() {
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(&step("a", &log), "", "");
    assert_eq!(b.run(&plan, &[]).status.code(), Some(0));
    let mut c = b.mkplan();
    c.arg("resume").arg(b.run_ids().pop().unwrap());
    let out = timed(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already finished"));
    let mut c = b.mkplan();
    c.arg("runs");
    let out = timed(c);
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));
}

fn tree_digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push((path.clone(), Vec::new()));
            out.extend(tree_digest(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn check_changes_nothing() {
    let b = Bench::new();
    std::fs::create_dir_all(b.path("root/etc")).unwrap();
    std::fs::write(b.path("root/etc/file"), "keep").unwrap();
    let log = b.path("log").display().to_string();
    let steps = format!(
        "{}  - name: look\n    command: {{ argv: [\"true\"], read_only: true }}\n{}",
        gate("gate", 1),
        step("change", &log)
    );
    let plan = b.plan(&steps, &step("r", &log), &step("w", &log));
    let before = (tree_digest(b.dir.path()), std::fs::read(&plan).unwrap());
    let mut c = b.mkplan();
    c.arg("check").arg(&plan);
    let out = timed(c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("will run")
            && text.contains("cannot simulate")
            && text.contains("read-only, ran it"),
        "{text}"
    );
    assert_eq!(
        before,
        (tree_digest(b.dir.path()), std::fs::read(&plan).unwrap()),
        "check changed files"
    );
    assert!(b.log().is_empty());
    let failing_plan = b.plan(
        "  - name: look\n    command: { argv: [\"false\"], read_only: true }\n",
        "",
        "",
    );
    let mut c = b.mkplan();
    c.arg("check").arg(&failing_plan);
    assert_eq!(timed(c).status.code(), Some(3));
}

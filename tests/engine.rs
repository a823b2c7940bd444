//! The execution engine through the real binary, with plans made of `command` and
//! `checkpoint` steps: rescue/always order, approvals (flag, file, denial, dual control),
//! the journal's hash chain, crash-and-resume after every journal event, the lock, plan
//! changes on resume, signals, timeouts, and a dry run that changes nothing.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use mkplan_engine::journal::read_verified;

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

/// A finished run's summary (`summary.json`, private) holds what `mkplan runs` shows, so
/// `runs` never reads a finished run's journal (which can be megabytes); a run that did
/// not finish is still read from its journal.
#[test]
fn runs_lists_a_finished_run_from_its_summary_and_an_unfinished_one_from_its_journal() {
    use std::os::unix::fs::PermissionsExt;
    let b = Bench::new();
    let log = b.path("log").display().to_string();
    let plan = b.plan(&step("a", &log), "", "");
    assert_eq!(b.run(&plan, &[]).status.code(), Some(0));
    let finished = b.run_ids().pop().unwrap();
    let run_dir = b.path("state").join("runs").join(&finished);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "succeeded", "{summary}");
    assert_eq!(summary["plan_name"], "engine test", "{summary}");
    let mode = std::fs::metadata(run_dir.join("summary.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "summary.json is {mode:o}");
    // Its journal is not read any more: listing does not depend on it.
    std::fs::write(run_dir.join("journal.jsonl"), "not a journal\n").unwrap();
    // A run that does not finish: killed (-9) right after its first event.
    let unfinished_plan = b.plan(&step("b", &log), "", "");
    let mut c = b.mkplan();
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", "1")
        .arg("run")
        .arg("--non-interactive")
        .arg(&unfinished_plan);
    let _ = timed(c);
    let mut c = b.mkplan();
    c.arg("runs");
    let out = timed(c);
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or("")
            .to_owned()
    };
    assert!(line(&finished).contains("succeeded"), "{table}");
    let unfinished = b.run_ids().into_iter().find(|id| *id != finished).unwrap();
    // Killed in its first (changing) step: its journal says it needs a decision.
    assert!(line(&unfinished).contains("needs decision"), "{table}");
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.path("state/runs").join(&unfinished).join("summary.json")).unwrap(),
    )
    .unwrap();
    assert!(summary["outcome"].is_null(), "{summary}");
}

/// A PKCS#11 module that cannot be loaded is said as such by the preflight, never as a PIN
/// its one login refused (the operator would go and fix a PIN that may be right).
#[test]
fn a_module_that_will_not_load_is_not_reported_as_a_refused_pin() {
    let b = Bench::new();
    let module = b.path("not-a-library.so");
    std::fs::write(&module, "not a shared object\n").unwrap();
    let steps = format!(
        "  - name: probe\n    probe_keys: {{ token: ep11, module: {} }}\n",
        module.display()
    );
    let plan = b.plan(&steps, "", "");
    let mut c = b.mkplan();
    c.env("MKPLAN_TEST_PIN", "Pr0be-PIN-2718")
        .arg("run")
        .arg("--non-interactive")
        .arg(&plan);
    let out = timed(c);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("PIN of `ep11`") && err.contains("could not be verified"),
        "{err}"
    );
    assert!(!err.contains("refused by its one login"), "{err}");
    assert!(!err.contains("Pr0be-PIN-2718"), "{err}");
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

/// Runs a plan of three logged steps (the middle one, `b`, a command that changes the
/// system for a second), sends `signal` while `b` runs, and returns the bench and the
/// finished process's output. `nohup`: mkplan is started the way `nohup` starts it.
fn three_steps_signalled(signal: rustix::process::Signal, nohup: bool) -> (Bench, Output) {
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
    let mut c = if nohup {
        let mut c = Command::new("nohup");
        c.arg(assert_cmd::cargo::cargo_bin("mkplan"))
            .arg("--state-dir")
            .arg(b.path("state"))
            .stdin(Stdio::null());
        c
    } else {
        b.mkplan()
    };
    c.arg("run")
        .arg("--non-interactive")
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    for _ in 0..500 {
        if b.log() == ["a"] {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        signal,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    (b, out)
}

/// The run was stopped after `b` finished, before `c` started, and resumes to the end.
fn stopped_at_the_safe_point_then_resumed(b: &Bench, out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert_eq!(b.log(), ["a", "b"], "b finished, c did not start");
    let run = b.run_ids().pop().unwrap();
    assert!(kinds(&b.journal(&run)).contains(&"interrupted".to_owned()));
    let (code, _) = resume_to_the_end(b, &run, &[]);
    assert_eq!(code, 0);
    assert_eq!(b.log(), ["a", "b", "c", "w"]);
}

#[test]
fn sigint_waits_for_a_changing_command_then_stops_at_a_safe_point() {
    let (b, out) = three_steps_signalled(rustix::process::Signal::INT, false);
    assert!(
        stderr(&out).contains("waiting for the command to finish"),
        "{}",
        stderr(&out)
    );
    stopped_at_the_safe_point_then_resumed(&b, &out);
}

/// An ssh session that drops sends SIGHUP: the run stops at its next safe point, as for a
/// first Ctrl-C, never dies half-way through a step; under `nohup` the hangup is ignored
/// and the run goes on to its end.
#[test]
fn a_hangup_stops_at_a_safe_point_and_nohup_keeps_it_running() {
    let (b, out) = three_steps_signalled(rustix::process::Signal::HUP, false);
    stopped_at_the_safe_point_then_resumed(&b, &out);
    let (b, out) = three_steps_signalled(rustix::process::Signal::HUP, true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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

/// `mkplan ARGS…` with its address space capped, so reading an endless input without a
/// limit ends in a failed allocation instead of taking the machine's memory.
fn capped(b: &Bench, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("mkplan"))
        .arg("--state-dir")
        .arg(b.path("state"))
        .args(args);
    timed(c)
}

/// Every input file is read to at most its limit plus one byte, then refused with the
/// path: an endless device as a plan, an approvals file, a journal or a report, and a PIN
/// file a little over its limit.
#[test]
fn input_files_are_read_with_a_size_limit() {
    let b = Bench::new();
    let zero = std::ffi::OsStr::new("/dev/zero");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let plan = b.plan(&gate("tke", 1), "", "");
    // What `run` and `check` take must be regular files: sparse ones a byte too large.
    let sparse = |name: &str, len: u64| {
        let path = b.path(name);
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        path
    };
    let huge_plan = sparse("huge.yaml", 4 * 1024 * 1024 + 1);
    let huge_approvals = sparse("approvals.yaml", 1024 * 1024 + 1);
    let plan_limit = "larger than 4 MiB (4194304 bytes): plans larger than that are refused";
    let approvals_limit =
        "larger than 1 MiB (1048576 bytes): approvals files larger than that are refused";
    for (args, named, limit) in [
        (vec![os("validate"), zero], zero, plan_limit),
        (
            vec![os("check"), huge_plan.as_os_str()],
            huge_plan.as_os_str(),
            plan_limit,
        ),
        (
            vec![os("run"), os("--non-interactive"), huge_plan.as_os_str()],
            huge_plan.as_os_str(),
            plan_limit,
        ),
        (
            vec![
                os("run"),
                os("--approvals"),
                huge_approvals.as_os_str(),
                plan.as_os_str(),
            ],
            huge_approvals.as_os_str(),
            approvals_limit,
        ),
    ] {
        let out = capped(&b, &args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains(&*named.to_string_lossy()) && text.contains(limit),
            "{args:?}: {text}"
        );
    }

    // What the preflight reads of the host: pkcsslotd's pid file and `ep11tok.conf`.
    let host = b.path("host");
    for (file, link) in [
        ("run/opencryptoki/pkcsslotd.pid", "/dev/zero"),
        ("etc/opencryptoki/ep11tok.conf", "/dev/zero"),
    ] {
        let path = host.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(link, &path).unwrap();
    }
    let host_plan = b.path("host-plan.yaml");
    std::fs::write(
        &host_plan,
        std::fs::read_to_string(&plan)
            .unwrap()
            .replace(
                "    pin: { env: MKPLAN_TEST_PIN }",
                "    config: /etc/opencryptoki/ep11tok.conf\n    pin: { env: MKPLAN_TEST_PIN }",
            )
            .replace(
                "checkpoint: { say: Proceed?, approvals: 1 }",
                "checkpoint: { say: Proceed?, approvals: 1, until: { assert_wk: { token: ep11, current: expected, new: committed } } }\n  - name: probe\n    probe_keys: { token: ep11 }",
            ),
    )
    .unwrap();
    let out = capped(
        &b,
        &[
            os("--root"),
            host.as_os_str(),
            os("check"),
            host_plan.as_os_str(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", stderr(&out));
    for wanted in [
        "`/run/opencryptoki/pkcsslotd.pid` cannot be read: larger than 64 KiB",
        "cannot read `/etc/opencryptoki/ep11tok.conf`: larger than 1 MiB",
    ] {
        assert!(stdout.contains(wanted), "{wanted:?} not in {stdout}");
    }

    // A finished run whose journal and report are then replaced by endless devices.
    let out = b.run(&plan, &["--approve", "tke=alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = b.run_ids().pop().unwrap();
    let dir = b.path("state/runs").join(&run);
    std::fs::remove_file(dir.join("report.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("report.json")).unwrap();
    let out = capped(&b, &[os("report"), os("show"), run.as_ref()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 256 MiB"),
        "{}",
        stderr(&out)
    );
    let out = capped(&b, &[os("report"), os("verify"), run.as_ref()]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("larger than 256 MiB")
            || stderr(&out).contains("larger than 256 MiB"),
        "{}",
        stderr(&out)
    );
    // A journal must be a regular file: a sparse one, one byte over the limit.
    std::fs::File::create(dir.join("journal.jsonl"))
        .unwrap()
        .set_len(256 * 1024 * 1024 + 1)
        .unwrap();
    let out = capped(&b, &[os("resume"), run.as_ref()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 256 MiB"),
        "{}",
        stderr(&out)
    );
    // `runs` shows a finished run from its summary; a run without one (from before
    // summaries, or killed before its start was summarized) is read from its journal, bounded.
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    let out = capped(&b, &[os("runs")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("larger than 256 MiB"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A PIN file one byte over 4 KiB (mode 0600, as a PIN file must be).
    let pin_plan = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("pin: { env: MKPLAN_TEST_PIN }", "pin: { file: /pin }")
        .replace(
            "checkpoint: { say: Proceed?, approvals: 1 }",
            "probe_keys: { token: ep11, module: /module.so }",
        );
    let pin_plan_path = b.path("pin-plan.yaml");
    std::fs::write(&pin_plan_path, pin_plan).unwrap();
    let root = b.path("root");
    std::fs::write(root.join("module.so"), "").unwrap();
    std::fs::write(root.join("pin"), vec![b'7'; 4097]).unwrap();
    std::fs::set_permissions(
        root.join("pin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_dir_all(b.path("state")).unwrap();
    let out = capped(
        &b,
        &[
            os("--root"),
            root.as_os_str(),
            os("run"),
            os("--non-interactive"),
            pin_plan_path.as_os_str(),
        ],
    );
    // Found by the preflight, which reads every PIN before any step acts.
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("preflight: PIN of `ep11`"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("`/pin`") && line.contains("larger than 4 KiB"),
        "{line}"
    );
    assert!(b.run_ids().is_empty(), "no run is recorded");
}

/// Every command that prints, with its stdout a pipe whose reader is gone (`| head -1`
/// after it exited): never a panic (exit 101), the command's own exit code, and nothing
/// said about it.
#[test]
fn a_closed_stdout_is_a_quiet_exit_with_the_commands_own_code() {
    let b = Bench::new();
    let plan = b.plan(&gate("tke", 1), "", "");
    let out = b.run(&plan, &["--approve", "tke=alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = b.run_ids().pop().unwrap();
    let invalid = b.path("invalid.yaml");
    std::fs::write(&invalid, "mkplan: 2\n").unwrap();
    let pages = b.path("man1");
    let cases: Vec<(Vec<&std::ffi::OsStr>, i32)> = vec![
        (vec!["runs".as_ref()], 0),
        (vec!["report".as_ref(), "show".as_ref(), run.as_ref()], 0),
        (vec!["report".as_ref(), "verify".as_ref(), run.as_ref()], 0),
        (vec!["report".as_ref(), "schema".as_ref()], 0),
        (vec!["schema".as_ref()], 0),
        (vec!["man".as_ref()], 0),
        (
            vec!["man".as_ref(), "report".as_ref(), "verify".as_ref()],
            0,
        ),
        (vec!["man".as_ref(), "--all".as_ref(), pages.as_os_str()], 0),
        (vec!["completions".as_ref(), "bash".as_ref()], 0),
        (
            vec![
                "validate".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
                plan.as_os_str(),
            ],
            0,
        ),
        (
            vec![
                "validate".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
                invalid.as_os_str(),
            ],
            2,
        ),
        (
            vec!["run".as_ref(), "--list-steps".as_ref(), plan.as_os_str()],
            0,
        ),
        (vec!["check".as_ref(), plan.as_os_str()], 0),
    ];
    for (args, code) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new("timeout")
            .arg("120")
            .arg(assert_cmd::cargo::cargo_bin("mkplan"))
            .arg("--state-dir")
            .arg(b.path("state"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        assert!(
            !text.contains("panicked") && !text.contains("Broken pipe"),
            "{args:?}: {text}"
        );
    }
}

/// Every mode under `dir` (relative path → mode), directories included.
fn modes_under(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, meta.mode() & 0o7777));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A plan with one command step and a report copy under `<dir>/reports` (with `mode`).
fn plan_with_report_copy(b: &Bench, mode: Option<&str>) -> PathBuf {
    let reports = b.path("reports");
    let mode = mode.map(|m| format!(", mode: \"{m}\"")).unwrap_or_default();
    let text = format!(
        "mkplan: 1\nname: modes\nchange: {{ ticket: CHG9, summary: modes, approvers: [alice] }}\n\
         tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n    apqns: [\"0a.0011\"]\n    pin: {{ env: MKPLAN_TEST_PIN }}\n    wkvp: {{ current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }}\n\
         steps:\n  - name: noop\n    command: {{ argv: [\"true\"] }}\n\
         report: {{ dir: {}{mode} }}\n",
        reports.display()
    );
    let path = b.path("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The state directory, its runs and everything in them are their owner's only (0700,
/// 0600), or also their group's (0750, 0640) when the state directory lets its group read
/// it; the report copy under `report.dir` gets the plan's `report.mode` (0600 by default).
#[test]
fn what_mkplan_keeps_is_readable_by_its_owner_or_the_configured_group_only() {
    let b = Bench::new();
    let plan = plan_with_report_copy(&b, None);
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let state = b.path("state");
    let modes = modes_under(&state);
    assert!(modes.len() >= 10, "{modes:?}");
    for (path, mode) in &modes {
        let dir = state.join(path).is_dir();
        assert_eq!(*mode, if dir { 0o700 } else { 0o600 }, "{path}: {mode:04o}");
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o7777, 0o700);
    for (path, mode) in modes_under(&b.path("reports")) {
        let dir = b.path("reports").join(&path).is_dir();
        assert_eq!(mode, if dir { 0o700 } else { 0o600 }, "{path}: {mode:04o}");
    }

    // A group configured on the state directory; a report copy shared with everyone.
    let b = Bench::new();
    let state = b.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    let gid = if rustix::process::geteuid().is_root() {
        4242
    } else {
        rustix::process::getegid().as_raw()
    };
    rustix::fs::chown(&state, None, Some(rustix::fs::Gid::from_raw(gid))).unwrap();
    let plan = plan_with_report_copy(&b, Some("0644"));
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (path, mode) in modes_under(&state) {
        let full = state.join(&path);
        let dir = full.is_dir();
        assert_eq!(mode, if dir { 0o750 } else { 0o640 }, "{path}: {mode:04o}");
        assert_eq!(std::fs::metadata(&full).unwrap().gid(), gid, "{path}");
    }
    for (path, mode) in modes_under(&b.path("reports")) {
        let dir = b.path("reports").join(&path).is_dir();
        assert_eq!(mode, if dir { 0o755 } else { 0o644 }, "{path}: {mode:04o}");
    }
    let run = b.run_ids().pop().unwrap();
    let out = timed({
        let mut c = b.mkplan();
        c.args(["report", "verify"])
            .arg(b.path("reports").join(&run));
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Like ssh's StrictModes: a plan, an approvals file or a state directory that someone
/// other than root or the operator could write — itself or through a directory above it —
/// or that someone else owns, is refused before anything happens, naming the path, the
/// mode and the command that fixes it.
#[test]
fn what_others_could_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let b = Bench::new();
    let plan = b.plan(&gate("tke", 1), "", "");
    let approvals = b.path("approvals.yaml");
    std::fs::write(
        &approvals,
        "approvals: [{checkpoint: tke, approver: alice}]\n",
    )
    .unwrap();
    chmod(&approvals, 0o644);
    let approve = ["--approvals", approvals.to_str().unwrap()];
    let refused = |extra: &[&str], code: i32, wanted: &[String]| {
        let out = b.run(&plan, extra);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{text}");
        for w in wanted {
            assert!(text.contains(w.as_str()), "{w:?} not in {text}");
        }
        assert!(b.run_ids().is_empty(), "no run was started");
    };

    chmod(&plan, 0o664);
    let p = plan.display();
    refused(
        &approve,
        2,
        &[format!("`{p}` has mode 0664"), format!("chmod 644 {p}")],
    );
    chmod(&plan, 0o644);

    let dir = b.dir.path();
    chmod(dir, 0o777);
    let d = dir.display();
    refused(
        &approve,
        2,
        &[
            format!("`{d}`, which has mode 0777"),
            format!("chmod 755 {d}"),
        ],
    );
    chmod(dir, 0o700);

    chmod(&approvals, 0o666);
    let a = approvals.display();
    refused(
        &approve,
        2,
        &[format!("`{a}` has mode 0666"), format!("chmod 644 {a}")],
    );
    chmod(&approvals, 0o644);

    if rustix::process::geteuid().is_root() {
        rustix::fs::chown(&approvals, Some(rustix::fs::Uid::from_raw(4242)), None).unwrap();
        refused(
            &approve,
            2,
            &["is owned by uid 4242".to_owned(), format!("chown root {a}")],
        );
        rustix::fs::chown(&approvals, Some(rustix::fs::Uid::from_raw(0)), None).unwrap();
    }

    let state = b.path("state");
    std::fs::create_dir_all(&state).unwrap();
    chmod(&state, 0o770);
    let s = state.display();
    refused(
        &approve,
        3,
        &[
            format!("preflight: state directory: the state directory `{s}` has mode 0770"),
            format!("chmod 750 {s}"),
        ],
    );
    // Nothing was created in it: no lock file, no `runs` (a link planted there could make
    // either someone else's file).
    let created: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().collect();
    assert!(created.is_empty(), "{created:?}");
    // `check` says so too, beside the plan it trusts.
    let out = b.mkplan().arg("check").arg(&plan).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "PROBLEM     state directory: the state directory `{s}` has mode 0770"
        )) && stdout.contains(&format!(
            "ok          plan: `{}`: nobody but root or you can write it",
            plan.display()
        )),
        "{stdout}"
    );
    chmod(&state, 0o700);
    let out = b.mkplan().arg("check").arg(&plan).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = b.run(&plan, &approve);
    assert_eq!(
        out.status.code(),
        Some(0),
        "trusted again: {}",
        stderr(&out)
    );
}

//! The parts of mkplan that talk to a person at a terminal, driven through a real pty:
//! checkpoint approvals with a typed confirmation, refusal of a mistyped one, what stays on
//! the screen while progress runs (read through a terminal emulator), Ctrl-C at every kind
//! of prompt, and the generated completions and man page.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

// ---------------------------------------------------------------------------------------
// A person at a terminal: a pty with echo on (as a terminal has), and what its screen shows

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const ROWS: u16 = 80;
const COLS: u16 = 160;

/// A process on a pty of `ROWS`×`COLS`, with everything it wrote kept.
struct Screen {
    process: rexpect::process::PtyProcess,
    input: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    /// Set when the terminal was closed and everything written to it was read.
    drained: Arc<std::sync::atomic::AtomicBool>,
}

impl Screen {
    /// Runs `mkplan args…` on a fresh pty. rexpect turns echo off; `stty` turns it on
    /// again, so what a person types shows, as on a real terminal.
    fn mkplan(args: &[&std::ffi::OsStr]) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "stty echo rows {ROWS} cols {COLS} && exec \"$0\" \"$@\""
            ))
            .arg(MKPLAN)
            .args(args);
        let process = rexpect::process::PtyProcess::new(command).unwrap();
        let mut reader = process.get_file_handle().unwrap();
        let input = process.get_file_handle().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&drained);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Self {
            process,
            input,
            output,
            drained,
        }
    }

    /// What the terminal shows now (the emulator keeps the lines that scrolled away).
    fn text(&self) -> String {
        let mut parser = vt100::Parser::new(ROWS, COLS, 0);
        parser.process(&self.output.lock().unwrap());
        parser.screen().contents()
    }

    /// Waits until the screen shows `text`.
    fn wait_for(&self, text: &str) {
        let end = Instant::now() + Duration::from_secs(60);
        while !self.text().contains(text) {
            assert!(
                Instant::now() < end,
                "the screen never showed {text:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `keys` (a `\r` is the Enter key, `\x03` Ctrl-C).
    fn keys(&mut self, keys: &str) {
        self.input.write_all(keys.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Lets a progress spinner (which ticks every 100 ms) redraw a few times.
    fn let_progress_tick(&self) {
        std::thread::sleep(Duration::from_millis(600));
    }

    /// The exit code, once the process is gone (killed, and a failure, if it hangs).
    fn exit_code(&mut self) -> i32 {
        use nix::sys::wait::WaitStatus;
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            match self.process.status() {
                Some(WaitStatus::Exited(_, code)) => {
                    // What it wrote last is read before anyone looks at the screen.
                    while !self.drained.load(std::sync::atomic::Ordering::SeqCst)
                        && Instant::now() < end
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    return code;
                }
                Some(WaitStatus::StillAlive) | None if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some(WaitStatus::StillAlive) | None => {
                    let _ = self.process.kill(nix::sys::signal::Signal::SIGKILL);
                    panic!("mkplan did not exit:\n{}", self.text());
                }
                Some(other) => panic!("mkplan did not exit normally: {other:?}\n{}", self.text()),
            }
        }
    }

    /// Whether the terminal echoes typed characters now.
    fn echoes(&self) -> bool {
        let termios = nix::sys::termios::tcgetattr(&self.input).unwrap();
        termios
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ECHO)
    }
}

/// A plan in a temp dir with its state dir, run by `mkplan run` on a [`Screen`].
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(plan: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        Self { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, extra: &[&str]) -> Screen {
        let state = self.state();
        let plan = self.dir.path().join("plan.yaml");
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["--state-dir".as_ref(), state.as_os_str(), "run".as_ref()];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        args.push(plan.as_os_str());
        Screen::mkplan(&args)
    }

    fn journal(&self) -> Vec<serde_json::Value> {
        journal_kinds(self.dir.path())
    }

    fn kinds(&self) -> Vec<String> {
        self.journal()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    fn run_id(&self) -> String {
        let journal = self.journal();
        journal[0]["run"].as_str().unwrap().to_owned()
    }

    /// `mkplan ARGS…` without a terminal; exit code, stdout and stderr.
    fn mkplan(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(MKPLAN)
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The run was interrupted at a safe point: nothing denied, no rescue, `runs` says
    /// so, and the person was told how to go on.
    fn assert_interrupted(&self, screen: &mut Screen) {
        assert_eq!(screen.exit_code(), 1, "{}", screen.text());
        let kinds = self.kinds();
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("interrupted"),
            "{kinds:?}"
        );
        for never in [
            "checkpoint_denied",
            "rescue_started",
            "step_failed",
            "run_finished",
        ] {
            assert!(!kinds.iter().any(|k| k == never), "{never} in {kinds:?}");
        }
        let id = self.run_id();
        let text = screen.text();
        assert!(
            text.contains(&format!("continue with `mkplan resume {id}`")),
            "{text}"
        );
        let (code, runs, _) = self.mkplan(&["runs"]);
        assert_eq!(code, 0);
        let line = runs.lines().find(|l| l.starts_with(&id)).unwrap();
        assert!(line.contains("interrupted"), "{runs}");
        assert!(screen.echoes(), "the terminal was left without echo");
    }
}

/// A checkpoint (with `extra` lines in its `checkpoint:` map) between two commands, and a
/// rescue that must never run after an interruption.
fn checkpoint_plan(extra: &str) -> String {
    format!(
        "mkplan: 1
name: terminal test
change: {{ ticket: CHG7, summary: terminal approvals, approvers: [alice, bob] }}
tokens:
  ep11:
    slot: 4
    store: /var/lib/opencryptoki/ep11tok
    apqns: [\"0a.0011\"]
    pin: {{ env: MKPLAN_TEST_PIN }}
    wkvp: {{ current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }}
steps:
  - name: before
    command: {{ argv: [\"true\"] }}
  - name: The TKE has committed the new WK
    id: tke-commit
    checkpoint:
      tke: commit
      say: Commit the new WK now.
      approvals: 2{extra}
  - name: after
    command: {{ argv: [\"true\"] }}
rescue:
  - name: never after an interruption
    command: {{ argv: [\"true\"] }}
"
    )
}

#[test]
fn the_prompt_and_what_is_typed_stay_on_screen_and_the_text_shows_once() {
    let bench = Bench::new(&checkpoint_plan(""));
    let mut screen = bench.run(&[]);
    screen.wait_for("approver 1 of 2, your name: ");
    screen.let_progress_tick();
    screen.keys("alice");
    screen.let_progress_tick();
    // What the approver sees when pressing Enter: the prompt and the name typed.
    let text = screen.text();
    assert!(
        text.contains("approver 1 of 2, your name: alice"),
        "the prompt or the typed name is gone:\n{text}"
    );
    screen.keys("\r");
    let confirm = "alice, type the last 4 hex digits of the new WKVP of `ep11` to approve: ";
    screen.wait_for(confirm);
    screen.let_progress_tick();
    screen.keys("1100");
    screen.let_progress_tick();
    let text = screen.text();
    assert!(
        text.contains(&format!("{confirm}1100")),
        "the confirmation prompt or the typed digits are gone:\n{text}"
    );
    screen.keys("\r");
    screen.wait_for("approver 2 of 2, your name: ");
    screen.keys("bob\r");
    screen.wait_for("bob, type");
    screen.keys("1100\r");
    assert_eq!(screen.exit_code(), 0, "{}", screen.text());
    let text = screen.text();
    assert_eq!(
        text.matches("Commit the new WK now.").count(),
        1,
        "the checkpoint text is shown once:\n{text}"
    );
    assert_eq!(text.matches("CHECKPOINT steps[1]").count(), 1, "{text}");
    assert!(text.contains("approver 1 of 2, your name: alice"), "{text}");
    assert!(text.contains("approver 2 of 2, your name: bob"), "{text}");
}

/// Ctrl-C at the name prompt, the confirmation prompt, with and without a checkpoint
/// `timeout`, and SIGTERM: the run stops at the checkpoint, and resumes from it with the
/// approvals already given.
#[test]
fn a_stop_at_a_checkpoint_prompt_interrupts_the_run_and_it_resumes() {
    let cases: [(&str, &str, bool); 4] = [
        ("\n      timeout: 10m", "name", false),
        ("", "name", false),
        ("\n      timeout: 10m", "confirmation", false),
        ("", "name", true),
    ];
    for (extra, at, sigterm) in cases {
        let bench = Bench::new(&checkpoint_plan(extra));
        let mut screen = bench.run(&[]);
        screen.wait_for("approver 1 of 2, your name: ");
        let mut approved = Vec::new();
        if at == "confirmation" {
            screen.keys("alice\r");
            screen.wait_for("to approve: ");
            screen.keys("1100\r");
            screen.wait_for("approver 2 of 2, your name: ");
            approved.push("alice");
            screen.keys("bob\r");
            screen.wait_for("bob, type");
        }
        screen.let_progress_tick();
        if sigterm {
            screen
                .process
                .signal(nix::sys::signal::Signal::SIGTERM)
                .unwrap();
        } else {
            screen.keys("\x03");
        }
        bench.assert_interrupted(&mut screen);
        let id = bench.run_id();
        let mut resume = vec!["resume", id.as_str(), "--non-interactive"];
        let flags: Vec<String> = ["alice", "bob"]
            .iter()
            .filter(|who| !approved.contains(who))
            .map(|who| format!("tke-commit={who}"))
            .collect();
        for flag in &flags {
            resume.extend(["--approve", flag.as_str()]);
        }
        let (code, _, stderr) = bench.mkplan(&resume);
        assert_eq!(code, 0, "{extra:?} {at}: {stderr}");
        let journal = bench.journal();
        assert_eq!(journal.last().unwrap()["data"]["outcome"], "succeeded");
        let approvals: Vec<_> = journal
            .iter()
            .filter(|e| e["kind"] == "checkpoint_approved")
            .map(|e| e["data"]["approver"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(approvals, ["alice", "bob"], "{extra:?} {at}");
    }
}

#[test]
fn ctrl_c_at_the_step_by_step_question_interrupts_the_run() {
    let bench = Bench::new(&checkpoint_plan(""));
    let mut screen = bench.run(&["--step"]);
    screen.wait_for("run steps[0] `before`? [y]es, [n]o (skip), [q]uit: ");
    screen.let_progress_tick();
    screen.keys("y");
    screen.let_progress_tick();
    assert!(
        screen
            .text()
            .contains("run steps[0] `before`? [y]es, [n]o (skip), [q]uit: y"),
        "{}",
        screen.text()
    );
    screen.keys("\r");
    screen.wait_for("run steps[1] ");
    screen.keys("\x03");
    bench.assert_interrupted(&mut screen);
}

// ---------------------------------------------------------------------------------------
// The PIN prompt: `run` asks for a `pin: {prompt: true}` PIN in its preflight, before anything
// is stopped, and verifies it by one login on the machine's openCryptoki soft token (slot 3,
// behind the real pkcsslotd that `scripts/test` starts); a resumed run asks in the step.

#[path = "support/token_lock.rs"]
mod token_lock;

fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

/// A plan on the soft token with a prompted PIN: the service `apps` (running while the file
/// `running` exists) is stopped, a checkpoint (when `checkpoint`) waits, the keys are probed,
/// and `apps` is started again.
fn soft_token_plan(dir: &std::path::Path, checkpoint: bool) -> String {
    let running = dir.join("running");
    std::fs::write(&running, "").unwrap();
    let checkpoint = if checkpoint {
        "  - name: The TKE has committed the new WK
    id: tke-commit
    checkpoint: { tke: commit, say: Commit the new WK now., approvals: 1 }
"
    } else {
        ""
    };
    format!(
        "mkplan: 1
name: terminal pin test
change: {{ ticket: CHG8, summary: pin prompt, approvers: [alice] }}
tokens:
  ep11:
    slot: {slot}
    store: /var/lib/opencryptoki/swtok
    apqns: [\"0a.0011\"]
    pin: {{ prompt: true }}
    wkvp: {{ current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }}
services:
  apps:
    command: {{ stop: [rm, -f, {running}], start: [touch, {running}], is_active: [test, -e, {running}] }}
steps:
  - {{ name: Stop applications, stop: apps }}
{checkpoint}  - name: probe
    probe_keys: {{ token: ep11, module: {module} }}
rescue:
  - name: never after an interruption
    command: {{ argv: [\"true\"] }}
always:
  - {{ name: Start applications, start: apps }}
",
        slot = required_env("MKPLAN_TEST_OCK_SLOT"),
        running = running.display(),
        module = required_env("MKPLAN_TEST_OCK_MODULE"),
    )
}

/// A [`Bench`] with [`soft_token_plan`].
fn soft_token_bench(checkpoint: bool) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let plan = soft_token_plan(dir.path(), checkpoint);
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    Bench { dir }
}

/// Runs `mkplan resume RUN` of `bench` on a fresh pty.
fn resume_on_screen(bench: &Bench, run: &str) -> Screen {
    let state = bench.state();
    Screen::mkplan(&[
        "--state-dir".as_ref(),
        state.as_os_str(),
        "resume".as_ref(),
        run.as_ref(),
    ])
}

const NOT_THE_PIN: &str = "S3cr3t-PIN-4711";
const PIN_PROMPT: &str = "token `ep11` USER PIN: ";

/// Ctrl-C at the preflight's PIN prompt: the PIN typed so far was never on the screen, it is
/// not asked again, nothing is a problem or a denial, nothing was stopped, no run is
/// recorded, the exit code is 1 (interrupted), and the terminal echoes again.
#[test]
fn ctrl_c_at_the_preflight_pin_prompt_stops_before_the_run_is_recorded() {
    let _token = token_lock::lock_the_soft_token();
    let bench = soft_token_bench(false);
    let mut screen = bench.run(&[]);
    screen.wait_for(PIN_PROMPT);
    assert!(!screen.echoes(), "the PIN prompt echoes");
    screen.let_progress_tick();
    screen.keys(NOT_THE_PIN);
    screen.let_progress_tick();
    let text = screen.text();
    assert!(
        !text.contains("S3cr3t"),
        "the PIN is on the screen:\n{text}"
    );
    screen.keys("\x03");
    assert_eq!(screen.exit_code(), 1, "{}", screen.text());
    let text = screen.text();
    assert!(
        text.contains("interrupted in the preflight, before the run started")
            && text.contains("nothing was stopped or changed, and no run was recorded"),
        "{text}"
    );
    assert!(
        !text.contains("preflight: PIN"),
        "a problem was made of it:\n{text}"
    );
    assert_eq!(text.matches(PIN_PROMPT).count(), 1, "asked again:\n{text}");
    assert!(!text.contains("S3cr3t"), "{text}");
    let runs = std::fs::read_dir(bench.state().join("runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "a run was recorded");
    assert!(
        bench.dir.path().join("running").exists(),
        "the service was stopped"
    );
    assert!(screen.echoes(), "the terminal was left without echo");
}

/// Killed while the preflight waits at the PIN prompt (a second Ctrl-C, which exits at once,
/// or a `kill -9`): nothing is left of a run, since nothing is written for it before the
/// preflight has passed.
#[test]
fn killed_at_the_preflight_pin_prompt_leaves_no_run_behind() {
    let _token = token_lock::lock_the_soft_token();
    let bench = soft_token_bench(false);
    let mut screen = bench.run(&[]);
    screen.wait_for(PIN_PROMPT);
    screen
        .process
        .kill(nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let runs = std::fs::read_dir(bench.state().join("runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "a run directory was left:\n{}", screen.text());
}

/// The PIN typed at the preflight's prompt (echo off) is verified by one login and used by
/// the steps (no second prompt). A resumed run asks in the step instead, with the same
/// prompt: the typed PIN stays off the screen, Ctrl-C there interrupts the run (journaled,
/// no rescue, resumable) and leaves the terminal echoing; typed, the run succeeds.
#[test]
fn the_pin_prompt_hides_the_pin_and_ctrl_c_interrupts_it() {
    let _token = token_lock::lock_the_soft_token();
    let pin = required_env("MKPLAN_TEST_OCK_USER_PIN");
    let bench = soft_token_bench(true);
    let mut screen = bench.run(&[]);
    screen.wait_for(PIN_PROMPT);
    screen.let_progress_tick();
    screen.keys(&pin);
    screen.let_progress_tick();
    assert!(!screen.text().contains(&pin), "{}", screen.text());
    screen.keys("\r");
    // Verified, the run starts: the service is stopped and the checkpoint asks.
    screen.wait_for("approver 1 of 1, your name: ");
    assert!(!bench.dir.path().join("running").exists());
    screen.keys("\x03");
    bench.assert_interrupted(&mut screen);
    assert_eq!(screen.text().matches(PIN_PROMPT).count(), 1);
    let run = bench.run_id();

    // Resumed, the step asks for the PIN (no preflight); Ctrl-C interrupts it again.
    let mut screen = resume_on_screen(&bench, &run);
    screen.wait_for("approver 1 of 1, your name: ");
    screen.keys("alice\r");
    screen.wait_for("to approve: ");
    screen.keys("1100\r");
    screen.wait_for(PIN_PROMPT);
    assert!(!screen.echoes(), "the PIN prompt echoes");
    screen.let_progress_tick();
    screen.keys(NOT_THE_PIN);
    screen.let_progress_tick();
    let text = screen.text();
    assert!(text.contains(PIN_PROMPT), "{text}");
    assert!(
        !text.contains("S3cr3t"),
        "the PIN is on the screen:\n{text}"
    );
    screen.keys("\x03");
    bench.assert_interrupted(&mut screen);
    assert!(!screen.text().contains("S3cr3t"));

    // Typed, the probe logs in with it and the run succeeds (the approval already counts).
    let mut screen = resume_on_screen(&bench, &run);
    screen.wait_for(PIN_PROMPT);
    screen.keys(&format!("{pin}\r"));
    assert_eq!(screen.exit_code(), 0, "{}", screen.text());
    let journal = bench.journal();
    assert_eq!(journal.last().unwrap()["data"]["outcome"], "succeeded");
    assert!(bench.dir.path().join("running").exists(), "started again");
    for entry in &journal {
        assert!(
            !entry.to_string().contains(&pin),
            "the PIN is in the journal"
        );
    }
    assert!(!screen.text().contains(&pin), "{}", screen.text());
}

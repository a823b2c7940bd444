//! End-to-end tests of the whole procedure (issue 5): the real `mkplan` binary rehearses
//! the real plan on a simulated EP11 host (`--root`), with faults, kills and resumes, and
//! every test proves its end state from the outside: `mkplan-sim verify`, the simulated
//! units, the sysfs WK registers, the store against the backup's manifest, the journal, the
//! exit code. Every root is shut down by a guard, even when a test fails; every process is
//! bounded by coreutils `timeout`; every test checks that the simulated PIN appears in none
//! of its outputs.
//!
//! `cargo test --release --test e2e -- --nocapture` shows the kill table of test 8.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mkplan_engine::journal::read_verified;
use serde_json::Value;
use sha2::{Digest, Sha256};

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
/// The guard against hangs, in seconds (not a speed claim).
const GUARD_SECS: &str = "120";

/// `wkvp.current` and `wkvp.new` of plans/ep11-offline.yaml.
const OLD_WK: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5";
const NEW_WK: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
const UNITS: [&str; 2] = ["myapp.service", "httpd.service"];
const APQNS: [&str; 2] = ["0a.0011", "0b.0011"];
/// A certificate and a data object: objects without a key blob in every simulated store.
const KEYLESS: usize = 2;
const STORE: &str = "var/lib/opencryptoki/ep11tok";
const MIGRATE_LOG: &str = "var/log/mkplan-sim/pkcsep11_migrate.log";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn offline_plan() -> PathBuf {
    repo("plans/ep11-offline.yaml")
}

fn fixture(name: &str) -> PathBuf {
    repo("tests/fixtures/e2e").join(name)
}

// ---------------------------------------------------------------------------------------
// Processes

/// What a finished `mkplan` process left.
struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    /// For a watched rehearsal: whether each of `UNITS` ran when `run_finished` was
    /// journaled (a finished rehearsal stops its simulated host's processes afterwards).
    units_at_finish: Option<Vec<bool>>,
}

impl Ran {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            units_at_finish: None,
        }
    }

    fn both(&self) -> String {
        format!(
            "exit {:?} signal {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// `timeout GUARD program args…` with stdin closed.
fn guarded(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.arg(GUARD_SECS).arg(program).stdin(Stdio::null());
    c
}

fn finish(mut command: Command) -> Ran {
    let ran = Ran::from(command.output().expect("timeout/mkplan runs"));
    assert_ne!(ran.code, Some(124), "hung: {}", ran.both());
    ran
}

/// Processes whose parent is `parent` and whose command name is `comm`.
fn children_named(parent: u32, comm: &str) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
            let ppid = rest.split_whitespace().nth(1).unwrap_or_default();
            name == comm && ppid == parent.to_string()
        })
        .collect()
}

fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live (not zombie) processes whose argv[0] is `program`.
fn processes_running(program: &Path) -> Vec<i32> {
    let wanted = program.as_os_str().as_encoded_bytes();
    pids()
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            !zombie && cmdline.split(|b| *b == 0).next() == Some(wanted)
        })
        .collect()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

// ---------------------------------------------------------------------------------------
// A rehearsal bench: its own simulated host and state dir

/// One simulated host (`root`) and one state dir, in a temp dir; the host's processes are
/// shut down when this is dropped, whatever happened.
struct Bench {
    root: PathBuf,
    state: PathBuf,
    /// Every `mkplan` output of this bench, for the PIN search.
    outputs: Mutex<Vec<(String, String)>>,
    _dir: tempfile::TempDir,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if self.root.join("var/lib/mkplan-sim/state.json").exists() {
            let out = Command::new("timeout")
                .args(["60", SIM, "shutdown", "--root"])
                .arg(&self.root)
                .output();
            if let Ok(out) = out
                && !out.status.success()
            {
                eprintln!(
                    "shutting down {}: {}",
                    self.root.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mkplan-e2e-")
            .tempdir()
            .unwrap();
        let base = dir.path().canonicalize().unwrap();
        Self {
            root: base.join("host"),
            state: base.join("state"),
            outputs: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }

    fn keep(&self, ran: &Ran) {
        self.outputs
            .lock()
            .unwrap()
            .push((ran.stdout.clone(), ran.stderr.clone()));
    }

    /// `timeout mkplan --root R --state-dir S rehearse PLAN --keys N --fault F…`.
    fn rehearse_command(&self, plan: &Path, keys: usize, faults: &[&str]) -> Command {
        let mut c = guarded(MKPLAN);
        c.arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("rehearse")
            .arg(plan)
            .args(["--keys", &keys.to_string()]);
        for fault in faults {
            c.args(["--fault", fault]);
        }
        c
    }

    fn rehearse(&self, plan: &Path, keys: usize, faults: &[&str]) -> Ran {
        self.watch(self.rehearse_command(plan, keys, faults))
    }

    /// Runs a rehearsal and looks at the simulated units the moment `run_finished` is in
    /// the journal: a finished rehearsal stops every simulated process of its host right
    /// after (src/cli/rehearse.rs), so the services' end state can only be seen then. The
    /// watcher freezes mkplan (SIGSTOP) while it looks, so the teardown cannot overtake it.
    fn watch(&self, mut command: Command) -> Ran {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let read_out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        let read_err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let mut journal: Option<PathBuf> = None;
        let mut seen_len = 0;
        let mut units_at_finish = None;
        let mut looked = false;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if !looked {
                if journal.is_none() {
                    journal = std::fs::read_dir(self.state.join("runs"))
                        .ok()
                        .and_then(|mut d| d.next())
                        .and_then(Result::ok)
                        .map(|e| e.path().join("journal.jsonl"));
                }
                let len = journal
                    .as_ref()
                    .and_then(|j| std::fs::metadata(j).ok())
                    .map_or(0, |m| m.len());
                if len != seen_len {
                    seen_len = len;
                    let text = std::fs::read_to_string(journal.as_ref().unwrap()).unwrap();
                    if text.contains("\"kind\":\"run_finished\"") {
                        looked = true;
                        units_at_finish = self.look_frozen(child.id());
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let ran = Ran {
            code: status.code(),
            signal: status.signal(),
            stdout: read_out.join().unwrap(),
            stderr: read_err.join().unwrap(),
            units_at_finish,
        };
        assert_ne!(ran.code, Some(124), "hung: {}", ran.both());
        self.keep(&ran);
        ran
    }

    /// Whether each unit runs, with the mkplan under `guard` stopped meanwhile (`None`
    /// if it is already gone).
    fn look_frozen(&self, guard: u32) -> Option<Vec<bool>> {
        use nix::sys::signal::{Signal, kill};
        let mkplan = *children_named(guard, "mkplan").first()?;
        let pid = nix::unistd::Pid::from_raw(mkplan);
        kill(pid, Signal::SIGSTOP).ok()?;
        let running = UNITS
            .iter()
            .map(|u| mkplan_sim::unit_running(&self.root, u))
            .collect();
        kill(pid, Signal::SIGCONT).expect("mkplan continues");
        Some(running)
    }

    fn run(&self, command: Command) -> Ran {
        let ran = finish(command);
        self.keep(&ran);
        ran
    }

    /// `mkplan --state-dir S resume RUN [--retry-step|--accept-step]`.
    fn resume(&self, decision: Option<&str>) -> Ran {
        let mut c = guarded(MKPLAN);
        c.arg("--state-dir")
            .arg(&self.state)
            .arg("resume")
            .arg(self.run_id());
        if let Some(decision) = decision {
            c.arg(decision);
        }
        self.run(c)
    }

    /// Resumes until the run finishes, deciding `--retry-step` whenever asked (or
    /// `first_decision` the first time). Returns every exit code, and the stderr of the
    /// first resume that asked for a decision.
    fn resume_to_the_end(&self, first_decision: &str) -> (Vec<i32>, Option<String>) {
        let mut codes = Vec::new();
        let mut decision = None;
        let mut asked = None;
        for _ in 0..6 {
            let ran = self.resume(decision);
            let code = ran.code.unwrap_or(-1);
            codes.push(code);
            if code != 5 {
                return (codes, asked);
            }
            assert!(ran.stderr.contains("--retry-step"), "{}", ran.both());
            asked.get_or_insert(ran.stderr.clone());
            decision = Some(if decision.is_none() {
                first_decision
            } else {
                "--retry-step"
            });
        }
        panic!("resume did not finish: {codes:?}");
    }

    fn mkplan(&self, args: &[&str]) -> Ran {
        let mut c = guarded(MKPLAN);
        c.arg("--state-dir").arg(&self.state).args(args);
        self.run(c)
    }

    fn run_id(&self) -> String {
        let mut ids: Vec<String> = std::fs::read_dir(self.state.join("runs"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(ids.len(), 1, "one run per bench: {ids:?}");
        ids.pop().unwrap()
    }

    fn run_dir(&self) -> PathBuf {
        self.state.join("runs").join(self.run_id())
    }

    fn journal(&self) -> Journal {
        let text = std::fs::read_to_string(self.run_dir().join("journal.jsonl")).unwrap();
        Journal(
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        )
    }

    fn store(&self) -> PathBuf {
        self.root.join(STORE)
    }

    /// The backup manifest (JSON Lines: a header, one member a line, an `end` line) as
    /// `{"directories": [...], "regular_files": [...], "files": N}`.
    fn manifest(&self) -> Value {
        let path = self
            .root
            .join("var/backups/mkplan")
            .join(format!("{}-ep11.manifest.jsonl", self.run_id()));
        let text = std::fs::read_to_string(&path).unwrap();
        let (mut dirs, mut files, mut end) = (Vec::new(), Vec::new(), Value::Null);
        for line in text.lines().skip(1) {
            let mut value: Value = serde_json::from_str(line).unwrap();
            if let Some(d) = value.get_mut("dir") {
                dirs.push(d.take());
            } else if let Some(f) = value.get_mut("file") {
                files.push(f.take());
            } else {
                end = value["end"].take();
            }
        }
        assert_eq!(end["files"], files.len(), "{}", path.display());
        serde_json::json!({"directories": dirs, "regular_files": files, "files": end["files"]})
    }

    /// `mkplan-sim verify --root R --json`: its exit code and report.
    fn verify(&self) -> (i32, Value) {
        let out = Command::new("timeout")
            .args(["60", SIM, "verify", "--json", "--root"])
            .arg(&self.root)
            .output()
            .unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// Token `ep11`'s verdict from `mkplan-sim verify`, and the exit code.
    fn token(&self) -> (i32, Value) {
        let (code, report) = self.verify();
        (code, report["tokens"]["ep11"].clone())
    }

    /// Every key usable under `wk`, `keys` of them, every blob sealed under `wk`, and
    /// `verify` exits 0.
    fn assert_all_keys_usable_under(&self, wk: &str, keys: usize) {
        let (code, token) = self.token();
        assert_eq!(code, 0, "verify: {token:#}");
        assert_eq!(token["usable"], keys, "{token:#}");
        assert_eq!(token["unusable"], 0, "{token:#}");
        assert_eq!(token["skipped"], KEYLESS, "{token:#}");
        assert_eq!(token["current_wkvp"], wk, "{token:#}");
        let by_wkvp: BTreeMap<String, u64> =
            serde_json::from_value(token["blobs_by_wkvp"].clone()).unwrap();
        assert_eq!(by_wkvp, BTreeMap::from([(wk.to_owned(), keys as u64)]));
    }

    /// The services ran when the rehearsal's run finished (before its teardown).
    fn assert_services_ran_at_the_end(&self, ran: &Ran) {
        assert_eq!(
            ran.units_at_finish.as_deref(),
            Some(&[true, true][..]),
            "{UNITS:?} when the run finished (None: not seen)"
        );
    }

    /// The services run now (after a resume, which keeps the simulated host up).
    fn assert_services_running(&self) {
        for unit in UNITS {
            assert!(
                mkplan_sim::unit_running(&self.root, unit),
                "{unit} is not running"
            );
        }
    }

    fn unit_pids(&self) -> Vec<Option<i32>> {
        UNITS
            .iter()
            .map(|u| mkplan_sim::unit_pid(&self.root, u))
            .collect()
    }

    /// `("valid", "0x…16 bytes")` for CUR and `("committed", "0x…")` / `("empty", "-")`
    /// for NEW, as the kernel's `mkvps` shows them.
    fn registers(&self, apqn: &str) -> [(String, String); 2] {
        let text = std::fs::read_to_string(
            self.root
                .join("sys/bus/ap/devices")
                .join(apqn)
                .join("mkvps"),
        )
        .unwrap();
        let read = |prefix: &str| {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` in {text}"));
            let mut words = line.split_whitespace();
            let state = words.next().unwrap_or_default().to_owned();
            let vp = words.next().unwrap_or_default();
            (state, vp.chars().take(34).collect())
        };
        [read("WK CUR: "), read("WK NEW: ")]
    }

    fn cur(&self, apqn: &str) -> (String, String) {
        self.registers(apqn)[0].clone()
    }

    fn new_register(&self, apqn: &str) -> (String, String) {
        self.registers(apqn)[1].clone()
    }

    fn expected_wkvp_in_config(&self) -> String {
        let text =
            std::fs::read_to_string(self.root.join("etc/opencryptoki/ep11tok.conf")).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("EXPECTED_WKVP"))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    }

    fn migrate_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.root.join(MIGRATE_LOG))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn pin(&self) -> String {
        let record: Value = serde_json::from_slice(
            &std::fs::read(self.root.join("var/lib/mkplan-sim/rehearsal.json")).unwrap(),
        )
        .unwrap();
        let pin = record["pin"].as_str().unwrap().to_owned();
        assert!(pin.len() >= 8, "a PIN worth searching for: {pin:?}");
        pin
    }

    /// Design/operator expectation 7: the simulated PIN is in no stdout or stderr of this
    /// bench's runs, in no file under the state dir (journal, report, html, signatures),
    /// in no report copy on the host, and not in the simulator's migrate log (argv and
    /// environment keys). Returns the places it was found.
    fn places_with_the_pin(&self) -> Vec<String> {
        let pin = self.pin();
        let mut found = Vec::new();
        for (i, (stdout, stderr)) in self.outputs.lock().unwrap().iter().enumerate() {
            if stdout.contains(&pin) {
                found.push(format!("stdout of mkplan run #{i}"));
            }
            if stderr.contains(&pin) {
                found.push(format!("stderr of mkplan run #{i}"));
            }
        }
        let mut files = Vec::new();
        walk_files(&self.state, &mut files);
        walk_files(&self.root.join("var/lib/mkplan/reports"), &mut files);
        files.push(self.root.join(MIGRATE_LOG));
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            if contains(&bytes, pin.as_bytes()) {
                found.push(file.display().to_string());
            }
        }
        found
    }

    fn assert_pin_nowhere(&self) {
        let found = self.places_with_the_pin();
        assert!(found.is_empty(), "the PIN is in: {found:#?}");
    }
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Every entry under `dir` (relative to `dir`'s parent): `d MODE` for directories,
/// `f MODE SIZE SHA256` for files, `? …` for anything else.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let meta = std::fs::symlink_metadata(dir).unwrap();
        let name = dir.strip_prefix(base).unwrap().display().to_string();
        out.insert(
            name,
            format!("d {:04o}", meta.permissions().mode() & 0o7777),
        );
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(base).unwrap().display().to_string();
            if meta.is_dir() {
                walk(base, &path, out);
            } else if meta.is_file() {
                out.insert(
                    name,
                    format!(
                        "f {:04o} {} {}",
                        meta.permissions().mode() & 0o7777,
                        meta.size(),
                        sha256_file(&path)
                    ),
                );
            } else {
                out.insert(name, format!("? {:?}", meta.file_type()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir.parent().unwrap(), dir, &mut out);
    out
}

/// The backup manifest as the same kind of tree (paths are relative to the store's
/// parent in both).
fn manifest_tree(manifest: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in manifest["directories"].as_array().unwrap() {
        out.insert(
            d["path"].as_str().unwrap().to_owned(),
            format!("d {}", d["mode"].as_str().unwrap()),
        );
    }
    for f in manifest["regular_files"].as_array().unwrap() {
        out.insert(
            f["path"].as_str().unwrap().to_owned(),
            format!(
                "f {} {} {}",
                f["mode"].as_str().unwrap(),
                f["size"],
                f["sha256"].as_str().unwrap()
            ),
        );
    }
    out
}

/// The store is byte-identical to the backup: the same files with the same contents and
/// modes, the same directories, and nothing else.
fn assert_store_is_the_backup(b: &Bench) {
    let manifest = b.manifest();
    let expected = manifest_tree(&manifest);
    let actual = tree(&b.store());
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let differ: Vec<_> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "the store is not the backup: missing {missing:?}, extra {extra:?}, differ {differ:?}"
    );
    assert_eq!(
        actual.values().filter(|v| v.starts_with("f ")).count() as u64,
        manifest["files"].as_u64().unwrap()
    );
}

/// How many key-object files of a store copy differ from the backup manifest.
fn objects_differing_from_backup(store_copy: &Path, manifest: &Value) -> usize {
    let parent = store_copy.parent().unwrap();
    let name = store_copy.file_name().unwrap().to_str().unwrap();
    manifest["regular_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let path = f["path"].as_str().unwrap();
            path.contains("/TOK_OBJ/") && !path.ends_with("OBJ.IDX")
        })
        .filter(|f| {
            let path = f["path"].as_str().unwrap();
            let relative = path.split_once('/').unwrap().1;
            let file = parent.join(name).join(relative);
            !file.is_file() || sha256_file(&file) != f["sha256"].as_str().unwrap()
        })
        .count()
}

// ---------------------------------------------------------------------------------------
// The journal

struct Journal(Vec<Value>);

fn position(event: &Value) -> String {
    let step = &event["data"]["step"];
    format!(
        "{}[{}]",
        step["section"].as_str().unwrap_or("?"),
        step["index"]
    )
}

impl Journal {
    fn kinds(&self) -> Vec<&str> {
        self.0.iter().map(|e| e["kind"].as_str().unwrap()).collect()
    }

    fn outcome(&self) -> String {
        self.0
            .iter()
            .rev()
            .find(|e| e["kind"] == "run_finished")
            .map(|e| e["data"]["outcome"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| "(unfinished)".to_owned())
    }

    /// Events of `kind` about the step at `pos` (e.g. `steps[5]`, `rescue[0]`).
    fn of(&self, kind: &str, pos: &str) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|e| e["kind"] == kind && position(e) == pos)
            .collect()
    }

    fn one(&self, kind: &str, pos: &str) -> &Value {
        let found = self.of(kind, pos);
        assert_eq!(found.len(), 1, "one `{kind}` of {pos}: {found:#?}");
        found[0]
    }

    fn error(&self, pos: &str) -> String {
        self.one("step_failed", pos)["data"]["error"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn summary(&self, pos: &str) -> String {
        self.one("step_succeeded", pos)["data"]["summary"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Events of `kind` about any step of the given step kind (`stop`, `migrate`, …).
    fn of_step_kind(&self, kind: &str, step_kind: &str) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|e| e["kind"] == kind && e["data"]["step"]["kind"] == step_kind)
            .collect()
    }

    /// Positions of the mutating steps that started.
    fn mutating_started(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| e["kind"] == "step_started" && e["data"]["mutating"] == true)
            .map(position)
            .collect()
    }
}

fn assert_exit(ran: &Ran, code: i32) {
    assert_eq!(ran.code, Some(code), "{}", ran.both());
}

/// Every step of the happy path of plans/ep11-offline.yaml succeeded exactly once.
fn assert_every_step_succeeded_once(j: &Journal) {
    for i in 0..10 {
        let pos = format!("steps[{i}]");
        assert_eq!(j.of("step_succeeded", &pos).len(), 1, "{pos}");
    }
    assert_eq!(j.of("step_succeeded", "always[0]").len(), 1);
    assert!(j.of("step_started", "rescue[0]").is_empty());
}

// ---------------------------------------------------------------------------------------
// 1. Happy path

#[test]
fn e2e_01_happy_path_with_1000_keys() {
    const KEYS: usize = 1000;
    let b = Bench::new();
    let ran = b.rehearse(&offline_plan(), KEYS, &[]);
    assert_exit(&ran, 0);
    assert!(ran.stdout.contains("REHEARSAL RECAP"), "{}", ran.both());

    b.assert_all_keys_usable_under(NEW_WK, KEYS);
    b.assert_services_ran_at_the_end(&ran);
    for apqn in APQNS {
        assert_eq!(b.cur(apqn), ("valid".into(), NEW_WK.into()), "{apqn}");
        assert_eq!(b.new_register(apqn).0, "empty", "{apqn}");
    }
    assert_eq!(b.expected_wkvp_in_config(), NEW_WK);

    let j = b.journal();
    assert_eq!(j.outcome(), "succeeded");
    assert_every_step_succeeded_once(&j);
    let migrate = &j.one("step_succeeded", "steps[5]")["data"]["data"];
    assert_eq!(migrate["keys_reenciphered"], KEYS);
    assert_eq!(migrate["keys_started"], KEYS);
    assert_eq!(migrate["success_line"], true);
    assert_eq!(migrate["exit_code"], 0);
    assert_eq!(b.migrate_log().len(), 1, "the tool ran once");
    assert!(read_verified(&b.run_dir().join("journal.jsonl")).is_ok());

    let verified = b.mkplan(&["report", "verify", &b.run_id()]);
    assert_exit(&verified, 0);
    assert!(verified.stdout.contains("verified:"), "{}", verified.both());
    // The backup directory the step made is its owner's only, like what is in it.
    let backups = b.root.join("var/backups/mkplan");
    let mode = std::fs::metadata(&backups).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{}", backups.display());
    b.assert_pin_nowhere();
}

/// The key inventory is not journaled (a journal line per probe grew with the keys, and every
/// step cloned it): each `probe_keys` writes a sorted JSON Lines side file into the run
/// directory, and the journal record and the signed report name it by SHA-256 and line
/// count. `report verify` checks it; an edited side file is refused, and a report built
/// again from it says the comparison could not be made (issue 13).
#[test]
fn e2e_01b_the_key_inventory_is_a_sorted_side_file_named_by_its_digest() {
    const KEYS: usize = 300;
    let b = Bench::new();
    let ran = b.rehearse(&offline_plan(), KEYS, &[]);
    assert_exit(&ran, 0);
    let dir = b.run_dir();
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    for line in text
        .lines()
        .filter(|l| l.contains(r#""kind":"probe_keys""#))
    {
        assert!(
            line.len() < 4096,
            "a probe's journal line of {} bytes",
            line.len()
        );
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let j = b.journal();
    for (step, side) in [
        ("steps[2]", "inventory_before"),
        ("steps[9]", "inventory_after"),
    ] {
        let inventory = &j.one("step_succeeded", step)["data"]["data"]["inventory"];
        assert!(inventory.get("objects").is_none(), "{inventory:#}");
        let file = &inventory["file"];
        let name = file["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            file["sha256"],
            "{name}"
        );
        let objects: Vec<Value> = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), KEYS + KEYLESS, "{name}");
        assert_eq!(file["lines"], objects.len(), "{name}");
        let order = |o: &Value| {
            ["class", "id", "label", "key_type"].map(|k| o[k].as_str().unwrap_or("").to_owned())
        };
        assert!(
            objects.windows(2).all(|w| order(&w[0]) <= order(&w[1])),
            "{name} is sorted"
        );
        let usable = objects
            .iter()
            .filter(|o| o["usable"]["state"] == "usable")
            .count();
        assert_eq!(usable, KEYS, "{name}");
        let facts = &report["tokens"][0][side];
        assert_eq!(facts["key_file"], *file, "{side}");
        assert_eq!(facts["usable"], KEYS, "{side}");
        assert_eq!(facts["keys"], KEYS, "{side}");
    }
    assert_eq!(report["tokens"][0]["comparison"]["reenciphered"], KEYS);
    assert_exit(&b.mkplan(&["report", "verify", &b.run_id()]), 0);

    // One key's line edited: the signed digest no longer holds.
    let after = dir.join("keys-steps-9.jsonl");
    let edited = std::fs::read_to_string(&after).unwrap().replacen(
        r#""state":"usable""#,
        r#""state":"unusable","reason":"x""#,
        1,
    );
    std::fs::write(&after, edited).unwrap();
    let verify = b.mkplan(&["report", "verify", &b.run_id()]);
    assert_ne!(verify.code, Some(0), "{}", verify.both());
    assert!(
        verify.both().contains("keys-steps-9.jsonl"),
        "{}",
        verify.both()
    );
    assert_exit(
        &b.mkplan(&["report", "generate", "--force", &b.run_id()]),
        0,
    );
    let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(
        report.contains("it was changed after the probe"),
        "the rebuilt report says the edited list was not compared"
    );
    b.assert_pin_nowhere();
}

/// Run history stays bounded without losing what may still be needed (issue 13): a
/// rehearsal keeps the newest `--keep-rehearsals` finished rehearsals and says where they
/// are; `runs --prune` removes finished runs older than the retention period; neither ever
/// removes an unfinished run, however old.
#[test]
fn e2e_01c_rehearsals_keep_the_newest_n_and_runs_prune_never_removes_an_unfinished_run() {
    let b = Bench::new();
    let rehearse = || {
        let mut c = guarded(MKPLAN);
        c.arg("--state-dir")
            .arg(&b.state)
            .arg("rehearse")
            .arg(offline_plan());
        c.args(["--keys", "20", "--keep-rehearsals", "2"]);
        let ran = b.run(c);
        assert_exit(&ran, 0);
        ran
    };
    let runs = || -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(b.state.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids
    };
    let first = rehearse();
    assert!(
        first.stderr.contains(&format!(
            "rehearsals are kept in `{}` (the newest 2;",
            b.state.join("runs").display()
        )),
        "{}",
        first.both()
    );
    rehearse();
    let oldest = runs()[0].clone();
    let third = rehearse();
    assert!(third.stderr.contains("1 older removed"), "{}", third.both());
    assert!(
        !runs().contains(&oldest),
        "the oldest finished rehearsal went"
    );
    // The newest run: killed after its first event, on the bench's own host.
    let mut c = b.rehearse_command(&offline_plan(), 20, &[]);
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", "0");
    assert_eq!(b.run(c).signal, Some(9));
    let now = runs();
    assert_eq!(now.len(), 3, "{now:?}");
    let unfinished = now[2].clone();

    // Both the unfinished run and one finished run look years old.
    let age = |id: &str, outcome_kept: bool| {
        let path = b.state.join("runs").join(id).join("summary.json");
        let mut summary: Value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Err(_) => {
                serde_json::json!({"run": id, "plan_name": "x", "rehearsal": true, "outcome": null, "finished": null})
            }
        };
        summary["started"] = "2020-01-01T00:00:00Z".into();
        if outcome_kept {
            summary["finished"] = "2020-01-01T01:00:00Z".into();
        }
        std::fs::write(&path, serde_json::to_vec(&summary).unwrap()).unwrap();
    };
    age(&unfinished, false);
    age(&now[0], true);
    let pruned = b.mkplan(&["runs", "--prune"]);
    assert_exit(&pruned, 0);
    assert!(
        pruned.stdout.contains(&format!("removed {}", now[0])),
        "{}",
        pruned.both()
    );
    assert_eq!(runs(), [now[1].clone(), unfinished.clone()]);
    let all = b.mkplan(&["runs", "--prune", "--retention-days", "0"]);
    assert_exit(&all, 0);
    assert_eq!(runs(), [unfinished], "{}", all.both());
}

/// Without a terminal, a long step still shows it is moving (issue 13): a progress log line
/// with `n of N`, the rate and the ETA, in the human and the JSON log formats, and never
/// the tracing span's raw `step{name=…}` label.
#[test]
fn e2e_01d_a_long_migration_logs_its_progress_without_a_terminal() {
    for format in ["human", "json"] {
        let b = Bench::new();
        let mut c = b.rehearse_command(&offline_plan(), 600, &["slow-keys=6"]);
        c.args(["--log-format", format]);
        let ran = b.run(c);
        assert_exit(&ran, 0);
        let of = format!(" of {}, ", 600 + KEYLESS);
        assert!(!ran.stderr.contains("step{"), "{}", ran.both());
        let progress: Vec<&str> = ran
            .stderr
            .lines()
            // N: the objects the tool lists (its per-key index counts the keyless ones too).
            .filter(|l| l.contains("keys re-enciphered (") && l.contains(&of))
            .collect();
        assert!(
            !progress.is_empty(),
            "{format}: no progress line: {}",
            ran.both()
        );
        assert!(progress.iter().all(|l| l.contains("/s")), "{progress:?}");
        if format == "json" {
            let line: Value = serde_json::from_str(progress[0]).unwrap();
            assert_eq!(line["fields"]["kind"], "progress", "{line:#}");
            assert_eq!(line["fields"]["total"], 600 + KEYLESS, "{line:#}");
            assert_eq!(line["fields"]["step"], "steps[5]", "{line:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. The migration fails at key 1, 500 and 1,000

fn fails_at_key(k: usize) {
    const KEYS: usize = 1000;
    let b = Bench::new();
    let ran = b.rehearse(&offline_plan(), KEYS, &[&format!("fail-at-key={k}")]);
    assert_exit(&ran, 1);
    let j = b.journal();
    // At key 1 the tool changed nothing: the rescue finds the store identical to the backup
    // and says so, and the run is not called `rescued`.
    let expected = if k == 1 { "failed" } else { "rescued" };
    assert_eq!(j.outcome(), expected, "k={k}");

    let error = j.error("steps[5]");
    assert!(
        error.contains(&format!("stopped at key {k} ")),
        "k={k}: {error}"
    );
    let data = &j.one("step_failed", "steps[5]")["data"]["data"];
    assert_eq!(data["keys_reenciphered"], k - 1, "k={k}");
    assert_eq!(data["exit_code"], 255, "k={k}");
    // Rule 2: the activation checkpoint is never reached after a failed migration.
    assert!(j.of("step_started", "steps[6]").is_empty(), "k={k}");
    for apqn in APQNS {
        assert_eq!(b.cur(apqn), ("valid".into(), OLD_WK.into()), "k={k} {apqn}");
        assert_eq!(b.new_register(apqn), ("committed".into(), NEW_WK.into()));
    }

    let restore = j.summary("rescue[0]");
    if k == 1 {
        assert!(
            restore.starts_with("nothing to restore: the store of `ep11` is identical"),
            "{restore}"
        );
    } else {
        assert!(restore.starts_with("restored "), "k={k}: {restore}");
        // The store the tool left behind (kept aside by the restore) was partly migrated:
        // exactly the k-1 keys before the failing one had changed.
        let replaced = j.one("step_succeeded", "rescue[0]")["data"]["data"]["restored"]["replaced"]
            .as_str()
            .map(PathBuf::from)
            .expect("the replaced store is kept");
        assert_eq!(
            objects_differing_from_backup(&replaced, &b.manifest()),
            k - 1,
            "k={k}"
        );
    }

    assert_store_is_the_backup(&b);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_services_ran_at_the_end(&ran);
    assert_eq!(b.expected_wkvp_in_config(), OLD_WK);
    b.assert_pin_nowhere();
}

#[test]
fn e2e_02_migration_fails_at_key_1_500_1000_and_rescue_restores_the_store_byte_for_byte() {
    std::thread::scope(|s| {
        for k in [1, 500, 1000] {
            s.spawn(move || fails_at_key(k));
        }
    });
}

// ---------------------------------------------------------------------------------------
// 3. and 4. Refused at `assert_wk`, before anything changes

/// A rehearsal stopped (kill -9) right after `run_started`: the host is laid out and the
/// faults are set, but no step ran. The caller snapshots it, then resumes.
fn paused_rehearsal(b: &Bench, plan: &Path, keys: usize, faults: &[&str]) {
    let mut c = b.rehearse_command(plan, keys, faults);
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", "0");
    let ran = b.run(c);
    assert_eq!(ran.signal, Some(9), "{}", ran.both());
    assert_eq!(b.journal().kinds(), ["run_started"]);
}

/// What tests 3 and 4 share: the run refuses at `assert_wk` (steps[1]); nothing is stopped
/// and nothing is written. Returns the refusal.
fn refused_at_assert_wk(fault: &str) -> String {
    const KEYS: usize = 20;
    // The straight run: its exit code and journal.
    let b = Bench::new();
    let ran = b.rehearse(&offline_plan(), KEYS, &[fault]);
    // Exit 1, not 3: `assert_wk` is a step of the run (3 is for refusals before a run
    // starts); its failure runs rescue (which finds nothing to restore, so the run is
    // `failed`, not `rescued`) and always.
    assert_exit(&ran, 1);
    let j = b.journal();
    assert_eq!(j.outcome(), "failed");
    assert_nothing_was_touched(&b, &j);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_services_ran_at_the_end(&ran);
    b.assert_pin_nowhere();
    let refusal = j.error("steps[1]");

    // The same, with the store hashed and the units' pids taken before the first step and
    // compared after: byte-identical, and the same processes ran all along.
    let p = Bench::new();
    paused_rehearsal(&p, &offline_plan(), KEYS, &[fault]);
    let before = tree(&p.store());
    let pids = p.unit_pids();
    assert!(pids.iter().all(Option::is_some), "{pids:?}");
    let resumed = p.resume(None);
    assert_exit(&resumed, 1);
    let j = p.journal();
    assert_eq!(j.outcome(), "failed");
    assert_eq!(j.error("steps[1]"), refusal);
    assert_nothing_was_touched(&p, &j);
    assert_eq!(tree(&p.store()), before, "the store changed");
    assert_eq!(p.unit_pids(), pids, "the units were restarted");
    p.assert_services_running();
    p.assert_all_keys_usable_under(OLD_WK, KEYS);
    p.assert_pin_nowhere();
    refusal
}

fn assert_nothing_was_touched(b: &Bench, j: &Journal) {
    assert!(j.of("step_failed", "steps[1]").len() == 1);
    // Nothing after assert_wk ran: no stop, no backup, no migration.
    for i in 2..10 {
        assert!(
            j.of("step_started", &format!("steps[{i}]")).is_empty(),
            "steps[{i}]"
        );
    }
    assert!(j.of_step_kind("step_succeeded", "stop").is_empty());
    // The only mutating step that started is the rescue restore, which had nothing to do.
    assert_eq!(j.mutating_started(), ["rescue[0]"]);
    assert!(
        j.summary("rescue[0]").starts_with("nothing to restore"),
        "{}",
        j.summary("rescue[0]")
    );
    // always knows from the journal that no unit was stopped.
    assert_eq!(
        j.summary("always[0]"),
        "nothing to start: this run stopped no unit of `apps`"
    );
    assert!(b.migrate_log().is_empty(), "the tool ran");
    assert!(
        std::fs::read_dir(b.root.join("var/backups/mkplan"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "a backup was taken"
    );
    assert_eq!(b.expected_wkvp_in_config(), OLD_WK);
}

#[test]
fn e2e_03_new_wk_committed_on_one_apqn_only_is_refused_at_assert_wk() {
    let refusal = refused_at_assert_wk("commit-only-on=0a.0011");
    // The APQN the tool would not check (pkcsep11_migrate checks only the one it is given,
    // 0a.0011) is the one named.
    assert!(refusal.contains("0b.0011"), "{refusal}");
    assert!(refusal.contains("uncommitted"), "{refusal}");
    assert!(!refusal.contains("0a.0011"), "{refusal}");
}

#[test]
fn e2e_04_a_new_wk_other_than_the_plans_is_refused_before_any_change() {
    let refusal = refused_at_assert_wk("wrong-new-wkvp");
    for apqn in APQNS {
        assert!(refusal.contains(apqn), "{refusal}");
    }
    assert!(refusal.contains("0x5eed5eed"), "{refusal}");
    assert!(
        refusal.contains(&format!("must be committed {NEW_WK}")),
        "{refusal}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. A stray process keeps the token open

#[test]
fn e2e_05_a_stray_process_stops_the_plan_before_the_tool_starts() {
    const KEYS: usize = 20;
    // a) Present from the start: the stop step's own scan finds it, so the migration is
    //    never reached.
    let a = Bench::new();
    paused_rehearsal(&a, &offline_plan(), KEYS, &["stray"]);
    let before = tree(&a.store());
    let resumed = a.resume(None);
    assert_exit(&resumed, 1);
    let j = a.journal();
    assert_eq!(j.outcome(), "failed");
    let error = j.error("steps[3]");
    assert!(
        error.contains("still use a token") && error.contains("--stray"),
        "{error}"
    );
    assert!(j.of("step_started", "steps[5]").is_empty());
    assert!(a.migrate_log().is_empty(), "the tool ran");
    assert!(j.summary("rescue[0]").starts_with("nothing to restore"));
    assert_eq!(tree(&a.store()), before, "the store changed");
    a.assert_all_keys_usable_under(OLD_WK, KEYS);
    a.assert_services_running();
    a.assert_pin_nowhere();

    // b) Appearing after the services stopped (a command step of the fixture starts it):
    //    the migrate step's own live check (rule 1) refuses before the tool starts.
    let b = Bench::new();
    let mut c = b.rehearse_command(&fixture("ep11-stray-after-stop.yaml"), KEYS, &[]);
    c.env("MKPLAN_E2E_SIM", SIM).env("MKPLAN_E2E_ROOT", &b.root);
    let ran = b.watch(c);
    assert_exit(&ran, 1);
    let j = b.journal();
    assert_eq!(j.outcome(), "failed");
    assert!(j.summary("steps[2]").contains("stopped 2 of 2"));
    let migrate = "steps[6]";
    assert_eq!(
        j.one("step_started", migrate)["data"]["step"]["kind"],
        "migrate"
    );
    let error = j.error(migrate);
    assert!(
        error.contains("refused before the tool starts") && error.contains("--stray"),
        "{error}"
    );
    assert_eq!(
        j.one("step_failed", migrate)["data"]["data"]["tool_started"],
        false
    );
    assert!(b.migrate_log().is_empty(), "the tool ran");
    assert!(j.of("step_started", "steps[7]").is_empty());
    let restore = j.summary("rescue[0]");
    assert!(restore.starts_with("nothing to restore"), "{restore}");
    assert_store_is_the_backup(&b);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_services_ran_at_the_end(&ran);
    for apqn in APQNS {
        assert_eq!(b.cur(apqn), ("valid".into(), OLD_WK.into()));
    }
    b.assert_pin_nowhere();
}

// ---------------------------------------------------------------------------------------
// 6. The activation checkpoint is denied

#[test]
fn e2e_06_a_denied_activation_restores_and_aborts() {
    const KEYS: usize = 50;
    let b = Bench::new();
    let ran = b.rehearse(&offline_plan(), KEYS, &["deny=tke-activate"]);
    assert_exit(&ran, 4);
    let j = b.journal();
    assert_eq!(j.outcome(), "aborted");
    assert_eq!(
        j.one("step_succeeded", "steps[5]")["data"]["data"]["keys_reenciphered"],
        KEYS
    );
    j.one("checkpoint_denied", "steps[6]");
    assert!(j.of("checkpoint_approved", "steps[6]").is_empty());
    assert!(j.error("steps[6]").starts_with("denied"));
    // Safe: nothing was activated, so the restore runs and puts the old blobs back.
    for apqn in APQNS {
        assert_eq!(b.cur(apqn), ("valid".into(), OLD_WK.into()));
        assert_eq!(b.new_register(apqn), ("committed".into(), NEW_WK.into()));
    }
    assert!(j.summary("rescue[0]").starts_with("restored "));
    assert_store_is_the_backup(&b);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_services_ran_at_the_end(&ran);
    assert!(j.of("step_started", "steps[8]").is_empty());
    b.assert_pin_nowhere();
}

// ---------------------------------------------------------------------------------------
// 7. Activation done on one APQN only

#[test]
fn e2e_07_activation_on_one_apqn_only_fails_and_restore_is_refused_with_the_forward_fix() {
    const KEYS: usize = 50;
    let b = Bench::new();
    // The fixture is the offline plan with an activation check of 3 tries 200ms apart.
    let plan = fixture("ep11-quick-until.yaml");
    let ran = b.rehearse(&plan, KEYS, &["activate-only-on=0a.0011"]);
    assert_exit(&ran, 1);
    let j = b.journal();
    assert_eq!(j.outcome(), "failed");
    assert_eq!(j.of("checkpoint_approved", "steps[6]").len(), 1);
    let until = j.error("steps[6]");
    assert!(
        until.contains("still does not hold (3 checks)") && until.contains("0b.0011"),
        "{until}"
    );
    // Rule 4: the old WK is gone on 0a.0011, so the backup must not come back.
    let refusal = j.error("rescue[0]");
    assert!(
        refusal.starts_with("refusing to restore token `ep11`")
            && refusal.contains("the new WK is already current on 0a.0011")
            && refusal.contains("Fix forward instead")
            && refusal.contains("activate the new WK on every APQN"),
        "{refusal}"
    );
    assert!(j.of("step_started", "steps[7]").is_empty());

    // The state is mixed, exactly:
    assert_eq!(b.cur("0a.0011"), ("valid".into(), NEW_WK.into()));
    assert_eq!(b.new_register("0a.0011").0, "empty");
    assert_eq!(b.cur("0b.0011"), ("valid".into(), OLD_WK.into()));
    assert_eq!(
        b.new_register("0b.0011"),
        ("committed".into(), NEW_WK.into())
    );
    let (code, token) = b.token();
    assert_ne!(code, 0, "verify must fail on a mixed state: {token:#}");
    assert_eq!(token["usable"], 0);
    assert_eq!(token["unusable"], KEYS);
    assert_eq!(token["current_wkvp"], Value::Null);
    let problem = token["problem"].as_str().unwrap();
    assert!(problem.contains("disagree on the current WK"), "{problem}");
    assert_eq!(
        token["blobs_by_wkvp"],
        serde_json::json!({ NEW_WK: KEYS }),
        "every blob was migrated and none restored"
    );
    assert!(
        !b.root
            .join(format!("{STORE}.replaced-{}", b.run_id()))
            .exists()
    );
    assert_eq!(b.expected_wkvp_in_config(), OLD_WK);
    // Rule 3, live: the store was re-enciphered and not restored, and the new WK is not
    // current everywhere, so `always` refuses to start the services: they would come up
    // against keys that cannot work. They stay stopped until the activation is finished.
    let refused = j.error("always[0]");
    assert!(refused.starts_with("not starting services"), "{refused}");
    assert_eq!(
        ran.units_at_finish.as_deref(),
        Some(&[false, false][..]),
        "{UNITS:?} when the run finished"
    );

    // The forward fix the message names works: activate on the other APQN too.
    let fix = Command::new("timeout")
        .args(["60", SIM, "tke", "--root"])
        .arg(&b.root)
        .args(["activate", "--apqn", "0b.0011"])
        .output()
        .unwrap();
    assert!(fix.status.success(), "{fix:?}");
    b.assert_all_keys_usable_under(NEW_WK, KEYS);
    b.assert_pin_nowhere();
}

// ---------------------------------------------------------------------------------------
// 8. kill -9 after every journal event, and half-way through the keys; then resume

const KILL_KEYS: usize = 60;

struct Row {
    k: usize,
    killed_after: String,
    codes: Vec<i32>,
    outcome: String,
    end: String,
    problems: Vec<String>,
}

/// `step_started steps[5] migrate`, `run_finished`, …
fn describe_event(event: &Value) -> String {
    let kind = event["kind"].as_str().unwrap_or("?");
    match event["data"]["step"]["kind"].as_str() {
        Some(step) => format!("{kind} {} {step}", position(event)),
        None => kind.to_owned(),
    }
}

/// `60 usable, 0 unusable, new WK`.
fn end_state(token: &Value) -> String {
    let wk = match token["current_wkvp"].as_str() {
        Some(NEW_WK) => "new WK",
        Some(OLD_WK) => "old WK",
        Some(_) => "other WK",
        None => "no agreed WK",
    };
    format!(
        "{} usable, {} unusable, {wk}",
        token["usable"], token["unusable"]
    )
}

/// Kills the rehearsal right after journal event `k`, resumes to the end, and checks the
/// end state.
fn kill_after_event(k: usize, last: usize) -> Row {
    let b = Bench::new();
    let mut c = b.rehearse_command(&offline_plan(), KILL_KEYS, &[]);
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", k.to_string());
    let ran = b.run(c);
    let mut problems = Vec::new();
    if ran.signal != Some(9) {
        problems.push(format!("not killed: {}", ran.both()));
    }
    let killed_after = b.journal().0.get(k).map_or("?".to_owned(), describe_event);
    let (codes, asked) = b.resume_to_the_end("--retry-step");
    if let Some(asked) = &asked
        && killed_after.starts_with("step_started")
        && !asked.contains("compared with the backup: no key object changed")
    {
        problems.push(format!("resume did not compare the store: {asked}"));
    }
    let j = b.journal();
    let outcome = j.outcome();
    let expected_code = if k == last { 2 } else { 0 };
    if codes.last() != Some(&expected_code) {
        problems.push(format!("last resume exited {codes:?}"));
    }
    if outcome != "succeeded" {
        let failed: Vec<String> =
            j.0.iter()
                .filter(|e| e["kind"] == "step_failed")
                .map(|e| format!("{}: {}", position(e), e["data"]["error"]))
                .collect();
        problems.push(format!("outcome {outcome}: {failed:?}"));
    }
    let (code, token) = b.token();
    let end = end_state(&token);
    if code != 0 || token["usable"] != KILL_KEYS || token["current_wkvp"] != NEW_WK {
        problems.push(format!("end state: {token}"));
    }
    if token["usable"].as_u64().unwrap_or(0) + token["unusable"].as_u64().unwrap_or(0)
        != KILL_KEYS as u64
        || token["skipped"] != KEYLESS
    {
        problems.push(format!("key objects lost: {token}"));
    }
    if !UNITS.iter().all(|u| mkplan_sim::unit_running(&b.root, u)) {
        problems.push("services not running".to_owned());
    }
    if b.expected_wkvp_in_config() != NEW_WK {
        problems.push(format!(
            "ep11tok.conf still expects {}",
            b.expected_wkvp_in_config()
        ));
    }
    for i in 0..10 {
        let n = j.of("step_succeeded", &format!("steps[{i}]")).len();
        if n != 1 {
            problems.push(format!("steps[{i}] succeeded {n} times"));
        }
    }
    // The tool ran once: a kill before it started leaves nothing to redo twice.
    if b.migrate_log().len() != 1 {
        problems.push(format!("the tool ran {} times", b.migrate_log().len()));
    }
    // Only an interrupted migration needs a decision, and it is journaled.
    let decisions: Vec<String> =
        j.0.iter()
            .filter(|e| e["kind"] == "decision")
            .map(|e| format!("{} {}", position(e), e["data"]["decision"]))
            .collect();
    let expected: Vec<String> = if asked.is_some() {
        vec!["steps[5] \"retry\"".to_owned()]
    } else {
        Vec::new()
    };
    if decisions != expected {
        problems.push(format!("decisions {decisions:?}"));
    }
    if read_verified(&b.run_dir().join("journal.jsonl")).is_err() {
        problems.push("the journal chain does not verify".to_owned());
    }
    if j.of("checkpoint_approved", "steps[0]").len() != 2
        || j.of("checkpoint_approved", "steps[6]").len() != 1
    {
        problems.push("approvals repeated or missing".to_owned());
    }
    let found = b.places_with_the_pin();
    if !found.is_empty() {
        problems.push(format!("the PIN is in {found:?}"));
    }
    Row {
        k,
        killed_after,
        codes,
        outcome,
        end,
        problems,
    }
}

/// Starts a slow rehearsal, and kills mkplan (not the tool) with SIGKILL once the store
/// holds at least `at_least` blobs under the new WK. Returns how many it held once the
/// tool had gone.
fn kill_half_way(b: &Bench, keys: usize, faults: &[&str], at_least: usize) -> usize {
    let mut c = b.rehearse_command(&offline_plan(), keys, faults);
    let guard: Child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let new_blobs = || {
        mkplan_sim::verify(&b.root)
            .ok()
            .and_then(|r| r.tokens.get("ep11").map(|t| t.blobs_by_wkvp.clone()))
            .and_then(|m| m.get(NEW_WK).copied())
            .unwrap_or(0)
    };
    let reached = wait_until(Duration::from_secs(60), || new_blobs() >= at_least);
    let mkplan = children_named(guard.id(), "mkplan");
    assert!(reached && mkplan.len() == 1, "{reached} {mkplan:?}");
    let killed = Command::new("kill")
        .args(["-9", &mkplan[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = guard.wait_with_output().unwrap();
    let ran = Ran::from(out);
    b.keep(&ran);
    assert_eq!(ran.signal, Some(9), "{}", ran.both());
    // The tool loses its terminal with mkplan and stops.
    let tool = b.root.join("usr/sbin/pkcsep11_migrate");
    assert!(
        wait_until(Duration::from_secs(10), || processes_running(&tool)
            .is_empty()),
        "pkcsep11_migrate outlived mkplan"
    );
    let held = new_blobs();
    assert!(
        (1..keys).contains(&held),
        "not half-way: {held} of {keys} blobs under the new WK"
    );
    held
}

/// Among the kills: k = the activation checkpoint's approval. The simulated TKE operator has
/// already activated; resume must not act again for a checkpoint whose approvals are
/// journaled (src/steps/checkpoint.rs), or the second activation fails and the run ends
/// `failed` without EXPECTED_WKVP, restart or probe.
#[test]
fn e2e_08_kill_after_every_journal_event_then_resume() {
    // The happy path's events, from a run without a kill.
    let reference = Bench::new();
    assert_exit(&reference.rehearse(&offline_plan(), KILL_KEYS, &[]), 0);
    let events = reference.journal().0.len();
    drop(reference);

    let next = AtomicUsize::new(0);
    let rows = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= events {
                        break;
                    }
                    let row = kill_after_event(k, events - 1);
                    rows.lock().unwrap().push(row);
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by_key(|r| r.k);

    // Once more, half-way through the keys: resume asks, --retry-step restores the backup
    // and runs the tool again.
    let b = Bench::new();
    let keys = 40;
    let held = kill_half_way(&b, keys, &["slow-keys=60"], 5);
    let (codes, asked) = b.resume_to_the_end("--retry-step");
    let asked = asked.expect("resume asks for a decision");
    let mut problems = Vec::new();
    if !asked.contains("compared with the backup: some key objects changed") {
        problems.push(format!("no comparison: {asked}"));
    }
    let j = b.journal();
    if codes != [5, 0] || j.outcome() != "succeeded" {
        problems.push(format!("codes {codes:?}, outcome {}", j.outcome()));
    }
    // The retry restored the verified backup first: the store it replaced is the one the
    // killed tool left, partly migrated.
    let replaced = b.root.join(format!("{STORE}.replaced-{}", b.run_id()));
    let differing = objects_differing_from_backup(&replaced, &b.manifest());
    if differing != held {
        problems.push(format!(
            "the replaced store has {differing} changed objects, the killed tool left {held}"
        ));
    }
    if b.migrate_log().len() != 2 {
        problems.push(format!("tool ran {} times", b.migrate_log().len()));
    }
    if j.0.iter().filter(|e| e["kind"] == "decision").count() != 1 {
        problems.push("the retry decision is not journaled once".to_owned());
    }
    let (code, token) = b.token();
    if code != 0 || token["usable"] != keys || token["current_wkvp"] != NEW_WK {
        problems.push(format!("end state: {token}"));
    }
    if !b.places_with_the_pin().is_empty() {
        problems.push("the PIN leaked".to_owned());
    }
    rows.push(Row {
        k: usize::MAX,
        killed_after: format!("half-way ({held}/{keys})"),
        codes,
        outcome: j.outcome(),
        end: end_state(&token),
        problems,
    });

    let mut table = vec![format!(
        "{:>4}  {:<42} {:<9} {:<10} {:<32} {}",
        "k", "killed after", "resume", "outcome", "mkplan-sim verify", "problems"
    )];
    for r in &rows {
        let k = if r.k == usize::MAX {
            "-".to_owned()
        } else {
            r.k.to_string()
        };
        table.push(format!(
            "{k:>4}  {:<42} {:<9} {:<10} {:<32} {}",
            r.killed_after,
            format!("{:?}", r.codes),
            r.outcome,
            r.end,
            r.problems.join("; ")
        ));
    }
    println!("{}", table.join("\n"));
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| format!("k={} ({}): {}", r.k, r.killed_after, r.problems.join("; ")))
        .collect();
    assert!(
        bad.is_empty(),
        "{} case(s) failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// `report generate` of a rehearsal's run signs with an ephemeral key on the simulated
/// host, never asking for the plan's signing key or using the real root
/// (src/cli/report.rs, `generate_again`).
#[test]
fn e2e_08b_killed_right_after_run_finished_the_report_can_be_generated_again() {
    // The last event of the happy path is run_finished; the report is written after it.
    let reference = Bench::new();
    assert_exit(&reference.rehearse(&offline_plan(), 20, &[]), 0);
    let last = reference.journal().0.len() - 1;
    drop(reference);
    let b = Bench::new();
    let mut c = b.rehearse_command(&offline_plan(), 20, &[]);
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", last.to_string());
    let ran = b.run(c);
    assert_eq!(ran.signal, Some(9), "{}", ran.both());
    let j = b.journal();
    assert_eq!(j.kinds().last(), Some(&"run_finished"));
    assert_eq!(j.outcome(), "succeeded");
    b.assert_all_keys_usable_under(NEW_WK, 20);
    assert!(!b.run_dir().join("report.json").exists());
    let resumed = b.resume(None);
    assert_exit(&resumed, 2);
    assert!(
        resumed.stderr.contains("already finished"),
        "{}",
        resumed.both()
    );
    // The documented way to the missing report (the message of a failed report says so).
    let generated = b.mkplan(&["report", "generate", &b.run_id()]);
    assert_exit(&generated, 0);
    assert_exit(&b.mkplan(&["report", "verify", &b.run_id()]), 0);
    b.assert_pin_nowhere();
}

/// `--accept-step` on a partly migrated store is refused (accepting would activate the new
/// WK over keys still sealed under the old one), and no rescue may then say that the
/// migration "never started" (src/steps/guards.rs reads every attempt of the step,
/// src/steps/restore.rs the store); the retry it asks for then finishes the run with every
/// key usable.
#[test]
fn e2e_08c_accept_step_on_a_half_migrated_store() {
    // The operator is told that only some key objects changed, and accepts anyway: mkplan
    // refuses, and the retry it asks for is what follows. No key may be lost and the
    // journal must tell the truth.
    let b = Bench::new();
    let keys = 40;
    let held = kill_half_way(&b, keys, &["slow-keys=60"], 5);
    let asked = b.resume(None);
    assert_exit(&asked, 5);
    assert!(
        asked
            .stderr
            .contains("compared with the backup: some key objects changed"),
        "{}",
        asked.both()
    );
    let accepted = b.resume(Some("--accept-step"));
    assert_exit(&accepted, 5);
    let refusal = format!(
        "refusing --accept-step: only {held} of {} key object files differ from the backup, so the migration did not complete; use --retry-step",
        keys + KEYLESS
    );
    assert!(accepted.stderr.contains(&refusal), "{}", accepted.both());
    let mut codes = vec![5];
    codes.extend(b.resume_to_the_end("--retry-step").0);
    let j = b.journal();
    let (_, token) = b.token();
    println!(
        "--accept-step after {held}/{keys} keys: resume exits {codes:?}, outcome {}, rescue: {:?}, end state: {} usable, {} unusable, blobs {}",
        j.outcome(),
        j.of("step_succeeded", "rescue[0]")
            .first()
            .map(|e| e["data"]["summary"].clone()),
        token["usable"],
        token["unusable"],
        token["blobs_by_wkvp"]
    );
    let mut problems = Vec::new();
    if j.of("step_succeeded", "steps[6]").len() == 1 && token["unusable"] != 0 {
        problems.push(format!(
            "the new WK was activated over a partly migrated store: {} of {keys} keys are sealed under the old WK, which is gone",
            token["unusable"]
        ));
    }
    // No data lost: every key object opens under the one current WK.
    if token["unusable"] != 0 || token["usable"] != keys {
        problems.push(format!("end state: {token}"));
    }
    // The journal does not claim the migration never started.
    for e in j.of("step_succeeded", "rescue[0]") {
        let summary = e["data"]["summary"].as_str().unwrap_or_default();
        if summary.contains("never started") {
            problems.push(format!("rescue says: {summary}"));
        }
    }
    if j.outcome() == "rescued" && token["unusable"] != 0 {
        problems.push("the outcome is `rescued` while keys are unusable".to_owned());
    }
    if codes != [5, 5, 0] || j.outcome() != "succeeded" || token["current_wkvp"] != NEW_WK {
        problems.push(format!("codes {codes:?}, outcome {}: {token}", j.outcome()));
    }
    let decisions: Vec<&Value> = j.0.iter().filter(|e| e["kind"] == "decision").collect();
    if decisions.len() != 1 || decisions[0]["data"]["decision"] != "retry" {
        problems.push(format!("decisions journaled: {decisions:?}"));
    }
    b.assert_pin_nowhere();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The retry's restore keeps the replaced store as `<store>.replaced-<run>`; the rescue
/// restore after the retried tool fails again keeps that one and uses the next free name
/// (src/host/archive/extract.rs).
#[test]
fn e2e_08d_a_retried_migration_that_fails_again_is_still_rescued() {
    let b = Bench::new();
    let keys = 40;
    kill_half_way(&b, keys, &["slow-keys=60", "fail-at-key=30"], 5);
    let (codes, _) = b.resume_to_the_end("--retry-step");
    let j = b.journal();
    assert_eq!(codes, [5, 1]);
    // The retried tool fails at key 30 again; rescue must put the backup back.
    assert!(j.error("steps[5]").contains("stopped at key 30 "));
    let rescue = j.of("step_failed", "rescue[0]");
    let (_, token) = b.token();
    assert!(
        rescue.is_empty() && j.outcome() == "rescued",
        "outcome {}, rescue failed: {}; end state: {token}",
        j.outcome(),
        rescue
            .first()
            .map(|e| e["data"]["error"].to_string())
            .unwrap_or_default()
    );
    assert_store_is_the_backup(&b);
    b.assert_all_keys_usable_under(OLD_WK, keys);
    b.assert_services_running();
    b.assert_pin_nowhere();
}

// ---------------------------------------------------------------------------------------
// 9. Older tool behaviours

#[test]
fn e2e_09_the_tty_requiring_tool_works_and_exit_zero_failures_are_failures() {
    const KEYS: usize = 30;
    std::thread::scope(|s| {
        s.spawn(|| {
            let b = Bench::new();
            let ran = b.rehearse(&offline_plan(), KEYS, &["require-tty"]);
            assert_exit(&ran, 0);
            assert_eq!(
                mkplan_sim::faults(&b.root).unwrap(),
                [mkplan_sim::Fault::RequireTty]
            );
            let j = b.journal();
            assert_eq!(j.outcome(), "succeeded");
            assert_eq!(
                j.one("step_succeeded", "steps[5]")["data"]["data"]["keys_reenciphered"],
                KEYS
            );
            let log = b.migrate_log();
            assert_eq!(log.len(), 1);
            assert_eq!(log[0]["stdin_is_tty"], true);
            b.assert_all_keys_usable_under(NEW_WK, KEYS);
            b.assert_services_ran_at_the_end(&ran);
            b.assert_pin_nowhere();
        });
        for (fault, why) in [
            ("pin-read-exit-zero", "could not read the PIN"),
            ("lib-load-failure", "library could not be loaded"),
        ] {
            s.spawn(move || {
                let b = Bench::new();
                let ran = b.rehearse(&offline_plan(), KEYS, &[fault]);
                assert_exit(&ran, 1);
                let j = b.journal();
                // The tool started and changed nothing: rescue finds the store identical to
                // the backup and the run is `failed`, not `rescued`.
                assert_eq!(j.outcome(), "failed", "{fault}");
                let error = j.error("steps[5]");
                assert!(error.contains(why), "{fault}: {error}");
                let data = &j.one("step_failed", "steps[5]")["data"]["data"];
                assert_eq!(data["exit_code"], 0, "{fault}: the tool exited 0");
                assert_eq!(data["success_line"], false, "{fault}");
                assert_eq!(b.migrate_log().len(), 1, "{fault}");
                assert!(j.of("step_started", "steps[6]").is_empty(), "{fault}");
                let restore = j.summary("rescue[0]");
                assert!(
                    restore.starts_with("nothing to restore: the store of `ep11` is identical"),
                    "{fault}: {restore}"
                );
                assert_store_is_the_backup(&b);
                b.assert_all_keys_usable_under(OLD_WK, KEYS);
                b.assert_services_ran_at_the_end(&ran);
                b.assert_pin_nowhere();
            });
        }
    });
}

// ---------------------------------------------------------------------------------------
// 10. The PIN appears in no output

/// The `pkcsep11_migrate` of this root while it runs: its argv and environment.
fn tool_cmdline_and_environ(b: &Bench) -> Option<(Vec<u8>, Vec<u8>)> {
    let tool = b.root.join("usr/sbin/pkcsep11_migrate");
    let mut seen = None;
    wait_until(Duration::from_secs(60), || {
        if let Some(pid) = processes_running(&tool).first() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"));
            let environ = std::fs::read(format!("/proc/{pid}/environ"));
            if let (Ok(c), Ok(e)) = (cmdline, environ) {
                seen = Some((c, e));
                return true;
            }
        }
        false
    });
    seen
}

/// Neither the PIN's own variable (`pin: { env: MKPLAN_EP11_PIN }`) nor PKCS11_USER_PIN
/// reaches pkcsep11_migrate's argv or environment (src/steps/migrate.rs).
#[test]
fn e2e_10_the_pin_appears_in_no_output() {
    const KEYS: usize = 40;
    let mut problems = Vec::new();
    for format in ["human", "json"] {
        let b = Bench::new();
        let mut c = guarded(MKPLAN);
        c.arg("--root")
            .arg(&b.root)
            .arg("--state-dir")
            .arg(&b.state)
            .args(["--log-format", format, "-v", "rehearse"])
            .arg(offline_plan())
            .args(["--keys", &KEYS.to_string(), "--fault", "slow-keys=25"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let seen = tool_cmdline_and_environ(&b);
        let ran = Ran::from(child.wait_with_output().unwrap());
        b.keep(&ran);
        assert_exit(&ran, 0);
        if format == "json" {
            let events = ran
                .stderr
                .lines()
                .chain(ran.stdout.lines())
                .filter(|l| serde_json::from_str::<Value>(l).is_ok())
                .count();
            assert!(events > 20, "json log lines: {events}\n{}", ran.both());
        }
        assert_eq!(b.journal().outcome(), "succeeded");
        let pin = b.pin();
        let places = b.places_with_the_pin();
        if !places.is_empty() {
            problems.push(format!("{format}: the PIN is in {places:?}"));
        }
        let log = b.migrate_log();
        assert_eq!(log.len(), 1);
        assert!(log[0]["env_keys"].as_array().is_some_and(|k| !k.is_empty()));
        let (cmdline, environ) = seen.expect("saw pkcsep11_migrate running");
        if contains(&cmdline, pin.as_bytes()) {
            problems.push(format!("{format}: the PIN is in the tool's argv"));
        }
        if contains(&environ, pin.as_bytes()) {
            let variables: Vec<String> = environ
                .split(|b| *b == 0)
                .filter(|v| contains(v, pin.as_bytes()))
                .map(|v| {
                    let text = String::from_utf8_lossy(v);
                    let name = text.split_once('=').map(|(n, _)| n).unwrap_or_default();
                    format!("{name}=<the PIN>")
                })
                .collect();
            problems.push(format!(
                "{format}: the PIN is in the environment of pkcsep11_migrate: {variables:?}"
            ));
        }
        let names: BTreeSet<&str> = log[0]["env_keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if names.contains("PKCS11_USER_PIN") {
            problems.push(format!("{format}: PKCS11_USER_PIN reached the tool"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The processes of `root` (their argv names it), with the variables of their environment
/// that hold `pin`; without the rehearsing mkplan and its `timeout` guard if `skip_mkplan`
/// (they have the operator's variable from the operator).
fn environments_with_the_pin(root: &Path, pin: &str, skip_mkplan: bool) -> Vec<String> {
    let root = root.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for pid in pids() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let of_root = args.iter().any(|a| contains(a, root));
        if !of_root || (skip_mkplan && args.contains(&&b"rehearse"[..])) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        for variable in environ.split(|b| *b == 0) {
            if contains(variable, pin.as_bytes()) {
                let text = String::from_utf8_lossy(variable);
                let name = text.split_once('=').map(|(n, _)| n).unwrap_or_default();
                found.push(format!(
                    "{name}=<the PIN> in {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                ));
            }
        }
    }
    found
}

/// In a rehearsal, whether the PIN comes from the operator's own variable or is the
/// simulator's, no simulated process (pkcsslotd, the units, the helpers that start them,
/// the stand-ins) carries it in its environment, and every file that holds it is readable
/// by its owner only. A simulated PIN is not even in the rehearsing mkplan's environment.
#[test]
fn e2e_10_no_simulated_process_or_shared_file_holds_the_pin() {
    const OPERATOR_PIN: &str = "0per4tor-PIN-8812";
    let mut problems = Vec::new();
    for operators_variable in [true, false] {
        let b = Bench::new();
        let mut c = b.rehearse_command(&offline_plan(), 40, &["slow-keys=25"]);
        if operators_variable {
            c.env("MKPLAN_EP11_PIN", OPERATOR_PIN);
        } else {
            c.env_remove("MKPLAN_EP11_PIN");
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let record = b.root.join("var/lib/mkplan-sim/rehearsal.json");
        let mut seen = BTreeSet::new();
        while child.try_wait().unwrap().is_none() {
            // The record exists empty for a moment before its PIN is written.
            let written = std::fs::read(&record)
                .is_ok_and(|bytes| serde_json::from_slice::<Value>(&bytes).is_ok());
            if written {
                seen.extend(environments_with_the_pin(
                    &b.root,
                    &b.pin(),
                    operators_variable,
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let ran = Ran::from(child.wait_with_output().unwrap());
        b.keep(&ran);
        assert_exit(&ran, 0);
        let pin = b.pin();
        if operators_variable {
            assert_eq!(pin, OPERATOR_PIN, "the rehearsal takes the operator's PIN");
        }
        let case = if operators_variable {
            "operator's variable"
        } else {
            "simulated PIN"
        };
        problems.extend(seen.into_iter().map(|p| format!("{case}: {p}")));
        let mut files = Vec::new();
        walk_files(&b.root, &mut files);
        walk_files(&b.state, &mut files);
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            if contains(&bytes, pin.as_bytes()) && mode & 0o077 != 0 {
                problems.push(format!(
                    "{case}: {} holds the PIN and has mode {mode:04o}",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A pipe whose reader is already gone: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

/// Live processes of this root other than mkplan and its guard (their argv names it).
fn processes_of_root(root: &Path) -> Vec<String> {
    let root = root.as_os_str().as_encoded_bytes();
    pids()
        .into_iter()
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.iter().any(|a| contains(a, root)) && !args.contains(&&b"rehearse"[..]);
            (ours && !zombie).then(|| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

/// `mkplan rehearse … | head -3` (and, with `--log-format json`, `2>&1 | head`): the
/// reader is gone, which is no panic (exit 101) and no reason to skip the report or the
/// clean-up of the simulated host. The exit code is the run's.
#[test]
fn e2e_10_a_closed_output_pipe_is_a_quiet_exit_after_the_report_and_clean_up() {
    for (format, stderr_too) in [("human", false), ("human", true), ("json", true)] {
        let b = Bench::new();
        let mut c = b.rehearse_command(&offline_plan(), 5, &[]);
        c.args(["--log-format", format]).stdout(closed_pipe());
        if stderr_too {
            c.stderr(closed_pipe());
        }
        let ran = finish(c);
        assert_eq!(ran.code, Some(0), "{format}: {}", ran.both());
        assert!(!ran.stderr.contains("panicked"), "{}", ran.both());
        assert_eq!(b.journal().outcome(), "succeeded");
        let dir = b.run_dir();
        for artefact in ["report.json", "report.json.sig", "report.html"] {
            assert!(dir.join(artefact).is_file(), "{format}: no {artefact}");
        }
        let verify = b.mkplan(&["report", "verify", &b.run_id()]);
        assert_eq!(verify.code, Some(0), "{}", verify.both());
        let left = processes_of_root(&b.root);
        assert!(left.is_empty(), "{format}: still running: {left:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// 11. Keys are never lost: a tool never outlives mkplan, and nothing acts beside one

/// `command` started as an operator does over ssh with `setsid nohup … &`: in a new session
/// of its own, SIGHUP ignored (inherited by everything it starts).
fn detached_with_sighup_ignored(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and sigaction are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGHUP,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// Blobs under the new WK in the store right now.
fn new_blobs(b: &Bench) -> usize {
    mkplan_sim::verify(&b.root)
        .ok()
        .and_then(|r| r.tokens.get("ep11").map(|t| t.blobs_by_wkvp.clone()))
        .and_then(|m| m.get(NEW_WK).copied())
        .unwrap_or(0)
}

#[test]
fn e2e_11_under_nohup_and_setsid_the_tool_dies_with_mkplan_and_every_key_survives() {
    // The issue's repro: `nohup mkplan rehearse … &`, kill -9 mkplan while the tool runs.
    // The tool is slow enough to run for half a minute more if it were left behind.
    const KEYS: usize = 400;
    let b = Bench::new();
    // `timeout` handles SIGHUP itself (so its child would not inherit SIG_IGN): the real
    // `setsid` and `nohup` come after it, exactly as an operator types them.
    let mut c = Command::new("timeout");
    c.args([GUARD_SECS, "setsid", "nohup", MKPLAN, "--root"])
        .arg(&b.root)
        .arg("--state-dir")
        .arg(&b.state)
        .arg("rehearse")
        .arg(offline_plan())
        .args(["--keys", &KEYS.to_string(), "--fault", "slow-keys=60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let guard = c.spawn().unwrap();
    let reached = wait_until(Duration::from_secs(60), || new_blobs(&b) >= 5);
    let mkplan = children_named(guard.id(), "mkplan");
    assert!(reached && mkplan.len() == 1, "{reached} {mkplan:?}");
    let tool = b.root.join("usr/sbin/pkcsep11_migrate");
    assert_eq!(processes_running(&tool).len(), 1, "the tool runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mkplan[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let ran = Ran::from(guard.wait_with_output().unwrap());
    b.keep(&ran);
    assert!(
        wait_until(Duration::from_secs(10), || processes_running(&tool)
            .is_empty()),
        "pkcsep11_migrate outlived mkplan (SIGHUP ignored, new session): it keeps rewriting keys"
    );
    let held = new_blobs(&b);
    assert!((1..KEYS).contains(&held), "{held} blobs under the new WK");
    // The retry need not be slow.
    let cleared = Command::new(SIM)
        .args(["fault", "--clear", "--root"])
        .arg(&b.root)
        .status()
        .unwrap();
    assert!(cleared.success());
    let (codes, asked) = b.resume_to_the_end("--retry-step");
    assert_eq!(codes, [5, 0], "{asked:?}");
    assert!(
        asked
            .unwrap()
            .contains("compared with the backup: some key objects changed")
    );
    let j = b.journal();
    assert_eq!(j.outcome(), "succeeded");
    assert!(j.of("step_started", "rescue[0]").is_empty());
    b.assert_all_keys_usable_under(NEW_WK, KEYS);
    b.assert_services_running();
    assert!(processes_running(&tool).is_empty());
    b.assert_pin_nowhere();
}

/// A `pkcsep11_migrate` of this root as an older mkplan or a person would leave it behind:
/// detached, SIGHUP ignored, waiting for its PIN on a pipe nobody writes. Killed on drop.
struct OrphanTool {
    child: Child,
    _stdout: std::process::ChildStdout,
}

impl OrphanTool {
    fn start(b: &Bench) -> Self {
        let mut c = Command::new(b.root.join("usr/sbin/pkcsep11_migrate"));
        c.args(["-slot", "4", "-adapter", "10", "-domain", "17"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        detached_with_sighup_ignored(&mut c);
        let mut child = c.spawn().unwrap();
        // Up to its PIN prompt, as far as the real tool gets before it waits (the token is
        // started by then); its stdout stays open, unread, for as long as it lives.
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("Enter the USER PIN: ") {
            let n = std::io::Read::read(&mut stdout, &mut byte).unwrap();
            assert_eq!(n, 1, "the tool ended: {}", String::from_utf8_lossy(&seen));
            seen.push(byte[0]);
        }
        Self {
            child,
            _stdout: stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OrphanTool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn e2e_12_a_migration_tool_left_running_blocks_resume_until_it_is_gone() {
    let b = Bench::new();
    kill_half_way(&b, 40, &["slow-keys=60"], 5);
    let orphan = OrphanTool::start(&b);
    let events = b.journal().0.len();
    for decision in [None, Some("--retry-step"), Some("--accept-step")] {
        let ran = b.resume(decision);
        assert_exit(&ran, 3);
        let pid = orphan.pid();
        for wanted in [
            format!("pid {pid} `"),
            "/usr/sbin/pkcsep11_migrate -slot 4 -adapter 10 -domain 17`".to_owned(),
            "its `-slot` is 4".to_owned(),
            format!("tail --pid={pid} -f /dev/null"),
            format!("kill {pid}"),
            "nothing was resumed or changed".to_owned(),
        ] {
            assert!(ran.stderr.contains(&wanted), "{wanted}: {}", ran.both());
        }
        assert_eq!(b.journal().0.len(), events, "the journal changed");
    }
    drop(orphan);
    // A process that merely maps the token (no tool) blocks the retry of the migration too:
    // its restore would be refused half-way through the resumed run.
    let stray = Command::new(SIM)
        .args(["fault", "--root"])
        .arg(&b.root)
        .arg("stray")
        .status()
        .unwrap();
    assert!(stray.success());
    let ran = b.resume(Some("--retry-step"));
    assert_exit(&ran, 3);
    assert!(
        ran.stderr.contains("refusing to resume: steps[5] `Re-encipher all secure keys` left token `ep11` half-changed")
            && ran.stderr.contains("--stray"),
        "{}",
        ran.both()
    );
    assert_eq!(b.journal().0.len(), events, "the journal changed");
    let cleared = Command::new(SIM)
        .args(["fault", "--clear", "--root"])
        .arg(&b.root)
        .status()
        .unwrap();
    assert!(cleared.success());
    let (codes, _) = b.resume_to_the_end("--retry-step");
    assert_eq!(codes, [5, 0]);
    assert_eq!(b.journal().outcome(), "succeeded");
    b.assert_all_keys_usable_under(NEW_WK, 40);
    b.assert_pin_nowhere();
}

#[test]
fn e2e_13_a_tool_started_behind_the_runs_back_stops_migrate_restore_and_start() {
    const KEYS: usize = 20;
    let b = Bench::new();
    let mut c = b.rehearse_command(&fixture("ep11-tool-after-stop.yaml"), KEYS, &[]);
    c.env("MKPLAN_E2E_ROOT", &b.root);
    let ran = b.run(c);
    let tool = b.root.join("usr/sbin/pkcsep11_migrate");
    let orphans = processes_running(&tool);
    for pid in &orphans {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert_eq!(orphans.len(), 1, "the fixture's tool ran: {}", ran.both());
    let pid = orphans[0];
    assert_exit(&ran, 1);
    let j = b.journal();
    assert_eq!(j.outcome(), "failed");
    let migrate = "steps[6]";
    let error = j.error(migrate);
    assert!(
        error.contains("refusing to start `pkcsep11_migrate` on token `ep11`")
            && error.contains(&format!("pid {pid} `")),
        "{error}"
    );
    assert_eq!(
        j.one("step_failed", migrate)["data"]["data"]["tool_started"],
        false
    );
    // mkplan never ran the tool itself: the one invocation is the fixture's.
    assert_eq!(b.migrate_log().len(), 1);
    let restore = j.error("rescue[0]");
    assert!(
        restore.contains("refusing to restore token `ep11`")
            && restore.contains(&format!("pid {pid}")),
        "{restore}"
    );
    let start = j.error("always[0]");
    assert!(
        start.contains("refusing to start services") && start.contains(&format!("pid {pid}")),
        "{start}"
    );
    assert!(
        ran.stderr.contains("rescue did not complete"),
        "{}",
        ran.both()
    );
    // The tool waited for its PIN and changed nothing; neither did mkplan.
    assert_store_is_the_backup(&b);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_pin_nowhere();
}

/// The index of the first journal event of `kind` about the step at `pos` in a reference
/// run of the plan with `faults`.
fn event_index(plan: &Path, keys: usize, faults: &[&str], kind: &str, pos: &str) -> usize {
    let reference = Bench::new();
    reference.rehearse(plan, keys, faults);
    let j = reference.journal();
    j.0.iter()
        .position(|e| e["kind"] == kind && position(e) == pos)
        .unwrap_or_else(|| panic!("no {kind} of {pos} in {:?}", j.kinds()))
}

#[test]
fn e2e_14_a_backup_replaced_in_the_backup_directory_is_never_restored() {
    replaced_backup_is_refused(Replaced::ArchiveAndManifest);
}

/// The rescue's comparison reads only the manifest; the archive is checked by the restore
/// itself, as it extracts into a staging directory that is never swapped in.
#[test]
fn e2e_14b_an_archive_replaced_under_the_journaled_manifest_is_never_restored() {
    replaced_backup_is_refused(Replaced::ArchiveOnly);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replaced {
    ArchiveAndManifest,
    ArchiveOnly,
}

fn replaced_backup_is_refused(replaced: Replaced) {
    const KEYS: usize = 20;
    let faults = ["deny=tke-activate"];
    let migrated = event_index(&offline_plan(), KEYS, &faults, "step_succeeded", "steps[5]");
    let b = Bench::new();
    let mut c = b.rehearse_command(&offline_plan(), KEYS, &faults);
    c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", migrated.to_string());
    let ran = b.run(c);
    assert_eq!(ran.signal, Some(9), "{}", ran.both());
    let run = b.run_id();
    let backups = b.root.join("var/backups/mkplan");
    let archive = backups.join(format!("{run}-ep11.tar.gz"));
    let manifest = backups.join(format!("{run}-ep11.manifest.jsonl"));
    let journaled = (sha256_file(&archive), sha256_file(&manifest));

    // Someone who can write the backup directory makes a self-consistent backup of the
    // store with one key more, at the store's own path, and puts it in place.
    let store = b.store();
    let aside = b.root.join("var/lib/opencryptoki/ep11tok.aside");
    std::fs::rename(&store, &aside).unwrap();
    std::fs::create_dir(&store).unwrap();
    let untar = Command::new("tar")
        .arg("-xzpf")
        .arg(&archive)
        .arg("-C")
        .arg(store.parent().unwrap())
        .status()
        .unwrap();
    assert!(untar.success());
    let objects = store.join("TOK_OBJ");
    let first = std::fs::read_to_string(objects.join("OBJ.IDX")).unwrap();
    let first = first.lines().next().unwrap().to_owned();
    std::fs::copy(objects.join(&first), objects.join("OBEXTRA")).unwrap();
    std::fs::write(objects.join("OBJ.IDX"), format!("{first}\nOBEXTRA\n")).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let made = mkplan_host::archive::backup(&store, theirs.path(), &format!("{run}-ep11")).unwrap();
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
    std::fs::copy(&made.archive, &archive).unwrap();
    if replaced == Replaced::ArchiveAndManifest {
        std::fs::copy(&made.manifest, &manifest).unwrap();
    }
    let migrated_store = tree(&store);

    // The activation is denied, so rescue restores: only what the run journaled. Nothing
    // else is restored, and the run says its rescue did not complete.
    let resumed = b.resume(None);
    assert_exit(&resumed, 1);
    let j = b.journal();
    assert_eq!(j.outcome(), "failed");
    let error = j.error("rescue[0]");
    match replaced {
        // The manifest is refused before the store is compared with it.
        Replaced::ArchiveAndManifest => {
            for digest in [&journaled.1, &made.manifest_sha256] {
                assert!(error.contains(digest.as_str()), "{digest} not in: {error}");
            }
            assert!(
                error.starts_with("refusing to restore: manifest `"),
                "{error}"
            );
        }
        // The archive (one key more: another size) is refused before anything is extracted.
        Replaced::ArchiveOnly => {
            assert!(
                error.starts_with("refusing to restore: archive `")
                    && error.contains("bytes, this run journaled"),
                "{error}"
            );
            assert_ne!(sha256_file(&archive), journaled.0);
        }
    }
    assert_eq!(tree(&store), migrated_store, "the store was touched");
    assert!(!store.join("TOK_OBJ/OBEXTRA").exists());
    let report: Value =
        serde_json::from_slice(&std::fs::read(b.run_dir().join("report.json")).unwrap()).unwrap();
    let detail = report["run"]["outcome_detail"].as_str().unwrap();
    assert!(
        detail.contains("rescue did not complete: rescue[0]"),
        "{detail}"
    );
    assert_eq!(report["tokens"][0]["restore"]["status"], "failed");
    b.assert_pin_nowhere();
}

#[test]
fn e2e_15_an_explicit_restore_removes_a_key_added_after_the_backup() {
    const KEYS: usize = 20;
    let b = Bench::new();
    let mut c = b.rehearse_command(&fixture("ep11-restore-after-change.yaml"), KEYS, &[]);
    c.env("MKPLAN_E2E_ROOT", &b.root);
    let ran = b.watch(c);
    assert_exit(&ran, 0);
    let j = b.journal();
    assert_eq!(j.outcome(), "succeeded");
    let restore = j.one("step_succeeded", "steps[3]");
    let summary = restore["data"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("restored ") && summary.contains(" files of `ep11` from "),
        "{summary}"
    );
    assert_eq!(restore["data"]["data"]["action"], "restored");
    let differed = restore["data"]["data"]["differed"].as_str().unwrap();
    assert!(differed.contains("`ep11tok/TOK_OBJ"), "{differed}");
    assert!(!b.store().join("TOK_OBJ/OBEXTRA").exists());
    assert_store_is_the_backup(&b);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    let report: Value =
        serde_json::from_slice(&std::fs::read(b.run_dir().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["tokens"][0]["restore"]["action"], "restored");
    b.assert_pin_nowhere();
}

#[test]
fn e2e_16_the_backup_directory_and_modes_a_store_never_has() {
    const KEYS: usize = 20;
    // a) Group and others may write the backup directory: a warning, in the log and in the
    //    journal; the backup files themselves are private.
    let a = Bench::new();
    paused_rehearsal(&a, &offline_plan(), KEYS, &[]);
    let dir = a.root.join("var/backups/mkplan");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let resumed = a.resume(None);
    assert_exit(&resumed, 0);
    let j = a.journal();
    let backup = j.one("step_succeeded", "steps[4]");
    let warnings = backup["data"]["data"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("has mode 0777: group or others can write it"),
        "{warnings:?}"
    );
    assert!(
        resumed.stderr.contains("warning: the backup directory"),
        "{}",
        resumed.both()
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(a.run_dir().join("report.json")).unwrap()).unwrap();
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("group or others can write it")),
        "{}",
        report["warnings"]
    );
    for suffix in ["tar.gz", "manifest.jsonl"] {
        let file = dir.join(format!("{}-ep11.{suffix}", a.run_id()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    a.assert_all_keys_usable_under(NEW_WK, KEYS);

    // b) A set-gid directory in the store: the backup refuses it (a restore would), before
    //    anything is changed.
    let b = Bench::new();
    paused_rehearsal(&b, &offline_plan(), KEYS, &[]);
    let objects = b.store().join("TOK_OBJ");
    let mode = std::fs::metadata(&objects).unwrap().permissions().mode() & 0o7777;
    std::fs::set_permissions(&objects, std::fs::Permissions::from_mode(mode | 0o2000)).unwrap();
    let resumed = b.resume(None);
    assert_exit(&resumed, 1);
    let j = b.journal();
    let error = j.error("steps[4]");
    assert!(
        error.contains(&format!("`ep11tok/TOK_OBJ` has mode {:04o}", mode | 0o2000))
            && error.contains("set-gid"),
        "{error}"
    );
    assert!(j.of("step_started", "steps[5]").is_empty());
    assert!(
        j.summary("rescue[0]")
            .starts_with("nothing to restore: this run made no backup"),
        "{}",
        j.summary("rescue[0]")
    );
    assert_eq!(j.outcome(), "failed");
    assert!(b.migrate_log().is_empty());
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_pin_nowhere();
}

/// Kills mkplan in the middle of a step's side effect (`MKPLAN_TEST_KILL_AT=point`), then
/// resumes to the end as an operator would (an accept of an unfinished restore is refused,
/// then retried) and checks the end state. Returns what is wrong.
fn killed_half_way_through(point: &str) -> Vec<String> {
    const KEYS: usize = 30;
    // A restore runs only in rescue: the migration fails at key 3 first.
    let restore = point.starts_with("restore:");
    let faults: &[&str] = if restore { &["fail-at-key=3"] } else { &[] };
    let b = Bench::new();
    let mut c = b.rehearse_command(&offline_plan(), KEYS, faults);
    c.env("MKPLAN_TEST_KILL_AT", point);
    let ran = b.run(c);
    let mut problems = Vec::new();
    if ran.signal != Some(9) {
        return vec![format!("not killed: {}", ran.both())];
    }
    let first = if restore {
        "--accept-step"
    } else {
        "--retry-step"
    };
    let (codes, asked) = b.resume_to_the_end(first);
    let j = b.journal();
    let (code, token) = b.token();
    let (outcome, wk, code_wanted) = if restore {
        ("rescued", OLD_WK, 1)
    } else {
        ("succeeded", NEW_WK, 0)
    };
    if j.outcome() != outcome || codes.last() != Some(&code_wanted) {
        let failed: Vec<String> =
            j.0.iter()
                .filter(|e| e["kind"] == "step_failed")
                .map(|e| format!("{}: {}", position(e), e["data"]["error"]))
                .collect();
        problems.push(format!(
            "resume {codes:?}, outcome {}: {failed:?}",
            j.outcome()
        ));
    }
    if code != 0 || token["usable"] != KEYS || token["current_wkvp"] != wk {
        problems.push(format!("end state: {token}"));
    }
    if !UNITS.iter().all(|u| mkplan_sim::unit_running(&b.root, u)) {
        problems.push("a service is not running".to_owned());
    }
    let tool = b.root.join("usr/sbin/pkcsep11_migrate");
    if !processes_running(&tool).is_empty() {
        problems.push("pkcsep11_migrate still runs".to_owned());
    }
    if read_verified(&b.run_dir().join("journal.jsonl")).is_err() {
        problems.push("the journal chain does not verify".to_owned());
    }
    let decided = asked.is_some();
    let mutating = matches!(point, "migrate:half") || restore;
    if decided != mutating {
        problems.push(format!("asked for a decision: {decided}"));
    }
    if restore {
        if !asked
            .unwrap_or_default()
            .contains("so the restore did not complete")
        {
            problems.push("resume did not compare the store with the backup".to_owned());
        }
        assert_store_is_the_backup(&b);
    } else {
        for i in 0..10 {
            let n = j.of("step_succeeded", &format!("steps[{i}]")).len();
            if n != 1 {
                problems.push(format!("steps[{i}] succeeded {n} times"));
            }
        }
        if b.expected_wkvp_in_config() != NEW_WK {
            problems.push("ep11tok.conf does not expect the new WK".to_owned());
        }
    }
    if !b.places_with_the_pin().is_empty() {
        problems.push("the PIN leaked".to_owned());
    }
    problems
}

#[test]
fn e2e_17_a_kill_half_way_through_every_mutating_step_then_resume() {
    let points = [
        "stop:unit",
        "backup:archived",
        "backup:renamed",
        "migrate:half",
        "set_expected_wkvp:copied",
        "set_expected_wkvp:written",
        "start:unit",
        "restore:extracted",
        "restore:swapped-out",
    ];
    let next = AtomicUsize::new(0);
    let bad = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while let Some(point) = points.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let problems = killed_half_way_through(point);
                    if !problems.is_empty() {
                        bad.lock()
                            .unwrap()
                            .push(format!("{point}: {}", problems.join("; ")));
                    }
                }
            });
        }
    });
    let bad = bad.into_inner().unwrap();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 18. `run` does `check`'s preflight first

#[test]
fn e2e_18_on_a_host_that_is_not_ibm_z_run_refuses_before_anything_is_asked_or_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&root).unwrap();
    let mut c = guarded(MKPLAN);
    c.arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--non-interactive"])
        .args([
            "--approve",
            "tke-commit=alice",
            "--approve",
            "tke-commit=bob",
        ])
        .args(["--approve", "tke-activate=alice"])
        .arg(offline_plan())
        .env_remove("MKPLAN_EP11_PIN");
    let ran = finish(c);
    assert_exit(&ran, 3);
    let problems: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("mkplan: error: preflight: "))
        .collect();
    for (what, count) in [
        ("not an IBM Z host", 1),
        ("`/etc/opencryptoki/ep11tok.conf`", 1),
        ("`pkcsep11_migrate` is not installed", 1),
        ("tool `systemctl`", 1),
        ("pkcsslotd is not running", 1),
        ("report-signing key", 1),
        ("`MKPLAN_EP11_PIN`", 1),
        ("0a.0011", 0),
    ] {
        let n = problems.iter().filter(|l| l.contains(what)).count();
        assert_eq!(n, count, "`{what}` in:\n{}", ran.both());
    }
    assert_eq!(problems.len(), 7, "{}", ran.both());
    assert!(
        ran.stderr
            .contains("nothing was started or changed, and no run was recorded"),
        "{}",
        ran.both()
    );
    assert!(
        !ran.stderr.contains("CHECKPOINT"),
        "an approval was asked for"
    );
    let runs = std::fs::read_dir(state.join("runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "a run was recorded");

    // `check` says the same, each problem once, plainly, and lists the signing key.
    let mut c = guarded(MKPLAN);
    c.arg("--root")
        .arg(&root)
        .args(["check"])
        .arg(offline_plan())
        .env_remove("MKPLAN_EP11_PIN");
    let checked = finish(c);
    assert_exit(&checked, 3);
    let out = &checked.stdout;
    assert_eq!(out.matches("this is not an IBM Z host").count(), 1, "{out}");
    assert_eq!(
        out.matches("ep11tok.conf`: No such file").count(),
        1,
        "{out}"
    );
    assert_eq!(out.matches("does not exist; the APQN").count(), 0, "{out}");
    assert!(
        out.contains(
            "report-signing key: cannot read the report-signing key `/etc/mkplan/signing.pem`"
        ),
        "{out}"
    );
    assert!(out.contains("result: preconditions fail at the preflight (7 problems)"));
}

#[test]
fn e2e_19_a_wrong_pin_is_found_by_one_login_before_anything_is_stopped() {
    const KEYS: usize = 20;
    let b = Bench::new();
    let ran = b.run(b.rehearse_command(&offline_plan(), KEYS, &["wrong-pin"]));
    assert_exit(&ran, 3);
    let refusal = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("mkplan: error: preflight: PIN of `ep11`"))
        .unwrap_or_else(|| panic!("{}", ran.both()));
    assert!(
        refusal.contains("CKR_PIN_INCORRECT")
            && refusal.contains("(now 1)")
            && refusal.contains("it is not tried again")
            && refusal.contains("nothing was stopped"),
        "{refusal}"
    );
    let runs = std::fs::read_dir(b.state.join("runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "a run was recorded");
    assert!(b.migrate_log().is_empty(), "the tool ran");
    // One failed login, never more.
    let nvtok: Value =
        serde_json::from_slice(&std::fs::read(b.store().join("NVTOK.DAT")).unwrap()).unwrap();
    assert_eq!(nvtok["user_login_failures"], 1);
    b.assert_all_keys_usable_under(OLD_WK, KEYS);
    b.assert_pin_nowhere();
}

#[test]
fn e2e_20_pkcsslotd_is_found_by_the_pid_file_of_every_release() {
    // openCryptoki 3.8 writes /var/run/pkcsslotd.pid; the simulated host has the later
    // releases' /run/opencryptoki/pkcsslotd.pid: the run must find either.
    const KEYS: usize = 20;
    let b = Bench::new();
    paused_rehearsal(&b, &offline_plan(), KEYS, &[]);
    let later = b.root.join("run/opencryptoki/pkcsslotd.pid");
    let old = b.root.join("var/run/pkcsslotd.pid");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::rename(&later, &old).unwrap();
    let resumed = b.resume(None);
    assert_exit(&resumed, 0);
    let j = b.journal();
    assert_eq!(j.outcome(), "succeeded");
    assert!(
        j.one("step_succeeded", "steps[5]")["data"]["data"]["preflight"]["pkcsslotd_pid"].is_u64()
    );
    b.assert_all_keys_usable_under(NEW_WK, KEYS);

    // And this machine's real daemon (Debian's openCryptoki 3.8.1, started by scripts/test),
    // through its pid file and /proc/<pid>/exe.
    let pid = std::fs::read_to_string("/var/run/pkcsslotd.pid")
        .expect("pkcsslotd runs (scripts/test starts it)")
        .trim()
        .to_owned();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        Path::new("/usr/sbin/pkcsslotd")
    );
    let mut c = guarded(MKPLAN);
    c.arg("check").arg(offline_plan());
    let checked = finish(c);
    assert!(
        checked.stdout.contains(&format!(
            "pkcsslotd: running, pid {pid} (pid file `/run/pkcsslotd.pid`, executable `/usr/sbin/pkcsslotd`)"
        )),
        "{}",
        checked.both()
    );
}

//! End-to-end tests of the concurrent master-key change (issue 14): the real `mkplan`
//! rehearses `plans/ep11-concurrent.yaml` on a simulated host (`--root`) whose
//! `pkcshsm_mk_change` stand-in follows the tool's contract, with the issue's faults, kills
//! and resumes. Each test ends by proving from the outside (`mkplan-sim verify`, the
//! operation files, the journal) that every key is usable under exactly one WK, that the
//! simulated applications never failed, and that the PIN is in no output or file.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
const OLD_WK: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5";
const NEW_WK: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
const KEYS: usize = 30;
/// A certificate and a data object: objects without a key blob in every simulated store.
const KEYLESS: usize = 2;

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn quick_plan() -> PathBuf {
    repo("tests/fixtures/e2e/ep11-concurrent-quick.yaml")
}

struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    stdout: String,
}

impl Ran {
    fn both(&self) -> String {
        format!(
            "exit {:?} signal {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// A simulated host and a state directory; the host's processes are shut down on drop.
struct Bench {
    root: PathBuf,
    state: PathBuf,
    outputs: std::cell::RefCell<Vec<String>>,
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
            .prefix("mkplan-concurrent-")
            .tempdir()
            .unwrap();
        let base = dir.path().canonicalize().unwrap();
        Self {
            root: base.join("host"),
            state: base.join("state"),
            outputs: Default::default(),
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut c = Command::new("timeout");
        c.arg("180")
            .arg(MKPLAN)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let ran = Ran {
            code: out.status.code(),
            signal: out.status.signal(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        assert_ne!(ran.code, Some(124), "hung: {}", ran.both());
        self.outputs
            .borrow_mut()
            .push(format!("{}{}", ran.stdout, ran.stderr));
        ran
    }

    fn rehearse(&self, plan: &Path, extra: &[&str], env: &[(&str, &str)]) -> Ran {
        let root = self.root.display().to_string();
        let plan = plan.display().to_string();
        let keys = KEYS.to_string();
        let mut args = vec!["--root", &root, "rehearse", &plan, "--keys", &keys];
        args.extend_from_slice(extra);
        self.run(&args, env)
    }

    fn resume(&self, extra: &[&str], env: &[(&str, &str)]) -> Ran {
        let id = self.run_id();
        let mut args = vec!["resume", id.as_str()];
        args.extend_from_slice(extra);
        self.run(&args, env)
    }

    fn sim(&self, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .arg("60")
            .arg(SIM)
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .output()
            .unwrap()
    }

    fn run_id(&self) -> String {
        let ids: Vec<String> = std::fs::read_dir(self.state.join("runs"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    }

    fn journal(&self) -> Vec<Value> {
        let path = self
            .state
            .join("runs")
            .join(self.run_id())
            .join("journal.jsonl");
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.journal()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The operation files the tool keeps.
    fn operation_files(&self) -> Vec<String> {
        let dir = self.root.join("var/lib/opencryptoki/HSM_MK_CHANGE");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every key usable under `wk`, each blob sealed under it, no re-enciphered blob left.
    fn assert_every_key_usable_under(&self, wk: &str) {
        let out = self.sim(&["verify", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = &report["tokens"]["ep11"];
        assert_eq!(out.status.code(), Some(0), "{token:#}");
        assert_eq!(token["usable"], KEYS, "{token:#}");
        assert_eq!(token["unusable"], 0, "{token:#}");
        assert_eq!(token["skipped"], KEYLESS, "{token:#}");
        assert_eq!(token["current_wkvp"], wk, "{token:#}");
        let by_wkvp: BTreeMap<String, u64> =
            serde_json::from_value(token["blobs_by_wkvp"].clone()).unwrap();
        assert_eq!(by_wkvp, BTreeMap::from([(wk.to_owned(), KEYS as u64)]));
        assert!(
            token["reenc_blobs"].as_u64().unwrap_or(0) == 0,
            "no re-enciphered blob is left: {token:#}"
        );
        assert_eq!(self.operation_files(), Vec::<String>::new());
    }

    /// The simulated applications did operations and none failed.
    fn assert_apps_never_failed(&self) {
        let out = self.sim(&["apps", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("apps --json: {e}: {}", String::from_utf8_lossy(&out.stdout))
        });
        assert!(report["total"]["ok"].as_u64().unwrap() > 0, "{report:#}");
        assert_eq!(report["total"]["failed"], 0, "{report:#}");
    }

    fn assert_pin_nowhere(&self) {
        let record: Value = serde_json::from_slice(
            &std::fs::read(self.root.join("var/lib/mkplan-sim/rehearsal.json")).unwrap(),
        )
        .unwrap();
        let pin = record["pin"].as_str().unwrap().to_owned();
        for (i, output) in self.outputs.borrow().iter().enumerate() {
            assert!(!output.contains(&pin), "the PIN is in output #{i}");
        }
        let mut stack = vec![self.state.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    assert!(
                        !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
                        "the PIN is in {}",
                        path.display()
                    );
                }
            }
        }
    }

    /// Waits until no `pkcshsm_mk_change` of this host runs (it outlives a killed mkplan).
    fn wait_for_no_tool(&self) {
        let root = self.root.display().to_string();
        let limit = Instant::now() + Duration::from_secs(60);
        while Instant::now() < limit {
            let running = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains(&root) && c.contains("pkcshsm_mk_change")
                })
            });
            if !running {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pkcshsm_mk_change did not finish");
    }
}

fn assert_exit(ran: &Ran, code: i32) {
    assert_eq!(ran.code, Some(code), "{}", ran.both());
}

/// Done means: `mkplan rehearse plans/ep11-concurrent.yaml` succeeds with the simulated
/// applications reporting zero failed operations; the run parked for real, with the resume
/// line; the operation ID is journaled the moment it is printed; the simulated days are
/// journaled as simulated.
#[test]
fn concurrent_rehearsal_changes_every_key_without_downtime() {
    let b = Bench::new();
    let ran = b.rehearse(&repo("plans/ep11-concurrent.yaml"), &["--keep"], &[]);
    assert_exit(&ran, 0);
    let id = b.run_id();
    assert!(
        ran.stderr
            .contains("PARKED at steps[5] `Activate the new WK on the TKE`"),
        "{}",
        ran.both()
    );
    assert!(
        ran.stderr.contains(&format!(
            "mkplan --state-dir {} --root {} resume {id} --approve tke-activate=NAME",
            b.state.display(),
            b.root.display()
        )),
        "{}",
        ran.both()
    );
    assert!(
        ran.stderr.contains("application operations")
            || ran
                .stderr
                .contains("operations during the change, none failed"),
        "{}",
        ran.both()
    );
    let journal = b.journal();
    let created: Vec<&Value> = journal
        .iter()
        .filter(|e| {
            e["kind"] == "step_milestone"
                && e["data"]["milestone"]["milestone"] == "operation_created"
        })
        .collect();
    assert_eq!(created.len(), 1, "{journal:#?}");
    let op = created[0]["data"]["milestone"]["id"].as_str().unwrap();
    let reencipher = journal
        .iter()
        .find(|e| {
            e["kind"] == "step_succeeded" && e["data"]["step"]["kind"] == "mk_change.reencipher"
        })
        .unwrap();
    assert_eq!(reencipher["data"]["data"]["operation"], op);
    let finalize = journal
        .iter()
        .find(|e| {
            e["kind"] == "step_succeeded" && e["data"]["step"]["kind"] == "mk_change.finalize"
        })
        .unwrap();
    assert_eq!(
        finalize["data"]["data"]["operation"], op,
        "finalize used the journaled ID"
    );
    assert_eq!(finalize["data"]["data"]["action"], "finalized");
    let argv = finalize["data"]["data"]["attempts"][0]["argv"]
        .as_array()
        .unwrap();
    assert_eq!(
        argv[1..],
        [Value::from("finalize"), "--id".into(), op.into()]
    );
    assert!(b.kinds().contains(&"checkpoint_parked".to_owned()));
    let resumed = journal.iter().find(|e| e["kind"] == "resumed").unwrap();
    assert_eq!(
        resumed["data"]["simulated_clock"],
        "+3 days (simulated, not waited)"
    );
    assert!(!b.kinds().contains(&"rescue_started".to_owned()));
    // The report: downtime 0, the operation ID, each phase with its time, the days between.
    let report: Value = serde_json::from_slice(
        &std::fs::read(b.state.join("runs").join(&id).join("report.json")).unwrap(),
    )
    .unwrap();
    let change = &report["concurrent"][0];
    assert_eq!(change["operation"], op, "{change:#}");
    assert_eq!(change["downtime_ms"], 0, "{change:#}");
    assert_eq!(change["outcome"], "finalized", "{change:#}");
    let phases: Vec<&str> = change["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["status"], "succeeded", "{p:#}");
            assert!(p["started"].is_string() && p["ended"].is_string(), "{p:#}");
            p["phase"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        phases,
        ["reencipher", "activation", "expected_wkvp", "finalize"]
    );
    assert_eq!(
        change["reencipher_to_end"]
            .as_str()
            .unwrap()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>(),
        ["3", "days"],
        "{change:#}"
    );
    assert_eq!(change["parks"].as_array().unwrap().len(), 1, "{change:#}");
    assert!(
        change["phases"][3]["wk_state"][1]
            .as_str()
            .unwrap()
            .starts_with("0b.0011: current valid 0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"),
        "{change:#}"
    );
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// A run parks with exit 6; an activation on one APQN only parks it again on resume (naming
/// the other APQN and saying what changed); once the TKE activates the other, resume ends it.
#[test]
fn activation_on_one_apqn_only_parks_again_and_resume_finishes_after_the_other() {
    let b = Bench::new();
    let ran = b.rehearse(
        &quick_plan(),
        &["--stop-at-park", "--fault", "activate-only-on=0a.0011"],
        &[],
    );
    assert_exit(&ran, 6);
    assert!(
        ran.stderr.contains("run ") && ran.stderr.contains("parked (exit 6)"),
        "{}",
        ran.both()
    );
    let runs = b.run(&["runs"], &[]);
    assert!(
        runs.stdout.contains("parked") || runs.stderr.contains("parked"),
        "{}",
        runs.both()
    );

    let again = b.resume(&[], &[]);
    assert_exit(&again, 6);
    assert!(
        again
            .stderr
            .contains("0b.0011 (adapter 11, domain 17): WK CUR is valid 0x6f1e"),
        "{}",
        again.both()
    );
    assert!(
        !again
            .stderr
            .contains("0a.0011 (adapter 10, domain 17): WK CUR"),
        "0a.0011 is activated: {}",
        again.both()
    );
    // Cancel is impossible now; nothing went to rescue.
    assert!(!b.kinds().contains(&"rescue_started".to_owned()));

    let out = b.sim(&["tke", "activate", "--apqn", "0b.0011"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = b.resume(&[], &[]);
    assert_exit(&done, 0);
    assert!(done.stderr.contains("since the park"), "{}", done.both());
    assert!(done.stderr.contains("0b.0011: current valid 0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5 → valid 0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"), "{}", done.both());
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// PCI DSS 10.2.2: the run journals where it was started from and, on resume, where it was
/// resumed from (another SSH session here); the report lists every event with its user,
/// result, origin and resources, each event with the origin of the session that wrote it.
#[test]
fn each_event_in_the_report_carries_the_origin_of_its_session() {
    let b = Bench::new();
    let first = [
        ("SSH_CONNECTION", "198.51.100.7 50022 192.0.2.1 22"),
        ("SSH_CLIENT", ""),
    ];
    let ran = b.rehearse(&quick_plan(), &["--stop-at-park"], &first);
    assert_exit(&ran, 6);
    let second = [
        ("SSH_CONNECTION", ""),
        ("SSH_CLIENT", "2001:db8::9 40000 22"),
    ];
    let done = b.resume(&[], &second);
    assert_exit(&done, 0);
    let report: Value = serde_json::from_slice(
        &std::fs::read(b.state.join("runs").join(b.run_id()).join("report.json")).unwrap(),
    )
    .unwrap();
    let events = report["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        b.journal().len(),
        "one entry per journal event"
    );
    let resumed_at = events
        .iter()
        .position(|e| e["event"] == "resumed")
        .expect("a resumed event");
    let uid = rustix::process::getuid().as_raw();
    for (i, event) in events.iter().enumerate() {
        let (ssh, session) = if i < resumed_at {
            ("198.51.100.7 port 50022", "start")
        } else {
            ("2001:db8::9 port 40000", "resume")
        };
        let origin = &event["origin"];
        assert_eq!(origin["ssh_client"], ssh, "{session}: {event:#}");
        assert_eq!(origin["uid"], uid, "{event:#}");
        assert!(
            origin["host"].as_str().is_some_and(|h| !h.is_empty()),
            "{event:#}"
        );
        assert!(
            event["user"].as_str().is_some_and(|u| !u.is_empty()),
            "{event:#}"
        );
        assert!(
            ["success", "failure", "none"].contains(&event["result"].as_str().unwrap()),
            "{event:#}"
        );
        assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event:#}");
    }
    assert_eq!(
        report["run"]["origin"]["ssh_client"],
        "198.51.100.7 port 50022"
    );
    assert_eq!(
        report["run"]["resumed"][0]["origin"]["ssh_client"],
        "2001:db8::9 port 40000"
    );
    // The re-encipherment names the token it acted on; the approval, its approver.
    let reencipher = events
        .iter()
        .find(|e| {
            e["event"] == "step_succeeded"
                && e["step"].as_str().unwrap().contains("mk_change.reencipher")
        })
        .unwrap();
    assert!(
        reencipher["resources"][0]
            .as_str()
            .unwrap()
            .starts_with("token "),
        "{reencipher:#}"
    );
    let html =
        std::fs::read_to_string(b.state.join("runs").join(b.run_id()).join("report.html")).unwrap();
    assert!(
        html.contains("Appendix G — Events (PCI DSS 10.2.2)"),
        "{html}"
    );
    assert!(
        html.contains("ssh 198.51.100.7 port 50022") && html.contains("ssh 2001:db8::9 port 40000")
    );
}

/// A token answers the INITIATE query negatively: the tool aborts before it changes
/// anything; the run fails, rescue has nothing to cancel, every key stays under the old WK.
#[test]
fn token_refusing_the_initiate_query_changes_nothing() {
    let b = Bench::new();
    let ran = b.rehearse(
        &quick_plan(),
        &["--fault", "mk-change-refuse-initiate=4"],
        &[],
    );
    assert_exit(&ran, 1);
    assert!(
        ran.stderr
            .contains("Token in slot 4 is unable to perform the master key change"),
        "{}",
        ran.both()
    );
    assert!(ran.stderr.contains("outcome: failed"), "{}", ran.both());
    assert!(ran.stderr.contains("nothing to cancel"), "{}", ran.both());
    assert!(
        !b.kinds().contains(&"checkpoint_parked".to_owned()),
        "the TKE was never asked to activate"
    );
    b.assert_every_key_usable_under(OLD_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// Re-enciphering fails half-way: the tool cancels by itself; nothing is left.
#[test]
fn reencipher_failure_is_cancelled_by_the_tool() {
    let b = Bench::new();
    let ran = b.rehearse(
        &quick_plan(),
        &["--fault", "mk-change-fail-reencipher=7"],
        &[],
    );
    assert_exit(&ran, 1);
    assert!(
        ran.stderr
            .contains("At least one token failed to perform the key re-encryption"),
        "{}",
        ran.both()
    );
    b.assert_every_key_usable_under(OLD_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// mkplan is killed while the tool re-enciphers: the tool is left to finish; resume needs
/// a decision, `--accept-step` takes the operation the tool created (found by `list`: its ID
/// was never printed to mkplan), and the run goes on to park and finalize that operation.
#[test]
fn killed_during_reencipher_the_tool_finishes_and_resume_adopts_its_operation() {
    let b = Bench::new();
    let ran = b.rehearse(
        &quick_plan(),
        &["--fault", "mk-change-slow=30"],
        &[("MKPLAN_TEST_KILL_AT", "mk_change:working")],
    );
    assert!(
        ran.code == Some(137) || ran.signal == Some(9),
        "{}",
        ran.both()
    );
    b.wait_for_no_tool();
    let asked = b.resume(&[], &[]);
    assert_exit(&asked, 5);
    assert!(
        asked.stderr.contains("in state re-enciphered"),
        "{}",
        asked.both()
    );
    let parked = b.resume(&["--accept-step"], &[]);
    assert_exit(&parked, 6);
    let done = b.resume(&[], &[]);
    assert_exit(&done, 0);
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// mkplan is killed while the tool finalizes: the tool finishes; resume recognises the
/// completed finalize (`--retry-step` finds the operation gone and every APQN on the new WK).
#[test]
fn killed_during_finalize_the_tool_finishes_and_resume_recognises_it() {
    let b = Bench::new();
    let ran = b.rehearse(
        &quick_plan(),
        &["--stop-at-park", "--fault", "mk-change-slow=30"],
        &[],
    );
    assert_exit(&ran, 6);
    let killed = b.resume(&[], &[("MKPLAN_TEST_KILL_AT", "mk_change:working")]);
    assert!(
        killed.code == Some(137) || killed.signal == Some(9),
        "{}",
        killed.both()
    );
    b.wait_for_no_tool();
    let asked = b.resume(&[], &[]);
    assert_exit(&asked, 5);
    assert!(
        asked
            .stderr
            .contains("no longer exists; the APQNs show the WK a finalize leaves"),
        "{}",
        asked.both()
    );
    let done = b.resume(&["--accept-step"], &[]);
    assert_exit(&done, 0);
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// Finalize fails: the operation is in ERROR, finalize is retried within the step; failing
/// again halts the run (no rescue: cancel is impossible after the activation); once the
/// cause is gone, resume finalizes from ERROR.
#[test]
fn failed_finalize_goes_to_error_is_retried_then_halts_and_resume_finishes() {
    let b = Bench::new();
    let ran = b.rehearse(
        &quick_plan(),
        &["--fault", "mk-change-fail-finalize=5"],
        &[],
    );
    assert_exit(&ran, 1);
    assert!(ran.stderr.contains("HALTED at steps[7]"), "{}", ran.both());
    assert!(ran.stderr.contains("is error"), "{}", ran.both());
    let kinds = b.kinds();
    assert!(kinds.contains(&"run_halted".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"rescue_started".to_owned()), "{kinds:?}");
    let failed = b
        .journal()
        .into_iter()
        .find(|e| e["kind"] == "step_failed" && e["data"]["step"]["kind"] == "mk_change.finalize")
        .unwrap();
    assert_eq!(
        failed["data"]["data"]["attempts"].as_array().unwrap().len(),
        2,
        "{failed:#}"
    );
    let out = b.sim(&["fault", "--clear"]);
    assert!(out.status.success());
    let done = b.resume(&[], &[]);
    assert_exit(&done, 0);
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// The operator (or configuration management) puts the old EXPECTED_WKVP back after the
/// plan's `set_expected_wkvp` and before the finalize: the finalize refuses before any PIN is
/// typed, naming the file, both values and the line to write; the run halts (cancel is
/// impossible after the activation); once the file is fixed, resume finalizes.
#[test]
fn expected_wkvp_reverted_before_finalize_is_caught_and_halts() {
    let b = Bench::new();
    let ran = b.rehearse(&quick_plan(), &["--stop-at-park"], &[]);
    assert_exit(&ran, 6);
    // Resume; die right after `set_expected_wkvp` succeeded (the 7th event this resume
    // journals: resumed, the checkpoint's 4, the step's 2).
    let after = (b.journal().len() + 6).to_string();
    let killed = b.resume(
        &[],
        &[("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", after.as_str())],
    );
    assert!(
        killed.code == Some(137) || killed.signal == Some(9),
        "{}",
        killed.both()
    );
    let last = b.journal().pop().unwrap();
    assert_eq!(last["kind"], "step_succeeded", "{last:#}");
    assert_eq!(
        last["data"]["step"]["kind"], "set_expected_wkvp",
        "{last:#}"
    );
    let conf = b.root.join("etc/opencryptoki/ep11tok.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let new_hex = &NEW_WK[2..];
    assert!(text.contains(new_hex), "{text}");
    std::fs::write(&conf, text.replace(new_hex, &OLD_WK[2..])).unwrap();

    let halted = b.resume(&[], &[]);
    assert_exit(&halted, 1);
    assert!(
        halted.stderr.contains("HALTED at steps[7]"),
        "{}",
        halted.both()
    );
    assert!(halted.stderr.contains("sets EXPECTED_WKVP 0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5 for token `ep11`, but finalize needs 0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"), "{}", halted.both());
    let finalize_ran = b.journal().iter().any(|e| {
        e["kind"] == "step_failed"
            && e["data"]["data"]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    assert!(!finalize_ran, "the tool never ran");
    std::fs::write(&conf, text).unwrap();
    let done = b.resume(&[], &[]);
    assert_exit(&done, 0);
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// A parked run may wait for days: it blocks a new run whose tokens meet its own (the same
/// plan, exit 3 naming it), not one on other tokens, slots and APQNs.
#[test]
fn a_parked_run_blocks_only_runs_that_meet_its_tokens() {
    let b = Bench::new();
    let ran = b.rehearse(&quick_plan(), &["--stop-at-park"], &[]);
    assert_exit(&ran, 6);
    let parked = b.run_id();
    let base = b.root.parent().unwrap().to_owned();

    let same_root = base.join("same").display().to_string();
    let plan = quick_plan().display().to_string();
    let same = b.run(
        &["--root", &same_root, "rehearse", &plan, "--keys", "5"],
        &[],
    );
    assert_exit(&same, 3);
    assert!(
        same.stderr
            .contains(&format!("run {parked} did not finish (parked)")),
        "{}",
        same.both()
    );

    let other = std::fs::read_to_string(repo("plans/ep11-offline.yaml"))
        .unwrap()
        .replace("slot: 4", "slot: 5")
        .replace(
            "/var/lib/opencryptoki/ep11tok",
            "/var/lib/opencryptoki/ep11b",
        )
        .replace(
            r#"["0a.0011", { adapter: 11, domain: 17 }]"#,
            r#"["0c.0012"]"#,
        );
    assert!(other.contains("0c.0012"), "{other}");
    let other_plan = base.join("other.yaml");
    std::fs::write(&other_plan, other).unwrap();
    let other_root = base.join("other").display().to_string();
    let other_plan = other_plan.display().to_string();
    let unrelated = b.run(
        &[
            "--root",
            &other_root,
            "rehearse",
            &other_plan,
            "--keys",
            "5",
        ],
        &[],
    );
    let _ = Command::new("timeout")
        .args(["60", SIM, "shutdown", "--root", &other_root])
        .output();
    assert_exit(&unrelated, 0);
}

/// The quick plan without `report.sign` (a run outside a rehearsal signs with the plan's key,
/// which the simulated host has not), written beside the bench.
fn unsigned_plan(b: &Bench) -> PathBuf {
    let text = std::fs::read_to_string(quick_plan()).unwrap();
    let text = &text[..text.find("\nreport:").unwrap()];
    let path = b.root.parent().unwrap().join("concurrent.yaml");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

const PIN: &str = "Run-PIN-4711";

/// `mkplan-sim init --host` with one EP11 token in slot 4, a standalone application, and a
/// configured slot 2 without a token; `absent` is slot 2's `opencryptoki.conf` entry.
fn host_with_an_absent_slot(b: &Bench, absent: &str) {
    let spec = serde_json::json!({
        "tokens": [{
            "name": "ep11", "slot": 4,
            "store": "/var/lib/opencryptoki/ep11tok",
            "config": "/etc/opencryptoki/ep11tok.conf",
            "apqns": ["0a.0011", "0b.0011"],
            "ep11": {"wkvp_current": OLD_WK, "wkvp_new": NEW_WK}
        }],
        "apps": [{"name": "batch", "interval_ms": 5}],
        "absent_slots": [2]
    });
    let file = b.root.parent().unwrap().join("host.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let mut init = Command::new(SIM)
        .args(["init", "--pin-stdin", "--keys", &KEYS.to_string(), "--host"])
        .arg(&file)
        .arg("--root")
        .arg(&b.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut init.stdin.take().unwrap(),
        format!("{PIN}\n").as_bytes(),
    )
    .unwrap();
    let out = init.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = b.root.join("etc/opencryptoki/opencryptoki.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(absent);
    std::fs::write(&conf, text).unwrap();
    for action in ["load", "commit"] {
        assert!(b.sim(&["tke", action]).status.success());
    }
}

/// A run outside a rehearsal (`mkplan run --root`): `Continue [y/N]?` for a slot without a
/// token is answered `y` only because that slot is not an EP11 token (journaled with why);
/// the run parks (exit 6) with the resume line; resumed before the TKE activated, it parks
/// again; after the activation, `resume --approve` finishes it.
#[test]
fn a_run_answers_continue_for_an_unaffected_absent_slot_parks_and_resumes_after_activation() {
    let b = Bench::new();
    host_with_an_absent_slot(&b, "slot 2\n{\nstdll = libpkcs11_tpm.so\n}\n");
    let plan = unsigned_plan(&b).display().to_string();
    let root = b.root.display().to_string();
    let env = [("MKPLAN_EP11_PIN", PIN)];
    let ran = b.run(
        &[
            "--root",
            &root,
            "run",
            "--non-interactive",
            "--approve",
            "tke-commit=alice",
            "--approve",
            "tke-commit=bob",
            &plan,
        ],
        &env,
    );
    assert_exit(&ran, 6);
    let id = b.run_id();
    let resume_line = format!(
        "mkplan --state-dir {} --root {root} resume {id} --approve tke-activate=NAME",
        b.state.display()
    );
    assert!(ran.stderr.contains(&resume_line), "{}", ran.both());
    let reencipher = b
        .journal()
        .into_iter()
        .find(|e| {
            e["kind"] == "step_succeeded" && e["data"]["step"]["kind"] == "mk_change.reencipher"
        })
        .unwrap();
    let answered = &reencipher["data"]["data"]["tool"]["continue_prompt"];
    assert_eq!(answered["slots"], serde_json::json!([2]), "{reencipher:#}");
    assert_eq!(answered["answered_yes"], true, "{reencipher:#}");
    assert!(
        answered["why"][0]
            .as_str()
            .unwrap()
            .contains("libpkcs11_tpm.so is not an EP11 token"),
        "{answered:#}"
    );

    let again = b.run(
        &[
            "--root",
            &root,
            "resume",
            &id,
            "--non-interactive",
            "--approve",
            "tke-activate=alice",
        ],
        &env,
    );
    assert_exit(&again, 6);
    assert!(
        again.stderr.contains("WK CUR is valid 0x6f1e"),
        "{}",
        again.both()
    );
    assert!(b.sim(&["tke", "activate"]).status.success());
    let done = b.run(
        &[
            "--root",
            &root,
            "resume",
            &id,
            "--non-interactive",
            "--approve",
            "tke-activate=alice",
        ],
        &env,
    );
    assert_exit(&done, 0);
    assert!(done.stderr.contains("0a.0011: current valid 0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5 → valid 0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"), "{}", done.both());
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    for output in b.outputs.borrow().iter() {
        assert!(!output.contains(PIN), "the PIN is in an output");
    }
}

/// A slot without a token that the change may affect (an EP11 token with APQN_ANY): mkplan
/// answers `N`, the tool creates nothing, and every key stays under the current WK.
#[test]
fn continue_is_answered_no_for_an_absent_ep11_slot_that_may_be_affected() {
    let b = Bench::new();
    host_with_an_absent_slot(
        &b,
        "slot 2\n{\nstdll = libpkcs11_ep11.so\nconfname = absent.conf\n}\n",
    );
    std::fs::write(b.root.join("etc/opencryptoki/absent.conf"), "APQN_ANY\n").unwrap();
    let plan = unsigned_plan(&b).display().to_string();
    let root = b.root.display().to_string();
    let ran = b.run(
        &[
            "--root",
            &root,
            "run",
            "--non-interactive",
            "--approve",
            "tke-commit=alice",
            "--approve",
            "tke-commit=bob",
            &plan,
        ],
        &[("MKPLAN_EP11_PIN", PIN)],
    );
    assert_exit(&ran, 1);
    assert!(
        ran.stderr
            .contains("mkplan answered N to `Continue [y/N]?`"),
        "{}",
        ran.both()
    );
    assert!(
        ran.stderr.contains("slot 2: EP11 token with APQN_ANY"),
        "{}",
        ran.both()
    );
    assert!(ran.stderr.contains("nothing to cancel"), "{}", ran.both());
    b.assert_every_key_usable_under(OLD_WK);
    b.assert_apps_never_failed();
}

/// The host reboots while the run is parked (pkcsslotd, the units and the applications
/// start again; the operation files and the registers stay): resume re-checks the operation
/// and the APQNs and finishes.
#[test]
fn a_reboot_while_parked_is_fine() {
    let b = Bench::new();
    let ran = b.rehearse(&quick_plan(), &["--stop-at-park"], &[]);
    assert_exit(&ran, 6);
    let out = b.sim(&["reboot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = b.resume(&[], &[]);
    assert_exit(&done, 0);
    assert!(done.stderr.contains("since the park"), "{}", done.both());
    b.assert_every_key_usable_under(NEW_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();
}

/// `resume --deny` abandons a parked change before any APQN is activated: rescue cancels the
/// operation, the run ends `aborted` (exit 4), no second blob is left and every key stays
/// under the current WK. Once an APQN is activated, `--deny` is refused (the run stays
/// parked, naming the forward fix).
#[test]
fn deny_while_parked_cancels_before_activation_and_is_refused_after() {
    let b = Bench::new();
    let ran = b.rehearse(&quick_plan(), &["--stop-at-park"], &[]);
    assert_exit(&ran, 6);
    assert!(
        ran.stderr.contains("--deny tke-activate=NAME"),
        "{}",
        ran.both()
    );
    let denied = b.resume(&["--deny", "tke-activate=alice"], &[]);
    assert_exit(&denied, 4);
    assert!(
        denied.stderr.contains("rescue cancelled operation"),
        "{}",
        denied.both()
    );
    b.assert_every_key_usable_under(OLD_WK);
    b.assert_apps_never_failed();
    b.assert_pin_nowhere();

    let late = Bench::new();
    let ran = late.rehearse(&quick_plan(), &["--stop-at-park"], &[]);
    assert_exit(&ran, 6);
    assert!(
        late.sim(&["tke", "activate", "--apqn", "0a.0011"])
            .status
            .success()
    );
    let refused = late.resume(&["--deny", "tke-activate=alice"], &[]);
    assert_exit(&refused, 6);
    assert!(
        refused.stderr.contains(
            "cannot abandon (denied by alice): 0a.0011 already has the new WK as current"
        ),
        "{}",
        refused.both()
    );
    assert!(!late.kinds().contains(&"rescue_started".to_owned()));
    assert!(
        late.sim(&["tke", "activate", "--apqn", "0b.0011"])
            .status
            .success()
    );
    let done = late.resume(&[], &[]);
    assert_exit(&done, 0);
    late.assert_every_key_usable_under(NEW_WK);
    late.assert_apps_never_failed();
}

/// The Ansible collection's module (`command: status`) reads a parked run as `parked`,
/// waiting at its activation checkpoint, so a later play can resume it; before, it said
/// `unfinished`, and `run` failed the task.
#[test]
fn the_ansible_module_reads_a_parked_run_as_parked() {
    let venv = std::env::var_os("MKPLAN_TEST_ANSIBLE").expect(
        "MKPLAN_TEST_ANSIBLE is not set: run the tests with scripts/test, which installs ansible-core",
    );
    let b = Bench::new();
    let ran = b.rehearse(&quick_plan(), &["--stop-at-park"], &[]);
    assert_exit(&ran, 6);
    let args = serde_json::json!({ "ANSIBLE_MODULE_ARGS": {
        "command": "status",
        "run_id": b.run_id(),
        "state_dir": b.state,
        "executable": MKPLAN,
    }});
    let args_file = b.state.join("module-args.json");
    std::fs::write(&args_file, args.to_string()).unwrap();
    let out = Command::new(Path::new(&venv).join("bin/python3"))
        .arg(repo("ansible/plugins/modules/mkplan.py"))
        .arg(&args_file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(said.trim())
        .unwrap_or_else(|e| panic!("{e}: {said}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(result["state"], "parked", "{result:#}");
    assert_eq!(result["waiting_at"], "tke-activate", "{result:#}");
    assert_eq!(result["outcome"], Value::Null, "{result:#}");
    assert!(result.get("failed").is_none(), "{result:#}");
}

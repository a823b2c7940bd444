//! The fleet: `mkplan report fleet` over real run reports (from rehearsals), and a real
//! rolling change across four simulated LPARs through the Ansible collection, over ssh to
//! 127.0.0.2 … 127.0.0.5 (`scripts/fleet-rehearse`, which starts a throwaway sshd).
//!
//! openssh-server, ansible-core (in target/test-tools/ansible) and openssl are installed by
//! `scripts/test`; a missing one is a failure, never a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
const OLD_WK: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5";
const NEW_WK: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
const KEYS: usize = 24;
const LPARS: [&str; 4] = ["lpar1", "lpar2", "lpar3", "lpar4"];
const MIGRATE_LOG: &str = "var/log/mkplan-sim/pkcsep11_migrate.log";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mkplan(args: &[&str]) -> Output {
    Command::new(MKPLAN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn hosts_by_name(fleet: &Value) -> BTreeMap<String, Value> {
    fleet["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap().to_owned(), h.clone()))
        .collect()
}

// --- `mkplan report fleet` on rehearsals' reports --------------------------------------------

/// Host report directories made by rehearsals: `names[i]` gets a rehearsal with `faults[i]`.
struct Reports {
    dir: tempfile::TempDir,
}

impl Reports {
    fn new(hosts: &[(&str, &[&str])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, faults) in hosts {
            let state = dir.path().join("state").join(name);
            let mut command = Command::new(MKPLAN);
            command
                .arg("--state-dir")
                .arg(&state)
                .args(["rehearse", "--keys", "5"]);
            for fault in *faults {
                command.args(["--fault", fault]);
            }
            let out = command
                .arg(repo("plans/ep11-offline.yaml"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.code().is_some(), "{}", text(&out.stderr));
            let run = std::fs::read_dir(state.join("runs"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let target = dir.path().join("reports").join(name);
            std::fs::create_dir_all(&target).unwrap();
            for entry in std::fs::read_dir(&run).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
            }
        }
        Self { dir }
    }

    fn host(&self, name: &str) -> PathBuf {
        self.dir.path().join("reports").join(name)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn fleet(&self, out: &str, hosts: &[&str], extra: &[&str]) -> Output {
        let mut command = Command::new(MKPLAN);
        command
            .args(["report", "fleet", "--out"])
            .arg(self.out(out))
            .args(extra);
        for host in hosts {
            command.arg(self.host(host));
        }
        command.stdin(Stdio::null()).output().unwrap()
    }
}

#[test]
fn a_fleet_report_shows_a_report_that_does_not_verify_and_a_host_without_one() {
    let reports = Reports::new(&[
        ("zlx01", &[]),
        ("zlx02", &["fail-at-key=2"]),
        ("zlx03", &[]),
    ]);
    // zlx03's report is edited after the fact: one changed byte.
    let edited = reports.host("zlx03").join("report.json");
    let original = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(
        &edited,
        original.replacen("\"succeeded\"", "\"succeedeD\"", 1),
    )
    .unwrap();

    let out = reports.fleet(
        "fleet",
        &["zlx01", "zlx02", "zlx03"],
        &["--host", "zlx01", "--host", "zlx04"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let fleet = read_json(&reports.out("fleet/fleet.json"));
    let hosts = hosts_by_name(&fleet);
    assert_eq!(hosts.len(), 4, "every host, none dropped: {hosts:?}");
    assert_eq!(hosts["zlx01"]["status"], "verified");
    assert_eq!(hosts["zlx01"]["run"]["outcome"], "succeeded");
    assert_eq!(hosts["zlx01"]["run"]["tokens"][0]["keys_usable"], 5);
    assert_eq!(hosts["zlx01"]["run"]["tokens"][0]["apqns_read"], "after");
    assert_eq!(hosts["zlx02"]["status"], "verified");
    assert_eq!(hosts["zlx02"]["run"]["outcome"], "rescued");
    assert_eq!(hosts["zlx02"]["run"]["tokens"][0]["restore"], "restored");
    assert_eq!(hosts["zlx03"]["status"], "not_verified");
    let failed: Vec<&str> = hosts["zlx03"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"signature"), "{failed:?}");
    assert_eq!(hosts["zlx04"]["status"], "no_report");
    let summary = &fleet["summary"];
    assert_eq!(
        (
            &summary["verified"],
            &summary["not_verified"],
            &summary["no_report"],
            &summary["complete"]
        ),
        (
            &Value::from(2),
            &Value::from(1),
            &Value::from(1),
            &Value::from(false)
        )
    );
    let warnings = fleet["warnings"].to_string();
    for expected in [
        "zlx02: run",
        "zlx03: its report DOES NOT VERIFY",
        "zlx04: no report",
    ] {
        assert!(warnings.contains(expected), "{expected}: {warnings}");
    }
    let html = std::fs::read_to_string(reports.out("fleet/fleet.html")).unwrap();
    assert!(html.contains("not verified") && html.contains("zlx04"));

    // The fleet report verifies, with openssl too, and names every host report by digest.
    let verified = mkplan(&["report", "verify", reports.out("fleet").to_str().unwrap()]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
    let dir = reports.out("fleet");
    let openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", "signer.pub.pem", "-signature"])
        .args(["fleet.json.sig", "fleet.json"])
        .current_dir(&dir)
        .output()
        .expect("openssl is installed by scripts/test");
    assert_eq!(text(&openssl.stdout).trim(), "Verified OK");
    let envelope = read_json(&dir.join("fleet.dsse.json"));
    let payload = base64_decode(envelope["payload"].as_str().unwrap());
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    let subjects: Vec<&str> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "fleet.json",
            "zlx01/report.json",
            "zlx02/report.json",
            "zlx03/report.json"
        ]
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["base64", "-d", "-A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    out.stdout
}

#[test]
fn an_edited_fleet_report_or_host_report_fails_verification() {
    let reports = Reports::new(&[("zlx01", &[]), ("zlx02", &[])]);
    let out = reports.fleet("fleet", &["zlx01", "zlx02"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = reports.out("fleet");
    let verify = || mkplan(&["report", "verify", dir.to_str().unwrap()]);
    assert!(verify().status.success());

    // A host report changed after the fleet report read it.
    let report = reports.host("zlx02").join("report.json");
    let original = std::fs::read(&report).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b" ");
    std::fs::write(&report, &edited).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.contains("FAILED  hosts") && said.contains("zlx02"),
        "{said}"
    );
    std::fs::write(&report, &original).unwrap();
    assert!(verify().status.success());

    // The fleet report itself: its JSON, then its envelope.
    for (file, check, from, to) in [
        ("fleet.json", "signature", "zlx01", "zlx09"),
        (
            "fleet.dsse.json",
            "envelope",
            "\"payload\":\"ey",
            "\"payload\":\"eY",
        ),
    ] {
        let path = dir.join(file);
        let original = std::fs::read_to_string(&path).unwrap();
        assert!(original.contains(from), "{file}: {original}");
        std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
        let out = verify();
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert!(
            text(&out.stdout).contains(&format!("FAILED  {check}")),
            "{file}: {}",
            text(&out.stdout)
        );
        std::fs::write(&path, original).unwrap();
    }
    assert!(verify().status.success());
}

#[test]
fn two_report_directories_of_one_name_are_refused() {
    let reports = Reports::new(&[("zlx01", &[])]);
    let copy = reports.out("elsewhere/zlx01");
    std::fs::create_dir_all(&copy).unwrap();
    let out = Command::new(MKPLAN)
        .args(["report", "fleet", "--out"])
        .arg(reports.out("fleet"))
        .arg(reports.host("zlx01"))
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("both named `zlx01`"),
        "{}",
        text(&out.stderr)
    );
    assert!(!reports.out("fleet/fleet.json").exists());
}

// --- the rolling change over ssh ----------------------------------------------------------------

/// One `scripts/fleet-rehearse 4` with its LPARs kept until dropped.
struct Rollout {
    work: PathBuf,
    out: Output,
}

impl Drop for Rollout {
    fn drop(&mut self) {
        for name in LPARS {
            let _ = Command::new(SIM)
                .args(["shutdown", "--root"])
                .arg(self.work.join("hosts").join(name))
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

impl Rollout {
    fn start(faults: &[&str]) -> Self {
        Self::start_procedure("offline", faults)
    }

    fn start_procedure(procedure: &str, faults: &[&str]) -> Self {
        assert!(
            std::env::var_os("MKPLAN_TEST_ANSIBLE").is_some(),
            "MKPLAN_TEST_ANSIBLE is not set: run the tests with scripts/test, which installs openssh-server and ansible-core"
        );
        let bin_dir = Path::new(MKPLAN).parent().unwrap();
        let mut command = Command::new("timeout");
        command
            .arg("1200")
            .arg(repo("scripts/fleet-rehearse"))
            .args(["4", "--verbose", "--keys", &KEYS.to_string()])
            .args(["--procedure", procedure]);
        for fault in faults {
            command.args(["--fault", fault]);
        }
        let out = command
            .env("MKPLAN_BIN_DIR", bin_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        let fleet_json = stdout.lines().last().map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "fleet-rehearse printed no fleet report ({}):\n{}",
                out.status,
                text(&out.stderr)
            )
        });
        let work = fleet_json.parent().unwrap().parent().unwrap().to_owned();
        Self { work, out }
    }

    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    fn log(&self) -> String {
        text(&self.out.stderr)
    }

    fn fleet(&self) -> Value {
        read_json(&self.work.join("fleet/fleet.json"))
    }

    fn root(&self, lpar: &str) -> PathBuf {
        self.work.join("hosts").join(lpar)
    }

    /// `mkplan-sim verify --json` of an LPAR's token `ep11`.
    fn keys(&self, lpar: &str) -> Value {
        let out = Command::new(SIM)
            .args(["verify", "--json", "--root"])
            .arg(self.root(lpar))
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["tokens"]["ep11"].clone()
    }

    /// The state words of an LPAR's WK CUR and WK NEW registers, on every APQN.
    fn registers(&self, lpar: &str) -> Vec<(String, String)> {
        let devices = self.root(lpar).join("sys/bus/ap/devices");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&devices).unwrap() {
            let mkvps = entry.unwrap().path().join("mkvps");
            let Ok(text) = std::fs::read_to_string(&mkvps) else {
                continue;
            };
            let word = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .map(|rest| {
                        rest.split_whitespace()
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            out.push((word("WK CUR: "), word("WK NEW: ").replace(" -", "")));
        }
        assert!(!out.is_empty(), "no APQN in {}", devices.display());
        out
    }

    fn pin(&self) -> String {
        let inventory = std::fs::read_to_string(self.work.join("inventory.yml")).unwrap();
        inventory
            .lines()
            .find_map(|l| l.trim().strip_prefix("mkplan_pin: "))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    }

    /// Everywhere the PIN must not be: the whole Ansible output, every fetched report, the
    /// fleet report, each LPAR's runs and the migration tool's log; and the PIN file the
    /// module writes for a run is gone.
    fn assert_pin_nowhere(&self) {
        let pin = self.pin();
        assert!(pin.len() > 10);
        assert!(
            !text(&self.out.stdout).contains(&pin),
            "the PIN is on stdout"
        );
        assert!(
            !self.log().contains(&pin),
            "the PIN is in the Ansible output"
        );
        let mut files = Vec::new();
        walk(&self.work.join("reports"), &mut files);
        walk(&self.work.join("fleet"), &mut files);
        for lpar in LPARS {
            walk(&self.root(lpar).join("var/lib/mkplan"), &mut files);
            walk(&self.root(lpar).join("etc/mkplan"), &mut files);
            files.push(self.root(lpar).join(MIGRATE_LOG));
            assert!(
                !self.root(lpar).join("run/mkplan/ep11.pin").exists(),
                "{lpar}: the PIN file outlived the run"
            );
        }
        assert!(files.len() > 20, "{files:?}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
                "the PIN is in {}",
                file.display()
            );
        }
    }

    fn assert_fleet_report_verifies(&self) {
        let fleet = self.work.join("fleet");
        let key = self.work.join("fleet-signing.pub.pem");
        let out = mkplan(&[
            "report",
            "verify",
            "--key",
            key.to_str().unwrap(),
            fleet.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("ok      hosts"));
    }

    /// A fetched host report verifies on its own.
    fn assert_report_verifies(&self, lpar: &str) {
        let dir = self.work.join("reports").join(lpar);
        let out = mkplan(&["report", "verify", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{lpar}: {}", text(&out.stdout));
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn assert_all_keys_usable_under(rollout: &Rollout, lpar: &str, wk: &str) {
    let keys = rollout.keys(lpar);
    assert_eq!(keys["current_wkvp"], wk, "{lpar}: {keys}");
    assert_eq!(keys["usable"], KEYS, "{lpar}: {keys}");
    assert_eq!(keys["unusable"], 0, "{lpar}: {keys}");
    let blobs = keys["blobs_by_wkvp"].as_object().unwrap();
    assert_eq!(blobs.keys().collect::<Vec<_>>(), [wk], "{lpar}: {keys}");
}

#[test]
fn fleet_a_rolling_change_over_ssh_changes_every_lpar_and_gives_one_fleet_report() {
    let rollout = Rollout::start(&[]);
    assert_eq!(rollout.code(), Some(0), "{}", rollout.log());
    for lpar in LPARS {
        assert_all_keys_usable_under(&rollout, lpar, NEW_WK);
        rollout.assert_report_verifies(lpar);
    }
    let fleet = rollout.fleet();
    let summary = &fleet["summary"];
    assert_eq!(summary["hosts"], 4);
    assert_eq!(summary["verified"], 4);
    assert_eq!(summary["outcomes"], serde_json::json!({"succeeded": 4}));
    assert_eq!(summary["complete"], true);
    // The LPARs are simulated, each under its own host root: said, and nothing else.
    let warnings: Vec<&str> = fleet["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    for (warning, lpar) in warnings.iter().zip(LPARS) {
        assert!(
            warning.starts_with(&format!("{lpar}: its run acted on the host root `/tmp/")),
            "{warning}"
        );
    }
    let hosts = hosts_by_name(&fleet);
    let mut previous_end: Option<String> = None;
    for lpar in LPARS {
        let run = &hosts[lpar]["run"];
        let token = &run["tokens"][0];
        assert_eq!(token["keys_usable"], KEYS, "{lpar}: {token}");
        assert_eq!(token["apqns_read"], "after");
        for apqn in token["apqns"].as_array().unwrap() {
            assert_eq!(apqn["cur_state"], "valid");
            assert!(apqn["cur_wkvp"].as_str().unwrap().starts_with(NEW_WK));
            assert_eq!(apqn["new_state"], "empty");
        }
        let approvals: Vec<String> = run["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}={} ({})", a["checkpoint"], a["approver"], a["method"]))
            .collect();
        assert_eq!(
            approvals,
            [
                "\"tke-commit\"=\"alice\" (\"file\")",
                "\"tke-commit\"=\"bob\" (\"file\")",
                "\"tke-activate\"=\"alice\" (\"file\")"
            ]
        );
        // serial: one host per batch here, so each run starts after the one before ended.
        let started = run["started"].as_str().unwrap().to_owned();
        if let Some(end) = &previous_end {
            assert!(&started > end, "{lpar} started {started} before {end}");
        }
        previous_end = Some(run["ended"].as_str().unwrap().to_owned());
    }
    // Each LPAR's dry run (check mode: `mkplan check`) showed what the run would change.
    let log = rollout.log();
    assert_eq!(
        log.matches("+++ after: after mkplan run").count(),
        4,
        "{log}"
    );
    assert!(log.contains("would stop `myapp.service`"), "{log}");
    rollout.assert_fleet_report_verifies();
    rollout.assert_pin_nowhere();
}

/// The concurrent procedure as two plays: every LPAR re-enciphers and parks (mkplan exit 6,
/// which the module returns as `parked`, not as a failed task) before the TKE activates
/// anything; then each LPAR is activated and its parked run resumed to the end.
#[test]
fn fleet_the_concurrent_procedure_parks_every_lpar_before_any_activation_then_finishes_each() {
    let rollout = Rollout::start_procedure("concurrent", &[]);
    assert_eq!(rollout.code(), Some(0), "{}", rollout.log());
    for lpar in LPARS {
        assert_all_keys_usable_under(&rollout, lpar, NEW_WK);
        rollout.assert_report_verifies(lpar);
    }
    let fleet = rollout.fleet();
    assert_eq!(
        fleet["summary"]["outcomes"],
        serde_json::json!({"succeeded": 4})
    );
    assert_eq!(fleet["summary"]["complete"], true);
    // Each run parked once and was resumed once; the last LPAR parked before the first
    // was resumed (the activation boundary is between the plays).
    let mut parked_at = Vec::new();
    let mut resumed_at = Vec::new();
    for lpar in LPARS {
        let journal = std::fs::read_to_string(
            rollout
                .work
                .join("reports")
                .join(lpar)
                .join("journal.jsonl"),
        )
        .unwrap();
        let times = |kind: &str| -> Vec<String> {
            journal
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|e| e["kind"] == kind)
                .map(|e| e["time"].as_str().unwrap().to_owned())
                .collect()
        };
        let (parked, resumed) = (times("checkpoint_parked"), times("resumed"));
        assert_eq!((parked.len(), resumed.len()), (1, 1), "{lpar}: {journal}");
        parked_at.extend(parked);
        resumed_at.extend(resumed);
    }
    assert!(
        parked_at.iter().max() < resumed_at.iter().min(),
        "parked {parked_at:?}, resumed {resumed_at:?}"
    );
    let log = rollout.log();
    assert!(log.matches("\"state\": \"parked\"").count() >= 4, "{log}");
    assert!(!log.contains("would stop `myapp.service`"), "{log}");
    rollout.assert_fleet_report_verifies();
    rollout.assert_pin_nowhere();
}

#[test]
fn fleet_a_failing_key_on_one_lpar_stops_the_rollout_that_lpar_rescued_the_rest_untouched() {
    let rollout = Rollout::start(&["2=fail-at-key=3"]);
    assert_eq!(rollout.code(), Some(1), "{}", rollout.log());
    assert!(rollout.log().contains("the rollout STOPPED"));
    // The canary went through; the failing LPAR is back on its old WK from its backup.
    assert_all_keys_usable_under(&rollout, "lpar1", NEW_WK);
    assert_all_keys_usable_under(&rollout, "lpar2", OLD_WK);
    // Nothing reached the later batches: no plan installed, no run, no TKE work.
    for lpar in ["lpar3", "lpar4"] {
        assert_all_keys_usable_under(&rollout, lpar, OLD_WK);
        assert!(
            !rollout
                .root(lpar)
                .join("etc/mkplan/wk-change.yaml")
                .exists()
        );
        assert!(!rollout.root(lpar).join("var/lib/mkplan").exists());
        for (cur, new) in rollout.registers(lpar) {
            assert!(cur.starts_with("valid 0x6f1e1b26"), "{lpar}: {cur}");
            assert_eq!(new, "empty", "{lpar}");
        }
    }
    rollout.assert_report_verifies("lpar1");
    rollout.assert_report_verifies("lpar2");
    let fleet = rollout.fleet();
    let hosts = hosts_by_name(&fleet);
    assert_eq!(hosts["lpar1"]["run"]["outcome"], "succeeded");
    assert_eq!(hosts["lpar2"]["status"], "verified");
    let lpar2 = &hosts["lpar2"]["run"];
    assert_eq!(lpar2["outcome"], "rescued");
    assert_eq!(lpar2["tokens"][0]["migration"], "failed");
    assert_eq!(lpar2["tokens"][0]["restore"], "restored");
    assert!(lpar2["failure"].as_str().unwrap().contains("Re-encipher"));
    for lpar in ["lpar3", "lpar4"] {
        assert_eq!(hosts[lpar]["status"], "no_report", "{lpar}");
        assert_eq!(hosts[lpar]["run"], Value::Null);
    }
    assert_eq!(fleet["summary"]["complete"], false);
    assert_eq!(
        fleet["summary"]["outcomes"],
        serde_json::json!({"rescued": 1, "succeeded": 1})
    );
    let warnings = fleet["warnings"].to_string();
    for expected in [
        "lpar2: run",
        "rescued",
        "lpar3: no report",
        "lpar4: no report",
    ] {
        assert!(warnings.contains(expected), "{expected}: {warnings}");
    }
    rollout.assert_fleet_report_verifies();
    rollout.assert_pin_nowhere();
}

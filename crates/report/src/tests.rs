//! The report built from a synthetic but real (hash-chained) journal of the example plan's
//! whole EP11 procedure — APQN tables, backup, migration, inventories, downtime — and
//! `verify` against the artefacts `generate` writes, including the `report.dir` copy.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::build::{Machine, build};
use crate::model::SigningFacts;
use crate::sign::{Algorithm, SigningPorts, SoftKey};
use crate::verify::verify;
use mkplan_engine::events::{ApprovalMethod, EventKind, Outcome, StepRef};
use mkplan_engine::journal::{Journal, read_verified};
use mkplan_engine::ports::keys::{KeyError, TokenKeys};
use mkplan_engine::ports::operator::{Nobody, Operator};
use mkplan_engine::ports::pins::{PinError, PinReader};
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::record::StepData;
use mkplan_engine::record::origin::Origin;
use mkplan_engine::record::probe::{Inventory, ObjectInfo, Usability};
use mkplan_engine::secret::Pin;
use mkplan_plan::Plan;
use mkplan_plan::model::{KindName, PinSource, Pkcs11KeyRef};

const OLD: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5cba217087b3ebb5bdcfa14fec71bd24b";
const NEW: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d94b208ff40801077a1c78770df22e0bc4";

fn example_plan() -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plans/ep11-offline.yaml");
    mkplan_plan::load_file(&path)
        .plan
        .expect("the example plan validates")
}

fn step(plan: &Plan, index: usize) -> StepRef {
    StepRef::of(&plan.steps[index])
}

fn apqns(cur: (&str, Option<&str>), new: (&str, Option<&str>)) -> Value {
    let one = |id: &str, adapter: u8| {
        json!({
            "apqn": {"id": id, "adapter": adapter, "domain": 17}, "card_type": "CEX8P", "ep11": true,
            "card_online": true, "card_config": true, "card_chkstop": false,
            "queue_online": true, "queue_config": true, "queue_chkstop": false,
            "cur": {"state": cur.0, "vp": cur.1}, "new": {"state": new.0, "vp": new.1},
            "mkvps_raw": "…",
        })
    };
    json!({"token": "ep11", "apqns": [one("0a.0011", 10), one("0b.0011", 11)]})
}

fn inventory(blob: &str, usable: Usability) -> Value {
    let key = |label: &str, id: &str, blob: &str, usable: Usability| ObjectInfo {
        class: "CKO_SECRET_KEY".to_owned(),
        key_type: Some("CKK_AES".to_owned()),
        label: label.to_owned(),
        id: id.to_owned(),
        token: true,
        blob_len: Some(64),
        blob_sha256: Some(blob.to_owned()),
        usable,
    };
    let inventory = Inventory {
        module: "libopencryptoki.so".to_owned(),
        slot: 4,
        objects: vec![
            key("aes-1", "01", blob, usable),
            key("aes-2", "02", "cafe", Usability::Usable),
        ],
        file: None,
        totals: None,
        counts: BTreeMap::from([("CKO_SECRET_KEY/CKK_AES".to_owned(), 2)]),
    };
    json!({"token": "ep11", "inventory": inventory})
}

/// The journal of a successful run of the example plan, with `probes` probe_keys steps.
fn journal(dir: &Path, plan: &Plan, probes: bool) -> PathBuf {
    let path = dir.join("journal.jsonl");
    let mut j = Journal::create(&path, "20260101T100000Z-abcdef").unwrap();
    let mut add = |event| {
        j.append(&event).unwrap();
    };
    add(EventKind::RunStarted {
        plan_name: plan.name.clone(),
        plan_path: "/plans/ep11-offline.yaml".to_owned(),
        plan_sha256: "ab".repeat(32),
        change_ticket: plan.change.ticket.clone(),
        mkplan_version: "0.1.0".to_owned(),
        host_root: "/".to_owned(),
        operator: "carol".to_owned(),
        pid: 1,
        rehearsal: false,
        origin: Some(Origin {
            uid: 0,
            login: Some("root".to_owned()),
            sudo_user: Some("carol".to_owned()),
            host: "zlx01".to_owned(),
            tty: Some("/dev/pts/3".to_owned()),
            ssh_client: Some("198.51.100.7 port 50022".to_owned()),
        }),
    });
    let mut ran = |index: usize, data: Value, extra: Vec<EventKind>| {
        let s = step(plan, index);
        add(EventKind::StepStarted {
            step: s.clone(),
            mutating: false,
        });
        for event in extra {
            add(event);
        }
        add(EventKind::StepSucceeded {
            step: s,
            summary: format!("step {index} done"),
            duration_ms: 10,
            data: StepData::from_json(data),
        });
    };
    let approve = |index: usize, who: &str| EventKind::CheckpointApproved {
        step: step(plan, index),
        approver: who.to_owned(),
        method: ApprovalMethod::Flag,
        shown_sha256: "cd".repeat(32),
        signed: None,
    };
    ran(0, Value::Null, vec![approve(0, "alice"), approve(0, "bob")]);
    ran(
        1,
        apqns(("valid", Some(OLD)), ("committed", Some(NEW))),
        vec![],
    );
    // The offline plan probes before it stops (rule `probe-outside-window`).
    if probes {
        ran(2, inventory("aaaa", Usability::Usable), vec![]);
    }
    ran(
        3,
        json!({"units": [
            {"unit": "myapp.service", "was_active": true, "stopped_at": "2026-01-01T10:00:00Z"},
            {"unit": "httpd.service", "was_active": false, "stopped_at": "2026-01-01T10:00:01Z"},
        ], "scan": {"scanned": 9, "unreadable": 0, "users": []}}),
        vec![],
    );
    ran(
        4,
        json!({"token": "ep11", "target": "local", "pruned": [], "record": {
            "archive": "/var/backups/mkplan/x.tar.gz", "manifest": "/var/backups/mkplan/x.manifest.json",
            "archive_sha256": "ee".repeat(32), "manifest_sha256": "ff".repeat(32),
            "archive_bytes": 4096, "files": 6, "bytes": 9000, "layout": "parent-relative", "verified": true}}),
        vec![],
    );
    ran(
        5,
        json!({"token": "ep11", "tool_started": true, "tool": "/usr/sbin/pkcsep11_migrate",
            "argv": "/usr/sbin/pkcsep11_migrate -slot 4 -adapter 10 -domain 17", "apqn": "0a.0011",
            "exit_code": 0, "signal": null, "timed_out": false, "keys_started": 2,
            "keys_reenciphered": 2, "objects_listed": 2, "success_line": true, "duration_ms": 1500,
            "preflight": {"apqns": apqns(("valid", Some(OLD)), ("committed", Some(NEW)))},
            "output": ["all keys successfully reencrypted"]}),
        vec![],
    );
    ran(
        6,
        json!({"shown_sha256": "12".repeat(32), "approved_at": "2026-01-01T10:03:00Z",
            "until": apqns(("valid", Some(NEW)), ("empty", None))}),
        vec![approve(6, "alice")],
    );
    ran(7, Value::Null, vec![]);
    ran(
        8,
        json!({"units": [{"unit": "myapp.service", "already_running": false, "started_at": "2026-01-01T10:05:30.5Z"}]}),
        vec![],
    );
    if probes {
        ran(9, inventory("bbbb", Usability::Usable), vec![]);
    }
    add(EventKind::AlwaysStarted);
    add(EventKind::RunFinished {
        outcome: Outcome::Succeeded,
    });
    path
}

fn facts() -> SigningFacts {
    SigningFacts {
        method: "key_file".to_owned(),
        key: Some("/etc/mkplan/signing.pem".to_owned()),
        algorithm: "ecdsa-p256-sha256".to_owned(),
    }
}

fn machine() -> Machine {
    Machine {
        hostname: "zlx01".to_owned(),
        kernel_release: "6.1.0-s390x".to_owned(),
    }
}

#[test]
fn the_procedure_shows_as_evidence_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let plan = example_plan();
    let verified = read_verified(&journal(dir.path(), &plan, true)).unwrap();
    let report = build(
        Path::new("/nonexistent"),
        &plan,
        &verified,
        &machine(),
        &facts(),
    );
    assert_eq!(report.run.outcome, "succeeded");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let t = &report.tokens[0];
    let before = t.apqns_before.as_ref().unwrap();
    assert_eq!(
        (before.step.as_str(), before.source.as_str()),
        ("steps[1]", "assert_wk")
    );
    assert_eq!(before.apqns[1].apqn, "0b.0011");
    assert_eq!(before.apqns[0].cur_wkvp.as_deref(), Some(OLD));
    assert_eq!(before.apqns[0].new_state, "committed");
    let after = t.apqns_after.as_ref().unwrap();
    assert_eq!(
        (after.step.as_str(), after.source.as_str()),
        ("steps[6]", "checkpoint until")
    );
    assert_eq!(after.apqns[0].cur_wkvp.as_deref(), Some(NEW));
    assert_eq!(after.apqns[0].new_state, "empty");
    let backup = t.backup.as_ref().unwrap();
    assert!(backup.verified && backup.files == 6 && backup.archive_sha256 == "ee".repeat(32));
    let migration = t.migration.as_ref().unwrap();
    assert_eq!(migration.status, "succeeded");
    assert_eq!(migration.keys_reenciphered, Some(2));
    assert_eq!(t.inventory_before.as_ref().unwrap().step, "steps[2]");
    assert_eq!(t.inventory_after.as_ref().unwrap().step, "steps[9]");
    let comparison = t.comparison.as_ref().unwrap();
    assert!(
        comparison.ok && comparison.reenciphered == 1,
        "{comparison:?}"
    );
    // Only the unit that was running counts, from its stop to its start.
    assert_eq!(report.downtime.units.len(), 1);
    assert_eq!(report.downtime.duration_ms, Some(330_500));
    assert_eq!(report.downtime.units[0].service, "apps");
    assert_eq!(report.approvals.len(), 3);
    assert_eq!(report.steps.len(), 12);
    assert_eq!(report.steps[10].status, "not_reached");
    assert_eq!(report.journal.events, verified.entries.len() as u64);
    // Deterministic: the same journal, the same bytes.
    assert_eq!(
        report.to_bytes(),
        build(
            Path::new("/nonexistent"),
            &plan,
            &verified,
            &machine(),
            &facts()
        )
        .to_bytes()
    );
}

#[test]
fn a_migration_without_probes_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let plan = example_plan();
    let verified = read_verified(&journal(dir.path(), &plan, false)).unwrap();
    let report = build(
        Path::new("/nonexistent"),
        &plan,
        &verified,
        &machine(),
        &facts(),
    );
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("no `probe_keys` inventory was taken before"),
        "{warnings}"
    );
    assert!(warnings.contains("never probed after"), "{warnings}");
    assert!(report.tokens[0].comparison.is_none());
}

#[test]
fn a_key_that_stopped_working_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let plan = example_plan();
    let path = journal(dir.path(), &plan, true);
    // Rewrite the last probe as one where the re-enciphered key fails, with a fresh chain.
    let broken = inventory("bbbb", Usability::Unusable("C_Encrypt: CKR_X".into()));
    let entries = read_verified(&path).unwrap().entries;
    std::fs::remove_file(&path).unwrap();
    let mut j = Journal::create(&path, &entries[0].run).unwrap();
    for entry in entries {
        let event = match entry.event {
            EventKind::StepSucceeded {
                step,
                summary,
                duration_ms,
                ..
            } if step.index == 9 => EventKind::StepFailed {
                step,
                error: summary,
                duration_ms,
                data: StepData::from_json(broken.clone()),
            },
            event => event,
        };
        j.append(&event).unwrap();
    }
    let report = build(
        Path::new("/nonexistent"),
        &plan,
        &read_verified(&path).unwrap(),
        &machine(),
        &facts(),
    );
    let comparison = report.tokens[0].comparison.as_ref().unwrap();
    assert!(
        !comparison.ok && comparison.newly_unusable.len() == 1,
        "{comparison:?}"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("1 no longer usable")),
        "{:?}",
        report.warnings
    );
}

/// A run directory with the example plan's journal, the plan copy and a 0600 key file.
fn run_dir() -> (tempfile::TempDir, PathBuf, HostRoot, Plan) {
    let dir = tempfile::tempdir().unwrap();
    let plan = example_plan();
    let run = dir.path().join("state/runs/20260101T100000Z-abcdef");
    std::fs::create_dir_all(&run).unwrap();
    journal(&run, &plan, true);
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plans/ep11-offline.yaml"),
    )
    .unwrap();
    std::fs::write(run.join("plan.yaml"), &text).unwrap();
    let root = HostRoot::new(dir.path().join("root"));
    let key = root.path("/etc/mkplan/signing.pem");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let pem = SoftKey::generate(Algorithm::EcdsaP256)
        .unwrap()
        .private_pem()
        .unwrap();
    std::fs::write(&key, pem).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, run, root, plan)
}

/// The example plan signs with a key file: no token is asked for a PIN or a signature.
struct NoTokens;

impl PinReader for NoTokens {
    fn read(&self, _: &PinSource, _: &dyn Operator, what: &str) -> Result<Pin, PinError> {
        Err(PinError::NotEntered {
            what: what.to_owned(),
        })
    }
}

impl TokenKeys for NoTokens {
    fn public_key_pem(
        &self,
        _: &Path,
        _: u64,
        _: &Pkcs11KeyRef,
        _: &Pin,
    ) -> Result<String, KeyError> {
        Err(KeyError::Token("no token in this test".into()))
    }

    fn sign_ecdsa_p256(
        &self,
        _: &Path,
        _: u64,
        _: &Pkcs11KeyRef,
        _: &Pin,
        _: &[u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::Token("no token in this test".into()))
    }
}

fn generate(plan: &Plan, run: &Path, root: &HostRoot) -> crate::Generated {
    let ports = SigningPorts {
        root,
        pins: &NoTokens,
        keys: std::sync::Arc::new(NoTokens),
        operator: &Nobody,
    };
    crate::generate(plan, run, &ports).unwrap()
}

fn failed(verification: &crate::verify::Verification) -> Vec<&str> {
    verification
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect()
}

#[test]
fn generated_artefacts_verify_here_and_in_the_report_dir_copy() {
    let (_dir, run, root, plan) = run_dir();
    let generated = generate(&plan, &run, &root);
    assert!(!generated.ephemeral);
    let v = verify(&run, None);
    // The recorded plan digest is synthetic here: only the plan check fails.
    assert_eq!(failed(&v), ["plan"], "{}", v.render());
    // The evidence package under `report.dir` carries its journal and verifies alone.
    let copy = generated.copy.unwrap();
    assert_eq!(
        copy,
        root.path("/var/lib/mkplan/reports/20260101T100000Z-abcdef")
    );
    std::fs::remove_file(copy.join("plan.yaml")).unwrap();
    let v = verify(&copy, None);
    assert!(v.ok(), "{}", v.render());
    assert!(v.render().contains("no plan.yaml beside the report"));
}

#[test]
fn a_journal_that_grew_after_the_report_or_a_missing_envelope_fails_precisely() {
    let (_dir, run, root, plan) = run_dir();
    std::fs::remove_file(run.join("plan.yaml")).unwrap();
    generate(&plan, &run, &root);
    assert!(verify(&run, None).ok());
    let (mut j, _) = Journal::reopen(&run.join("journal.jsonl")).unwrap();
    j.append(&EventKind::Interrupted {
        reason: "later".into(),
    })
    .unwrap();
    let v = verify(&run, None);
    assert_eq!(failed(&v), ["journal"], "{}", v.render());
    assert!(
        v.render().contains("but the report records"),
        "{}",
        v.render()
    );
    std::fs::remove_file(run.join("report.dsse.json")).unwrap();
    assert_eq!(failed(&verify(&run, None)), ["envelope", "journal"]);
}

#[test]
fn a_record_that_cannot_be_read_is_a_warning_not_a_silent_gap() {
    let dir = tempfile::tempdir().unwrap();
    let plan = example_plan();
    let path = journal(dir.path(), &plan, true);
    // The backup step's record, with a layout no mkplan wrote.
    let mut verified = read_verified(&path).unwrap();
    for entry in &mut verified.entries {
        if let EventKind::StepSucceeded { step, data, .. } = &mut entry.event
            && step.kind == KindName::Backup
        {
            let mut value = serde_json::to_value(&*data).unwrap();
            value["record"]["layout"] = json!("flat");
            *data = StepData::from_json(value);
        }
    }
    let report = build(
        Path::new("/nonexistent"),
        &plan,
        &verified,
        &machine(),
        &facts(),
    );
    assert!(report.tokens[0].backup.is_none());
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("steps[4] `") && warnings.contains("could not be read"),
        "{warnings}"
    );
}

#[test]
fn every_event_is_an_audit_entry_with_user_result_origin_and_resources() {
    use crate::model::AuditResult;
    let dir = tempfile::tempdir().unwrap();
    let plan = example_plan();
    let verified = read_verified(&journal(dir.path(), &plan, true)).unwrap();
    let report = build(
        Path::new("/nonexistent"),
        &plan,
        &verified,
        &machine(),
        &facts(),
    );
    assert_eq!(report.events.len(), verified.entries.len());
    let seqs: Vec<u64> = report.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..verified.entries.len() as u64).collect::<Vec<_>>());
    let first = &report.events[0];
    assert_eq!(
        (first.event.as_str(), first.user.as_str(), first.result),
        ("run_started", "carol", AuditResult::Success)
    );
    let origin = first.origin.as_ref().unwrap();
    assert_eq!(
        origin.summary,
        "uid 0 (login root, sudo by carol) on zlx01, tty /dev/pts/3, ssh 198.51.100.7 port 50022"
    );
    assert_eq!(first.resources, ["plan /plans/ep11-offline.yaml"]);
    assert_eq!(report.run.origin.as_ref(), Some(origin));
    // Every event carries the session's origin and a time.
    assert!(
        report
            .events
            .iter()
            .all(|e| e.origin.as_ref() == Some(origin))
    );
    assert!(report.events.iter().all(|e| e.time == clock_width(&e.time)));
    // An approval names the approver, not the operator.
    let approvals: Vec<&str> = report
        .events
        .iter()
        .filter(|e| e.event == "checkpoint_approved")
        .map(|e| e.user.as_str())
        .collect();
    assert_eq!(approvals, ["alice", "bob", "alice"]);
    let of = |kind: &str, position: &str| {
        report
            .events
            .iter()
            .find(|e| e.event == kind && e.step.as_deref().is_some_and(|s| s.starts_with(position)))
            .unwrap_or_else(|| panic!("no {kind} of {position}"))
    };
    let migrate = of("step_succeeded", "steps[5] migrate");
    assert_eq!(migrate.result, AuditResult::Success);
    assert_eq!(
        migrate.resources,
        [
            "token ep11 (slot 4, /var/lib/opencryptoki/ep11tok)",
            "APQN 0a.0011"
        ]
    );
    assert_eq!(of("step_started", "steps[5]").result, AuditResult::None);
    let stop = of("step_succeeded", "steps[3] stop");
    assert_eq!(
        stop.resources,
        ["service apps: myapp.service, httpd.service"]
    );
    let backup = of("step_succeeded", "steps[4] backup");
    assert_eq!(
        backup.resources[2..],
        [
            "backup local: /var/backups/mkplan",
            "file /var/backups/mkplan/x.tar.gz",
            "file /var/backups/mkplan/x.manifest.json"
        ]
    );
    let last = report.events.last().unwrap();
    assert_eq!(
        (last.event.as_str(), last.result),
        ("run_finished", AuditResult::Success)
    );
}

/// A time in the report's one width (`2026-01-01T10:00:00.000Z`).
fn clock_width(time: &str) -> String {
    mkplan_engine::clock::normalize_or_keep(time)
}

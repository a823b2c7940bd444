//! One host of the fleet: its report verified exactly as `mkplan report verify` does, then
//! what the fleet report needs of it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::fleet::model::{CheckRecord, FleetHost, HostApproval, HostApqn, HostRun, HostToken};
use crate::model::{ApqnTable, InventoryFacts, RunReport, TokenReport};
use crate::sign::PublicKey;
use crate::verify::{Verification, verify};
use crate::{REPORT_JSON, SIGNER_PUB};

pub const VERIFIED: &str = "verified";
pub const NOT_VERIFIED: &str = "not_verified";
pub const NO_REPORT: &str = "no_report";

/// The host whose report directory is `dir`, named `name`.
pub fn host(name: &str, dir: &Path) -> FleetHost {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    if !dir.join(REPORT_JSON).exists() {
        let detail = if dir.is_dir() {
            format!("no {REPORT_JSON} in `{}`", absolute.display())
        } else {
            format!("`{}` is not a directory", absolute.display())
        };
        return FleetHost {
            name: name.to_owned(),
            dir: Some(absolute.display().to_string()),
            status: NO_REPORT.to_owned(),
            checks: vec![CheckRecord {
                name: "report".to_owned(),
                ok: false,
                detail,
            }],
            report_sha256: None,
            signer_key_id: None,
            run: None,
        };
    }
    let verification = verify(dir, None);
    let bytes = mkplan_plan::input::read(&dir.join(REPORT_JSON), mkplan_plan::input::REPORT).ok();
    let report = bytes.as_deref().and_then(|b| RunReport::from_bytes(b).ok());
    FleetHost {
        name: name.to_owned(),
        dir: Some(absolute.display().to_string()),
        status: if verification.ok() {
            VERIFIED
        } else {
            NOT_VERIFIED
        }
        .to_owned(),
        checks: checks(&verification),
        report_sha256: bytes.map(|b| hex::encode(Sha256::digest(&b))),
        signer_key_id: signer_key_id(dir),
        run: report.as_ref().map(run),
    }
}

/// A host named with `--host` for which no report directory was given.
pub fn missing(name: &str) -> FleetHost {
    FleetHost {
        name: name.to_owned(),
        dir: None,
        status: NO_REPORT.to_owned(),
        checks: vec![CheckRecord {
            name: "report".to_owned(),
            ok: false,
            detail: "no report directory was given for this host: it was not run, or its report was not fetched".to_owned(),
        }],
        report_sha256: None,
        signer_key_id: None,
        run: None,
    }
}

pub fn checks(verification: &Verification) -> Vec<CheckRecord> {
    verification
        .checks
        .iter()
        .map(|c| CheckRecord {
            name: c.name.trim().to_owned(),
            ok: c.ok,
            detail: c.detail.clone(),
        })
        .collect()
}

fn signer_key_id(dir: &Path) -> Option<String> {
    let text =
        mkplan_plan::input::read_to_string(&dir.join(SIGNER_PUB), mkplan_plan::input::KEY).ok()?;
    PublicKey::from_pem(&text).ok().map(|k| k.key_id())
}

fn run(report: &RunReport) -> HostRun {
    let units_left_stopped = report
        .downtime
        .units
        .iter()
        .filter(|u| u.started_at.is_none())
        .map(|u| u.unit.clone())
        .collect();
    HostRun {
        run_id: report.run.id.clone(),
        outcome: report.run.outcome.clone(),
        outcome_detail: report.run.outcome_detail.clone(),
        rehearsal: report.run.rehearsal,
        hostname: report.host.hostname.clone(),
        root: report.host.root.clone(),
        operator: report.run.operator.clone(),
        started: report.run.started.clone(),
        ended: report.run.ended.clone(),
        plan_name: report.plan.name.clone(),
        plan_sha256: report.plan.sha256.clone(),
        change_ticket: report.plan.change_ticket.clone(),
        journal_head: report.journal.head.clone(),
        journal_events: report.journal.events,
        downtime_ms: downtime(report),
        units_left_stopped,
        failure: report
            .run
            .failure
            .as_ref()
            .map(|f| format!("{} `{}`: {}", f.step, f.name, f.reason)),
        tokens: report.tokens.iter().map(token).collect(),
        approvals: report
            .approvals
            .iter()
            .map(|a| HostApproval {
                checkpoint: a
                    .checkpoint_id
                    .clone()
                    .unwrap_or_else(|| a.checkpoint.clone()),
                approver: a.approver.clone(),
                method: a.method.clone(),
                time: a.time.clone(),
            })
            .collect(),
        warnings: report.warnings.clone(),
    }
}

/// Nothing stopped is no downtime; something stopped and not started again is unknown.
fn downtime(report: &RunReport) -> Option<u64> {
    if report.downtime.units.is_empty() {
        Some(0)
    } else {
        report.downtime.duration_ms
    }
}

fn token(t: &TokenReport) -> HostToken {
    let (inventory, facts) = latest(&t.inventory_after, &t.inventory_before);
    let (apqns_read, table) = latest(&t.apqns_after, &t.apqns_before);
    HostToken {
        token: t.token.clone(),
        slot: t.slot,
        wkvp_current: t.wkvp_current.clone(),
        wkvp_new: t.wkvp_new.clone(),
        inventory,
        keys: facts.map(|f: &InventoryFacts| f.keys),
        keys_usable: facts.map(|f| {
            f.usable.unwrap_or_else(|| {
                f.key_list.iter().filter(|k| k.usable == "usable").count() as u64
            })
        }),
        reenciphered: t.comparison.as_ref().map(|c| c.reenciphered),
        migration: t.migration.as_ref().map(|m| m.status.clone()),
        restore: t
            .restore
            .as_ref()
            .map(|r| r.action.clone().unwrap_or_else(|| r.status.clone())),
        apqns_read,
        apqns: table.map(apqns).unwrap_or_default(),
    }
}

/// The reading after the change if there is one, else the one before, and which it is.
fn latest<'a, T>(after: &'a Option<T>, before: &'a Option<T>) -> (Option<String>, Option<&'a T>) {
    match (after, before) {
        (Some(a), _) => (Some("after".to_owned()), Some(a)),
        (None, Some(b)) => (Some("before".to_owned()), Some(b)),
        (None, None) => (None, None),
    }
}

fn apqns(table: &ApqnTable) -> Vec<HostApqn> {
    table
        .apqns
        .iter()
        .map(|a| HostApqn {
            apqn: a.apqn.clone(),
            cur_state: a.cur_state.clone(),
            cur_wkvp: a.cur_wkvp.clone(),
            new_state: a.new_state.clone(),
            new_wkvp: a.new_wkvp.clone(),
        })
        .collect()
}

//! `stop`: a service group, unit by unit (each running one journaled before it is stopped,
//! so `start` knows even if the run dies half-way). After stopping, /proc proves no process
//! (other than mkplan's own children) still uses a token (opencryptoki-ep11.md 4).

use std::time::Instant;

use serde_json::json;

use crate::engine::clock::now_rfc3339;
use crate::engine::crash_hooks::kill_point;
use crate::engine::events::EventKind;
use crate::engine::ports::host::ServiceVerb;
use crate::engine::step::{
    CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess,
};
use crate::plan::model::{Section, ServiceId, StepKind};
use crate::steps::guards::users::{describe_users, token_users};
use crate::steps::units::{DEFAULT_TIMEOUT, units};

pub fn stop(id: &ServiceId, cx: &mut RunContext<'_>) -> StepResult {
    let service = &cx.plan.services[id];
    let deadline = cx
        .deadline
        .unwrap_or_else(|| Instant::now() + DEFAULT_TIMEOUT);
    let mut records = Vec::new();
    let all = units(service);
    for (i, unit) in all.iter().enumerate() {
        let was_active = unit
            .is_active(cx.host, cx.plan, deadline, cx.cancel)
            .map_err(|e| StepError::failed_with(e, json!({ "units": records })))?;
        if was_active {
            // Journaled before it acts: `start` must know even if this run dies half-way.
            let step = cx.step_ref();
            cx.emit(EventKind::UnitStopping {
                step,
                unit: unit.name.clone(),
            })
            .map_err(|e| StepError::failed_with(e.to_string(), json!({ "units": records })))?;
        }
        if was_active
            && let Err(e) = unit.change(cx.host, cx.plan, ServiceVerb::Stop, deadline, cx.cancel)
        {
            // Record it as stopped anyway: `always` must try to start it again.
            records.push(json!({ "unit": unit.name, "was_active": true, "stopped_at": now_rfc3339(), "stop_failed": true }));
            return Err(StepError::failed_with(e, json!({ "units": records })));
        }
        records.push(
            json!({ "unit": unit.name, "was_active": was_active, "stopped_at": now_rfc3339() }),
        );
        cx.progress(i as u64 + 1, Some(all.len() as u64), unit.name.clone());
        if i + 1 < all.len() {
            kill_point("stop:unit");
        }
    }
    let scan = token_users(cx.host, cx.plan);
    let (users, scanned, unreadable) = (scan.users, scan.scanned, scan.unreadable);
    let data = json!({
        "units": records,
        "scan": { "scanned": scanned, "unreadable": unreadable, "users": users },
    });
    if !users.is_empty() {
        let listed = describe_users(&users);
        if let Some(later) = later_stop(cx) {
            // Another group is stopped before anything touches the tokens; the proof is
            // owed after that one (and `migrate` re-checks right before the tool starts).
            return Ok(StepSuccess::new(format!(
                "stopped `{id}`; {} process(es) still use a token until `{later}` runs: {listed}",
                users.len()
            ))
            .with_data(data));
        }
        return Err(StepError::failed_with(
            format!(
                "after stopping `{id}`, {} process(es) still use a token: {listed}",
                users.len()
            ),
            data,
        ));
    }
    let stopped = records.iter().filter(|r| r["was_active"] == true).count();
    Ok(StepSuccess::new(format!(
        "stopped {stopped} of {} unit(s) of `{id}`; no process uses a token ({scanned} processes scanned, {unreadable} unreadable)",
        records.len()
    ))
    .with_data(data))
}

/// The name of a later `stop` in the same section that runs before the next step that
/// touches a token store (backup, migrate, restore), if there is one.
fn later_stop(cx: &RunContext<'_>) -> Option<String> {
    let section = match cx.step.section {
        Section::Steps => &cx.plan.steps,
        Section::Rescue => &cx.plan.rescue,
        Section::Always => &cx.plan.always,
    };
    section[cx.step.index + 1..]
        .iter()
        .take_while(|s| {
            !matches!(
                s.kind,
                StepKind::Backup(_) | StepKind::Migrate(_) | StepKind::Restore(_)
            )
        })
        .find(|s| matches!(s.kind, StepKind::Stop(_)))
        .map(|s| s.name.clone())
}

pub fn check_stop(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
    let service = &cx.plan.services[id];
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let cancel = crate::engine::cancel::Cancel::new();
    let mut states = Vec::new();
    for unit in units(service) {
        match unit.is_active(cx.host, cx.plan, deadline, &cancel) {
            Ok(active) => states.push(format!(
                "`{}` ({})",
                unit.name,
                if active { "active now" } else { "inactive now" }
            )),
            Err(e) => return CheckReport::Blocked(e),
        }
    }
    let scan = token_users(cx.host, cx.plan);
    let (users, unreadable) = (scan.users, scan.unreadable);
    CheckReport::WillRun(format!(
        "would stop {}; then prove no process uses a token (now {} do{}{})",
        states.join(", "),
        users.len(),
        if users.is_empty() {
            String::new()
        } else {
            format!(": {}", describe_users(&users))
        },
        if unreadable > 0 {
            format!("; {unreadable} processes unreadable")
        } else {
            String::new()
        }
    ))
}

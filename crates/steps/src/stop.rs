//! `stop`: a service group, unit by unit (each running one journaled before it is stopped,
//! so `start` knows even if the run dies half-way). After stopping, /proc proves no process
//! (other than mkplan's own children) still uses a token (opencryptoki-ep11.md 4).

use std::time::Instant;

use crate::guards::users::{describe_users, token_users};
use crate::kind::{Done, Failed, Kind, KindResult};
use crate::units::{DEFAULT_TIMEOUT, units};
use mkplan_engine::clock::now_rfc3339;
use mkplan_engine::crash_hooks::kill_point;
use mkplan_engine::events::EventKind;
use mkplan_engine::ports::host::ServiceVerb;
use mkplan_engine::record::services::{StopOutput, UnitStopped};
use mkplan_engine::record::users::ScanSummary;
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::{Section, ServiceId, StepKind};

/// `stop`.
pub(crate) struct StopKind;

impl Kind for StopKind {
    type Args = ServiceId;
    type Output = StopOutput;

    fn check(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
        check(id, cx)
    }

    fn run(id: &ServiceId, cx: &mut RunContext<'_>) -> KindResult<StopOutput> {
        stop(id, cx)
    }
}

/// The units stopped so far, as a failure records them.
fn failed(message: impl std::fmt::Display, units: &[UnitStopped]) -> Failed<StopOutput> {
    Failed::with(
        message,
        StopOutput {
            units: units.to_vec(),
            scan: None,
        },
    )
}

fn stop(id: &ServiceId, cx: &mut RunContext<'_>) -> KindResult<StopOutput> {
    let service = &cx.plan.services[id];
    let deadline = cx
        .deadline
        .unwrap_or_else(|| Instant::now() + DEFAULT_TIMEOUT);
    let mut records = Vec::new();
    let all = units(service);
    for (i, unit) in all.iter().enumerate() {
        let was_active = unit
            .is_active(cx.host, cx.plan, deadline, cx.cancel)
            .map_err(|e| failed(e, &records))?;
        if was_active {
            // Journaled before it acts: `start` must know even if this run dies half-way.
            let step = cx.step_ref();
            cx.emit(EventKind::UnitStopping {
                step,
                unit: unit.name.clone(),
            })
            .map_err(|e| failed(e.to_string(), &records))?;
        }
        if was_active
            && let Err(e) = unit.change(cx.host, cx.plan, ServiceVerb::Stop, deadline, cx.cancel)
        {
            // Record it as stopped anyway: `always` must try to start it again.
            records.push(UnitStopped {
                unit: unit.name.clone(),
                was_active: true,
                stopped_at: Some(now_rfc3339()),
                stop_failed: true,
            });
            return Err(failed(e, &records));
        }
        records.push(UnitStopped {
            unit: unit.name.clone(),
            was_active,
            stopped_at: Some(now_rfc3339()),
            stop_failed: false,
        });
        cx.progress(i as u64 + 1, Some(all.len() as u64), unit.name.clone());
        if i + 1 < all.len() {
            kill_point("stop:unit");
        }
    }
    let scan = ScanSummary::from(token_users(cx.host, cx.plan));
    let (count, scanned, unreadable) = (scan.users.len(), scan.scanned, scan.unreadable);
    let listed = describe_users(&scan.users);
    let stopped = records.iter().filter(|r| r.was_active).count();
    let total = records.len();
    let output = StopOutput {
        units: records,
        scan: Some(scan),
    };
    if count > 0 {
        if let Some(later) = later_stop(cx) {
            // Another group is stopped before anything touches the tokens; the proof is
            // owed after that one (and `migrate` re-checks right before the tool starts).
            return Ok(Done::new(format!(
                "stopped `{id}`; {count} process(es) still use a token until `{later}` runs: {listed}"
            ))
            .with(output));
        }
        return Err(Failed::with(
            format!("after stopping `{id}`, {count} process(es) still use a token: {listed}"),
            output,
        ));
    }
    Ok(Done::new(format!(
        "stopped {stopped} of {total} unit(s) of `{id}`; no process uses a token ({scanned} processes scanned, {unreadable} unreadable)"
    ))
    .with(output))
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

fn check(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
    let service = &cx.plan.services[id];
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let cancel = mkplan_engine::cancel::Cancel::new();
    let mut states = Vec::new();
    for unit in units(service) {
        match unit.is_active(cx.host, cx.plan, deadline, &cancel) {
            Ok(active) => states.push(format!(
                "`{}` ({})",
                unit.name,
                if active { "active now" } else { "inactive now" }
            )),
            Err(e) => return CheckReport::Blocked(e.to_string()),
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

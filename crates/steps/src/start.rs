//! `start`: a service group in reverse stop order; in `always` only what this run stopped,
//! known from the journal. Refused while a token this run may have re-enciphered is neither
//! restored nor under the new WK everywhere (design rule 3), and while a migration tool
//! rewrites a token (rule 8).

use std::time::Instant;

use crate::guards::backup::migration_may_have_started;
use crate::guards::mk::{MkNeed, check_cca};
use crate::guards::tools::refuse_while_tools_run;
use crate::guards::wk::read_and_evaluate;
use crate::kind::{Done, Failed, Kind, KindResult};
use crate::units::{DEFAULT_TIMEOUT, Unit, stopped_by_run, units};
use mkplan_engine::clock::now_rfc3339;
use mkplan_engine::crash_hooks::kill_point;
use mkplan_engine::ports::host::ServiceVerb;
use mkplan_engine::record::backup::{RestoreAction, RestoreOutput};
use mkplan_engine::record::services::{StartOutput, UnitStarted};
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::{AssertWk, CurrentWk, NewWk, Section, ServiceId, StepKind};

/// Design rule 3, live: a token this run may have re-enciphered must either have been
/// restored, or show the new WK as current on every APQN, before applications start; else
/// they would come up against keys that cannot work.
fn refuse_unverified_start(cx: &RunContext<'_>) -> Result<(), Failed<StartOutput>> {
    for token in cx.plan.tokens.values() {
        // Rule 8: never start applications under a tool that rewrites the token.
        refuse_while_tools_run(cx.host, cx.plan, token, "start services").map_err(Failed::step)?;
        if !migration_may_have_started(cx.plan, cx.state, &token.id) {
            continue;
        }
        // A restore step that put the backup back, or found the store identical to it.
        let restored = cx.state.succeeded::<RestoreOutput>().any(|(_, r)| {
            r.token == token.id
                && matches!(r.action, RestoreAction::Restored | RestoreAction::Unchanged)
        });
        if restored {
            continue;
        }
        if token.is_cca() {
            let mks: Vec<_> = token.mks.keys().copied().collect();
            if let Err(problems) = check_cca(cx.host, token, &mks, MkNeed::NewCurrent) {
                return Err(Failed::step(format!(
                    "not starting services: CCA token `{}` was re-enciphered in this run, but the new master keys are not current on every APQN ({}) and the store was not restored, so applications would start against keys that do not work; set the new MKs on the TKE, then start the services",
                    token.id,
                    problems.join("; ")
                )));
            }
            continue;
        }
        let active = AssertWk {
            token: token.id.clone(),
            current: CurrentWk::New,
            new: NewWk::Any,
        };
        if let Err(problems) = read_and_evaluate(cx.host, cx.plan, &active) {
            return Err(Failed::step(format!(
                "not starting services: token `{}` was re-enciphered in this run, but the new WK is not current on every APQN ({problems}) and the store was not restored, so applications would start against keys that do not work; finish the activation on the TKE, then start the services",
                token.id
            )));
        }
    }
    Ok(())
}

/// `start`.
pub(crate) struct StartKind;

impl Kind for StartKind {
    type Args = ServiceId;
    type Output = StartOutput;

    fn check(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
        check(id, cx)
    }

    fn run(id: &ServiceId, cx: &mut RunContext<'_>) -> KindResult<StartOutput> {
        start(id, cx)
    }
}

/// The units started so far, as a failure records them.
fn failed(message: impl std::fmt::Display, units: &[UnitStarted]) -> Failed<StartOutput> {
    Failed::with(
        message,
        StartOutput {
            units: units.to_vec(),
        },
    )
}

fn start(id: &ServiceId, cx: &mut RunContext<'_>) -> KindResult<StartOutput> {
    refuse_unverified_start(cx)?;
    let service = &cx.plan.services[id];
    let deadline = cx
        .deadline
        .unwrap_or_else(|| Instant::now() + DEFAULT_TIMEOUT);
    let mut to_start: Vec<Unit<'_>> = match stopped_by_run(cx.plan, cx.state, id) {
        Some(names) => units(service)
            .into_iter()
            .filter(|u| names.contains(&u.name))
            .collect(),
        None if cx.step.section == Section::Always => Vec::new(),
        None => units(service),
    };
    to_start.reverse();
    if to_start.is_empty() {
        return Ok(Done::new(format!(
            "nothing to start: this run stopped no unit of `{id}`"
        )));
    }
    let mut records = Vec::new();
    let total = to_start.len();
    for (i, unit) in to_start.iter().enumerate() {
        let running = unit
            .is_active(cx.host, cx.plan, deadline, cx.cancel)
            .map_err(|e| failed(e, &records))?;
        if !running {
            unit.change(cx.host, cx.plan, ServiceVerb::Start, deadline, cx.cancel)
                .map_err(|e| failed(e, &records))?;
        }
        records.push(UnitStarted {
            unit: unit.name.clone(),
            already_running: running,
            started_at: Some(now_rfc3339()),
        });
        cx.progress(i as u64 + 1, Some(total as u64), unit.name.clone());
        if i + 1 < total {
            kill_point("start:unit");
        }
    }
    Ok(Done::new(format!("{total} unit(s) of `{id}` are active"))
        .with(StartOutput { units: records }))
}

fn check(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
    let stopped_earlier = cx
        .earlier
        .iter()
        .any(|s| matches!(&s.kind, StepKind::Stop(x) if x == id));
    let names: Vec<String> = units(&cx.plan.services[id])
        .into_iter()
        .map(|u| format!("`{}`", u.name))
        .collect();
    if cx.step.section == Section::Always || stopped_earlier {
        CheckReport::WillRun(format!(
            "would start again what the run stopped of {}",
            names.join(", ")
        ))
    } else {
        CheckReport::WillRun(format!("would start {}", names.join(", ")))
    }
}

//! The concurrent change's part of the report, from the journal's typed records: per
//! operation its ID, its new WK and CCA MK patterns, phases (with times and the WK or CCA MK
//! state each read), parks, the time between
//! reencipher and finalize, and downtime 0 when nothing was stopped.

use crate::model_concurrent::{ConcurrentChange, ParkFacts, PhaseFacts};
use crate::timeline::{Timeline, millis_between, same_step};
use mkplan_engine::events::{EventKind, StepRef};
use mkplan_engine::journal::Verified;
use mkplan_engine::record::Record;
use mkplan_engine::record::checkpoint::CheckpointOutput;
use mkplan_engine::record::mk_change::{
    CancelOutput, EndAction, EndOutput, FinalizeOutput, OperationSource, ReencipherOutput,
};
use mkplan_engine::record::wk::{CcaMasterKeys, CcaMkType, CcaVp, WkTable};
use mkplan_engine::state::RunState;
use mkplan_plan::model::{Plan, ReencipherStep, Step, StepKind, TkeAction};

/// Every operation of the plan's reencipher steps.
pub(crate) fn concurrent(
    plan: &Plan,
    journal: &Verified,
    timeline: &Timeline<'_>,
    state: &RunState,
    stopped_any: bool,
    warnings: &mut Vec<String>,
) -> Vec<ConcurrentChange> {
    let simulated_clock = journal.entries.iter().rev().find_map(|e| match &e.event {
        EventKind::Resumed {
            simulated_clock, ..
        } => simulated_clock.clone(),
        _ => None,
    });
    let mut out = Vec::new();
    for (index, step) in plan.steps.iter().enumerate() {
        let StepKind::MkReencipher(op) = &step.kind else {
            continue;
        };
        let change = one(
            plan,
            timeline,
            state,
            (index, step, op),
            stopped_any,
            simulated_clock.clone(),
        );
        warn(&change, warnings);
        out.push(change);
    }
    out
}

fn one(
    plan: &Plan,
    timeline: &Timeline<'_>,
    state: &RunState,
    (index, step, op): (usize, &Step, &ReencipherStep),
    stopped_any: bool,
    simulated_clock: Option<String>,
) -> ConcurrentChange {
    let reenciphered = last_output(timeline, step).and_then(|o| ReencipherOutput::of(&o).cloned());
    let mut phases = vec![phase("reencipher", timeline, step, |o| {
        ReencipherOutput::of(o).map(|r| (1, wk_lines(&r.apqns_before)))
    })];
    let mut end: Option<(&Step, Option<EndAction>)> = None;
    for later in &plan.steps[index + 1..] {
        match &later.kind {
            StepKind::Checkpoint(c)
                if c.tke == Some(TkeAction::Activate)
                    && c.until
                        .as_ref()
                        .is_some_and(|u| op.tokens.contains(u.check.token())) =>
            {
                phases.push(phase("activation", timeline, later, |o| {
                    CheckpointOutput::of(o).map(|c| {
                        let mk = c.until_mk.as_ref().map(|t| WkTable {
                            token: t.token.clone(),
                            apqns: t.apqns.clone(),
                        });
                        let read: Vec<WkTable> = c.until.iter().cloned().chain(mk).collect();
                        (1, wk_lines(&read))
                    })
                }));
            }
            StepKind::SetExpectedWkvp(e) if op.tokens.contains(&e.token) => {
                phases.push(phase("expected_wkvp", timeline, later, |_| None));
            }
            StepKind::SetExpectedMkvps(e) if op.tokens.contains(&e.token) => {
                phases.push(phase("expected_mkvps", timeline, later, |_| None));
            }
            StepKind::MkFinalize(e) if e.of_index == index => {
                phases.push(phase("finalize", timeline, later, |o| {
                    FinalizeOutput::of(o).map(|f| end_facts(&f.0))
                }));
                end = Some((later, ended(timeline, later)));
            }
            _ => {}
        }
    }
    for later in &plan.rescue {
        if let StepKind::MkCancel(e) = &later.kind
            && e.of_index == index
            && last_output(timeline, later).is_some()
        {
            phases.push(phase("cancel", timeline, later, |o| {
                CancelOutput::of(o).map(|c| end_facts(&c.0))
            }));
            end = Some((later, ended(timeline, later)));
        }
    }
    let outcome = match (&reenciphered, end.and_then(|(_, a)| a)) {
        (_, Some(EndAction::Finalized | EndAction::AlreadyDone))
            if end.is_some_and(|(s, _)| matches!(s.kind, StepKind::MkFinalize(_))) =>
        {
            "finalized"
        }
        (_, Some(EndAction::Cancelled)) => "cancelled",
        (_, Some(_)) => "nothing to cancel",
        (Some(r), None) if r.operation.is_some() => "re-enciphered (not ended)",
        _ => "not created",
    };
    let reencipher_end = phases[0].ended.clone();
    let end_time = end.and_then(|(s, _)| {
        phases
            .iter()
            .find(|p| p.step == StepRef::of(s).position())
            .and_then(|p| p.ended.clone())
    });
    let between = reencipher_end
        .zip(end_time)
        .and_then(|(a, b)| millis_between(&a, &b));
    ConcurrentChange {
        operation: reenciphered
            .as_ref()
            .and_then(|r| r.operation.as_ref())
            .map(|id| id.to_string()),
        operation_source: reenciphered
            .as_ref()
            .and_then(|r| r.source)
            .map(source_word),
        tokens: op.tokens.iter().map(|t| t.to_string()).collect(),
        apqns: plan
            .apqns_of(&op.tokens)
            .iter()
            .map(|a| a.lszcrypt())
            .collect(),
        new_wkvp: reenciphered
            .as_ref()
            .map(|r| r.new_wkvp.clone())
            .unwrap_or_default(),
        new_cca_mkvps: reenciphered
            .as_ref()
            .map(|r| r.new_cca_mkvps.clone())
            .unwrap_or_default(),
        outcome: outcome.to_owned(),
        downtime_ms: (!stopped_any).then_some(0),
        phases,
        parks: parks(state),
        reencipher_to_end_ms: between,
        reencipher_to_end: between.map(words),
        simulated_clock,
    }
}

fn source_word(source: OperationSource) -> String {
    match source {
        OperationSource::Printed => "printed",
        OperationSource::Journaled => "journaled",
        OperationSource::Adopted => "adopted",
    }
    .to_owned()
}

fn end_facts(end: &EndOutput) -> (u32, Vec<String>) {
    (end.attempts.len() as u32, wk_lines(&end.apqns_after))
}

fn last_output(timeline: &Timeline<'_>, step: &Step) -> Option<mkplan_engine::record::StepOutput> {
    let me = StepRef::of(step);
    timeline
        .outcomes
        .iter()
        .rev()
        .find(|o| same_step(o.step, &me))
        .map(|o| o.output.clone())
}

fn ended(timeline: &Timeline<'_>, step: &Step) -> Option<EndAction> {
    let output = last_output(timeline, step)?;
    FinalizeOutput::of(&output)
        .and_then(|f| f.0.action)
        .or_else(|| CancelOutput::of(&output).and_then(|c| c.0.action))
}

fn phase(
    name: &str,
    timeline: &Timeline<'_>,
    step: &Step,
    facts: impl Fn(&mkplan_engine::record::StepOutput) -> Option<(u32, Vec<String>)>,
) -> PhaseFacts {
    let me = StepRef::of(step);
    let outcome = timeline
        .outcomes
        .iter()
        .rev()
        .find(|o| same_step(o.step, &me));
    let started = timeline.last_start(me.section, me.index).map(str::to_owned);
    let ended = outcome.map(|o| o.time.to_owned());
    let (attempts, wk_state) = outcome.and_then(|o| facts(&o.output)).unwrap_or_default();
    PhaseFacts {
        phase: name.to_owned(),
        step: me.position(),
        name: step.name.clone(),
        status: match (outcome, &started) {
            (Some(o), _) if o.succeeded => "succeeded",
            (Some(_), _) => "failed",
            (None, Some(_)) => "parked",
            (None, None) => "not reached",
        }
        .to_owned(),
        duration_ms: started
            .as_deref()
            .zip(ended.as_deref())
            .and_then(|(a, b)| millis_between(a, b)),
        started,
        ended,
        attempts,
        wk_state,
    }
}

fn wk_lines(tables: &[WkTable]) -> Vec<String> {
    let vp = |vp: Option<[u8; 32]>| {
        vp.map_or_else(String::new, |v| {
            format!(
                " 0x{}",
                v[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        })
    };
    tables
        .iter()
        .flat_map(|t| t.apqns.iter())
        .map(|s| {
            if let Some(cca) = &s.cca {
                return format!("{}: {}", s.apqn.lszcrypt(), cca_words(cca));
            }
            format!(
                "{}: current {}{}, new {}{}",
                s.apqn.lszcrypt(),
                format!("{:?}", s.cur.state).to_lowercase(),
                vp(s.cur.vp),
                format!("{:?}", s.new.state).to_lowercase(),
                vp(s.new.vp)
            )
        })
        .collect()
}

/// `AES CUR valid 0x…, NEW full 0x…, OLD invalid; APKA …`: a CCA card's registers.
fn cca_words(cca: &CcaMasterKeys) -> String {
    let register = |state: &str, vp: Option<&CcaVp>| match vp {
        Some(vp) => format!("{state} {vp}"),
        None => state.to_owned(),
    };
    CcaMkType::ALL
        .iter()
        .filter_map(|mk| Some((mk, cca.get(*mk)?)))
        .map(|(mk, r)| {
            format!(
                "{mk} CUR {}, NEW {}, OLD {}",
                register(r.cur.state.word(), r.cur.vp.as_ref()),
                register(r.new.state.word(), r.new.vp.as_ref()),
                register(r.old.state.word(), r.old.vp.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn parks(state: &RunState) -> Vec<ParkFacts> {
    state
        .parks
        .iter()
        .map(|p| ParkFacts {
            step: p.step.position(),
            parked_at: p.at.clone(),
            resumed_at: p.resumed.as_ref().map(|(at, _)| at.clone()),
            resumed_by: p.resumed.as_ref().map(|(_, by)| by.clone()),
            parked_ms: p
                .resumed
                .as_ref()
                .and_then(|(at, _)| millis_between(&p.at, at)),
            waiting_for: p.waiting_for.clone(),
        })
        .collect()
}

/// `3 days 0 h 2 min`.
fn words(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match days {
        0 => format!("{hours} h {minutes} min"),
        1 => format!("1 day {hours} h {minutes} min"),
        d => format!("{d} days {hours} h {minutes} min"),
    }
}

fn warn(change: &ConcurrentChange, warnings: &mut Vec<String>) {
    let id = change.operation.as_deref().unwrap_or("(none)");
    if let Some(clock) = &change.simulated_clock {
        warnings.push(format!("rehearsal: the time between the park and the resume was simulated ({clock}), not waited"));
    }
    if change.operation_source.as_deref() == Some("adopted") {
        warnings.push(format!("operation {id} was adopted after an interruption (found by `pkcshsm_mk_change list`, not seen created by this run)"));
    }
    if change.outcome == "re-enciphered (not ended)" {
        warnings.push(format!("operation {id} is still re-enciphered: its tokens use one APQN only until it is finalized or cancelled"));
    }
    for phase in change.phases.iter().filter(|p| p.attempts > 1) {
        warnings.push(format!(
            "{} of operation {id} needed {} attempts (the first left it in ERROR)",
            phase.phase, phase.attempts
        ));
    }
    if change
        .parks
        .iter()
        .any(|p| p.parked_ms.is_some_and(|ms| ms > 7 * 86_400_000))
    {
        warnings.push(format!(
            "operation {id} was parked longer than 7 days (single-APQN mode meanwhile)"
        ));
    }
}

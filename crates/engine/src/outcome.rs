//! How a run ended, decided from the journal alone, and what that means in words. A run is
//! `rescued` only when its rescue put something back: a rescue whose restores found nothing
//! to restore leaves the run `failed`, and the words say that nothing had changed.

use crate::events::Outcome;
use crate::record::Record;
use crate::record::backup::{RestoreAction, RestoreOutput};
use crate::record::mk_change::{CancelOutput, EndAction};
use crate::state::{RunState, StepRecord, StepStatus};
use mkplan_plan::model::{Plan, Section, StepKind};

/// The outcome of a run whose `always` section has run.
pub fn decide(plan: &Plan, state: &RunState) -> Outcome {
    match &state.failure {
        None if failed(state, Section::Always).is_some() => Outcome::Failed,
        None => Outcome::Succeeded,
        Some((_, true)) if failed(state, Section::Rescue).is_none() => Outcome::Aborted,
        Some((_, false))
            if !plan.rescue.is_empty()
                && failed(state, Section::Rescue).is_none()
                && (restores(plan, state).is_empty() || !restored(plan, state).is_empty()) =>
        {
            Outcome::Rescued
        }
        Some(_) => Outcome::Failed,
    }
}

/// One sentence: what failed, and what the rescue did about it.
pub fn describe(plan: &Plan, state: &RunState) -> String {
    let Some((step, denied)) = &state.failure else {
        return match failed(state, Section::Always) {
            Some(r) => format!("every main step succeeded, but {} failed", shown(r)),
            None => "every step succeeded".to_owned(),
        };
    };
    let what = if *denied {
        format!("checkpoint {} `{}` was denied", step.position(), step.name)
    } else {
        format!("{} `{}` failed", step.position(), step.name)
    };
    if plan.rescue.is_empty() {
        return format!("{what}; the plan has no rescue");
    }
    if let Some(r) = failed(state, Section::Rescue) {
        return format!("{what}, and rescue did not complete: {} failed", shown(r));
    }
    let restored = restored(plan, state);
    let all = restores(plan, state);
    if !restored.is_empty() && restored.iter().all(|r| r.starts_with("operation ")) {
        let keys = match plan.tokens.values().any(|t| t.is_cca()) {
            true => "current WK or MKs",
            false => "current WK",
        };
        format!(
            "{what}; rescue cancelled {}: every key stays under the {keys}",
            restored.join(", ")
        )
    } else if !restored.is_empty() {
        format!(
            "{what}; rescue restored {} from this run's verified backup",
            restored.join(", ")
        )
    } else if all.is_empty() {
        format!("{what}; rescue ran and restored no token store (it has no `restore`)")
    } else {
        let said: Vec<String> = all.iter().map(|r| summary(r)).collect();
        format!("{what}; rescue restored nothing: {}", said.join("; "))
    }
}

fn shown(record: &StepRecord) -> String {
    format!("{} `{}`", record.step.position(), record.step.name)
}

fn summary(record: &StepRecord) -> String {
    match &record.status {
        StepStatus::Succeeded { summary, .. } => summary.clone(),
        StepStatus::Skipped { reason } => format!("skipped ({reason})"),
        StepStatus::Failed { error, .. } => error.clone(),
        StepStatus::Started { .. } => "not finished".to_owned(),
    }
}

/// The first step of `section` that failed.
fn failed(state: &RunState, section: Section) -> Option<&StepRecord> {
    state
        .steps
        .values()
        .find(|r| r.step.section == section && matches!(r.status, StepStatus::Failed { .. }))
}

/// The rescue's steps that undo a change (`restore`, `mk_change: {cancel}`) that ran, in
/// order.
fn restores<'s>(plan: &Plan, state: &'s RunState) -> Vec<&'s StepRecord> {
    plan.rescue
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Restore(_) | StepKind::MkCancel(_)))
        .filter_map(|s| state.record(Section::Rescue, s.index))
        .collect()
}

/// What those steps actually undid: the tokens (as `` `name` ``) a `restore` put back, and
/// the operations (as `operation ID`) a cancel cancelled.
fn restored(plan: &Plan, state: &RunState) -> Vec<String> {
    restores(plan, state)
        .into_iter()
        .filter_map(|r| match &r.status {
            StepStatus::Succeeded { output, .. } => RestoreOutput::of(output)
                .filter(|r| r.action == RestoreAction::Restored)
                .map(|r| format!("`{}`", r.token))
                .or_else(|| {
                    CancelOutput::of(output)
                        .filter(|c| c.0.action == Some(EndAction::Cancelled))
                        .and_then(|c| c.0.operation.as_ref())
                        .map(|id| format!("operation {id}"))
                }),
            _ => None,
        })
        .collect()
}

//! The journal's step events in order, each outcome with where its attempt started: what
//! the report's parts (steps, tokens, downtime) read the run from.

use mkplan_engine::events::{EventKind, StepRef};
use mkplan_engine::journal::Verified;
use mkplan_engine::record::StepOutput;
use mkplan_plan::model::{Plan, Section, Step};

/// A step's outcome in the journal, with where its last attempt started.
pub(crate) struct StepOutcome<'a> {
    pub seq: u64,
    /// The `step_started` of this attempt.
    pub start_seq: u64,
    pub time: &'a str,
    pub step: &'a StepRef,
    pub succeeded: bool,
    pub text: &'a str,
    /// Its record, read back by the step's kind.
    pub output: StepOutput,
}

/// The journal's step events in order.
pub(crate) struct Timeline<'a> {
    pub outcomes: Vec<StepOutcome<'a>>,
    /// `step_started` events: (seq, time, step).
    pub starts: Vec<(u64, &'a str, &'a StepRef)>,
}

impl<'a> Timeline<'a> {
    pub(crate) fn of(journal: &'a Verified) -> Self {
        let mut outcomes = Vec::new();
        let mut starts: Vec<(u64, &str, &StepRef)> = Vec::new();
        for entry in &journal.entries {
            let (step, succeeded, text, data) = match &entry.event {
                EventKind::StepStarted { step, .. } => {
                    starts.push((entry.seq, &entry.time, step));
                    continue;
                }
                EventKind::StepSucceeded {
                    step,
                    summary,
                    data,
                    ..
                } => (step, true, summary, data),
                EventKind::StepFailed {
                    step, error, data, ..
                } => (step, false, error, data),
                _ => continue,
            };
            let start_seq = starts
                .iter()
                .rev()
                .find(|(_, _, s)| same_step(s, step))
                .map_or(entry.seq, |(seq, _, _)| *seq);
            outcomes.push(StepOutcome {
                seq: entry.seq,
                start_seq,
                time: &entry.time,
                step,
                succeeded,
                text,
                output: data.decode(step.kind),
            });
        }
        Self { outcomes, starts }
    }

    pub(crate) fn last_start(&self, section: Section, index: usize) -> Option<&'a str> {
        self.starts
            .iter()
            .rev()
            .find(|(_, _, s)| s.section == section && s.index == index)
            .map(|(_, time, _)| *time)
    }
}

pub(crate) fn same_step(a: &StepRef, b: &StepRef) -> bool {
    a.section == b.section && a.index == b.index
}

/// The plan's step a journal event names.
pub(crate) fn plan_step<'p>(plan: &'p Plan, step: &StepRef) -> Option<&'p Step> {
    plan.step_at(step.section, step.index)
}

/// Milliseconds between two RFC 3339 times, when both parse and `to` is not earlier.
pub(crate) fn millis_between(from: &str, to: &str) -> Option<u64> {
    let from: jiff::Timestamp = from.parse().ok()?;
    let to: jiff::Timestamp = to.parse().ok()?;
    u64::try_from(to.duration_since(from).as_millis()).ok()
}

/// The first line, at most 300 characters: a summary, not a log.
pub(crate) fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim_end();
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

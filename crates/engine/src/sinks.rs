//! Consumers of the event stream besides the journal: log lines through `tracing` (human or
//! JSON, chosen by the subscriber the CLI installs), progress bars for running steps (only
//! when the tracing-indicatif layer is installed, i.e. on a terminal). The recap is built
//! from the journal's replayed state, not from a sink, so a resumed run recaps all of it.

use std::time::{Duration, Instant};

use tracing::{Span, error, info, info_span, warn};
use tracing_indicatif::span_ext::IndicatifSpanExt;

use crate::events::EventKind;
use crate::journal::Entry;
use crate::ports::operator::Operator;
use crate::record::mk_change::Milestone;

pub trait Sink {
    /// `entry` is set when the event was journaled.
    fn event(&mut self, event: &EventKind, entry: Option<&Entry>);
    fn finish(&mut self) {}
}

/// The target of progress log lines: a terminal's log layer leaves them out (its bar shows
/// the same), every other log shows them.
pub const PROGRESS_TARGET: &str = "mkplan::progress";

/// The first progress line of a step comes this long after it started; then one at most
/// every [`PROGRESS_EVERY`], so a log tailed over ssh is seen moving.
const PROGRESS_FIRST: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Log lines (and progress bars) through `tracing`.
#[derive(Default)]
pub struct LogSink {
    running: Option<Span>,
    /// When the running step started, and when its last progress line was logged.
    step_started: Option<Instant>,
    progress_logged: Option<Instant>,
    /// The operator shows checkpoint texts at the terminal these lines go to: the line
    /// names the text by its digest instead of printing it a second time.
    texts_on_terminal: bool,
}

impl LogSink {
    /// A sink for a run whose checkpoint texts `operator` shows (or not) itself.
    pub fn new(operator: &dyn Operator) -> Self {
        Self {
            running: None,
            step_started: None,
            progress_logged: None,
            texts_on_terminal: operator.at_terminal(),
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl Sink for LogSink {
    fn event(&mut self, event: &EventKind, entry: Option<&Entry>) {
        let seq = entry.map(|e| e.seq);
        let kind = event.name();
        match event {
            EventKind::RunStarted {
                plan_name,
                plan_sha256,
                change_ticket,
                rehearsal,
                ..
            } => info!(
                seq,
                kind,
                rehearsal,
                run = entry.map(|e| e.run.as_str()),
                "{}run started: `{plan_name}` ({change_ticket}), plan sha256 {plan_sha256}",
                if *rehearsal { "REHEARSAL " } else { "" }
            ),
            EventKind::Resumed { operator, .. } => info!(seq, kind, "run resumed by {operator}"),
            EventKind::StepStarted { step, .. } => {
                info!(
                    seq,
                    kind,
                    step = step.position(),
                    "▶ {} {}",
                    step.position(),
                    step.name
                );
                let span = info_span!("step", name = %step.name);
                span.pb_set_message(&format!("{} {}", step.position(), step.name));
                span.pb_start();
                self.running = Some(span);
                self.step_started = Some(Instant::now());
                self.progress_logged = None;
            }
            EventKind::StepSucceeded {
                step,
                summary,
                duration_ms,
                ..
            } => {
                self.running = None;
                info!(
                    seq,
                    kind,
                    step = step.position(),
                    duration_ms,
                    "✔ {} {}: {summary} ({})",
                    step.position(),
                    step.name,
                    seconds(*duration_ms)
                );
            }
            EventKind::StepFailed {
                step,
                error,
                duration_ms,
                ..
            } => {
                self.running = None;
                error!(
                    seq,
                    kind,
                    step = step.position(),
                    duration_ms,
                    "✘ {} {} failed: {error}",
                    step.position(),
                    step.name
                );
            }
            EventKind::StepSkipped { step, reason } => {
                info!(
                    seq,
                    kind,
                    step = step.position(),
                    "↷ {} {} skipped: {reason}",
                    step.position(),
                    step.name
                );
            }
            EventKind::CheckpointShown {
                step,
                shown_sha256,
                text,
            } => {
                let shown = if self.texts_on_terminal {
                    ""
                } else {
                    text.as_str()
                };
                info!(
                    seq,
                    kind,
                    step = step.position(),
                    shown_sha256,
                    "waiting for approval (shown text sha256 {shown_sha256}){}{shown}",
                    if shown.is_empty() { "" } else { ":\n" }
                );
            }
            EventKind::CheckpointApproved {
                step,
                approver,
                method,
                ..
            } => info!(
                seq,
                kind,
                step = step.position(),
                approver,
                method = method.as_str(),
                "approved by {approver} ({})",
                method.as_str()
            ),
            EventKind::CheckpointRefused {
                step,
                approver,
                reason,
                ..
            } => warn!(
                seq,
                kind,
                step = step.position(),
                approver,
                "approval refused: {reason}"
            ),
            EventKind::CheckpointDenied { step, reason } => {
                warn!(
                    seq,
                    kind,
                    step = step.position(),
                    "checkpoint denied: {reason}"
                );
            }
            EventKind::Decision {
                step,
                decision,
                decided_by,
            } => warn!(
                seq,
                kind,
                step = step.position(),
                decided_by,
                "{decided_by} decided to {decision:?} the uncertain step {} `{}`",
                step.position(),
                step.name
            ),
            EventKind::StepMilestone { step, milestone } => match milestone {
                Milestone::OperationCreated { id } => info!(
                    seq,
                    kind,
                    step = step.position(),
                    operation = id.as_str(),
                    "operation {id} created (journaled)"
                ),
                Milestone::ToolWorking => {
                    info!(seq, kind, step = step.position(), "the tool works")
                }
            },
            EventKind::CheckpointParked {
                step, waiting_for, ..
            } => {
                self.running = None;
                warn!(
                    seq,
                    kind,
                    step = step.position(),
                    "⏸ {} {} parked, waiting for: {}",
                    step.position(),
                    step.name,
                    waiting_for.join("; ")
                );
            }
            EventKind::RunHalted { step, reason } => error!(
                seq,
                kind,
                step = step.position(),
                "halted at {} `{}`: {reason}",
                step.position(),
                step.name
            ),
            EventKind::RescueStarted { after } => {
                warn!(
                    seq,
                    kind,
                    "rescue: {} `{}` did not succeed",
                    after.position(),
                    after.name
                );
            }
            EventKind::UnitStopping { step, unit } => {
                info!(seq, kind, step = step.position(), unit, "stopping `{unit}`")
            }
            EventKind::AlwaysStarted => info!(seq, kind, "always"),
            EventKind::EndState { summary, .. } => info!(seq, kind, "end state: {summary}"),
            EventKind::Interrupted { reason } => {
                self.running = None;
                warn!(seq, kind, "interrupted: {reason}");
            }
            EventKind::RunFinished { outcome } => info!(
                seq,
                kind,
                outcome = outcome.as_str(),
                "run finished: {}",
                outcome.as_str()
            ),
            EventKind::Progress {
                step,
                done,
                total,
                message,
            } => {
                if let Some(span) = &self.running {
                    if let Some(total) = total {
                        span.pb_set_length(*total);
                    }
                    span.pb_set_position(*done);
                    if !message.is_empty() {
                        span.pb_set_message(&format!(
                            "{} {}: {message}",
                            step.position(),
                            step.name
                        ));
                    }
                }
                self.progress_line(step, *done, *total, message);
            }
            EventKind::Notice { step, message } => match step {
                Some(step) => warn!(kind, step = step.position(), "{message}"),
                None => warn!(kind, "{message}"),
            },
        }
    }

    fn finish(&mut self) {
        self.running = None;
    }
}

impl LogSink {
    /// A progress log line (`n of N`, rate, ETA), at most every [`PROGRESS_EVERY`].
    fn progress_line(
        &mut self,
        step: &crate::events::StepRef,
        done: u64,
        total: Option<u64>,
        message: &str,
    ) {
        let now = Instant::now();
        let started = *self.step_started.get_or_insert(now);
        let due = match self.progress_logged {
            None => now.duration_since(started) >= PROGRESS_FIRST,
            Some(last) => now.duration_since(last) >= PROGRESS_EVERY,
        };
        if !due {
            return;
        }
        self.progress_logged = Some(now);
        let elapsed = now.duration_since(started).as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let of = total.map_or(String::new(), |t| format!(" of {t}"));
        let eta = match total {
            Some(t) if rate > 0.0 && t >= done => {
                format!(", ETA {}s", ((t - done) as f64 / rate).ceil() as u64)
            }
            _ => String::new(),
        };
        info!(
            target: PROGRESS_TARGET,
            kind = "progress",
            step = step.position(),
            done,
            total,
            "… {} {}: {message} ({done}{of}, {rate:.0}/s{eta})",
            step.position(),
            step.name
        );
    }
}

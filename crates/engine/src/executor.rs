//! Runs steps in order with Ansible block semantics: a failed (or denied) main step sends
//! the run to `rescue`, then `always`; success goes to `always`. Every step is announced in
//! the journal before it starts and its outcome after; on resume, what the journal says
//! happened is not done again.

use std::time::Instant;

use crate::approvals::ApprovalInputs;
use crate::cancel::Cancel;
use crate::end_state::{self, EndStateReader};
use crate::error::EngineError;
use crate::events::{DecisionKind, EventKind, Outcome, StepRef};
use crate::ports::Ports;
use crate::ports::operator::{Answer, Operator};
use crate::record::StepData;
use crate::recorder::Recorder;
use crate::state::{Phase, StepStatus};
use crate::step::{Interruption, RunContext, RunInfo, StepError, Steps};
use mkplan_plan::model::{Plan, Section, Step};
use mkplan_plan::template::evaluate_condition;

/// Choices made on the command line that shape a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    /// Ask before each step (needs a terminal).
    pub step_by_step: bool,
    /// The operator's decision about an uncertain step, on resume.
    pub decision: Option<DecisionKind>,
    /// Who is running mkplan (recorded with decisions).
    pub operator_name: String,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Finished(Outcome),
    /// Stopped at a safe point on request; `mkplan resume` continues.
    Interrupted,
    /// Parked at a checkpoint whose work outside this host is not done yet; `mkplan
    /// resume` continues once it is.
    Parked {
        step: StepRef,
        waiting_for: Vec<String>,
    },
    /// A step failed after the point of no return; `mkplan resume` runs it again.
    Halted {
        step: StepRef,
        reason: String,
    },
}

pub struct Executor<'a> {
    pub plan: &'a Plan,
    pub ports: &'a Ports,
    /// The step kinds.
    pub steps: &'a dyn Steps,
    pub info: RunInfo,
    pub recorder: Recorder,
    pub options: &'a RunOptions,
    pub cancel: Cancel,
    pub operator: &'a dyn Operator,
    pub approvals: &'a ApprovalInputs,
    /// The PINs the preflight verified (none on resume).
    pub pins: crate::secret::Pins,
}

enum StepEnd {
    Done,
    Failed,
    Denied,
    Interrupted,
    /// The run stops here (parked or halted).
    Stop(RunEnd),
}

impl Executor<'_> {
    pub fn execute(&mut self) -> Result<RunEnd, EngineError> {
        if let Some(end) = self.settle_uncertain()? {
            return Ok(end);
        }
        loop {
            match self.recorder.state().phase {
                Phase::Main => {
                    let mut next = Phase::Always;
                    for step in &self.plan.steps {
                        match self.step(step)? {
                            StepEnd::Done => {}
                            StepEnd::Interrupted => return self.interrupted(),
                            StepEnd::Stop(end) => return Ok(self.stopped(end)),
                            StepEnd::Failed | StepEnd::Denied => {
                                self.recorder.record(EventKind::RescueStarted {
                                    after: StepRef::of(step),
                                })?;
                                next = Phase::Rescue;
                                break;
                            }
                        }
                    }
                    if next == Phase::Always {
                        self.recorder.record(EventKind::AlwaysStarted)?;
                    }
                }
                Phase::Rescue => {
                    for step in &self.plan.rescue {
                        match self.step(step)? {
                            StepEnd::Interrupted => return self.interrupted(),
                            StepEnd::Stop(end) => return Ok(self.stopped(end)),
                            _ => {}
                        }
                    }
                    self.recorder.record(EventKind::AlwaysStarted)?;
                }
                Phase::Always => {
                    for step in &self.plan.always {
                        match self.step(step)? {
                            StepEnd::Interrupted => return self.interrupted(),
                            StepEnd::Stop(end) => return Ok(self.stopped(end)),
                            _ => {}
                        }
                    }
                    if !self.recorder.state().end_state_recorded
                        && let Some(end) = self.record_end_state()?
                    {
                        return Ok(end);
                    }
                    let outcome = self.outcome();
                    self.recorder.record(EventKind::RunFinished { outcome })?;
                }
                Phase::Finished(outcome) => {
                    self.recorder.finish();
                    return Ok(RunEnd::Finished(outcome));
                }
            }
        }
    }

    /// After an interruption, a step that may have changed the system half-way needs the
    /// operator's decision, which is journaled with who made it.
    fn settle_uncertain(&mut self) -> Result<Option<RunEnd>, EngineError> {
        let Some(record) = self.recorder.state().uncertain().cloned() else {
            return Ok(None);
        };
        let Some(decision) = self.options.decision else {
            // The CLI checks this before executing; reaching here is a caller error.
            return Ok(Some(RunEnd::Interrupted));
        };
        self.recorder.record(EventKind::Decision {
            step: record.step,
            decision,
            decided_by: self.options.operator_name.clone(),
        })?;
        Ok(None)
    }

    fn interrupted(&mut self) -> Result<RunEnd, EngineError> {
        self.recorder.record(EventKind::Interrupted {
            reason: "stop requested (SIGINT or SIGTERM); continue with `mkplan resume`".to_owned(),
        })?;
        self.recorder.finish();
        Ok(RunEnd::Interrupted)
    }

    fn stopped(&mut self, end: RunEnd) -> RunEnd {
        self.recorder.finish();
        end
    }

    /// Reads and journals the end state; read-only, so an interrupted reading is simply
    /// taken again on resume.
    fn record_end_state(&mut self) -> Result<Option<RunEnd>, EngineError> {
        let after = self.plan.always.last().map(|s| StepRef::of(s).position());
        let record = EndStateReader {
            plan: self.plan,
            ports: self.ports,
            pins: &self.pins,
            operator: self.operator,
            cancel: &self.cancel,
        }
        .read(after);
        if self.cancel.requested() {
            return self.interrupted().map(Some);
        }
        self.recorder.record(EventKind::EndState {
            summary: end_state::summarize(&record),
            data: StepData::of(&record),
        })?;
        Ok(None)
    }

    fn outcome(&self) -> Outcome {
        crate::outcome::decide(self.plan, self.recorder.state())
    }

    fn step(&mut self, step: &Step) -> Result<StepEnd, EngineError> {
        let step_ref = StepRef::of(step);
        let retrying = match self
            .recorder
            .state()
            .record(step_ref.section, step_ref.index)
            .map(|r| &r.status)
        {
            Some(StepStatus::Succeeded { .. } | StepStatus::Skipped { .. }) => {
                return Ok(StepEnd::Done);
            }
            // The step that halted the run is run again.
            Some(StepStatus::Failed { .. })
                if self
                    .recorder
                    .state()
                    .halted
                    .as_ref()
                    .is_some_and(|(h, _)| *h == step_ref) =>
            {
                true
            }
            Some(StepStatus::Failed { .. }) if step.section == Section::Steps => {
                return Ok(StepEnd::Failed);
            }
            Some(StepStatus::Failed { .. }) => return Ok(StepEnd::Done),
            // Started without an outcome: a re-runnable step, or one the operator chose to retry.
            Some(StepStatus::Started { .. }) => true,
            None => false,
        };
        if self.cancel.requested() {
            return Ok(StepEnd::Interrupted);
        }
        match self.skip_reason(step) {
            Ok(None) => {}
            Ok(Some(reason)) => {
                self.recorder.record(EventKind::StepSkipped {
                    step: step_ref,
                    reason,
                })?;
                return Ok(StepEnd::Done);
            }
            // A condition that cannot be decided must not silently skip (or run) a step.
            Err(error) => {
                self.recorder.record(EventKind::StepStarted {
                    step: step_ref.clone(),
                    mutating: false,
                })?;
                self.recorder.record(EventKind::StepFailed {
                    step: step_ref,
                    error,
                    duration_ms: 0,
                    data: StepData::default(),
                })?;
                return Ok(if step.section == Section::Steps {
                    StepEnd::Failed
                } else {
                    StepEnd::Done
                });
            }
        }
        if self.options.step_by_step && step.section == Section::Steps {
            match self.operator.ask(
                &format!(
                    "run {} `{}`? [y]es, [n]o (skip), [q]uit: ",
                    step_ref.position(),
                    step.name
                ),
                None,
            ) {
                Answer::Text(a) if a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes") => {
                }
                Answer::Text(a) if a.eq_ignore_ascii_case("n") || a.eq_ignore_ascii_case("no") => {
                    self.recorder.record(EventKind::StepSkipped {
                        step: step_ref,
                        reason: "skipped by the operator (--step)".to_owned(),
                    })?;
                    return Ok(StepEnd::Done);
                }
                _ => {
                    self.cancel.request();
                    return Ok(StepEnd::Interrupted);
                }
            }
        }

        let mutating = self.steps.interruption(step) == Interruption::Decide;
        self.recorder.record(EventKind::StepStarted {
            step: step_ref.clone(),
            mutating,
        })?;
        let started = Instant::now();
        let state = self.recorder.state().clone();
        let result = {
            let mut cx = RunContext {
                plan: self.plan,
                step,
                host: &*self.ports.host,
                keys: &*self.ports.keys,
                pin_sources: &*self.ports.pins,
                tke: self.ports.tke.as_deref(),
                run: &self.info,
                state: &state,
                cancel: &self.cancel,
                deadline: step.timeout.map(|t| started + t),
                retrying_uncertain: retrying && mutating,
                approvals: self.approvals,
                operator: self.operator,
                pins: &self.pins,
                emitter: &mut self.recorder,
            };
            self.steps.run(step, &mut cx)
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(success) => {
                self.recorder.record(EventKind::StepSucceeded {
                    step: step_ref,
                    summary: success.summary,
                    duration_ms,
                    data: StepData::encode(&success.output),
                })?;
                Ok(StepEnd::Done)
            }
            Err(StepError::Failed { message, output }) => {
                self.recorder.record(EventKind::StepFailed {
                    step: step_ref.clone(),
                    error: message,
                    duration_ms,
                    data: StepData::encode(&output),
                })?;
                if step.section != Section::Steps {
                    return Ok(StepEnd::Failed);
                }
                let state = self.recorder.state().clone();
                match self.steps.halt_reason(self.plan, &state, &*self.ports.host) {
                    Some(reason) => self.halt(step_ref, reason),
                    None => Ok(StepEnd::Failed),
                }
            }
            Err(StepError::Halt { message, output }) => {
                self.recorder.record(EventKind::StepFailed {
                    step: step_ref.clone(),
                    error: message.clone(),
                    duration_ms,
                    data: StepData::encode(&output),
                })?;
                self.halt(step_ref, message)
            }
            Err(StepError::Park {
                waiting_for,
                output,
            }) => {
                self.recorder.record(EventKind::CheckpointParked {
                    step: step_ref.clone(),
                    waiting_for: waiting_for.clone(),
                    data: StepData::encode(&output),
                })?;
                Ok(StepEnd::Stop(RunEnd::Parked {
                    step: step_ref,
                    waiting_for,
                }))
            }
            // Journaled as started, with no outcome: `resume` runs it again (or, for a
            // step that may have acted, asks for a decision).
            Err(StepError::Interrupted) => Ok(StepEnd::Interrupted),
            Err(StepError::Denied { reason }) => {
                self.recorder.record(EventKind::CheckpointDenied {
                    step: step_ref.clone(),
                    reason: reason.clone(),
                })?;
                self.recorder.record(EventKind::StepFailed {
                    step: step_ref,
                    error: format!("denied: {reason}"),
                    duration_ms,
                    data: StepData::default(),
                })?;
                Ok(StepEnd::Denied)
            }
        }
    }

    fn halt(&mut self, step: StepRef, reason: String) -> Result<StepEnd, EngineError> {
        self.recorder.record(EventKind::RunHalted {
            step: step.clone(),
            reason: reason.clone(),
        })?;
        Ok(StepEnd::Stop(RunEnd::Halted { step, reason }))
    }

    /// `when`, `--tags` and `--skip-tags`. Tags filter only the main steps: the safety
    /// nets in `rescue` and `always` always run.
    fn skip_reason(&self, step: &Step) -> Result<Option<String>, String> {
        if step.section == Section::Steps {
            if !self.options.tags.is_empty()
                && !step.tags.iter().any(|t| self.options.tags.contains(t))
            {
                return Ok(Some(format!("not tagged {}", self.options.tags.join(", "))));
            }
            if let Some(tag) = step
                .tags
                .iter()
                .find(|t| self.options.skip_tags.contains(t))
            {
                return Ok(Some(format!("tagged `{tag}`, which --skip-tags skips")));
            }
        }
        let Some(when) = step.when.as_deref() else {
            return Ok(None);
        };
        match evaluate_condition(&self.plan.template_scope, when) {
            Ok(true) => Ok(None),
            Ok(false) => Ok(Some(format!("`when: {when}` is false"))),
            Err(e) => Err(format!("`when: {when}` could not be evaluated: {e}")),
        }
    }
}

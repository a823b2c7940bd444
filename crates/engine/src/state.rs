//! The run's state, rebuilt from its journal: what each step did, which approvals were
//! given, where the run is. `resume` and the steps (e.g. "start only what this run stopped")
//! read it; nothing else is remembered between processes.

use std::collections::BTreeMap;

use crate::events::{ApprovalMethod, DecisionKind, EventKind, Outcome, StepRef};
use crate::journal::Entry;
use crate::record::mk_change::Milestone;
use crate::record::{Record, StepData, StepOutput};
use mkplan_plan::model::{KindName, Section};

/// A step's position: its section and index.
pub type StepKey = (Section, usize);

#[derive(Debug, Clone, PartialEq)]
pub enum StepStatus {
    /// Started, no outcome recorded: the process stopped while the step ran.
    Started {
        mutating: bool,
    },
    Succeeded {
        summary: String,
        output: StepOutput,
    },
    Failed {
        error: String,
        output: StepOutput,
    },
    Skipped {
        reason: String,
    },
}

impl StepStatus {
    /// The record of an attempt that ended (succeeded or failed).
    pub fn output(&self) -> Option<&StepOutput> {
        match self {
            StepStatus::Succeeded { output, .. } | StepStatus::Failed { output, .. } => {
                Some(output)
            }
            StepStatus::Started { .. } | StepStatus::Skipped { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: StepRef,
    pub status: StepStatus,
    /// How many times the step was started (a retried step has more than one).
    pub attempts: u32,
    /// What each earlier attempt ended as, oldest first (`Started` for one that was
    /// interrupted): what a step did is the sum of its attempts, not its last one.
    pub earlier: Vec<StepStatus>,
    /// How long its last attempt took, once it has an outcome.
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub approver: String,
    pub method: ApprovalMethod,
    pub time: String,
    pub shown_sha256: String,
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Main,
    Rescue,
    Always,
    Finished(Outcome),
}

#[derive(Debug, Clone)]
pub struct RunState {
    pub run_id: String,
    pub plan_sha256: String,
    pub plan_path: String,
    pub steps: BTreeMap<StepKey, StepRecord>,
    pub approvals: BTreeMap<StepKey, Vec<Approval>>,
    pub phase: Phase,
    /// The main step whose failure (or denial) sent the run to rescue.
    pub failure: Option<(StepRef, bool)>,
    pub interrupted: bool,
    pub events: usize,
    /// A rehearsal on a simulated host.
    pub rehearsal: bool,
    /// The host root the run acts on.
    pub host_root: String,
    /// Every unit a `stop` step announced it was stopping, with the step, in journal order.
    pub units_stopping: Vec<(StepKey, String)>,
    /// What running steps journaled before their outcome, in journal order.
    pub milestones: Vec<(StepKey, Milestone)>,
    /// Every time the run parked, oldest first.
    pub parks: Vec<Park>,
    /// The step whose failure halted the run, and why, until it is started again.
    pub halted: Option<(StepRef, String)>,
    /// The end state was read and journaled (after `always`).
    pub end_state_recorded: bool,
}

/// One time the run parked at a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub step: StepRef,
    pub at: String,
    pub waiting_for: Vec<String>,
    /// What the checkpoint read then.
    pub data: StepData,
    /// When (and by whom) the run was resumed after it.
    pub resumed: Option<(String, String)>,
}

impl RunState {
    pub fn replay(entries: &[Entry]) -> Self {
        let mut state = RunState {
            run_id: String::new(),
            plan_sha256: String::new(),
            plan_path: String::new(),
            steps: BTreeMap::new(),
            approvals: BTreeMap::new(),
            phase: Phase::Main,
            failure: None,
            interrupted: false,
            events: entries.len(),
            rehearsal: false,
            host_root: String::new(),
            units_stopping: Vec::new(),
            milestones: Vec::new(),
            parks: Vec::new(),
            halted: None,
            end_state_recorded: false,
        };
        for entry in entries {
            state.apply(entry);
        }
        state
    }

    pub(crate) fn apply(&mut self, entry: &Entry) {
        let key = |s: &StepRef| (s.section, s.index);
        match &entry.event {
            EventKind::RunStarted {
                plan_sha256,
                plan_path,
                rehearsal,
                host_root,
                ..
            } => {
                self.rehearsal = *rehearsal;
                self.host_root = host_root.clone();
                self.run_id = entry.run.clone();
                self.plan_sha256 = plan_sha256.clone();
                self.plan_path = plan_path.clone();
            }
            EventKind::Resumed { operator, .. } => {
                self.interrupted = false;
                if let Some(park) = self.parks.last_mut()
                    && park.resumed.is_none()
                {
                    park.resumed = Some((entry.time.clone(), operator.clone()));
                }
            }
            EventKind::StepMilestone { step, milestone } => {
                self.milestones.push((key(step), milestone.clone()));
            }
            EventKind::CheckpointParked {
                step,
                waiting_for,
                data,
            } => self.parks.push(Park {
                step: step.clone(),
                at: entry.time.clone(),
                waiting_for: waiting_for.clone(),
                data: data.clone(),
                resumed: None,
            }),
            EventKind::RunHalted { step, reason } => {
                // Not a way to rescue: the step is run again on resume.
                if self.failure.as_ref().is_some_and(|(f, _)| f == step) {
                    self.failure = None;
                }
                self.halted = Some((step.clone(), reason.clone()));
            }
            EventKind::StepStarted { step, mutating } => {
                if self.halted.as_ref().is_some_and(|(h, _)| h == step) {
                    self.halted = None;
                }
                let previous = self.steps.remove(&key(step));
                let attempts = previous.as_ref().map_or(0, |r| r.attempts) + 1;
                let mut earlier = Vec::new();
                if let Some(previous) = previous {
                    earlier = previous.earlier;
                    earlier.push(previous.status);
                }
                self.steps.insert(
                    key(step),
                    StepRecord {
                        step: step.clone(),
                        status: StepStatus::Started {
                            mutating: *mutating,
                        },
                        attempts,
                        earlier,
                        duration_ms: None,
                    },
                );
            }
            EventKind::StepSucceeded {
                step,
                summary,
                data,
                duration_ms,
            } => self.set(
                step,
                StepStatus::Succeeded {
                    summary: summary.clone(),
                    output: data.decode(step.kind),
                },
                Some(*duration_ms),
            ),
            EventKind::StepFailed {
                step,
                error,
                data,
                duration_ms,
            } => {
                self.set(
                    step,
                    StepStatus::Failed {
                        error: error.clone(),
                        output: data.decode(step.kind),
                    },
                    Some(*duration_ms),
                );
                if step.section == Section::Steps && self.failure.is_none() {
                    self.failure = Some((step.clone(), false));
                }
            }
            EventKind::StepSkipped { step, reason } => self.set(
                step,
                StepStatus::Skipped {
                    reason: reason.clone(),
                },
                None,
            ),
            EventKind::CheckpointApproved {
                step,
                approver,
                method,
                shown_sha256,
                ..
            } => self.approvals.entry(key(step)).or_default().push(Approval {
                approver: approver.clone(),
                method: *method,
                time: entry.time.clone(),
                shown_sha256: shown_sha256.clone(),
            }),
            EventKind::CheckpointDenied { step, .. } => {
                if self.failure.is_none() {
                    self.failure = Some((step.clone(), true));
                }
            }
            EventKind::Decision { step, decision, .. } => {
                if let Some(record) = self.steps.get_mut(&key(step)) {
                    match decision {
                        DecisionKind::Accept => {
                            record.status = StepStatus::Succeeded {
                                summary: "accepted by decision after an interruption".to_owned(),
                                output: StepOutput::None,
                            };
                        }
                        // The retry starts it again; until then it is as if never started
                        // (its interrupted attempt stays in `earlier`).
                        DecisionKind::Retry => {
                            let interrupted = std::mem::replace(
                                &mut record.status,
                                StepStatus::Started { mutating: false },
                            );
                            record.earlier.push(interrupted);
                        }
                    }
                }
            }
            EventKind::UnitStopping { step, unit } => {
                self.units_stopping.push((key(step), unit.clone()));
            }
            EventKind::RescueStarted { .. } => self.phase = Phase::Rescue,
            EventKind::AlwaysStarted => self.phase = Phase::Always,
            EventKind::EndState { .. } => self.end_state_recorded = true,
            EventKind::Interrupted { .. } => self.interrupted = true,
            EventKind::RunFinished { outcome } => self.phase = Phase::Finished(*outcome),
            EventKind::CheckpointShown { .. }
            | EventKind::CheckpointRefused { .. }
            | EventKind::Progress { .. }
            | EventKind::Notice { .. } => {}
        }
    }

    fn set(&mut self, step: &StepRef, status: StepStatus, duration_ms: Option<u64>) {
        let record = self
            .steps
            .entry((step.section, step.index))
            .or_insert_with(|| StepRecord {
                step: step.clone(),
                status: status.clone(),
                attempts: 0,
                earlier: Vec::new(),
                duration_ms: None,
            });
        record.status = status;
        record.duration_ms = duration_ms;
    }

    pub fn record(&self, section: Section, index: usize) -> Option<&StepRecord> {
        self.steps.get(&(section, index))
    }

    /// A mutating step that started and has no outcome: it needs an operator's decision.
    pub fn uncertain(&self) -> Option<&StepRecord> {
        self.steps
            .values()
            .find(|r| matches!(r.status, StepStatus::Started { mutating: true }))
    }

    /// The records of the steps that succeeded with an `R`, in plan order.
    pub fn succeeded<R: Record + 'static>(&self) -> impl Iterator<Item = (&StepRef, &R)> {
        self.steps.values().filter_map(|r| match &r.status {
            StepStatus::Succeeded { output, .. } if r.step.kind == R::KIND => {
                R::of(output).map(|record| (&r.step, record))
            }
            _ => None,
        })
    }

    /// The steps of one kind that started, whatever their outcome.
    pub fn started_of_kind(&self, kind: KindName) -> impl Iterator<Item = &StepRecord> {
        self.steps.values().filter(move |r| r.step.kind == kind)
    }

    pub fn state_name(&self) -> &'static str {
        match self.phase {
            Phase::Finished(outcome) => outcome.as_str(),
            _ if self.uncertain().is_some() => "needs decision",
            _ if self.halted.is_some() => "halted",
            _ if self.parked().is_some() => "parked",
            _ => "interrupted",
        }
    }

    /// The park the run is in now (its last, not resumed since).
    pub fn parked(&self) -> Option<&Park> {
        self.parks.last().filter(|p| p.resumed.is_none())
    }

    /// The milestones a step journaled (of all its attempts).
    pub fn milestones_of(
        &self,
        section: Section,
        index: usize,
    ) -> impl Iterator<Item = &Milestone> {
        self.milestones
            .iter()
            .filter(move |(k, _)| *k == (section, index))
            .map(|(_, m)| m)
    }
}

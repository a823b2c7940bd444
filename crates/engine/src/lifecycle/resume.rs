//! `resume`: a run continues only from an intact journal, with the plan it started with,
//! while no migration tool runs against its tokens, and — when a step was left half-way —
//! with a decision the host allows (design rules 5 and 8).

use std::path::{Path, PathBuf};

use crate::approvals::ApprovalInputs;
use crate::cancel::Cancel;
use crate::digest::sha256_hex;
use crate::events::{DecisionKind, EventKind};
use crate::executor::{Executor, RunOptions};
use crate::journal::Journal;
use crate::lifecycle::{Concluded, ResumeError, conclude};
use crate::lock::StateLock;
use crate::ports::Ports;
use crate::ports::host::HostView;
use crate::ports::operator::Operator;
use crate::ports::root::HostRoot;
use crate::recorder::Recorder;
use crate::rundir::{RunDir, StateDir};
use crate::sinks::LogSink;
use crate::state::{Phase, RunState, StepStatus};
use crate::step::{RunInfo, Steps, UncertainContext};
use crate::trust::{self, TrustError, Trusted};
use mkplan_plan::Plan;
use mkplan_plan::input;
use mkplan_plan::model::SignKey;

/// A run whose journal was reopened under the lock, with the plan it recorded.
pub struct Reopened {
    run_dir: RunDir,
    state_dir: StateDir,
    journal: Journal,
    state: RunState,
    plan_path: PathBuf,
    plan_sha256: String,
    _lock: StateLock,
}

/// A reopened run whose resumption the host and the decision rules allow.
pub struct Decided<'p> {
    run: Reopened,
    plan: &'p Plan,
    decision: Option<DecisionKind>,
}

/// What executing a resumed run needs besides the run.
pub struct Execution<'a> {
    pub ports: &'a Ports,
    pub steps: &'a dyn Steps,
    pub operator: &'a dyn Operator,
    pub approvals: &'a ApprovalInputs,
    pub operator_name: String,
    pub cancel: Cancel,
}

impl Reopened {
    /// Takes the lock, reopens the journal, and checks that the plan at `plan` (else the
    /// path the run recorded) is byte-identical to the one the run started with.
    pub fn open(
        state_dir: StateDir,
        run_dir: RunDir,
        plan: Option<PathBuf>,
    ) -> Result<Self, ResumeError> {
        let lock = StateLock::acquire(&state_dir, &run_dir.id)?;
        let (journal, entries) =
            Journal::reopen(&run_dir.journal()).map_err(ResumeError::BrokenJournal)?;
        let state = RunState::replay(&entries);
        if let Phase::Finished(outcome) = state.phase {
            return Err(ResumeError::Finished {
                id: run_dir.id,
                outcome: outcome.as_str(),
            });
        }
        let plan_path = plan.unwrap_or_else(|| PathBuf::from(&state.plan_path));
        let recorded = run_dir.recorded_digest()?;
        let digest = input::read(&plan_path, input::PLAN)
            .map(|bytes| sha256_hex(&bytes))
            .map_err(|source| ResumeError::PlanUnreadable {
                path: plan_path.clone(),
                source,
                copy: run_dir.plan_copy(),
            })?;
        if digest != recorded || digest != state.plan_sha256 {
            return Err(ResumeError::PlanChanged {
                id: run_dir.id.clone(),
                path: plan_path,
                digest,
                recorded,
                copy: run_dir.plan_copy(),
            });
        }
        Ok(Self {
            run_dir,
            state_dir,
            journal,
            state,
            plan_path,
            plan_sha256: recorded,
            _lock: lock,
        })
    }

    /// The plan file whose digest matched.
    pub fn plan_path(&self) -> &PathBuf {
        &self.plan_path
    }

    /// Whether the run is a rehearsal (it resumes on its own simulated host).
    pub fn rehearsal(&self) -> bool {
        self.state.rehearsal
    }

    /// The host root the run recorded.
    pub fn host_root(&self) -> HostRoot {
        HostRoot::new(if self.state.host_root.is_empty() {
            "/"
        } else {
            &self.state.host_root
        })
    }

    /// The plan as the resumed run uses it, loaded from `text`: those bytes must be the
    /// ones the run recorded (the file may have changed since [`Reopened::open`] read it).
    /// A rehearsal signs with an ephemeral key (the plan's key is not on the simulated host).
    pub fn plan_for_run(&self, mut plan: Plan, text: &str) -> Result<Plan, ResumeError> {
        let digest = sha256_hex(text.as_bytes());
        if digest != self.plan_sha256 {
            return Err(ResumeError::PlanChanged {
                id: self.run_dir.id.clone(),
                path: self.plan_path.clone(),
                digest,
                recorded: self.plan_sha256.clone(),
                copy: self.run_dir.plan_copy(),
            });
        }
        if self.state.rehearsal {
            plan.report.sign = None;
        }
        Ok(plan)
    }

    /// Applies the live guards (design rule 8: no migration tool runs against a token of
    /// the plan; nothing uses a store a step left half-changed, read on `host`, the host the
    /// run recorded) and the decision rules.
    pub fn decide<'p>(
        self,
        plan: &'p Plan,
        decision: Option<DecisionKind>,
        steps: &dyn Steps,
        host: &dyn HostView,
    ) -> Result<Decided<'p>, ResumeError> {
        let refusals = steps.refuse_resume(plan, &self.state, host);
        if !refusals.is_empty() {
            return Err(ResumeError::HostBusy {
                id: self.run_dir.id.clone(),
                refusals,
            });
        }
        let uncertain = UncertainContext {
            plan,
            state: &self.state,
            host,
        };
        match (self.state.uncertain(), decision) {
            (Some(_), None) => {
                return Err(ResumeError::NeedsDecision(
                    self.decision_needed(plan, steps, &uncertain),
                ));
            }
            (None, Some(_)) => {
                return Err(ResumeError::NothingUncertain {
                    id: self.run_dir.id.clone(),
                });
            }
            _ => {}
        }
        // Accepting a half-done migration would activate a WK that part of the store is
        // not under, and accepting a half-done restore would start services on a store that
        // is not the backup: the store must show the step complete, or the operator retries.
        if let (Some(record), Some(DecisionKind::Accept)) = (self.state.uncertain(), decision)
            && let Some(step) = plan.step_at(record.step.section, record.step.index)
        {
            steps
                .refuse_accept(step, &uncertain)
                .map_err(ResumeError::AcceptRefused)?;
        }
        untrusted(self.state_dir.dir(), plan, host.root())
            .map_or(Ok(()), |e| Err(ResumeError::Untrusted(e)))?;
        Ok(Decided {
            run: self,
            plan,
            decision,
        })
    }

    /// What is known of the uncertain step, and the two decisions.
    fn decision_needed(
        &self,
        plan: &Plan,
        steps: &dyn Steps,
        uncertain: &UncertainContext<'_>,
    ) -> Vec<String> {
        let Some(record) = self.state.uncertain() else {
            return Vec::new();
        };
        let id = &self.run_dir.id;
        let mut lines = vec![
            format!(
                "run {id}: {} `{}` ({}) started and has no recorded outcome: it may have changed the system half-way",
                record.step.position(),
                record.step.name,
                record.step.kind
            ),
            format!(
                "  it was started {} time(s); no outcome was recorded",
                record.attempts
            ),
        ];
        if let Some(step) = plan.step_at(record.step.section, record.step.index) {
            lines.extend(
                steps
                    .describe_uncertain(step, uncertain)
                    .into_iter()
                    .map(|line| format!("  {line}")),
            );
        }
        lines.push("decide, and the decision is journaled with your name:".to_owned());
        lines.push(format!("  mkplan resume {id} --retry-step    run it again"));
        lines.push(format!(
            "  mkplan resume {id} --accept-step   take it as done"
        ));
        lines
    }
}

impl Decided<'_> {
    /// Journals the resumption and executes the run from where it stopped.
    pub fn execute(self, with: Execution<'_>) -> Result<Concluded, ResumeError> {
        let Reopened {
            run_dir,
            journal,
            state,
            plan_sha256,
            _lock,
            ..
        } = self.run;
        let mut recorder = Recorder::new(
            journal,
            state.clone(),
            vec![Box::new(LogSink::new(with.operator))],
        );
        recorder.record(EventKind::Resumed {
            operator: with.operator_name.clone(),
            pid: std::process::id(),
            origin: Some(crate::origin::capture()),
            simulated_clock: crate::clock::simulated_offset(),
        })?;
        let done = state
            .steps
            .values()
            .filter(|r| matches!(r.status, StepStatus::Succeeded { .. }))
            .count();
        tracing::info!(
            "resuming run {}: {done} steps already succeeded and are not run again",
            run_dir.id
        );
        let options = RunOptions {
            decision: self.decision,
            operator_name: with.operator_name,
            ..RunOptions::default()
        };
        let executor = Executor {
            plan: self.plan,
            ports: with.ports,
            info: RunInfo {
                run_id: run_dir.id.clone(),
                run_dir: run_dir.dir.clone(),
                plan_sha256,
            },
            recorder,
            options: &options,
            cancel: with.cancel,
            operator: with.operator,
            approvals: with.approvals,
            pins: Default::default(),
            steps: with.steps,
        };
        Ok(conclude(executor))
    }
}

/// Before a run starts or resumes: the state directory (whose journals `resume` acts on)
/// and a report-signing key file must be writable by nobody but root or the operator (the
/// key also readable by nobody else). The refusal, if any.
fn untrusted(state_dir: &Path, plan: &Plan, root: &HostRoot) -> Option<TrustError> {
    if let Err(e) = trust::check(state_dir, Trusted::StateDir) {
        return Some(e);
    }
    match &plan.report.sign {
        Some(SignKey::File(key)) => trust::check(&root.path(key), Trusted::SigningKey).err(),
        _ => None,
    }
}

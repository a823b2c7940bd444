//! The step contract: what the executor asks of the step kinds ([`Steps`]), what a step
//! sees (a read-only [`CheckContext`] for the dry run; a [`RunContext`] with the means to
//! act and to record, through the executor, never by printing) and what it answers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::approvals::ApprovalInputs;
use crate::cancel::Cancel;
use crate::error::EngineError;
use crate::events::{EventKind, StepRef};
use crate::ports::host::{HostActions, HostView};
use crate::ports::keys::KeyProber;
use crate::ports::operator::Operator;
use crate::ports::pins::{PinError, PinReader};
use crate::ports::tke::CheckpointActor;
use crate::record::StepOutput;
use crate::secret::{Pin, Pins};
use crate::state::RunState;
use mkplan_plan::model::{Plan, Step, Token};

/// What a successful step reports: a one-line summary and its record, for the journal, the
/// later steps and the report.
#[derive(Debug, Clone)]
pub struct StepSuccess {
    pub summary: String,
    pub output: StepOutput,
}

/// Why a step did not succeed.
#[derive(Debug, Clone)]
pub enum StepError {
    /// The step failed (with what it got through); the run goes to `rescue`.
    Failed { message: String, output: StepOutput },
    /// A checkpoint was denied; the run is aborted (rescue, then always).
    Denied { reason: String },
    /// A stop was requested while the step waited for a person (a prompt): it did nothing,
    /// and the run stops here to be resumed, without rescue.
    Interrupted,
    /// A checkpoint with `park: true` whose work is not done yet: the run parks (exit 6)
    /// and `resume` runs the checkpoint again.
    Park {
        waiting_for: Vec<String>,
        output: StepOutput,
    },
    /// The step failed where rescue cannot undo anything (a new WK is already active):
    /// the run halts and `resume` runs the step again.
    Halt { message: String, output: StepOutput },
}

pub type StepResult = Result<StepSuccess, StepError>;

/// The dry run's verdict on one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckReport {
    /// Its preconditions hold (or will, given the earlier steps); what it read.
    WillRun(String),
    /// It would be skipped, and why.
    WouldSkip(String),
    /// It cannot be simulated without changing things, and why.
    CannotSimulate(String),
    /// A precondition does not hold: the run would fail here.
    Blocked(String),
}

/// What an interruption in the middle of a step leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// Running it again is safe (it is read-only, or idempotent).
    Rerun,
    /// It may have changed the system half-way: an operator decides (retry or accept).
    Decide,
}

/// The step kinds, as the executor, the dry run and `resume` call them: one implementation
/// (`steps::Registry`) maps each kind to its file.
pub trait Steps: Sync {
    /// The dry run's verdict, from a read-only view of the host.
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> CheckReport;
    /// Runs the step.
    fn run(&self, step: &Step, cx: &mut RunContext<'_>) -> StepResult;
    /// How an interruption in the middle of the step is handled on resume.
    fn interruption(&self, step: &Step) -> Interruption;
    /// What is known about the step when an interruption left it uncertain, to help the
    /// operator decide between retrying it and accepting it.
    fn describe_uncertain(&self, step: &Step, cx: &UncertainContext<'_>) -> Vec<String>;
    /// Why `--accept-step` must not take the uncertain step as done, if the host shows it
    /// is not.
    fn refuse_accept(&self, step: &Step, cx: &UncertainContext<'_>) -> Result<(), AcceptRefused>;
    /// Why the run must not resume now on `host` (design rule 8: a migration tool runs
    /// against a token of the plan, or processes use a store a step left half-changed);
    /// empty when it may.
    fn refuse_resume(&self, plan: &Plan, state: &RunState, host: &dyn HostView) -> Vec<String>;
    /// Why a main step's failure must halt the run instead of going to `rescue` (the
    /// change can only go forward now), read on `host` after the failure; `None` to rescue.
    fn halt_reason(&self, plan: &Plan, state: &RunState, host: &dyn HostView) -> Option<String>;
}

/// Why `--accept-step` must not take an uncertain step as done: the step kind's own reason
/// (its text is what the operator reads), kept whole.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AcceptRefused(Box<dyn std::error::Error + Send + Sync>);

impl AcceptRefused {
    pub fn new(reason: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(reason))
    }
}

/// What `resume` looks at when a step was left uncertain.
pub struct UncertainContext<'a> {
    pub plan: &'a Plan,
    pub state: &'a RunState,
    /// The host the run acted on, read-only.
    pub host: &'a dyn HostView,
}

/// Facts about the run that steps may record or show.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub plan_sha256: String,
}

/// A token's PIN as a step has it: verified in the preflight, or read from its source just
/// now (a resumed run has no preflight).
pub enum TokenPin<'a> {
    Verified(&'a Pin),
    Read(Pin),
}

impl std::ops::Deref for TokenPin<'_> {
    type Target = Pin;

    fn deref(&self) -> &Pin {
        match self {
            TokenPin::Verified(pin) => pin,
            TokenPin::Read(pin) => pin,
        }
    }
}

/// Read-only view for `mkplan check`.
pub struct CheckContext<'a> {
    pub plan: &'a Plan,
    pub step: &'a Step,
    /// The host, read-only.
    pub host: &'a dyn HostView,
    /// The steps before this one, which will have run by the time it does.
    pub earlier: &'a [Step],
}

/// Emits durable events (journaled before the next side effect) and progress.
pub trait Emit {
    fn emit(&mut self, event: EventKind) -> Result<(), EngineError>;
}

pub struct RunContext<'a> {
    pub plan: &'a Plan,
    pub step: &'a Step,
    pub host: &'a dyn HostActions,
    pub keys: &'a dyn KeyProber,
    pub pin_sources: &'a dyn PinReader,
    /// Who acts at a checkpoint instead of people (a rehearsal's simulated TKE operator).
    pub tke: Option<&'a dyn CheckpointActor>,
    pub run: &'a RunInfo,
    /// The run so far, from the journal (for "start only what this run stopped" and the like).
    pub state: &'a RunState,
    pub cancel: &'a Cancel,
    pub deadline: Option<Instant>,
    /// Set when the operator chose to retry this step after an interruption left it uncertain.
    pub retrying_uncertain: bool,
    pub approvals: &'a ApprovalInputs,
    pub operator: &'a dyn Operator,
    /// The PINs the preflight verified.
    pub pins: &'a Pins,
    pub emitter: &'a mut dyn Emit,
}

impl<'a> RunContext<'a> {
    /// `token`'s PIN: the one the preflight verified, else read from its source now.
    pub fn token_pin(&self, token: &Token) -> Result<TokenPin<'a>, PinError> {
        let pins: &'a Pins = self.pins;
        match pins.get(&token.id) {
            Some(pin) => Ok(TokenPin::Verified(pin)),
            None => self
                .pin_sources
                .read(&token.pin, self.operator, &format!("token `{}`", token.id))
                .map(TokenPin::Read),
        }
    }

    /// A CCA token's SO PIN (`pkcscca` asks for it beside the USER PIN), read from its
    /// source each time: no login verifies it beforehand, the tool checks it first.
    pub fn token_so_pin(&self, token: &Token) -> Result<Pin, PinError> {
        let what = format!("token `{}` SO", token.id);
        match &token.so_pin {
            Some(source) => self.pin_sources.read(source, self.operator, &what),
            // The plan refuses a CCA token without `so_pin`; an EP11 token has none.
            None => Err(PinError::NotEntered { what }),
        }
    }

    pub fn step_ref(&self) -> StepRef {
        StepRef::of(self.step)
    }

    /// Records a durable event about this step.
    pub fn emit(&mut self, event: EventKind) -> Result<(), EngineError> {
        self.emitter.emit(event)
    }

    /// Reports progress (never journaled).
    pub fn progress(&mut self, done: u64, total: Option<u64>, message: impl Into<String>) {
        let event = EventKind::Progress {
            step: self.step_ref(),
            done,
            total,
            message: message.into(),
        };
        let _ = self.emitter.emit(event);
    }

    /// Tells the people watching something (never journaled).
    pub fn notice(&mut self, message: impl Into<String>) {
        let event = EventKind::Notice {
            step: Some(self.step_ref()),
            message: message.into(),
        };
        let _ = self.emitter.emit(event);
    }

    pub fn run_dir(&self) -> &Path {
        &self.run.run_dir
    }
}

//! What a step sees. `CheckContext` is read-only by construction; `RunContext` adds the
//! means to act and to record (through the executor, never by printing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::EngineError;
use crate::engine::approvals::ApprovalInputs;
use crate::engine::cancel::Cancel;
use crate::engine::events::{EventKind, StepRef};
use crate::engine::operator::Operator;
use crate::engine::ports::root::HostRoot;
use crate::engine::record::probe::Inventory;
use crate::engine::secret::{Pin, Pins};
use crate::engine::state::RunState;
use crate::plan::model::{Checkpoint, Plan, Step, Token};

/// Lists a token's objects and proves its keys work, and checks a token's PIN. The real one
/// goes through PKCS#11; rehearsal injects the simulator's (no PKCS#11 module can open a
/// simulated EP11 token), whose token checks the PIN as the real login does.
pub trait KeyProber: Send + Sync {
    fn probe(&self, module: &Path, slot: u64, pin: &Pin) -> Result<Inventory, String>;
    /// One `C_Login` as USER, never retried: a wrong PIN costs the token one failed login.
    fn verify_pin(&self, module: &Path, slot: u64, pin: &Pin) -> Result<(), String>;
}

/// Through the token's PKCS#11 module, with `cryptoki`.
pub struct Pkcs11Prober;

impl KeyProber for Pkcs11Prober {
    fn probe(&self, module: &Path, slot: u64, pin: &Pin) -> Result<Inventory, String> {
        crate::host::pkcs11::probe(module, slot, pin).map_err(|e| e.to_string())
    }

    fn verify_pin(&self, module: &Path, slot: u64, pin: &Pin) -> Result<(), String> {
        crate::host::pkcs11::verify_pin(module, slot, pin).map_err(|e| e.to_string())
    }
}

/// Someone who acts at a checkpoint instead of people: the simulated TKE operator of
/// `mkplan rehearse`, which performs the checkpoint's `tke:` action on the simulated
/// adapters and returns who approves (journaled with the method `rehearsal`). Real runs
/// have none: people do the TKE work and approve.
pub trait CheckpointActor: Send + Sync {
    fn act(&self, plan: &Plan, step: &Step, checkpoint: &Checkpoint)
    -> Result<Vec<String>, String>;
}

/// The host a run acts on.
#[derive(Clone)]
pub struct Host {
    pub root: HostRoot,
    /// `/proc` (always the real one: processes are real even on a simulated host).
    pub proc_dir: PathBuf,
    pub prober: Arc<dyn KeyProber>,
    pub checkpoint_actor: Option<Arc<dyn CheckpointActor>>,
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
    pub host: &'a Host,
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
    pub host: &'a Host,
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
    pub fn token_pin(&self, token: &Token) -> Result<TokenPin<'a>, String> {
        let pins: &'a Pins = self.pins;
        match pins.get(&token.id) {
            Some(pin) => Ok(TokenPin::Verified(pin)),
            None => crate::host::pin::read(
                &token.pin,
                &self.host.root,
                self.operator,
                &format!("token `{}`", token.id),
            )
            .map(TokenPin::Read),
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

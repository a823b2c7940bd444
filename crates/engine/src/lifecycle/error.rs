//! Why the engine did not start or resume a run. Every variant says what, and what to do;
//! nothing was changed on the host when one is returned.

use std::io;
use std::path::PathBuf;

use crate::error::EngineError;
use crate::journal::JournalError;
use crate::lock::LockError;
use crate::preflight::Finding;
use crate::rundir::RunDirError;
use crate::step::AcceptRefused;
use crate::trust::TrustError;

/// Why `start` recorded no run.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the state directory `{}`: {source}", path.display())]
    StateDir { path: PathBuf, source: io::Error },
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("{0}\n  hint: wait for it to finish, or see `mkplan runs`")]
    Busy(#[from] LockError),
    #[error(
        "run {id} did not finish ({state}); a new run could meet its half-done work\n  hint: continue it with `mkplan resume {id}`"
    )]
    Unfinished { id: String, state: &'static str },
    /// The preflight found these problems.
    #[error("the preflight found {} problem(s)", .0.len())]
    Preflight(Vec<Finding>),
    /// A stop was requested at a preflight prompt.
    #[error(
        "interrupted in the preflight, before the run started: nothing was stopped or changed, and no run was recorded; run again when ready"
    )]
    PreflightInterrupted,
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// Why `resume` did not continue a run.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("{0}")]
    Busy(#[from] LockError),
    #[error("{0}\n  the journal is the run's record; it will not be resumed from a broken one")]
    BrokenJournal(JournalError),
    #[error("run {id} already finished ({outcome}); there is nothing to resume")]
    Finished { id: String, outcome: &'static str },
    #[error(
        "the plan changed since run {id} started: `{}` has sha256 {digest}, the run recorded {recorded}\n  hint: resume with the plan as it was (a copy is in {}), or finish this run first",
        path.display(), copy.display()
    )]
    PlanChanged {
        id: String,
        path: PathBuf,
        digest: String,
        recorded: String,
        copy: PathBuf,
    },
    #[error(
        "cannot read the plan `{}`: {source}\n  hint: pass `--plan {}` (the run's own copy)",
        path.display(), copy.display()
    )]
    PlanUnreadable {
        path: PathBuf,
        source: io::Error,
        copy: PathBuf,
    },
    /// A migration tool runs, or processes use a store a step left half-changed.
    #[error(
        "{}\n  nothing was resumed or changed; resume again once no migration tool runs: mkplan resume {id}",
        refusals.join("\nmkplan: error: ")
    )]
    HostBusy { id: String, refusals: Vec<String> },
    /// A step was left uncertain and no decision was given: what is known, and the choices.
    #[error("{}", .0.join("\n"))]
    NeedsDecision(Vec<String>),
    #[error("no step of run {id} is uncertain; resume without --retry-step/--accept-step")]
    NothingUncertain { id: String },
    #[error("refusing --accept-step: {0}; use --retry-step")]
    AcceptRefused(#[source] AcceptRefused),
    #[error("{0}")]
    Untrusted(#[from] TrustError),
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

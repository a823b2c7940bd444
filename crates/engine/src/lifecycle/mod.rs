//! A run from its start to its end, owned by the engine: [`start`] (the state directory, the
//! lock, the unfinished-run check, the preflight, the journal, then the executor) and
//! [`Reopened`] (`resume`: the lock, the journal, the plan's digest, the live guards, the
//! decision rules, then the executor). The CLI parses, calls these, and maps their one
//! error type to an exit code.

mod dry_run;
mod error;
mod resume;
mod start;
mod unfinished;

use std::path::PathBuf;

pub use dry_run::{Checked, DryRun, dry_run};
pub use error::{ResumeError, StartError};
pub use resume::{Decided, Execution, Reopened};
pub use start::{NewRun, start};

use crate::error::EngineError;
use crate::executor::{Executor, RunEnd};
use crate::state::RunState;

/// How a run the engine executed ended, for the caller to print and report.
pub struct Concluded {
    /// How it ended, or the journal failure that stopped it before its next action.
    pub end: Result<RunEnd, EngineError>,
    /// The run as its journal now says.
    pub state: RunState,
    pub run_dir: PathBuf,
}

/// Runs the executor to its end.
fn conclude(mut executor: Executor<'_>) -> Concluded {
    let end = executor.execute();
    Concluded {
        end,
        state: executor.recorder.state().clone(),
        run_dir: executor.info.run_dir.clone(),
    }
}

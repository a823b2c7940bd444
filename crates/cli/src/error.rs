//! Every way a command ends other than success, and the one exhaustive mapping to the exit
//! codes of `exit_code` (README "Exit codes").

use crate::exit_code;
use mkplan_engine::lifecycle::{ResumeError, StartError};

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid input whose diagnostics were already printed (a plan's, `validate`'s).
    #[error("invalid input (said above)")]
    InvalidSaid,
    /// Invalid input: a command line, an approvals file, a fault specification.
    #[error("{0}")]
    Invalid(String),
    /// The command failed and said why above (a report that does not verify).
    #[error("failed (said above)")]
    FailedSaid,
    /// A report is authentic but lacks required co-signatures (said above).
    #[error("incomplete (said above)")]
    IncompleteSaid,
    /// A precondition does not hold (nothing was changed).
    #[error("{0}")]
    Precondition(String),
    /// A precondition does not hold, said above (`check`'s dry run, `init`'s refusal).
    #[error("a precondition does not hold")]
    PreconditionsFail,
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// The run finished `failed` or `rescued` (its recap and report say how).
    #[error("the run failed")]
    RunFailed,
    /// A checkpoint was denied: the run was aborted.
    #[error("the run was aborted")]
    RunAborted,
    /// The run stopped before its end (a stop request, or a journal that could not record):
    /// it can be resumed.
    #[error("the run stopped before its end")]
    RunStopped,
    /// The run parked at a checkpoint to wait for work outside this host (said above).
    #[error("the run parked")]
    RunParked,
    /// A step failed after the point of no return: the run halted, to be resumed (said above).
    #[error("the run halted")]
    RunHalted,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The exit code: one exhaustive match, so a new way to fail needs a decision here.
    pub fn code(&self) -> i32 {
        match self {
            CliError::InvalidSaid | CliError::Invalid(_) => exit_code::INVALID,
            CliError::FailedSaid
            | CliError::RunFailed
            | CliError::RunHalted
            | CliError::RunStopped => exit_code::FAILURE,
            CliError::Io(_) | CliError::Other(_) => exit_code::FAILURE,
            CliError::PreconditionsFail | CliError::Precondition(_) => exit_code::PRECONDITION,
            CliError::RunAborted => exit_code::ABORTED,
            CliError::RunParked => exit_code::PARKED,
            CliError::IncompleteSaid => exit_code::INCOMPLETE,
            CliError::Start(e) => match e {
                StartError::Busy(_) | StartError::Unfinished { .. } | StartError::Preflight(_) => {
                    exit_code::PRECONDITION
                }
                StartError::StateDir { .. }
                | StartError::RunDir(_)
                | StartError::PreflightInterrupted
                | StartError::Journal(_)
                | StartError::Engine(_) => exit_code::FAILURE,
            },
            CliError::Resume(e) => match e {
                ResumeError::Busy(_)
                | ResumeError::BrokenJournal(_)
                | ResumeError::PlanChanged { .. }
                | ResumeError::PlanUnreadable { .. }
                | ResumeError::HostBusy { .. }
                | ResumeError::Untrusted(_) => exit_code::PRECONDITION,
                ResumeError::Finished { .. } | ResumeError::NothingUncertain { .. } => {
                    exit_code::INVALID
                }
                ResumeError::NeedsDecision(_) | ResumeError::AcceptRefused(_) => {
                    exit_code::NEEDS_DECISION
                }
                ResumeError::RunDir(_) | ResumeError::Engine(_) => exit_code::FAILURE,
            },
        }
    }

    /// Says on stderr what was not said yet.
    pub fn print(&self) {
        match self {
            CliError::InvalidSaid
            | CliError::FailedSaid
            | CliError::IncompleteSaid
            | CliError::PreconditionsFail
            | CliError::RunFailed
            | CliError::RunAborted
            | CliError::RunParked
            | CliError::RunHalted
            | CliError::RunStopped => {}
            CliError::Start(StartError::Preflight(problems)) => {
                for problem in problems {
                    eprintln!(
                        "mkplan: error: preflight: {}: {}",
                        problem.what, problem.text
                    );
                }
                eprintln!(
                    "  nothing was started or changed, and no run was recorded; fix {}, then run again (`mkplan check` shows the whole preflight)",
                    if problems.len() == 1 { "this" } else { "these" }
                );
            }
            CliError::Start(e @ StartError::PreflightInterrupted) => eprintln!("mkplan: {e}"),
            CliError::Start(e @ StartError::Engine(_)) => {
                eprintln!("mkplan: error: {e}");
                eprintln!(
                    "  the run stopped before its next action; nothing was done after the last journaled event"
                );
            }
            CliError::Resume(e @ ResumeError::NeedsDecision(_)) => eprintln!("{e}"),
            e => eprintln!("mkplan: error: {e}"),
        }
    }
}

//! After the engine executed a run: the recap, the run's directory and outcome, the signed
//! report, and how the run's end maps to a command result.

use crate::error::CliError;
use crate::globals::Globals;
use crate::recap::print_recap;
use mkplan_engine::events::Outcome;
use mkplan_engine::executor::RunEnd;
use mkplan_engine::lifecycle::Concluded;
use mkplan_engine::ports::operator::Operator;
use mkplan_engine::ports::root::HostRoot;
use mkplan_plan::Plan;
use mkplan_report::sign::ReportSigner;

/// What reporting a finished run needs.
pub struct ReportWith<'a> {
    pub root: &'a HostRoot,
    pub operator: &'a dyn Operator,
    /// The signer the preflight proved (`run`); `None` prepares one now (`resume`).
    pub signer: Option<&'a ReportSigner>,
}

/// Prints the recap and the outcome, reports a finished run, and returns the run's end as
/// a command result.
pub fn finish(
    plan: &Plan,
    concluded: Concluded,
    globals: &Globals,
    with: ReportWith<'_>,
) -> Result<(), CliError> {
    let state = &concluded.state;
    print_recap(plan, state, globals.log_format);
    let end = match concluded.end {
        Ok(end) => end,
        Err(e) => {
            eprintln!("mkplan: error: {e}");
            eprintln!(
                "  the run stopped before its next action; nothing was done after the last journaled event"
            );
            return Err(CliError::RunStopped);
        }
    };
    eprintln!("run {} in {}", state.run_id, concluded.run_dir.display());
    let outcome = match end {
        RunEnd::Finished(outcome) => outcome,
        RunEnd::Interrupted => {
            eprintln!(
                "interrupted: continue with `mkplan resume {}`",
                state.run_id
            );
            return Err(CliError::RunStopped);
        }
        RunEnd::Parked { step, waiting_for } => {
            crate::parked::print_parked(plan, state, globals, &step, &waiting_for);
            return Err(CliError::RunParked);
        }
        RunEnd::Halted { step, reason } => {
            crate::parked::print_halted(state, globals, &step, &reason);
            return Err(CliError::RunHalted);
        }
    };
    eprintln!(
        "outcome: {}: {}",
        outcome.as_str(),
        mkplan_engine::outcome::describe(plan, state)
    );
    // A finished run is reported and signed whatever its outcome: a failed or rescued run is
    // when the evidence matters most. A report failure is loud, but the exit code stays the
    // run's own, so it can never hide (or fake) the outcome.
    crate::report::after_run(
        plan,
        &concluded.run_dir,
        with.root,
        with.operator,
        with.signer,
    );
    match outcome {
        Outcome::Succeeded => Ok(()),
        Outcome::Aborted => Err(CliError::RunAborted),
        Outcome::Failed | Outcome::Rescued => Err(CliError::RunFailed),
    }
}

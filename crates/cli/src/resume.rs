//! `mkplan resume RUN`: continue an interrupted run where its journal says it stopped. The
//! engine decides whether it may (`engine::lifecycle::Reopened`); this file parses, picks the
//! host (a rehearsal resumes on its own simulated host), and reports.

use std::path::{Path, PathBuf};

use crate::approval_args::ApprovalArgs;
use crate::error::CliError;
use crate::exit_code;
use crate::finish::{ReportWith, finish};
use crate::globals::Globals;
use crate::plan_input::{load_for_execution, operator_name};
use mkplan_engine::cancel::Cancel;
use mkplan_engine::events::DecisionKind;
use mkplan_engine::lifecycle::{Execution, Reopened};
use mkplan_engine::ports::Ports;
use mkplan_engine::ports::operator::Operator;
use mkplan_host::linux::LinuxHost;
use mkplan_host::terminal::Terminal;
use mkplan_steps::registry::Registry;

/// Continue an interrupted run where its journal says it stopped.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (see `mkplan runs`).
    #[arg(value_name = "RUN")]
    run: String,
    /// The plan file, if not at the path the run recorded; it must be byte-identical.
    #[arg(long, value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// Run the step that was interrupted half-way again.
    #[arg(long, conflicts_with = "accept_step")]
    retry_step: bool,
    /// Take the step that was interrupted half-way as done.
    #[arg(long)]
    accept_step: bool,
    #[command(flatten)]
    approval: ApprovalArgs,
}

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let (state_dir, run_dir) = globals
        .find_run(&args.run)
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let run_id = run_dir.id.clone();
    let state_for_approvals = state_dir.clone();
    let reopened = Reopened::open(state_dir, run_dir, args.plan.clone())?;
    let loaded = load_for_execution(reopened.plan_path()).ok_or(CliError::InvalidSaid)?;
    let plan = reopened.plan_for_run(loaded.plan, &loaded.text)?;
    let decision = match (args.retry_step, args.accept_step) {
        (true, _) => Some(DecisionKind::Retry),
        (_, true) => Some(DecisionKind::Accept),
        _ => None,
    };
    let rehearsal = reopened.rehearsal();
    let journaled_root = reopened.host_root();
    let journaled_host = LinuxHost::new(journaled_root.clone());
    let decided = reopened.decide(&plan, decision, &Registry, &journaled_host)?;
    let approvals =
        args.approval
            .inputs(&plan, &loaded.text, &state_for_approvals, Some(&run_id))?;
    // Before the operator: a stop request must end a prompt that is waiting.
    let cancel = Cancel::install(exit_code::FAILURE)?;
    let (ports, operator) = if rehearsal {
        rehearsal_host(&plan, Path::new(journaled_root.dir()))?
    } else {
        (
            globals.ports(),
            Terminal::detect(args.approval.non_interactive, &cancel),
        )
    };
    globals.init_logging();
    let concluded = decided.execute(Execution {
        ports: &ports,
        steps: &Registry,
        operator: operator.as_ref(),
        approvals: &approvals,
        operator_name: operator_name(args.approval.operator.as_deref()),
        cancel,
    })?;
    let with = ReportWith {
        root: ports.host.root(),
        operator: operator.as_ref(),
        signer: None,
    };
    finish(&plan, concluded, globals, with)
}

/// A rehearsal resumes on its own simulated host, with its simulated operator.
#[cfg(feature = "rehearse")]
fn rehearsal_host(
    plan: &mkplan_plan::Plan,
    root: &Path,
) -> Result<(Ports, Box<dyn Operator>), CliError> {
    crate::rehearse::resume_host(plan, root).map_err(|e| CliError::Precondition(format!("{e:#}")))
}

/// This mkplan has no simulator: a rehearsal cannot be resumed by it.
#[cfg(not(feature = "rehearse"))]
fn rehearsal_host(
    _plan: &mkplan_plan::Plan,
    root: &Path,
) -> Result<(Ports, Box<dyn Operator>), CliError> {
    Err(CliError::Precondition(format!(
        "this run is a rehearsal (simulated host `{}`); resume it with a mkplan built with the `rehearse` feature (the default)",
        root.display()
    )))
}

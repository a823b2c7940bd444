//! A new run: nothing is recorded until the state directory is trusted, the lock is held, no
//! other run is unfinished and the preflight found nothing wrong (design rule 9); the PINs
//! are obtained and verified before anything is stopped.

use std::path::Path;

use crate::access::create_private_dirs;
use crate::approvals::ApprovalInputs;
use crate::cancel::Cancel;
use crate::events::EventKind;
use crate::executor::{Executor, RunOptions};
use crate::journal::Journal;
use crate::lifecycle::unfinished::unfinished_run;
use crate::lifecycle::{Concluded, StartError, conclude};
use crate::lock::StateLock;
use crate::ports::Ports;
use crate::ports::operator::Operator;
use crate::preflight::{Preflight, Scope};
use crate::recorder::Recorder;
use crate::rundir::{StateDir, new_run_id};
use crate::sinks::LogSink;
use crate::state::RunState;
use crate::step::{RunInfo, Steps};
use crate::trust::{self, Trusted};
use mkplan_plan::Plan;

/// Everything a new run needs; `run` and `rehearse` differ only in what they put here.
pub struct NewRun<'a> {
    pub plan: &'a Plan,
    pub plan_text: &'a str,
    pub plan_path: &'a Path,
    pub state: StateDir,
    pub ports: Ports,
    pub steps: &'a dyn Steps,
    pub operator: &'a dyn Operator,
    pub approvals: &'a ApprovalInputs,
    pub options: &'a RunOptions,
    pub rehearsal: bool,
    /// The stop flag, its signal handlers installed.
    pub cancel: Cancel,
}

/// Creates the run (refusing while another run holds the lock or did not finish, or when
/// the preflight finds a problem or is interrupted), journals its start, and executes it to
/// the end. `preflight` looks at the host with the scope given (the caller composes it from
/// the step kinds' and the report's checks); it is called once the lock is held, or, when
/// the state directory is not trusted, only to say why with every other problem.
pub fn start(
    run: NewRun<'_>,
    preflight: &mut dyn FnMut(&Scope<'_>) -> Preflight,
) -> Result<Concluded, StartError> {
    let state_dir = &run.state;
    // A missing state directory is made, owner-only; nothing more before it is trusted.
    create_private_dirs(state_dir.dir()).map_err(|source| StartError::StateDir {
        path: state_dir.dir().to_owned(),
        source,
    })?;
    let scope = Scope {
        plan_file: run.plan_path,
        approvals_files: run.approvals.files(),
        state_dir: state_dir.dir(),
        cancel: &run.cancel,
    };
    // Nothing is created in a state directory others could write (a link planted there
    // would turn the lock or the run's files into someone else's): the preflight, which
    // asks for no PIN then, says why with every other problem.
    if trust::check(state_dir.dir(), Trusted::StateDir).is_err() {
        return Err(refusal(preflight(&scope)));
    }
    state_dir.ensure()?;
    // Nothing is written for the run until the preflight passed: a second Ctrl-C at a PIN
    // prompt (which exits at once) leaves no run directory behind.
    let id = new_run_id();
    let _lock = StateLock::acquire(state_dir, &id)?;
    if let Some((id, state)) = unfinished_run(state_dir, &id, run.plan) {
        return Err(StartError::Unfinished { id, state });
    }
    let checked = preflight(&scope);
    if checked.interrupted || !checked.problems.is_empty() {
        return Err(refusal(checked));
    }
    for finding in &checked.holds {
        tracing::info!("preflight: {}: {}", finding.what, finding.text);
    }
    for line in &checked.later {
        tracing::info!("preflight: {line}");
    }
    let run_dir = state_dir.create_run_as(&id, run.plan_text)?;
    let journal = Journal::create(&run_dir.journal(), &run_dir.id)?;
    let plan_sha256 = run_dir.recorded_digest()?;
    let mut recorder = Recorder::new(
        journal,
        RunState::replay(&[]),
        vec![Box::new(LogSink::new(run.operator))],
    );
    recorder.record(EventKind::RunStarted {
        plan_name: run.plan.name.clone(),
        plan_path: run.plan_path.display().to_string(),
        plan_sha256: plan_sha256.clone(),
        change_ticket: run.plan.change.ticket.clone(),
        mkplan_version: env!("CARGO_PKG_VERSION").to_owned(),
        host_root: run.ports.host.root().dir().display().to_string(),
        operator: run.options.operator_name.clone(),
        pid: std::process::id(),
        rehearsal: run.rehearsal,
        origin: Some(crate::origin::capture()),
    })?;
    let executor = Executor {
        plan: run.plan,
        ports: &run.ports,
        info: RunInfo {
            run_id: run_dir.id.clone(),
            run_dir: run_dir.dir.clone(),
            plan_sha256,
        },
        recorder,
        options: run.options,
        cancel: run.cancel.clone(),
        operator: run.operator,
        approvals: run.approvals,
        pins: checked.pins,
        steps: run.steps,
    };
    Ok(conclude(executor))
}

fn refusal(checked: Preflight) -> StartError {
    if checked.interrupted {
        StartError::PreflightInterrupted
    } else {
        StartError::Preflight(checked.problems)
    }
}

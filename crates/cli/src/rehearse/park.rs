//! A rehearsal that parks (a concurrent change waiting for the TKE activation): the park is
//! real (the engine stops, exit 6 would follow), then the rehearsal lets the simulated days
//! pass — the simulated applications keep working meanwhile, and the clock is moved forward
//! (journaled as simulated) — and resumes in this process, where the simulated TKE activates
//! and approves. `--stop-at-park` leaves the run parked for a hand-run resume instead.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::CliError;
use crate::exit_code;
use crate::globals::Globals;
use crate::plan_input::{ExecutablePlan, operator_name};
use mkplan_engine::approvals::ApprovalInputs;
use mkplan_engine::cancel::Cancel;
use mkplan_engine::executor::RunEnd;
use mkplan_engine::lifecycle::{Concluded, Execution, Reopened};
use mkplan_engine::ports::Ports;
use mkplan_engine::ports::operator::Operator;
use mkplan_plan::Plan;
use mkplan_steps::registry::Registry;

/// How often a rehearsal resumes a run that parks again before it gives up.
const MAX_RESUMES: usize = 4;
/// How many more operations each simulated application does while the run is parked.
const OPS_WHILE_PARKED: u64 = 20;

/// Resumes `concluded` while it parks, each time after `days` simulated days.
pub(super) fn through_parks(
    mut concluded: Concluded,
    (plan, loaded): (&Plan, &ExecutablePlan),
    globals: &Globals,
    (ports, operator): (&Ports, &dyn Operator),
    days: u32,
) -> Result<Concluded, CliError> {
    for _ in 0..MAX_RESUMES {
        let Ok(RunEnd::Parked { step, waiting_for }) = &concluded.end else {
            return Ok(concluded);
        };
        crate::parked::print_parked(plan, &concluded.state, globals, step, waiting_for);
        let root = ports.host.root().dir().to_owned();
        eprintln!(
            "REHEARSAL: {days} day(s) pass (simulated clock, not waited); the applications keep running"
        );
        let done = let_apps_work(&root);
        eprintln!("REHEARSAL: meanwhile the simulated applications did {done} more operations");
        mkplan_engine::clock::advance_simulated(i64::from(days) * 86_400);
        let (state_dir, run_dir) = globals
            .find_run(&concluded.state.run_id)
            .map_err(|e| CliError::Invalid(e.to_string()))?;
        let reopened = Reopened::open(state_dir, run_dir, Some(loaded.path.clone()))?;
        let plan_for_run = reopened.plan_for_run(plan.clone(), &loaded.text)?;
        let decided = reopened.decide(&plan_for_run, None, &Registry, &*ports.host)?;
        concluded = decided.execute(Execution {
            ports,
            steps: &Registry,
            operator,
            approvals: &ApprovalInputs::default(),
            operator_name: format!("{} (rehearsal)", operator_name(None)),
            cancel: Cancel::install(exit_code::FAILURE)?,
        })?;
    }
    Ok(concluded)
}

/// Waits (bounded) until the simulated applications did some more operations; how many.
fn let_apps_work(root: &Path) -> u64 {
    let total = |root: &Path| mkplan_sim::apps(root).map_or(0, |r| r.total.ok + r.total.failed);
    let before = total(root);
    let limit = Instant::now() + Duration::from_secs(20);
    while total(root) < before + OPS_WHILE_PARKED && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    total(root) - before
}

/// The simulated applications' verdict: any failed operation fails the rehearsal.
pub(super) fn apps_verdict(root: &Path) -> Result<(), CliError> {
    let Ok(report) = mkplan_sim::apps(root) else {
        return Ok(());
    };
    let total = report.total.ok + report.total.failed;
    if total == 0 {
        return Ok(());
    }
    if report.no_failures() {
        eprintln!(
            "REHEARSAL: the simulated applications did {total} operations during the change, none failed"
        );
        return Ok(());
    }
    let first = report
        .apps
        .values()
        .find_map(|a| a.counts.first_failure.as_ref())
        .map(|f| format!("; first: {} with key {}: {}", f.token, f.key, f.reason))
        .unwrap_or_default();
    eprintln!(
        "REHEARSAL FAILED: {} of {total} application operations failed{first}",
        report.total.failed
    );
    Err(CliError::RunFailed)
}

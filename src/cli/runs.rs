//! `mkplan runs`: every run of the state directory, with its plan, start and state.

use crate::cli::common::Globals;
use crate::engine::events::EventKind;
use crate::engine::journal::read_verified;
use crate::engine::lock::StateLock;
use crate::engine::state::RunState;
use crate::exit_code;

/// List the runs and their state (running, succeeded, failed, rescued, aborted,
/// interrupted, needs decision).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: Args, globals: &Globals) -> anyhow::Result<i32> {
    let state_dir = globals.state();
    let runs = state_dir.list_runs()?;
    let holder = crate::input::read_to_string(&state_dir.lock_path(), crate::input::SMALL)
        .unwrap_or_default();
    let held = StateLock::is_held(&state_dir);
    println!("{:<24} {:<25} {:<15} PLAN", "RUN", "STARTED", "STATE");
    for run in runs {
        let (started, plan, state) = match read_verified(&run.journal()) {
            Ok(read) => {
                let state = RunState::replay(&read.entries);
                let (started, plan) = read
                    .entries
                    .first()
                    .map(|e| match &e.event {
                        EventKind::RunStarted { plan_name, .. } => {
                            (e.time.clone(), plan_name.clone())
                        }
                        _ => (e.time.clone(), String::new()),
                    })
                    .unwrap_or_default();
                let name = if held
                    && holder.starts_with(&run.id)
                    && !matches!(state.phase, crate::engine::state::Phase::Finished(_))
                {
                    "running"
                } else {
                    state.state_name()
                };
                (started, plan, name.to_owned())
            }
            Err(e) => (String::new(), String::new(), format!("journal broken: {e}")),
        };
        println!("{:<24} {:<25} {:<15} {plan}", run.id, started, state);
    }
    Ok(exit_code::SUCCESS)
}

//! `mkplan runs`: every run of the state directory, with its plan, start and state: a
//! finished run's from its summary, the others' from their journals.

use std::path::Path;

use crate::error::CliError;
use crate::globals::{Globals, rehearsal_state_dir};
use mkplan_engine::events::EventKind;
use mkplan_engine::journal::read_verified;
use mkplan_engine::lock::StateLock;
use mkplan_engine::retention::DEFAULT_RETENTION_DAYS;
use mkplan_engine::rundir::{RunDir, StateDir};
use mkplan_engine::state::{Phase, RunState};
use mkplan_engine::summary::RunSummary;

/// List the runs and their state (running, succeeded, failed, rescued, aborted,
/// interrupted, needs decision).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the runs that finished more than --retention-days ago (never an unfinished
    /// run), instead of listing.
    #[arg(long)]
    prune: bool,
    /// How long --prune keeps a finished run, in days.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_RETENTION_DAYS, requires = "prune")]
    retention_days: u64,
}

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let state_dir = globals.state();
    if args.prune {
        return crate::prune::older_than(&state_dir, args.retention_days);
    }
    let runs = state_dir.list_runs().map_err(anyhow::Error::from)?;
    if runs.is_empty() {
        println!("no runs in `{}`", state_dir.runs().display());
        if let Some(note) = rehearsals_note(&state_dir) {
            println!("{note}");
        }
        return Ok(());
    }
    let holder =
        mkplan_plan::input::read_to_string(&state_dir.lock_path(), mkplan_plan::input::SMALL)
            .unwrap_or_default();
    let held = StateLock::is_held(&state_dir);
    println!("{:<24} {:<25} {:<15} PLAN", "RUN", "STARTED", "STATE");
    for run in runs {
        let (started, plan, state) = match RunSummary::read(&run.dir) {
            // Finished: its summary says all `runs` shows; the journal is not read.
            Some(summary) if summary.outcome.is_some() => (
                summary.started,
                summary.plan_name,
                summary.outcome.map_or("", |o| o.as_str()).to_owned(),
            ),
            _ => from_journal(&run, held && holder.starts_with(&run.id)),
        };
        // Runs of older mkplan hold `…:41.32Z`: the column shows one width.
        let started = mkplan_engine::clock::normalize_or_keep(&started);
        println!("{:<24} {:<25} {:<15} {plan}", run.id, started, state);
    }
    // Beside the table (stderr), so scripts reading the table are not disturbed.
    if let Some(note) = rehearsals_note(&state_dir) {
        eprintln!("{note}");
    }
    Ok(())
}

/// (started, plan, state) of a run that has not finished (or has no summary), from its
/// journal; `locked`: the run holds the state directory's lock.
fn from_journal(run: &RunDir, locked: bool) -> (String, String, String) {
    let read = match read_verified(&run.journal()) {
        Ok(read) => read,
        Err(e) => return (String::new(), String::new(), format!("journal broken: {e}")),
    };
    let state = RunState::replay(&read.entries);
    let (started, plan) = read
        .entries
        .first()
        .map(|e| match &e.event {
            EventKind::RunStarted { plan_name, .. } => (e.time.clone(), plan_name.clone()),
            _ => (e.time.clone(), String::new()),
        })
        .unwrap_or_default();
    let name = if locked && !matches!(state.phase, Phase::Finished(_)) {
        "running"
    } else {
        state.state_name()
    };
    (started, plan, name.to_owned())
}

/// Where rehearsals are kept and how to list them, unless that is what is listed.
fn rehearsals_note(listed: &StateDir) -> Option<String> {
    let rehearsals = StateDir::new(rehearsal_state_dir());
    if same_dir(listed.dir(), rehearsals.dir()) {
        return None;
    }
    let count = rehearsals.list_runs().map(|r| r.len()).unwrap_or(0);
    let dir = rehearsals.dir().display();
    Some(match count {
        0 => format!(
            "rehearsals (`mkplan rehearse PLAN`) are kept apart, in `{dir}`; there are none yet"
        ),
        n => format!(
            "rehearsals are kept apart, in `{dir}` ({n} run{}): mkplan runs --state-dir {dir}",
            if n == 1 { "" } else { "s" }
        ),
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || (a.exists() && std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok())
}

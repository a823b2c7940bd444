//! A new run is refused while another run of the same state directory did not finish: it
//! could meet that run's half-done work. Runs whose summary shows them finished cost one
//! small read each; only the others' journals are read.

use crate::journal::read_verified;
use crate::rundir::StateDir;
use crate::state::{Phase, RunState};
use crate::summary::RunSummary;

/// A run of this state directory (other than `except`) that did not finish: its id and
/// state.
pub(super) fn unfinished_run(state: &StateDir, except: &str) -> Option<(String, &'static str)> {
    let runs = state.list_runs().ok()?;
    runs.into_iter().rev().find_map(|run| {
        if run.id == except {
            return None;
        }
        // A run its summary shows finished is not read again.
        if RunSummary::read(&run.dir).is_some_and(|s| s.outcome.is_some()) {
            return None;
        }
        let entries = read_verified(&run.journal()).ok()?.entries;
        let state = RunState::replay(&entries);
        (!matches!(state.phase, Phase::Finished(_)) && !entries.is_empty())
            .then(|| (run.id.clone(), state.state_name()))
    })
}

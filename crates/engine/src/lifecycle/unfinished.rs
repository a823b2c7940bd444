//! A new run is refused while another run of the same state directory did not finish: it
//! could meet that run's half-done work.

use crate::journal::read_verified;
use crate::rundir::StateDir;
use crate::state::{Phase, RunState};

/// A run of this state directory (other than `except`) that did not finish: its id and
/// state.
pub(super) fn unfinished_run(state: &StateDir, except: &str) -> Option<(String, &'static str)> {
    let runs = state.list_runs().ok()?;
    runs.into_iter().rev().find_map(|run| {
        if run.id == except {
            return None;
        }
        let entries = read_verified(&run.journal()).ok()?.entries;
        let state = RunState::replay(&entries);
        (!matches!(state.phase, Phase::Finished(_)) && !entries.is_empty())
            .then(|| (run.id.clone(), state.state_name()))
    })
}

//! A new run is refused while another run of the same state directory did not finish: it
//! could meet that run's half-done work. Runs whose summary shows them finished cost one
//! small read each; only the others' journals are read. A *parked* run is a normal state
//! that may last days (a concurrent change waiting for the TKE): it blocks only a plan whose
//! tokens meet its own (a shared slot, store or APQN); every other unfinished state blocks
//! everything, since it needs attention first.

use crate::journal::read_verified;
use crate::rundir::StateDir;
use crate::state::{Phase, RunState};
use crate::summary::RunSummary;
use mkplan_plan::Plan;
use mkplan_plan::load::load_file;

/// Whether two plans' tokens share a slot, a store or an APQN.
fn meets(a: &Plan, b: &Plan) -> bool {
    a.tokens.values().any(|x| {
        b.tokens.values().any(|y| {
            x.slot == y.slot || x.store == y.store || x.apqns.iter().any(|q| y.apqns.contains(q))
        })
    })
}

/// A run of this state directory (other than `except`) that did not finish: its id and
/// state.
pub(super) fn unfinished_run(
    state: &StateDir,
    except: &str,
    plan: &Plan,
) -> Option<(String, &'static str)> {
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
        if matches!(state.phase, Phase::Finished(_)) || entries.is_empty() {
            return None;
        }
        if state.state_name() == "parked"
            && load_file(&run.plan_copy())
                .plan
                .is_some_and(|parked| !meets(&parked, plan))
        {
            return None;
        }
        Some((run.id.clone(), state.state_name()))
    })
}

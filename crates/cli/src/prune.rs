//! Removing old runs: the rehearsals beyond the newest N after each rehearsal, and
//! `mkplan runs --prune` by the retention period. The rule is `engine::retention`'s: an
//! unfinished run is never removed.

#[cfg(feature = "rehearse")]
use mkplan_engine::retention::Pruned;
use mkplan_engine::retention::{PruneError, Rule, prune};
use mkplan_engine::rundir::StateDir;

use crate::error::CliError;

#[cfg(feature = "rehearse")]
/// After a rehearsal: keeps the newest `keep` finished rehearsals of `state` and says where
/// they are. A failure to prune is said, never fails the rehearsal.
pub fn rehearsals(state: &StateDir, keep: usize) {
    let dir = state.runs();
    match prune(state, Rule::Rehearsals { keep }) {
        Ok(Pruned { removed, .. }) => {
            let removed = match removed.len() {
                0 => String::new(),
                n => format!("; {n} older removed"),
            };
            eprintln!(
                "rehearsals are kept in `{}` (the newest {keep}{removed}; --keep-rehearsals N keeps another number)",
                dir.display()
            );
        }
        Err(e) => eprintln!(
            "rehearse: older rehearsals in `{}` were not pruned: {e}",
            dir.display()
        ),
    }
}

/// `mkplan runs --prune`: removes the finished runs older than `days` days.
pub fn older_than(state: &StateDir, days: u64) -> Result<(), CliError> {
    let pruned =
        prune(state, Rule::OlderThan { days }).map_err(|e: PruneError| anyhow::Error::from(e))?;
    for id in &pruned.removed {
        println!("removed {id}");
    }
    println!(
        "{} run(s) removed from `{}` (finished more than {days} days ago); {} kept, {} of them unfinished (never removed)",
        pruned.removed.len(),
        state.runs().display(),
        pruned.kept,
        pruned.unfinished.len()
    );
    Ok(())
}

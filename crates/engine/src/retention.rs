//! Removing old runs from a state directory, by one rule that never loses evidence still
//! needed: a run is removed only when its summary says it finished (an unfinished run, or
//! one without a readable summary, is always kept: it may still be resumed or decided), and
//! only when the rule selects it — the rehearsals beyond the newest N, or a production run
//! that finished longer ago than the retention period. The state directory's lock is held
//! while runs are removed, so no run starts meanwhile.

use std::fs;
use std::path::PathBuf;

use crate::lock::{LockError, StateLock};
use crate::rundir::{RunDirError, StateDir};
use crate::summary::RunSummary;

/// The rehearsals `mkplan rehearse` keeps unless told otherwise.
pub const DEFAULT_REHEARSALS_KEPT: usize = 20;

/// How long `mkplan runs --prune` keeps a finished run by default: PCI DSS 10.5.1 keeps audit
/// logs for at least twelve months.
pub const DEFAULT_RETENTION_DAYS: u64 = 366;

/// Which finished runs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Finished rehearsals beyond the newest `keep` (production runs are never touched).
    Rehearsals { keep: usize },
    /// Finished runs (rehearsals too) that finished more than `days` days ago.
    OlderThan { days: u64 },
}

/// What pruning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: Vec<String>,
    /// Runs kept because they have not finished (or have no readable summary).
    pub unfinished: Vec<String>,
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot remove run directory `{path}`: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Removes the runs `rule` selects from `state` now.
pub fn prune(state: &StateDir, rule: Rule) -> Result<Pruned, PruneError> {
    prune_at(state, rule, jiff::Timestamp::now())
}

/// Removes the runs `rule` selects from `state` (runs are listed oldest first by id, which
/// starts with the start time); `now` is for [`Rule::OlderThan`].
pub fn prune_at(state: &StateDir, rule: Rule, now: jiff::Timestamp) -> Result<Pruned, PruneError> {
    let runs = state.list_runs()?;
    if runs.is_empty() {
        return Ok(Pruned::default());
    }
    let _lock = StateLock::acquire(state, "prune")?;
    let mut pruned = Pruned::default();
    let mut finished = Vec::new();
    for run in runs {
        match RunSummary::read(&run.dir) {
            Some(summary) if summary.outcome.is_some() => finished.push((run, summary)),
            _ => pruned.unfinished.push(run.id),
        }
    }
    let selected: Vec<bool> = match rule {
        Rule::Rehearsals { keep } => {
            let rehearsals = finished.iter().filter(|(_, s)| s.rehearsal).count();
            let mut beyond = rehearsals.saturating_sub(keep);
            finished
                .iter()
                .map(|(_, s)| {
                    let go = s.rehearsal && beyond > 0;
                    beyond -= usize::from(go);
                    go
                })
                .collect()
        }
        Rule::OlderThan { days } => {
            let limit = jiff::SignedDuration::from_hours(24 * days as i64);
            finished
                .iter()
                .map(|(_, s)| {
                    // An unreadable finish time keeps the run.
                    s.finished
                        .as_deref()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .is_some_and(|t| now.duration_since(t) > limit)
                })
                .collect()
        }
    };
    for ((run, _), go) in finished.into_iter().zip(selected) {
        if !go {
            pruned.kept += 1;
            continue;
        }
        fs::remove_dir_all(&run.dir).map_err(|source| PruneError::Remove {
            path: run.dir.clone(),
            source,
        })?;
        pruned.removed.push(run.id);
    }
    pruned.kept += pruned.unfinished.len();
    Ok(pruned)
}

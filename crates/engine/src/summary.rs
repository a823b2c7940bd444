//! A run's summary beside its journal (`summary.json`): its plan, its start, and how it
//! finished. `mkplan runs` and the unfinished-run check read it instead of verifying and
//! replaying every journal (a 50,000-key run's journal holds megabytes). It is a cache of
//! the journal, never evidence: a run whose summary does not say it finished is read from
//! its journal, which decides; `mkplan report verify` checks the journal itself.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::access::Access;
use crate::events::Outcome;
use crate::rundir::{RunDirError, write_synced};

/// The file in the run directory.
pub const SUMMARY: &str = "summary.json";

/// What `runs` shows of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: String,
    pub plan_name: String,
    /// When the run started (its `run_started` event's time).
    pub started: String,
    pub rehearsal: bool,
    /// How it finished; `None` while it has not (running, interrupted, needing a decision).
    pub outcome: Option<Outcome>,
    /// When it finished.
    pub finished: Option<String>,
}

impl RunSummary {
    /// The summary in run directory `dir`, if there is a readable one.
    pub fn read(dir: &Path) -> Option<Self> {
        let bytes = mkplan_plan::input::read(&dir.join(SUMMARY), mkplan_plan::input::SMALL).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes it into run directory `dir`, whole or not at all (a new file, with the run
    /// directory's access, renamed over the old one).
    pub fn write(&self, dir: &Path) -> Result<(), RunDirError> {
        let partial = dir.join(format!(".{SUMMARY}.partial"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| RunDirError::Io {
            path: partial.clone(),
            source: io::Error::other(e),
        })?;
        let _ = std::fs::remove_file(&partial);
        let access = Access::inside(dir).map_err(|source| RunDirError::Io {
            path: dir.to_owned(),
            source,
        })?;
        write_synced(&partial, &bytes, access)?;
        let path = dir.join(SUMMARY);
        std::fs::rename(&partial, &path).map_err(|source| RunDirError::Io { path, source })
    }
}

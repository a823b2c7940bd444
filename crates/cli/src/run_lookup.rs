//! Finding a run by its id: in the state directory, then among the rehearsals.

use std::path::PathBuf;

use crate::globals::{Globals, rehearsal_state_dir};
use mkplan_engine::rundir::{RunDir, StateDir};

impl Globals {
    /// Finds run `id`: in `--state-dir` when given; otherwise in the default state
    /// directory, then among the rehearsals (a rehearsal's run is found without saying
    /// where rehearsals are kept). Says on stderr when it is a rehearsal's.
    pub fn find_run(&self, id: &str) -> Result<(StateDir, RunDir), NoSuchRun> {
        let places = match &self.state_dir {
            Some(_) => vec![self.state()],
            None => vec![self.state(), StateDir::new(rehearsal_state_dir())],
        };
        for (i, state) in places.iter().enumerate() {
            if let Ok(run) = state.open_run(id) {
                if i > 0 {
                    eprintln!(
                        "note: run {id} is a rehearsal's, in `{}`",
                        state.dir().display()
                    );
                }
                return Ok((state.clone(), run));
            }
        }
        Err(NoSuchRun {
            id: id.to_owned(),
            searched: places.iter().map(StateDir::runs).collect(),
            rehearsals_searched: self.state_dir.is_none(),
        })
    }
}

/// A run id that names no run where mkplan looked.
#[derive(Debug, thiserror::Error)]
#[error("no run `{id}` in {}{}", quoted_paths(searched), self.hint())]
pub struct NoSuchRun {
    pub id: String,
    pub searched: Vec<PathBuf>,
    rehearsals_searched: bool,
}

impl NoSuchRun {
    fn hint(&self) -> String {
        if self.rehearsals_searched {
            let rehearsals = rehearsal_state_dir();
            format!(
                "\n  hint: `mkplan runs` lists the runs, `mkplan runs --state-dir {}` the rehearsals",
                rehearsals.display()
            )
        } else {
            "\n  hint: `mkplan runs` (with the same --state-dir) lists them".to_owned()
        }
    }
}

fn quoted_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(" or ")
}

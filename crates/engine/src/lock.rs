//! One run at a time per state directory: an exclusive lock on `<state>/lock`, held for the
//! whole run, with the holder's run id and pid written inside for whoever is refused.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::rundir::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another mkplan run holds the lock on `{path}`: run {holder}")]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies, however it dies).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(state: &StateDir, run_id: &str) -> Result<Self, LockError> {
        let path = state.lock_path();
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        state.ensure().map_err(|e| LockError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let access = state.access().map_err(|e| LockError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(access.file_mode())
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = mkplan_plan::input::read_from(&file, mkplan_plan::input::SMALL)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                let holder = holder.trim();
                return Err(LockError::Held {
                    path,
                    holder: if holder.is_empty() {
                        "(unknown)".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        access.apply(&file).map_err(io)?;
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{run_id} (pid {})", std::process::id()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self { _file: file })
    }

    /// Whether some process holds the lock now (for `mkplan runs`).
    pub fn is_held(state: &StateDir) -> bool {
        let Ok(file) = File::open(state.lock_path()) else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let first = StateLock::acquire(&state, "run-a").unwrap();
        assert!(StateLock::is_held(&state));
        let err = StateLock::acquire(&state, "run-b").unwrap_err().to_string();
        assert!(
            err.contains("run-a") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        assert!(!StateLock::is_held(&state));
        StateLock::acquire(&state, "run-b").unwrap();
    }
}

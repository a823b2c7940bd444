//! What a rehearsal's resume needs again, kept in the simulated host: the simulated
//! token's PIN (a rehearsal value, not a secret of anyone's) and the operator's faults.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::faults::OperatorFaults;

#[derive(Serialize, Deserialize)]
pub(super) struct RehearsalRecord {
    pub(super) version: u32,
    pub(super) pin: String,
    pub(super) operator_faults: OperatorFaults,
}

pub(super) fn path(root: &Path) -> PathBuf {
    root.join("var/lib/mkplan-sim/rehearsal.json")
}

/// A new file only its owner can read (the rehearsal record holds the simulated PIN), that
/// appears whole: written beside it, then linked into place (never over an existing one).
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    linked
}

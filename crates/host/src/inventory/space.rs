//! File systems and free space: how big a token store is, and whether a backup directory
//! could take it (writable, room, another file system).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, StatVfsMountFlags};

use mkplan_engine::ports::root::HostRoot;
use mkplan_plan::init::inventory::BackupFacts;

/// Token stores are shallow (`TOK_OBJ/…`); deeper trees are not walked further.
const MAX_DEPTH: usize = 16;

/// The bytes of the regular files under `store` (symlinks not followed) and its file
/// system; `None` where it cannot be read.
pub(super) fn store_facts(store: &Path) -> (Option<u64>, Option<u64>) {
    let fs = std::fs::metadata(store).ok().map(|m| m.dev());
    (fs.and_then(|_| tree_bytes(store, 0)), fs)
}

fn tree_bytes(dir: &Path, depth: usize) -> Option<u64> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let meta = entry.path().symlink_metadata().ok()?;
        if meta.is_dir() {
            total += tree_bytes(&entry.path(), depth + 1)?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Some(total)
}

/// What `dir` (as the host sees it) offers: the nearest existing directory on its path (the
/// backup step creates the rest), its file system, whether it can be written, free space.
pub(super) fn backup_facts(root: &HostRoot, dir: PathBuf, given: bool) -> BackupFacts {
    let existing = dir
        .ancestors()
        .find(|a| root.path(a).exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let at = root.path(&existing);
    let meta = std::fs::metadata(&at).ok();
    let stat = rustix::fs::statvfs(&at).ok();
    let not_writable = match (&meta, &stat) {
        (None, _) => Some(format!("`{}` cannot be read", existing.display())),
        (Some(m), _) if !m.is_dir() => Some(format!("`{}` is not a directory", existing.display())),
        (Some(_), Some(s)) if s.f_flag.contains(StatVfsMountFlags::RDONLY) => Some(format!(
            "`{}` is on a read-only file system",
            existing.display()
        )),
        // Root may write anywhere; a directory nobody may write was made read-only on purpose.
        (Some(m), _) if m.mode() & 0o222 == 0 => Some(format!(
            "`{}` is read-only (mode {:04o})",
            existing.display(),
            m.mode() & 0o7777
        )),
        (Some(_), _) => rustix::fs::access(&at, Access::WRITE_OK)
            .err()
            .map(|e| format!("`{}`: {}", existing.display(), std::io::Error::from(e))),
    };
    BackupFacts {
        dir,
        given,
        existing,
        fs: meta.map(|m| m.dev()),
        not_writable,
        free_bytes: stat.map(|s| s.f_bavail.saturating_mul(s.f_frsize)),
    }
}

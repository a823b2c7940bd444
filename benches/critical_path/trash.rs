//! Outputs of timed runs are moved aside, not deleted, until the benchmark ends.
//!
//! On an ext4 file system without a journal (this machine's), a new file avoids any inode
//! freed less than 60 seconds before — 6 minutes if that inode's table block is dirty, which
//! creating files next to it makes it — (`recently_deleted()` in `fs/ext4/ialloc.c`),
//! checking each candidate through the buffer cache. Creating 10,000 files within minutes of
//! deleting many costs seconds of kernel time, so deleting one run's output would slow the
//! next run's file creation by an amount that depends on the order of the commands. A
//! rename costs nothing; the trash is emptied once, after the last timed run, and a run that
//! starts less than six minutes after a previous one emptied it waits for the rest.

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::store::{remove, sync_fs};

/// How long ext4 shuns a freed inode whose table block is dirty (`RECENTCY_MIN` +
/// `RECENTCY_DIRTY`), plus a margin.
const RECENTCY: Duration = Duration::from_secs(60 + 300 + 10);

pub struct Trash {
    dir: PathBuf,
    /// When the trash was last emptied (written there, so the next run knows).
    stamp: PathBuf,
    next: Cell<usize>,
}

impl Trash {
    /// `<work>/trash`; empties what a previous run left, then waits until deleted inodes
    /// are no longer recent.
    pub fn open(work: &Path) -> Result<Self> {
        let trash = Self {
            dir: work.join("trash"),
            stamp: work.join("trash-emptied-at"),
            next: Cell::new(0),
        };
        if trash.dir.exists() {
            trash.empty()?;
        }
        fs::create_dir_all(&trash.dir)
            .with_context(|| format!("create `{}`", trash.dir.display()))?;
        trash.settle();
        Ok(trash)
    }

    /// Moves `path` (if it exists) into the trash.
    pub fn put(&self, path: &Path) -> Result<()> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let n = self.next.get();
        self.next.set(n + 1);
        let to = self.dir.join(n.to_string());
        fs::rename(path, &to)
            .with_context(|| format!("move `{}` to `{}`", path.display(), to.display()))
    }

    /// Deletes everything in the trash and notes when.
    pub fn empty(&self) -> Result<()> {
        eprintln!("bench: emptying `{}`", self.dir.display());
        remove(&self.dir)?;
        if let Some(parent) = self.dir.parent() {
            sync_fs(parent)?;
        }
        fs::write(&self.stamp, "").with_context(|| format!("write `{}`", self.stamp.display()))
    }

    /// Sleeps until the last emptying is no longer recent for ext4.
    fn settle(&self) {
        let since = fs::metadata(&self.stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if let Some(wait) = since.and_then(|s| RECENTCY.checked_sub(s)) {
            eprintln!(
                "bench: waiting {} s: files deleted less than six minutes ago slow down new ones",
                wait.as_secs()
            );
            std::thread::sleep(wait);
        }
    }
}

//! The restore's second thread: it creates the directories and files the scan let through,
//! while the scan thread decompresses, checks and hashes. The two meet in a bounded queue,
//! so at most [`QUEUE`] batches of about [`BATCH_BYTES`] (plus one read buffer) are in
//! flight.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustix::fs::OFlags;

use super::ArchiveError;

/// Batches in flight between the scan and the placing thread.
pub(super) const QUEUE: usize = 8;
/// Jobs are sent in batches of this many (or [`BATCH_BYTES`] of data): one hand-over per
/// file woke the other thread hundreds of thousands of times.
pub(super) const BATCH: usize = 256;
pub(super) const BATCH_BYTES: usize = 256 * 1024;

/// Owner, group, permission bits and mtime of a file, set once its data is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
}

/// What the scan asks the placing thread to do, in archive order.
pub(super) enum Job {
    Dir(PathBuf),
    /// Create this file (it must not exist) with these permission bits (less the umask);
    /// [`Job::Data`] follows, then [`Job::Close`].
    Open(PathBuf, u32),
    Data(Vec<u8>),
    Close(Meta),
}

/// A bounded queue of batches of jobs.
pub(super) fn queue() -> (SyncSender<Vec<Job>>, Receiver<Vec<Job>>) {
    sync_channel(QUEUE)
}

/// Runs the jobs until the queue closes or one fails; the first failure, if any. After a
/// failure the receiver is dropped, so the scan's next send fails and it stops too.
pub(super) fn place(
    batches: Receiver<Vec<Job>>,
    set_meta: &dyn Fn(&File, Meta) -> io::Result<()>,
) -> Result<(), ArchiveError> {
    let mut open: Option<(File, PathBuf)> = None;
    for job in batches.into_iter().flatten() {
        match job {
            Job::Dir(path) => DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|e| ArchiveError::io("create", &path, e))?,
            Job::Open(path, mode) => {
                let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC;
                // Created with its final permission bits, so that most files need no
                // `fchmod`: the temporary directory above is private (0700) all the while.
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode & 0o777)
                    .custom_flags(flags.bits() as i32)
                    .open(&path)
                    .map_err(|e| ArchiveError::io("create", &path, e))?;
                open = Some((file, path));
            }
            Job::Data(data) => {
                let (file, path) = current(&mut open)?;
                file.write_all(&data)
                    .map_err(|e| ArchiveError::io("write", path, e))?;
            }
            Job::Close(meta) => {
                let (file, path) = open.take().ok_or_else(no_file)?;
                set_meta(&file, meta)
                    .map_err(|e| ArchiveError::io("set owner, mode and mtime of", &path, e))?;
            }
        }
    }
    Ok(())
}

fn current(open: &mut Option<(File, PathBuf)>) -> Result<(&mut File, &Path), ArchiveError> {
    match open {
        Some((file, path)) => Ok((file, path)),
        None => Err(no_file()),
    }
}

fn no_file() -> ArchiveError {
    ArchiveError::Refused {
        problem: "internal error: data for a file that was not opened".to_owned(),
    }
}

/// The error of a send to a thread that has stopped: its own error says why.
pub(super) fn stopped() -> ArchiveError {
    ArchiveError::Refused {
        problem: "the thread creating the files stopped".to_owned(),
    }
}

//! Backup and restore of a token store as a plain `.tar.gz` beside a versioned JSON manifest.
//!
//! A token store (`/var/lib/opencryptoki/ep11tok`: `NVTOK.DAT`, `MK_SO`, `MK_USER`,
//! `TOK_OBJ/OBJ.IDX` and one file per object) holds every secure key of an HSM domain, so the
//! whole directory is backed up as a unit and restored as a unit.
//!
//! # On-disk layout
//!
//! * `<dir>/<stem>.tar.gz` (the stem is `<run-id>-<token>`): a GNU-format tar stream, gzip
//!   level [`COMPRESSION_LEVEL`] (1: the key blobs are random and do not compress, so a
//!   higher level only costs time). Entry paths are **relative to the store's parent**:
//!   `ep11tok/`, `ep11tok/NVTOK.DAT`, `ep11tok/TOK_OBJ/OBJ.IDX`, …, so
//!   `cd /var/lib/opencryptoki && tar -xzpf X` recreates the store with GNU tar alone.
//!   Directories come before their contents; names are sorted. Every entry carries its mode,
//!   numeric uid/gid, user/group names and mtime (whole seconds, as GNU tar stores them).
//!   Only regular files and directories are ever written; a symlink, device, fifo or socket
//!   in the store makes the backup fail. Hard-linked files would be stored as independent
//!   copies (openCryptoki does not make hard links). Leftover `*.TMP` files are part of the
//!   directory and are backed up like any other file.
//! * `<dir>/<stem>.manifest.json`: [`Manifest`], `"version": 1`, `"layout": "parent-relative"`.
//!   Its member paths are the archive's entry paths without a trailing slash.
//! * Both are written as `.<final-name>.<random>.partial` in `<dir>` (mode 0600), fsynced,
//!   verified, then renamed into place without replacing anything (`RENAME_NOREPLACE`) and the
//!   directory fsynced. An existing backup of the same stem is never overwritten.
//! * Restore extracts into `<parent>/.<store-name>.restore-<run-id>` (same file system), then
//!   renames the store to `<store>.replaced-<run-id>` and the restored directory to `<store>`.
//!
//! # Memory
//!
//! The archive is streamed: file data passes through per-file buffers and a bounded queue of
//! 256 KiB chunks between the tar producer and the gzip thread. What grows with the store is
//! the list of manifest entries (about 200 bytes per file) and, while walking, the sorted
//! names of one directory at a time.

mod check;
mod extract;
mod fsio;
mod journaled;
mod manifest;
mod prune;
mod walk;
mod write;

#[cfg(test)]
mod testkit;

use std::io;
use std::path::PathBuf;

pub use check::{compare_live, verify};
pub use extract::restore;
pub use journaled::{Journaled, read_journaled_backup, read_journaled_manifest};
pub use manifest::{DirRecord, FileRecord, LAYOUT, MANIFEST_VERSION, Manifest, read_manifest};
pub use prune::prune;
pub use write::{backup, clear_partials};

/// The gzip level of every archive mkplan writes.
pub const COMPRESSION_LEVEL: u32 = 1;

/// Everything that can go wrong in a backup, verification, restore or prune.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("store `{}` {problem}", path.display())]
    Store { path: PathBuf, problem: String },
    #[error(
        "`{}` is a {kind}; a token store may hold only regular files and directories, so it \
         cannot be backed up",
        path.display()
    )]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error(
        "not enough room in `{}`: {} needed ({needed} bytes), {} free ({free} bytes)",
        dir.display(), fsio::mib(*needed), fsio::mib(*free)
    )]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("`{}` already exists; {hint}", path.display())]
    Exists { path: PathBuf, hint: &'static str },
    #[error("invalid {what} `{value}`: {problem}")]
    InvalidName {
        what: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("manifest `{}`: {problem}", path.display())]
    Manifest { path: PathBuf, problem: String },
    #[error(
        "archive `{}` has SHA-256 {actual} ({actual_bytes} bytes) but its manifest says \
         {expected} ({expected_bytes} bytes){detail}",
        path.display()
    )]
    ArchiveDigest {
        path: PathBuf,
        expected: String,
        expected_bytes: u64,
        actual: String,
        actual_bytes: u64,
        detail: String,
    },
    #[error("archive `{}` cannot be read: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("verification failed: `{entry}` {problem} ({place})")]
    Mismatch {
        place: String,
        entry: String,
        problem: String,
    },
    #[error("archive `{}` has an unsafe entry `{entry}`: {problem}", archive.display())]
    UnsafeEntry {
        archive: PathBuf,
        entry: String,
        problem: String,
    },
    #[error(
        "restoring ownership needs root; run as root or restore as the owner of the files: \
         `{entry}` belongs to uid {uid} gid {gid} but mkplan runs as uid {euid} gid {egid}; \
         nothing was extracted"
    )]
    NeedsRoot {
        entry: String,
        uid: u32,
        gid: u32,
        euid: u32,
        egid: u32,
    },
    #[error("restore refused: {problem}")]
    Refused { problem: String },
    #[error(
        "refusing to restore: {detail}; the backup directory holds files this run did not \
         write (someone who can write it may have replaced them), so nothing was restored"
    )]
    NotJournaled { detail: String },
    #[error(
        "`{entry}` has mode {mode:04o}, with a set-uid, set-gid or sticky bit; a token store \
         never holds one{hint}"
    )]
    SpecialMode {
        entry: String,
        mode: u32,
        hint: &'static str,
    },
    #[error("restore of `{}` aborted, the store was not touched{note}: {source}", store.display())]
    Aborted {
        store: PathBuf,
        note: String,
        #[source]
        source: Box<ArchiveError>,
    },
    #[error("{message}")]
    SwapFailed {
        message: String,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

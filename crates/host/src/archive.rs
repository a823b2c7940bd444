//! Backup and restore of a token store as a plain `.tar.gz` beside a versioned JSON Lines
//! manifest.
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
//! * `<dir>/<stem>.manifest.jsonl`: the manifest, version 2 (`"layout": "parent-relative"`):
//!   a header line, one line per member in archive order, an `end` line with the totals and
//!   the archive's SHA-256; see [`manifest`](ManifestReader). Member paths are the archive's
//!   entry paths without a trailing slash. Backups made before keep their version 1
//!   `<stem>.manifest.json` (one JSON object), which is still read.
//! * Both are written as `.<final-name>.<random>.partial` in `<dir>` (mode 0600), fsynced,
//!   verified, then renamed into place without replacing anything (`RENAME_NOREPLACE`) and the
//!   directory fsynced. An existing backup of the same stem is never overwritten.
//! * Restore reads the archive once: it extracts into `<parent>/.<store-name>.restore-<run-id>`
//!   (same file system) while hashing, and only once both files have their journaled digests
//!   and every entry matched renames the store to `<store>.replaced-<run-id>` and the restored
//!   directory to `<store>`.
//!
//! # Memory
//!
//! The archive and the manifest are streamed: file data passes through per-file buffers and
//! bounded queues of 256 KiB chunks, and the manifest is written and read a line at a time,
//! checked as a merge of ordered streams. What grows with the store is, while walking, the
//! sorted names of one directory at a time (and a restore keeps the few directory records).

mod check;
mod extract;
mod fsio;
mod journaled;
mod manifest;
mod place;
mod prune;
mod walk;
mod write;

#[cfg(test)]
mod testkit;

use std::io;
use std::path::PathBuf;

pub use check::{compare_live, verify};
pub use extract::{restore, restore_reporting};
pub use fsio::Report;
pub use journaled::{Journaled, with_journaled_manifest, with_manifest};
pub use manifest::{
    DirRecord, FileRecord, Header, LAYOUT, MANIFEST_VERSION, ManifestReader, Member, Totals,
    walk_order,
};
pub use prune::prune;
pub use write::{backup, backup_reporting, clear_partials};

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
         nothing was restored"
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

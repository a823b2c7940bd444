//! What a `backup` of a token store made and what a `restore` did: where the archive and its
//! manifest are, and the digests a later restore must find again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a `restore` step did, as its data records it (`action`): it put the backup back.
pub const RESTORED: &str = "restored";
/// The store was identical to the backup: nothing was written.
pub const UNCHANGED: &str = "unchanged";
/// There was no backup, and no migration of the token started.
pub const NOTHING: &str = "nothing";

/// What the host's backup made. Entry paths in the archive are relative to the store's
/// parent (`<store-name>/…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// `<dir>/<stem>.tar.gz`.
    pub archive: PathBuf,
    /// `<dir>/<stem>.manifest.json`.
    pub manifest: PathBuf,
    pub archive_sha256: String,
    pub manifest_sha256: String,
    pub archive_bytes: u64,
    /// Regular files in the store.
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
    /// Entry paths are `<store-name>/…`, relative to the store's parent.
    pub layout: ArchiveLayout,
    /// True only once the archive was read back and matched the manifest and the live store.
    pub verified: bool,
}

/// What the host's restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub store: PathBuf,
    /// Where the store that was replaced is kept (`<store>.replaced-<run-id>`); `None` if
    /// there was no store.
    pub replaced: Option<PathBuf>,
    pub files: u64,
    pub bytes: u64,
}

/// How entry paths in an archive are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveLayout {
    /// `<store-name>/…`, relative to the store's parent.
    #[serde(rename = "parent-relative")]
    ParentRelative,
}

/// A verified backup as the `backup` step journaled it: where it is and the digests a
/// restore must find again. All a later `restore` trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournaledBackup {
    pub archive: PathBuf,
    pub manifest: PathBuf,
    pub archive_sha256: String,
    pub manifest_sha256: String,
    pub verified: bool,
}

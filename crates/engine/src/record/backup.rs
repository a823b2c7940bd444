//! What `backup` and `restore` record: where the archive and its manifest are, the digests
//! a later restore must find again, and what a restore did.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use mkplan_plan::model::{BackupId, TokenId};

/// What a `backup` step records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOutput {
    pub token: TokenId,
    pub target: BackupId,
    pub record: BackupRecord,
    /// Older backups removed to keep the target's `keep`.
    #[serde(default)]
    pub pruned: Vec<PathBuf>,
    /// What the step warned of (a backup directory others can write).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What a `restore` step records (the data of a restore a retried `migrate` made first, too):
/// `{token, action}`, with the backup once there was one, and what the restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOutput {
    pub token: TokenId,
    pub action: RestoreAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<JournaledBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<RestoreRecord>,
    /// Written with every restore, `null` when there was no index to discard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded_index: Option<DiscardedIndex>,
    /// How the store differed from the backup, when the `restore` step found it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differed: Option<String>,
}

/// openCryptoki's object index a restore removed, if there was one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DiscardedIndex(pub Option<PathBuf>);

/// What a `restore` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreAction {
    /// It put the backup back.
    Restored,
    /// The store was identical to the backup: nothing was written.
    Unchanged,
    /// There was no backup, and no migration of the token started.
    Nothing,
}

impl RestoreAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreAction::Restored => "restored",
            RestoreAction::Unchanged => "unchanged",
            RestoreAction::Nothing => "nothing",
        }
    }
}

/// What the host's backup made. Entry paths in the archive are relative to the store's
/// parent (`<store-name>/…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// `<dir>/<stem>.tar.gz`.
    pub archive: PathBuf,
    /// `<dir>/<stem>.manifest.jsonl` (version 1: `<stem>.manifest.json`).
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
    /// The archive's size as the run journaled it, so a restore refuses an archive of
    /// another size before it extracts anything. Not written into a restore's record: it
    /// is always taken from the backup's.
    #[serde(skip)]
    pub archive_bytes: Option<u64>,
    /// The bytes in the store's files as journaled: a restore extracts no more (an archive
    /// of the journaled size may still decompress to anything). Taken from the backup's
    /// record too.
    #[serde(skip)]
    pub file_bytes: Option<u64>,
}

impl From<&BackupRecord> for JournaledBackup {
    fn from(record: &BackupRecord) -> Self {
        Self {
            archive: record.archive.clone(),
            manifest: record.manifest.clone(),
            archive_sha256: record.archive_sha256.clone(),
            manifest_sha256: record.manifest_sha256.clone(),
            verified: record.verified,
            archive_bytes: Some(record.archive_bytes),
            file_bytes: Some(record.bytes),
        }
    }
}

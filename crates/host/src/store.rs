//! A token store beside this run's backup of it, and openCryptoki's object index of it:
//! what `migrate`, `restore` and `resume` ask of the store itself.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::archive::{self, Journaled, Manifest};
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::ports::host::{BackupCheck, BackupComparison, PortError, StoreDrift};
use mkplan_engine::ports::root::{HostRoot, token_shm_path};
use mkplan_engine::record::backup::JournaledBackup;
use mkplan_plan::input;

fn journaled(backup: &JournaledBackup) -> Journaled<'_> {
    Journaled {
        archive_sha256: &backup.archive_sha256,
        manifest_sha256: &backup.manifest_sha256,
    }
}

/// The backup's manifest, only if it is the journaled one.
fn manifest(backup: &JournaledBackup) -> Result<Manifest, archive::ArchiveError> {
    archive::read_journaled_manifest(&backup.manifest, &backup.manifest_sha256)
}

/// Whether `store` is the store of the journaled backup, compared by hash. The manifest (and
/// with [`BackupCheck::ArchiveToo`] the archive) is read once and only if it is the journaled
/// one; what the comparison reads is that copy.
pub(crate) fn compare_with_backup(
    store: &Path,
    backup: &JournaledBackup,
    check: BackupCheck,
) -> Result<BackupComparison, PortError> {
    let manifest = match check {
        BackupCheck::ManifestOnly => manifest(backup),
        BackupCheck::ArchiveToo => {
            archive::read_journaled_backup(&backup.archive, &backup.manifest, journaled(backup))
        }
    }
    .map_err(|e| PortError::new(e.to_string()))?;
    Ok(BackupComparison {
        files: manifest.files,
        difference: archive::compare_live(store, &manifest)
            .err()
            .map(|e| e.to_string()),
    })
}

/// Every file of the journaled manifest has its size and mtime in `store`, and there are no
/// others. The number of files checked.
pub(crate) fn matches_backup(store: &Path, backup: &JournaledBackup) -> Result<u64, StoreDrift> {
    let manifest = manifest(backup).map_err(|e| StoreDrift::Manifest(e.to_string()))?;
    let parent = store.parent().unwrap_or(store);
    let mut checked = 0;
    for file in &manifest.regular_files {
        let meta = std::fs::metadata(parent.join(&file.path))
            .map_err(|_| StoreDrift::Missing(file.path.clone()))?;
        if meta.len() != file.size || meta.mtime() != file.mtime {
            return Err(StoreDrift::Changed(file.path.clone()));
        }
        checked += 1;
    }
    let live = count_files(store);
    if live != checked {
        return Err(StoreDrift::Count { live, checked });
    }
    Ok(checked)
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// (key object files that differ from the journaled backup, key object files in it).
pub(crate) fn object_changes(store: &Path, backup: &JournaledBackup) -> Option<(usize, usize)> {
    let manifest = manifest(backup).ok()?;
    let parent = store.parent().unwrap_or(store);
    let (mut changed, mut objects) = (0, 0);
    for file in manifest
        .regular_files
        .iter()
        .filter(|f| f.path.contains("/TOK_OBJ/") && !f.path.ends_with("OBJ.IDX"))
    {
        objects += 1;
        let now = input::read(&parent.join(&file.path), input::STORE_FILE).map(|b| sha256_hex(&b));
        if now.as_deref().ok() != Some(file.sha256.as_str()) {
            changed += 1;
        }
    }
    Some((changed, objects))
}

/// Objects listed in `TOK_OBJ/OBJ.IDX` (one name per line): a progress bar's length.
pub(crate) fn object_count(store: &Path) -> Option<u64> {
    let text = input::read_to_string(&store.join("TOK_OBJ/OBJ.IDX"), input::STORE_FILE).ok()?;
    Some(text.lines().filter(|l| !l.trim().is_empty()).count() as u64)
}

/// openCryptoki keeps a per-token index of objects in POSIX shared memory that outlives
/// its users (opencryptoki-ep11.md 3.3). A restore replaces the store behind openCryptoki's
/// back, so that index would describe objects that no longer exist (seen with openCryptoki
/// 3.8.1: CKR_OBJECT_HANDLE_INVALID for every listed object). Removed while nobody maps it,
/// the next process that starts the token rebuilds it from the restored files. `store` is
/// the store as the plan names it.
pub fn discard_token_index(root: &HostRoot, store: &Path) -> Result<Option<PathBuf>, PortError> {
    let shm = token_shm_path(root, store);
    match std::fs::remove_file(&shm) {
        Ok(()) => Ok(Some(shm)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PortError::new(format!(
            "cannot remove the token's stale object index `{}`: {e}",
            shm.display()
        ))),
    }
}

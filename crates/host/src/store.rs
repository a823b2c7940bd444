//! A token store beside this run's backup of it, and openCryptoki's object index of it:
//! what `migrate`, `restore` and `resume` ask of the store itself.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::archive::{self, FileRecord, ManifestReader, Member};
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::ports::host::{BackupComparison, PortError, StoreDrift};
use mkplan_engine::ports::root::{HostRoot, token_shm_path};
use mkplan_engine::record::backup::JournaledBackup;
use mkplan_plan::input;

/// Whether `store` is the store of the journaled backup, compared by hash. The manifest is
/// read once and counts only if it is the journaled one; the comparison is a merge of the
/// walk and the manifest. The archive is not read here: a restore reads it once, checking
/// its size, content and digest as it extracts, and swaps nothing in before they check out.
pub(crate) fn compare_with_backup(
    store: &Path,
    backup: &JournaledBackup,
) -> Result<BackupComparison, PortError> {
    let port = |e: archive::ArchiveError| PortError::new(e.to_string());
    let (compared, totals) =
        archive::with_journaled_manifest(&backup.manifest, &backup.manifest_sha256, |reader| {
            archive::compare_live(store, reader)
        })
        .map_err(port)?;
    let Some(totals) = totals else {
        return Err(PortError::new(format!(
            "manifest `{}` has no `end` line: {}",
            backup.manifest.display(),
            compared.err().map_or_else(String::new, |e| e.to_string())
        )));
    };
    Ok(BackupComparison {
        files: totals.files,
        difference: compared.err().map(|e| e.to_string()),
    })
}

/// Every regular file the manifest lists, with its path and record; `None` once done.
fn each_file(
    reader: &mut ManifestReader,
    mut visit: impl FnMut(&FileRecord) -> Result<(), StoreDrift>,
) -> Result<(), StoreDrift> {
    while let Some(member) = reader
        .next_member()
        .map_err(|e| StoreDrift::Manifest(e.to_string()))?
    {
        if let Member::File(file) = &member {
            visit(file)?;
        }
    }
    Ok(())
}

/// Every file of the journaled manifest has its size and mtime in `store`, and there are no
/// others. The number of files checked.
pub(crate) fn matches_backup(store: &Path, backup: &JournaledBackup) -> Result<u64, StoreDrift> {
    let parent = store.parent().unwrap_or(store);
    let mut checked = 0;
    let (listed, _) =
        archive::with_journaled_manifest(&backup.manifest, &backup.manifest_sha256, |reader| {
            each_file(reader, |file| {
                let meta = std::fs::metadata(parent.join(&file.path))
                    .map_err(|_| StoreDrift::Missing(file.path.clone()))?;
                if meta.len() != file.size || meta.mtime() != file.mtime {
                    return Err(StoreDrift::Changed(file.path.clone()));
                }
                checked += 1;
                Ok(())
            })
        })
        .map_err(|e| StoreDrift::Manifest(e.to_string()))?;
    listed?;
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
    let parent = store.parent().unwrap_or(store);
    let (mut changed, mut objects) = (0, 0);
    let (listed, _) =
        archive::with_journaled_manifest(&backup.manifest, &backup.manifest_sha256, |reader| {
            each_file(reader, |file| {
                if file.path.contains("/TOK_OBJ/") && !file.path.ends_with("OBJ.IDX") {
                    objects += 1;
                    let now = input::read(&parent.join(&file.path), input::STORE_FILE)
                        .map(|b| sha256_hex(&b));
                    if now.as_deref().ok() != Some(file.sha256.as_str()) {
                        changed += 1;
                    }
                }
                Ok(())
            })
        })
        .ok()?;
    listed.ok()?;
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

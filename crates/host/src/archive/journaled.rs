//! Using a backup as the run that made it recorded it (design rule 7): the manifest and the
//! archive must have the SHA-256 the run journaled. Each is opened once and read through that
//! one open file, hashed as it is read; whatever was done with their content counts only once
//! both digests check out (a restore swaps nothing in before). Whoever can write the backup
//! directory cannot swap in a self-consistent archive and manifest of their own, nor replace
//! the files between the check and their use.

use std::fs::File;
use std::path::Path;

use super::ArchiveError;
use super::fsio;
use super::manifest::{ManifestReader, Totals};

/// The digests a backup must have: those its run journaled when it made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Journaled<'a> {
    pub archive_sha256: &'a str,
    pub manifest_sha256: &'a str,
    /// The bytes in the backed-up files, when the run journaled them: a restore stops (and
    /// refuses) past them, before the digests could tell, so a substituted archive cannot
    /// fill the file system.
    pub file_bytes: Option<u64>,
}

/// Refuses unless the archive and the manifest (each `(path, SHA-256 as read)`) are the
/// journaled ones, naming every one that is not.
pub fn check(
    archive: (&Path, &str),
    manifest: (&Path, &str),
    journaled: Journaled<'_>,
) -> Result<(), ArchiveError> {
    let detail: Vec<String> = [
        ("manifest", manifest, journaled.manifest_sha256),
        ("archive", archive, journaled.archive_sha256),
    ]
    .into_iter()
    .filter(|(_, (_, actual), expected)| actual != expected)
    .map(|(what, (path, actual), expected)| {
        format!(
            "{what} `{}` has SHA-256 {actual}, this run journaled {expected}",
            path.display()
        )
    })
    .collect();
    if detail.is_empty() {
        Ok(())
    } else {
        Err(ArchiveError::NotJournaled {
            detail: detail.join("; "),
        })
    }
}

/// Opens the manifest at `path`, hands it to `use_it`, then reads it to its end: `use_it`'s
/// result and the manifest's totals (if its `end` line could be read) only if the manifest
/// has the journaled SHA-256.
pub fn with_journaled_manifest<T>(
    path: &Path,
    sha256: &str,
    use_it: impl FnOnce(&mut ManifestReader) -> T,
) -> Result<(T, Option<Totals>), ArchiveError> {
    let (result, end, actual) = with_manifest(path, use_it)?;
    if actual != sha256 {
        return Err(ArchiveError::NotJournaled {
            detail: format!(
                "manifest `{}` has SHA-256 {actual}, this run journaled {sha256}",
                path.display()
            ),
        });
    }
    Ok((result, end))
}

/// Opens the manifest at `path`, hands it to `use_it`, then reads it to its end: `use_it`'s
/// result, the totals (if its `end` line could be read) and the manifest's SHA-256 as read,
/// which the caller must check before trusting the rest.
pub fn with_manifest<T>(
    path: &Path,
    use_it: impl FnOnce(&mut ManifestReader) -> T,
) -> Result<(T, Option<Totals>, String), ArchiveError> {
    let mut reader = ManifestReader::open(path)?;
    let result = use_it(&mut reader);
    let (end, actual) = reader.skip_to_end()?;
    Ok((result, end, actual))
}

/// Opens a regular file without following a symlink in its last component.
pub(super) fn open_regular(path: &Path) -> Result<File, ArchiveError> {
    let file = fsio::open_nofollow(path).map_err(|e| ArchiveError::io("open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ArchiveError::io("inspect", path, e))?;
    if !meta.file_type().is_file() {
        return Err(ArchiveError::Store {
            path: path.to_path_buf(),
            problem: "is not a regular file".to_owned(),
        });
    }
    Ok(file)
}

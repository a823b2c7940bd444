//! Opening a backup as the run that made it recorded it (design rule 7): the manifest is read
//! once, into memory, and must have the SHA-256 the run journaled; the archive is opened once
//! and must have the journaled SHA-256 too, and everything after reads that same open file.
//! Whoever can write the backup directory cannot swap in a self-consistent archive and
//! manifest of their own, nor replace the files between the check and their use.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ArchiveError;
use super::fsio;
use super::manifest::Manifest;
use mkplan_plan::input;

/// The digests a backup must have: those its run journaled when it made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Journaled<'a> {
    pub archive_sha256: &'a str,
    pub manifest_sha256: &'a str,
}

/// A backup whose manifest and archive are the journaled ones, with the archive still open
/// (at its start) for reading.
pub(super) struct Opened {
    pub manifest: Manifest,
    pub archive: File,
}

/// Reads the manifest and opens the archive, refusing either unless its SHA-256 is the
/// journaled one (both digests in the message), and the archive unless it is the one the
/// manifest describes.
pub(super) fn open(
    archive: &Path,
    manifest: &Path,
    journaled: Journaled<'_>,
) -> Result<Opened, ArchiveError> {
    let manifest_bytes = read_regular(manifest)?;
    let manifest_sha = hex::encode(Sha256::digest(&manifest_bytes));
    let mut archive_file = open_regular(archive)?;
    let (archive_sha, archive_bytes) =
        fsio::hash_stream(&mut archive_file, &mut vec![0; fsio::BUF])
            .map_err(|e| ArchiveError::io("read", archive, e))?;
    let mut wrong = Vec::new();
    if manifest_sha != journaled.manifest_sha256 {
        wrong.push((
            "manifest",
            manifest,
            manifest_sha,
            journaled.manifest_sha256,
        ));
    }
    if archive_sha != journaled.archive_sha256 {
        wrong.push((
            "archive",
            archive,
            archive_sha.clone(),
            journaled.archive_sha256,
        ));
    }
    if !wrong.is_empty() {
        let detail: Vec<String> = wrong
            .iter()
            .map(|(what, path, actual, expected)| {
                format!(
                    "{what} `{}` has SHA-256 {actual}, this run journaled {expected}",
                    path.display()
                )
            })
            .collect();
        return Err(ArchiveError::NotJournaled {
            detail: detail.join("; "),
        });
    }
    let parsed: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| ArchiveError::Manifest {
            path: manifest.to_path_buf(),
            problem: e.to_string(),
        })?;
    parsed.index(manifest)?;
    if archive_sha != parsed.archive_sha256 || archive_bytes != parsed.archive_bytes {
        return Err(ArchiveError::ArchiveDigest {
            path: archive.to_path_buf(),
            expected: parsed.archive_sha256.clone(),
            expected_bytes: parsed.archive_bytes,
            actual: archive_sha,
            actual_bytes: archive_bytes,
            detail: "; nothing was restored".to_owned(),
        });
    }
    archive_file
        .seek(SeekFrom::Start(0))
        .map_err(|e| ArchiveError::io("rewind", archive, e))?;
    Ok(Opened {
        manifest: parsed,
        archive: archive_file,
    })
}

/// The manifest of a backup whose manifest and archive both have the journaled SHA-256 (the
/// archive read through once); any other is refused with every digest that differs.
pub fn read_journaled_backup(
    archive: &Path,
    manifest: &Path,
    journaled: Journaled<'_>,
) -> Result<Manifest, ArchiveError> {
    open(archive, manifest, journaled).map(|opened| opened.manifest)
}

/// The manifest at `path`, if its SHA-256 is the journaled one.
pub fn read_journaled_manifest(path: &Path, sha256: &str) -> Result<Manifest, ArchiveError> {
    let bytes = read_regular(path)?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != sha256 {
        return Err(ArchiveError::NotJournaled {
            detail: format!(
                "manifest `{}` has SHA-256 {actual}, this run journaled {sha256}",
                path.display()
            ),
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Manifest {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
    manifest.index(path)?;
    Ok(manifest)
}

/// Opens a regular file without following a symlink in its last component.
fn open_regular(path: &Path) -> Result<File, ArchiveError> {
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

fn read_regular(path: &Path) -> Result<Vec<u8>, ArchiveError> {
    let file = open_regular(path)?;
    input::read_from(file, input::MANIFEST).map_err(|e| ArchiveError::io("read", path, e))
}

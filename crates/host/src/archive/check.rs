//! Checking an archive against its manifest, entry by entry, and the live store against it.
//!
//! [`scan_archive`] is the one reader of archives: it refuses every entry that is not a plain
//! regular file or directory listed in the manifest *before* handing it to a [`Sink`], so the
//! restore's extractor only ever sees entries that are safe to write.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use tar::{Archive, Entry, EntryType};

use super::ArchiveError;
use super::fsio::{self, HashReader};
use super::manifest::{DirRecord, FileRecord, Index, Manifest, Slot, is_component, read_manifest};
use super::walk::{self, Kind};

/// Re-verifies an existing backup: the archive's SHA-256 and size, and every entry's path,
/// type, size, SHA-256, mode, owner and mtime against the manifest. Returns the manifest.
pub fn verify(archive: &Path, manifest: &Path) -> Result<Manifest, ArchiveError> {
    let m = read_manifest(manifest)?;
    let index = m.index(manifest)?;
    scan_archive(archive, &m, &index, &mut HashOnly::new())?;
    Ok(m)
}

/// What happens to each entry that passed the checks.
pub(super) trait Sink {
    fn dir(&mut self, rec: &DirRecord) -> Result<(), ArchiveError>;
    /// Consumes the file's data; returns its hex SHA-256 and length.
    fn file(
        &mut self,
        rec: &FileRecord,
        data: &mut dyn Read,
    ) -> Result<(String, u64), ArchiveError>;
}

/// A sink that only hashes.
pub(super) struct HashOnly {
    buf: Vec<u8>,
}

impl HashOnly {
    pub(super) fn new() -> Self {
        Self {
            buf: vec![0; fsio::BUF],
        }
    }
}

impl Sink for HashOnly {
    fn dir(&mut self, _: &DirRecord) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn file(
        &mut self,
        rec: &FileRecord,
        data: &mut dyn Read,
    ) -> Result<(String, u64), ArchiveError> {
        fsio::hash_stream(data, &mut self.buf).map_err(|e| ArchiveError::Mismatch {
            place: "archive".to_owned(),
            entry: rec.path.clone(),
            problem: format!("cannot be read: {e}"),
        })
    }
}

/// Reads the whole archive once: raw SHA-256 and size, gzip CRC, and every entry against the
/// manifest. When something fails and the archive's digest differs too, the digest mismatch is
/// reported (with the other failure as detail): it is the better explanation.
pub(super) fn scan_archive(
    path: &Path,
    manifest: &Manifest,
    index: &Index<'_>,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let file = File::open(path).map_err(|e| ArchiveError::io("open", path, e))?;
    scan_open_archive(file, path, manifest, index, sink)
}

/// [`scan_archive`] of an archive already open at its start; `path` names it in messages.
pub(super) fn scan_open_archive(
    file: File,
    path: &Path,
    manifest: &Manifest,
    index: &Index<'_>,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let raw = HashReader::new(file);
    let mut archive = Archive::new(GzDecoder::new(BufReader::with_capacity(fsio::BUF, raw)));
    let mut outcome = scan_entries(&mut archive, path, manifest, index, sink);
    let mut gz = archive.into_inner();
    if outcome.is_ok() {
        // The rest of the gzip member: the tar end blocks and the CRC check.
        outcome = io::copy(&mut gz, &mut io::sink())
            .map(drop)
            .map_err(|e| corrupt(path, e));
    }
    let mut raw = gz.into_inner().into_inner();
    io::copy(&mut raw, &mut io::sink()).map_err(|e| ArchiveError::io("read", path, e))?;
    let (sha, bytes) = raw.finish();
    if sha != manifest.archive_sha256 || bytes != manifest.archive_bytes {
        return Err(ArchiveError::ArchiveDigest {
            path: path.to_path_buf(),
            expected: manifest.archive_sha256.clone(),
            expected_bytes: manifest.archive_bytes,
            actual: sha,
            actual_bytes: bytes,
            detail: match outcome {
                Ok(()) => String::new(),
                Err(e) => format!("; also: {e}"),
            },
        });
    }
    outcome
}

fn corrupt(path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Corrupt {
        path: path.to_path_buf(),
        source,
    }
}

fn scan_entries<R: Read>(
    archive: &mut Archive<R>,
    path: &Path,
    manifest: &Manifest,
    index: &Index<'_>,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let mut seen_dirs = vec![false; manifest.directories.len()];
    let mut seen_files = vec![false; manifest.regular_files.len()];
    let place = || format!("archive `{}`", path.display());
    let mismatch = |entry: &str, problem: String| ArchiveError::Mismatch {
        place: place(),
        entry: entry.to_owned(),
        problem,
    };
    for entry in archive.entries().map_err(|e| corrupt(path, e))? {
        let mut entry = entry.map_err(|e| corrupt(path, e))?;
        let (member, is_dir) =
            member_of(&mut entry).map_err(|(entry, problem)| ArchiveError::UnsafeEntry {
                archive: path.to_path_buf(),
                entry,
                problem,
            })?;
        let unsafe_entry = |problem: &str| ArchiveError::UnsafeEntry {
            archive: path.to_path_buf(),
            entry: member.clone(),
            problem: problem.to_owned(),
        };
        let slot = index
            .get(&member)
            .ok_or_else(|| unsafe_entry("it is not in the manifest"))?;
        if let Some((parent, _)) = member.rsplit_once('/') {
            match index.get(parent) {
                Some(Slot::Dir(i)) if seen_dirs[i] => {}
                _ => return Err(unsafe_entry("it comes before its directory")),
            }
        }
        let h = entry.header();
        let meta = (
            h.mode().map_err(|e| corrupt(path, e))? & 0o7777,
            h.uid().map_err(|e| corrupt(path, e))?,
            h.gid().map_err(|e| corrupt(path, e))?,
            h.mtime().map_err(|e| corrupt(path, e))?,
            h.username_bytes().unwrap_or_default().to_vec(),
            h.groupname_bytes().unwrap_or_default().to_vec(),
        );
        match (slot, is_dir) {
            (Slot::Dir(i), true) => {
                let rec = &manifest.directories[i];
                if std::mem::replace(&mut seen_dirs[i], true) {
                    return Err(unsafe_entry("it appears twice"));
                }
                compare_meta(
                    &meta,
                    (rec.mode, rec.uid, rec.gid, rec.mtime, &rec.user, &rec.group),
                )
                .map_err(|p| mismatch(&member, p.to_string()))?;
                sink.dir(rec)?;
            }
            (Slot::File(i), false) => {
                let rec = &manifest.regular_files[i];
                if std::mem::replace(&mut seen_files[i], true) {
                    return Err(unsafe_entry("it appears twice"));
                }
                compare_meta(
                    &meta,
                    (rec.mode, rec.uid, rec.gid, rec.mtime, &rec.user, &rec.group),
                )
                .map_err(|p| mismatch(&member, p.to_string()))?;
                if entry.size() != rec.size {
                    let problem =
                        format!("has {} bytes, the manifest says {}", entry.size(), rec.size);
                    return Err(mismatch(&member, problem));
                }
                let (sha, bytes) = sink.file(rec, &mut entry)?;
                if bytes != rec.size || sha != rec.sha256 {
                    let problem = format!(
                        "has SHA-256 {sha} ({bytes} bytes), the manifest says {} ({} bytes)",
                        rec.sha256, rec.size
                    );
                    return Err(mismatch(&member, problem));
                }
            }
            (_, true) => return Err(unsafe_entry("it is a directory, the manifest lists a file")),
            (_, false) => return Err(unsafe_entry("it is a file, the manifest lists a directory")),
        }
    }
    missing(manifest, &seen_dirs, &seen_files, &place(), "archive")
}

/// The first manifest entry not seen, if any.
fn missing(
    manifest: &Manifest,
    seen_dirs: &[bool],
    seen_files: &[bool],
    place: &str,
    what: &str,
) -> Result<(), ArchiveError> {
    let dirs = manifest.directories.iter().map(|d| &d.path).zip(seen_dirs);
    let files = manifest
        .regular_files
        .iter()
        .map(|f| &f.path)
        .zip(seen_files);
    let mut absent = dirs
        .chain(files)
        .filter(|(_, seen)| !**seen)
        .map(|(p, _)| p);
    let Some(first) = absent.next() else {
        return Ok(());
    };
    let more = absent.count();
    Err(ArchiveError::Mismatch {
        place: place.to_owned(),
        entry: first.clone(),
        problem: if more == 0 {
            format!("is in the manifest but not in the {what}")
        } else {
            format!("is in the manifest but not in the {what} ({more} more are missing too)")
        },
    })
}

type Meta = (u32, u64, u64, u64, Vec<u8>, Vec<u8>);

/// How an entry's metadata differs from its manifest record, each difference named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("differs: {}", .0.join(", "))]
struct MetaDiffers(Vec<String>);

fn compare_meta(got: &Meta, want: (u32, u32, u32, i64, &str, &str)) -> Result<(), MetaDiffers> {
    let (mode, uid, gid, mtime, user, group) = want;
    let mut diffs = Vec::new();
    if got.0 != mode {
        diffs.push(format!("mode {:04o} (manifest {mode:04o})", got.0));
    }
    if (got.1, got.2) != (uid.into(), gid.into()) {
        diffs.push(format!("owner {}:{} (manifest {uid}:{gid})", got.1, got.2));
    }
    if i64::try_from(got.3).ok() != Some(mtime) {
        diffs.push(format!("mtime {} (manifest {mtime})", got.3));
    }
    if got.4 != user.as_bytes() || got.5 != group.as_bytes() {
        let names = format!(
            "{}:{}",
            String::from_utf8_lossy(&got.4),
            String::from_utf8_lossy(&got.5)
        );
        diffs.push(format!("owner names {names} (manifest {user}:{group})"));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(MetaDiffers(diffs))
    }
}

/// The entry's member path (validated) and whether it is a directory; or the printable path
/// and why the entry is refused.
fn member_of<R: Read>(entry: &mut Entry<'_, R>) -> Result<(String, bool), (String, String)> {
    let raw = entry.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let refuse = |problem: &str| Err((shown.clone(), problem.to_owned()));
    let is_dir = match entry.header().entry_type() {
        EntryType::Regular => false,
        EntryType::Directory => true,
        EntryType::Symlink => return refuse("it is a symbolic link"),
        EntryType::Link => return refuse("it is a hard link"),
        EntryType::Char => return refuse("it is a character device"),
        EntryType::Block => return refuse("it is a block device"),
        EntryType::Fifo => return refuse("it is a fifo"),
        other => {
            return refuse(&format!(
                "it has unsupported type {:?}",
                other.as_byte() as char
            ));
        }
    };
    match entry.pax_extensions() {
        Ok(None) => {}
        Ok(Some(_)) | Err(_) => return refuse("it carries pax headers, which mkplan never writes"),
    }
    if entry.link_name_bytes().is_some() {
        return refuse("it carries a link name");
    }
    let Ok(text) = std::str::from_utf8(&raw) else {
        return refuse("its path is not UTF-8");
    };
    let text = if is_dir {
        text.strip_suffix('/').unwrap_or(text)
    } else {
        text
    };
    if text.starts_with('/') {
        return refuse("its path is absolute");
    }
    if text.split('/').any(|c| c == "..") {
        return refuse("its path has a `..` component");
    }
    if !text.split('/').all(is_component) {
        return refuse("its path has an empty or `.` component");
    }
    Ok((text.to_owned(), is_dir))
}

/// Whether the live `store` is exactly what `manifest` describes: the same entries, each
/// with the same type, mode, owner, mtime, size and SHA-256. The first difference is the error.
pub fn compare_live(store: &Path, manifest: &Manifest) -> Result<(), ArchiveError> {
    let index = manifest.index(&manifest.store)?;
    check_live(store, manifest, &index)
}

/// Re-reads the live store against the manifest: the same set of entries, and for each the
/// same type, mode, owner, mtime, size and SHA-256.
pub(super) fn check_live(
    store: &Path,
    manifest: &Manifest,
    index: &Index<'_>,
) -> Result<(), ArchiveError> {
    let mut seen_dirs = vec![false; manifest.directories.len()];
    let mut seen_files = vec![false; manifest.regular_files.len()];
    let mut buf = vec![0u8; fsio::BUF];
    let place = format!("store `{}`", store.display());
    walk::walk(store, &mut |node| {
        let member = node.member(&manifest.root);
        let mismatch = |problem: String| ArchiveError::Mismatch {
            place: place.clone(),
            entry: member.clone(),
            problem,
        };
        let meta = (
            node.mode,
            node.uid.into(),
            node.gid.into(),
            node.mtime as u64,
            Vec::new(),
            Vec::new(),
        );
        let (want, seen) = match (index.get(&member), node.kind) {
            (Some(Slot::Dir(i)), Kind::Dir) => {
                let d = &manifest.directories[i];
                ((d.mode, d.uid, d.gid, d.mtime, "", ""), &mut seen_dirs[i])
            }
            (Some(Slot::File(i)), Kind::File) => {
                let f = &manifest.regular_files[i];
                ((f.mode, f.uid, f.gid, f.mtime, "", ""), &mut seen_files[i])
            }
            (None, _) => {
                return Err(mismatch(
                    "is in the store but not in the manifest".to_owned(),
                ));
            }
            (Some(_), _) => {
                return Err(mismatch(
                    "has a different type than in the manifest".to_owned(),
                ));
            }
        };
        *seen = true;
        compare_meta(&meta, want).map_err(|p| mismatch(p.to_string()))?;
        if let Some(Slot::File(i)) = index.get(&member) {
            let rec = &manifest.regular_files[i];
            let path = store.join(&node.rel);
            let mut file =
                fsio::open_nofollow(&path).map_err(|e| ArchiveError::io("open", &path, e))?;
            let (sha, bytes) = fsio::hash_stream(&mut file, &mut buf)
                .map_err(|e| ArchiveError::io("read", &path, e))?;
            if bytes != rec.size || sha != rec.sha256 {
                return Err(mismatch(format!(
                    "has SHA-256 {sha} ({bytes} bytes), the manifest says {} ({} bytes)",
                    rec.sha256, rec.size
                )));
            }
        }
        Ok(())
    })?;
    missing(manifest, &seen_dirs, &seen_files, &place, "store")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::archive::backup;
    use crate::archive::testkit::Store;
    use mkplan_engine::record::backup::BackupRecord;

    type Edit = Box<dyn Fn(&mut Manifest)>;

    fn made() -> (Store, BackupRecord) {
        let t = Store::new();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        (t, rec)
    }

    fn edit_manifest(rec: &BackupRecord, edit: impl FnOnce(&mut Manifest)) {
        let mut m = read_manifest(&rec.manifest).unwrap();
        edit(&mut m);
        fs::write(&rec.manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    #[test]
    fn a_fresh_backup_verifies() {
        let (_t, rec) = made();
        let m = verify(&rec.archive, &rec.manifest).unwrap();
        assert_eq!(m, read_manifest(&rec.manifest).unwrap());
    }

    #[test]
    fn a_flipped_byte_in_the_archive_is_caught() {
        let (_t, rec) = made();
        let mut bytes = fs::read(&rec.archive).unwrap();
        for at in [bytes.len() / 2, 5, bytes.len() - 3] {
            bytes[at] ^= 0x01;
            fs::write(&rec.archive, &bytes).unwrap();
            let err = verify(&rec.archive, &rec.manifest).unwrap_err();
            assert!(matches!(err, ArchiveError::ArchiveDigest { .. }), "{err}");
            assert!(err.to_string().contains("but its manifest says"), "{err}");
            bytes[at] ^= 0x01;
        }
        fs::write(&rec.archive, &bytes).unwrap();
        verify(&rec.archive, &rec.manifest).unwrap();
        bytes.extend_from_slice(b"trailing");
        fs::write(&rec.archive, &bytes).unwrap();
        assert!(verify(&rec.archive, &rec.manifest).is_err());
    }

    #[test]
    fn manifest_edits_are_caught_with_the_entry_path() {
        let cases: Vec<(&str, Edit)> = vec![
            (
                "`ep11tok/MK_SO` has SHA-256",
                Box::new(|m| m.regular_files[0].sha256 = "0".repeat(64)),
            ),
            (
                "`ep11tok/MK_SO` differs: mode 0600 (manifest 0644)",
                Box::new(|m| m.regular_files[0].mode = 0o644),
            ),
            (
                "`ep11tok/TOK_OBJ` differs: mtime",
                Box::new(|m| m.directories[1].mtime += 1),
            ),
            (
                "`ep11tok/NVTOK.DAT` differs: owner ",
                Box::new(|m| m.regular_files[2].uid += 7),
            ),
            (
                "differs: owner names",
                Box::new(|m| m.regular_files[2].user = "mallory".into()),
            ),
            (
                "`ep11tok/MK_SO` has 64 bytes, the manifest says 65",
                Box::new(|m| {
                    m.regular_files[0].size = 65;
                    m.bytes = m.regular_files.iter().map(|f| f.size).sum();
                }),
            ),
            (
                "`ep11tok/TOK_OBJ/GHOST` is in the manifest but not in the archive",
                Box::new(|m| {
                    let mut ghost = m.regular_files[0].clone();
                    ghost.path = "ep11tok/TOK_OBJ/GHOST".into();
                    m.regular_files.push(ghost);
                    m.files += 1;
                    m.bytes += m.regular_files[0].size;
                }),
            ),
            (
                "unsafe entry `ep11tok/MK_SO`: it is not in the manifest",
                Box::new(|m| {
                    let gone = m.regular_files.remove(0);
                    m.files -= 1;
                    m.bytes -= gone.size;
                }),
            ),
            ("", Box::new(|m| m.archive_sha256 = "f".repeat(64))),
        ];
        for (want, edit) in cases {
            let (_t, rec) = made();
            edit_manifest(&rec, edit);
            let err = verify(&rec.archive, &rec.manifest).unwrap_err().to_string();
            assert!(err.contains(want), "wanted `{want}` in `{err}`");
        }
    }

    /// Runs `change` and puts the mtime of directory `dir` back.
    fn keeping_mtime(dir: &Path, change: impl FnOnce()) {
        let mtime = fs::metadata(dir).unwrap().modified().unwrap();
        change();
        fs::File::open(dir).unwrap().set_modified(mtime).unwrap();
    }

    #[test]
    fn the_live_store_must_still_match() {
        type Change = Box<dyn Fn(&Store)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "`ep11tok/TOK_OBJ/OBNEW` is in the store but not in the manifest",
                Box::new(|t| {
                    keeping_mtime(&t.store.join("TOK_OBJ"), || {
                        fs::write(t.store.join("TOK_OBJ/OBNEW"), b"x").unwrap()
                    })
                }),
            ),
            (
                "`ep11tok/MK_SO` is in the manifest but not in the store",
                Box::new(|t| {
                    keeping_mtime(&t.store, || fs::remove_file(t.store.join("MK_SO")).unwrap())
                }),
            ),
            (
                "`ep11tok/TOK_OBJ` differs: mtime",
                Box::new(|t| fs::write(t.store.join("TOK_OBJ/OBNEW"), b"x").unwrap()),
            ),
            (
                "`ep11tok/NVTOK.DAT` has SHA-256",
                Box::new(|t| {
                    let p = t.store.join("NVTOK.DAT");
                    let mtime = fs::metadata(&p).unwrap().modified().unwrap();
                    let mut data = fs::read(&p).unwrap();
                    data[7] ^= 0x80;
                    fs::write(&p, data).unwrap();
                    fs::File::open(&p).unwrap().set_modified(mtime).unwrap();
                }),
            ),
        ];
        for (want, change) in cases {
            let (t, rec) = made();
            let m = read_manifest(&rec.manifest).unwrap();
            let index = m.index(&rec.manifest).unwrap();
            check_live(&t.store, &m, &index).unwrap();
            change(&t);
            let err = check_live(&t.store, &m, &index).unwrap_err().to_string();
            assert!(err.contains(want), "wanted `{want}` in `{err}`");
        }
    }
}

//! Checking an archive against its manifest, and the live store against it: merges of two
//! streams in archive order, one entry at a time.
//!
//! [`scan_open_archive`] is the one reader of archives: it refuses every entry that is not a
//! plain regular file or directory, the next one the manifest lists, *before* handing it to a
//! [`Sink`], so the restore's extractor only ever sees entries that are safe to write.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use tar::{Archive, Entry, EntryType};

use super::ArchiveError;
use super::fsio::{self, HashReader, Ticker};
use super::journaled::Journaled;
use super::manifest::{
    DirRecord, FileRecord, ManifestReader, Member, Meta, Totals, is_component, walk_order,
};
use super::walk::{self, Kind};

/// Re-verifies an existing backup: the archive's SHA-256 and size, and every entry's path,
/// type, size, SHA-256, mode, owner and mtime against the manifest. Returns the totals.
pub fn verify(archive: &Path, manifest: &Path) -> Result<Totals, ArchiveError> {
    let reader = ManifestReader::open(manifest)?;
    let file = File::open(archive).map_err(|e| ArchiveError::io("open", archive, e))?;
    scan_open_archive(file, archive, reader, &mut HashOnly::new()).settle(None)
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
pub(super) struct HashOnly<'t, 'r> {
    buf: Vec<u8>,
    /// Where to report the files hashed so far, of how many.
    progress: Option<(&'t mut Ticker<'r>, u64)>,
    files: u64,
}

impl<'t, 'r> HashOnly<'t, 'r> {
    pub(super) fn new() -> Self {
        Self {
            buf: vec![0; fsio::BUF],
            progress: None,
            files: 0,
        }
    }

    pub(super) fn reporting(ticker: &'t mut Ticker<'r>, total_files: u64) -> Self {
        Self {
            progress: Some((ticker, total_files)),
            ..Self::new()
        }
    }
}

impl Sink for HashOnly<'_, '_> {
    fn dir(&mut self, _: &DirRecord) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn file(
        &mut self,
        rec: &FileRecord,
        data: &mut dyn Read,
    ) -> Result<(String, u64), ArchiveError> {
        self.files += 1;
        if let Some((ticker, total)) = &mut self.progress {
            let (done, total) = (self.files, *total);
            ticker.tick(done, Some(total), || {
                format!("verifying the archive: {done} of {total} files")
            });
        }
        fsio::hash_stream(data, &mut self.buf).map_err(|e| ArchiveError::Mismatch {
            place: "archive".to_owned(),
            entry: rec.path.clone(),
            problem: format!("cannot be read: {e}"),
        })
    }
}

/// One pass over an archive and its manifest: how the entries compared, and the digests of
/// both files as read.
pub(super) struct Scanned {
    path: std::path::PathBuf,
    manifest_path: std::path::PathBuf,
    /// The first failure among the entries, the gzip stream and the manifest; else the
    /// manifest's totals.
    outcome: Result<Totals, ArchiveError>,
    /// The manifest's `end` line if it could be found even after a failure.
    end: Option<Totals>,
    manifest_sha256: Result<String, ArchiveError>,
    archive: Result<(String, u64), ArchiveError>,
}

impl Scanned {
    /// Records a failure found after the scan (the first one stays).
    pub(super) fn fail(&mut self, e: ArchiveError) {
        if self.outcome.is_ok() {
            self.outcome = Err(e);
        }
    }

    /// The verdict, most telling first: a file that is not the journaled one (`journaled`);
    /// an archive that is not the one the manifest describes (with any other failure as
    /// detail); the first failure; else the totals.
    pub(super) fn settle(self, journaled: Option<Journaled<'_>>) -> Result<Totals, ArchiveError> {
        let (archive_sha, archive_bytes) = self.archive?;
        if let Some(j) = journaled {
            let manifest_sha = self.manifest_sha256?;
            super::journaled::check(
                (&self.path, &archive_sha),
                (&self.manifest_path, &manifest_sha),
                j,
            )?;
        }
        let end = match &self.outcome {
            Ok(totals) => Some(totals),
            Err(_) => self.end.as_ref(),
        };
        if let Some(end) = end
            && (end.archive_sha256 != archive_sha || end.archive_bytes != archive_bytes)
        {
            return Err(ArchiveError::ArchiveDigest {
                path: self.path,
                expected: end.archive_sha256.clone(),
                expected_bytes: end.archive_bytes,
                actual: archive_sha,
                actual_bytes: archive_bytes,
                detail: match &self.outcome {
                    Ok(_) => String::new(),
                    Err(e) => format!("; also: {e}"),
                },
            });
        }
        self.outcome
    }
}

/// Reads the whole archive (open at its start; `path` names it) once against the manifest
/// being read: raw SHA-256 and size, gzip CRC, and every entry; then the manifest to its end.
pub(super) fn scan_open_archive(
    file: File,
    path: &Path,
    mut manifest: ManifestReader,
    sink: &mut dyn Sink,
) -> Scanned {
    let raw = HashReader::new(file);
    let mut archive = Archive::new(GzDecoder::new(BufReader::with_capacity(fsio::BUF, raw)));
    let mut entries = scan_entries(&mut archive, path, &mut manifest, sink);
    let mut gz = archive.into_inner();
    if entries.is_ok() {
        // The rest of the gzip member: the tar end blocks and the CRC check.
        entries = io::copy(&mut gz, &mut io::sink())
            .map(drop)
            .map_err(|e| corrupt(path, e));
    }
    let mut raw = gz.into_inner().into_inner();
    let archive = io::copy(&mut raw, &mut io::sink())
        .map(|_| raw.finish())
        .map_err(|e| ArchiveError::io("read", path, e));
    let manifest_path = manifest.path().to_path_buf();
    let (outcome, end, manifest_sha256) = match entries {
        Ok(()) => match manifest.finish() {
            Ok((totals, sha)) => (Ok(totals.clone()), Some(totals), Ok(sha)),
            Err(e) => (
                Err(e),
                None,
                Err(ArchiveError::Refused {
                    problem: "the manifest could not be read to its end".to_owned(),
                }),
            ),
        },
        Err(e) => {
            let (end, sha) = match manifest.skip_to_end() {
                Ok((end, sha)) => (end, Ok(sha)),
                Err(e) => (None, Err(e)),
            };
            (Err(e), end, sha)
        }
    };
    Scanned {
        path: path.to_path_buf(),
        manifest_path,
        outcome,
        end,
        manifest_sha256,
        archive,
    }
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
    manifest: &mut ManifestReader,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let place = format!("archive `{}`", path.display());
    let mismatch = |entry: &str, problem: String| ArchiveError::Mismatch {
        place: place.clone(),
        entry: entry.to_owned(),
        problem,
    };
    let mut last: Option<String> = None;
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
        let out_of_order = last
            .as_deref()
            .is_some_and(|l| walk_order(l, &member) != Ordering::Less);
        let not_listed = || {
            unsafe_entry(if out_of_order {
                "it is not in the manifest at this position (it appears twice, out of order, \
                 or is not listed at all)"
            } else {
                "it is not in the manifest"
            })
        };
        let Some(want) = manifest.next_member()? else {
            return Err(not_listed());
        };
        match walk_order(&member, want.path()) {
            Ordering::Less => return Err(not_listed()),
            Ordering::Greater => return Err(absent(&place, want.path(), "archive")),
            Ordering::Equal => {}
        }
        let h = entry.header();
        let got = (
            h.mode().map_err(|e| corrupt(path, e))? & 0o7777,
            h.uid().map_err(|e| corrupt(path, e))?,
            h.gid().map_err(|e| corrupt(path, e))?,
            h.mtime().map_err(|e| corrupt(path, e))?,
            h.username_bytes().unwrap_or_default().to_vec(),
            h.groupname_bytes().unwrap_or_default().to_vec(),
        );
        compare_meta(&got, &want.meta(), true).map_err(|p| mismatch(&member, p.to_string()))?;
        match (want, is_dir) {
            (Member::Dir(rec), true) => sink.dir(&rec)?,
            (Member::File(rec), false) => {
                if entry.size() != rec.size {
                    let problem =
                        format!("has {} bytes, the manifest says {}", entry.size(), rec.size);
                    return Err(mismatch(&member, problem));
                }
                let (sha, bytes) = sink.file(&rec, &mut entry)?;
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
        last = Some(member);
    }
    match manifest.next_member()? {
        Some(want) => Err(absent(&place, want.path(), "archive")),
        None => Ok(()),
    }
}

/// A manifest member that the merge passed by.
fn absent(place: &str, entry: &str, what: &str) -> ArchiveError {
    ArchiveError::Mismatch {
        place: place.to_owned(),
        entry: entry.to_owned(),
        problem: format!("is in the manifest but not in the {what}"),
    }
}

type Got = (u32, u64, u64, u64, Vec<u8>, Vec<u8>);

/// How an entry's metadata differs from its manifest record, each difference named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("differs: {}", .0.join(", "))]
struct MetaDiffers(Vec<String>);

/// `names`: whether the user and group names are compared too (the archive has them, the
/// store only ids).
fn compare_meta(got: &Got, want: &Meta<'_>, names: bool) -> Result<(), MetaDiffers> {
    let Meta {
        mode,
        uid,
        gid,
        mtime,
        user,
        group,
    } = *want;
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
    if names && (got.4 != user.as_bytes() || got.5 != group.as_bytes()) {
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

/// Whether the live `store` is exactly what the manifest describes: the same entries, each
/// with the same type, mode, owner, mtime, size and SHA-256; the walk and the manifest merged
/// in archive order. The first difference is the error. The manifest is left at its end.
pub fn compare_live(store: &Path, manifest: &mut ManifestReader) -> Result<(), ArchiveError> {
    let root = manifest.header().root.clone();
    let mut buf = vec![0u8; fsio::BUF];
    let place = format!("store `{}`", store.display());
    walk::walk(store, &mut |node| {
        let member = node.member(&root);
        let mismatch = |problem: &str| ArchiveError::Mismatch {
            place: place.clone(),
            entry: member.clone(),
            problem: problem.to_owned(),
        };
        let Some(want) = manifest.next_member()? else {
            return Err(mismatch("is in the store but not in the manifest"));
        };
        match walk_order(&member, want.path()) {
            Ordering::Less => return Err(mismatch("is in the store but not in the manifest")),
            Ordering::Greater => return Err(absent(&place, want.path(), "store")),
            Ordering::Equal => {}
        }
        let got = (
            node.mode,
            node.uid.into(),
            node.gid.into(),
            node.mtime as u64,
            Vec::new(),
            Vec::new(),
        );
        match (&want, node.kind) {
            (Member::Dir(_), Kind::Dir) | (Member::File(_), Kind::File) => {}
            _ => return Err(mismatch("has a different type than in the manifest")),
        }
        compare_meta(&got, &want.meta(), false).map_err(|p| mismatch(&p.to_string()))?;
        if let Member::File(rec) = &want {
            let path = store.join(&node.rel);
            let mut file =
                fsio::open_nofollow(&path).map_err(|e| ArchiveError::io("open", &path, e))?;
            let (sha, bytes) = fsio::hash_stream(&mut file, &mut buf)
                .map_err(|e| ArchiveError::io("read", &path, e))?;
            if bytes != rec.size || sha != rec.sha256 {
                return Err(mismatch(&format!(
                    "has SHA-256 {sha} ({bytes} bytes), the manifest says {} ({} bytes)",
                    rec.sha256, rec.size
                )));
            }
        }
        Ok(())
    })?;
    match manifest.next_member()? {
        Some(want) => Err(absent(&place, want.path(), "store")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::archive::backup;
    use crate::archive::manifest::Doc;
    use crate::archive::testkit::Store;
    use mkplan_engine::record::backup::BackupRecord;

    type Edit = Box<dyn Fn(&mut Doc)>;

    fn made() -> (Store, BackupRecord) {
        let t = Store::new();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        (t, rec)
    }

    fn edit_manifest(rec: &BackupRecord, edit: impl FnOnce(&mut Doc)) {
        let mut m = Doc::read(&rec.manifest);
        edit(&mut m);
        m.write(&rec.manifest);
    }

    #[test]
    fn a_fresh_backup_verifies() {
        let (_t, rec) = made();
        let totals = verify(&rec.archive, &rec.manifest).unwrap();
        assert_eq!(totals, Doc::read(&rec.manifest).end);
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
                Box::new(|m| m.file(0).sha256 = "0".repeat(64)),
            ),
            (
                "`ep11tok/MK_SO` differs: mode 0600 (manifest 0644)",
                Box::new(|m| m.file(0).mode = 0o644),
            ),
            (
                "`ep11tok/TOK_OBJ` differs: mtime",
                Box::new(|m| m.dir(1).mtime += 1),
            ),
            (
                "`ep11tok/NVTOK.DAT` differs: owner ",
                Box::new(|m| m.file(2).uid += 7),
            ),
            (
                "differs: owner names",
                Box::new(|m| m.file(2).user = "mallory".into()),
            ),
            (
                "`ep11tok/MK_SO` has 64 bytes, the manifest says 65",
                Box::new(|m| {
                    m.file(0).size = 65;
                    m.end.bytes += 1;
                }),
            ),
            (
                "`ep11tok/TOK_OBJ/ZGHOST` is in the manifest but not in the archive",
                Box::new(|m| {
                    let mut ghost = m.file(0).clone();
                    ghost.path = "ep11tok/TOK_OBJ/ZGHOST".into();
                    let at = m.position("ep11tok/spare");
                    m.members.insert(at, Member::File(ghost));
                    m.end.files += 1;
                    m.end.bytes += m.file(0).size;
                }),
            ),
            (
                "unsafe entry `ep11tok/MK_SO`: it is not in the manifest",
                Box::new(|m| {
                    let at = m.position("ep11tok/MK_SO");
                    let size = m.file(0).size;
                    m.members.remove(at);
                    m.end.files -= 1;
                    m.end.bytes -= size;
                }),
            ),
            ("", Box::new(|m| m.end.archive_sha256 = "f".repeat(64))),
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
            let live = |store: &Path| {
                let mut reader = ManifestReader::open(&rec.manifest).unwrap();
                compare_live(store, &mut reader).map(|()| reader.finish().unwrap())
            };
            live(&t.store).unwrap();
            change(&t);
            let err = live(&t.store).unwrap_err().to_string();
            assert!(err.contains(want), "wanted `{want}` in `{err}`");
        }
    }
}

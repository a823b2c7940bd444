//! Making a backup: walk the store, stream it as tar through a gzip thread into a temporary
//! file, write the manifest, verify both, then rename them into place.
//!
//! The calling thread reads each file once, hashing it while it feeds the tar stream; a second
//! thread compresses, hashes the compressed bytes and writes them. The two meet in a bounded
//! queue of [`CHUNK`]-sized buffers that are recycled, so memory stays flat.

use std::fs::{self, DirBuilder, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header as TarHeader};
use tempfile::NamedTempFile;

use super::check::{HashOnly, compare_live, scan_open_archive};
use super::fsio::{self, HashWriter, Report, Ticker};
use super::journaled::Journaled;
use super::manifest::{
    DirRecord, FileRecord, Header, LAYOUT, MANIFEST_VERSION, ManifestReader, ManifestWriter,
    Member, Totals,
};
use super::walk::{self, Kind, Names, Node};
use super::{ArchiveError, COMPRESSION_LEVEL};
use mkplan_engine::record::backup::{ArchiveLayout, BackupRecord};

/// Size of the buffers that travel from the tar producer to the gzip thread.
const CHUNK: usize = 256 * 1024;
/// How many of them may be in flight.
const QUEUE: usize = 8;

/// Backs up the whole `store` directory to `<dir>/<stem>.tar.gz` with
/// `<dir>/<stem>.manifest.json` beside it, verifies both against each other and against the
/// live store, and only then renames them into place. `dir` is created (mode 0700) if missing.
pub fn backup(store: &Path, dir: &Path, stem: &str) -> Result<BackupRecord, ArchiveError> {
    backup_reporting(store, dir, stem, &mut |_, _, _| {})
}

/// [`backup`], reporting how far it is to `report`: listing, archiving, verifying.
pub fn backup_reporting(
    store: &Path,
    dir: &Path,
    stem: &str,
    report: Report<'_>,
) -> Result<BackupRecord, ArchiveError> {
    let mut ticker = Ticker::new(report);
    fsio::check_name("backup stem", stem)?;
    walk::check_store_dir(store)?;
    let (_, root) = fsio::split_store(store)?;
    if store.to_str().is_none() {
        return Err(ArchiveError::Store {
            path: store.to_path_buf(),
            problem: "is not a UTF-8 path".to_owned(),
        });
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ArchiveError::io("create backup directory", dir, e))?;
    refuse_inside(store, dir)?;
    let archive_name = format!("{stem}.tar.gz");
    let manifest_name = format!("{stem}.manifest.jsonl");
    let archive_path = dir.join(&archive_name);
    let manifest_path = dir.join(&manifest_name);
    for path in [&archive_path, &manifest_path] {
        if fsio::exists(path)? {
            return Err(ArchiveError::Exists {
                path: path.clone(),
                hint: "mkplan never overwrites a backup; use a new run id",
            });
        }
    }

    // A first walk only sums up: nothing per file is kept.
    let (mut estimate, mut files) = (1024, 0u64);
    ticker.now(0, None, "listing the store");
    walk::walk(store, &mut |node| {
        estimate += tar_entry_size(&root, &node) + 512;
        files += u64::from(node.kind == Kind::File);
        ticker.tick(files, None, || format!("listing the store: {files} files"));
        Ok(())
    })?;
    fsio::ensure_room(dir, fsio::with_margin(estimate))?;

    let header = Header {
        version: MANIFEST_VERSION,
        created: mkplan_engine::clock::now(),
        mkplan_version: env!("CARGO_PKG_VERSION").to_owned(),
        store: store.to_path_buf(),
        root: root.clone(),
        layout: LAYOUT.to_owned(),
        archive: archive_name,
        compression: format!("gzip level {COMPRESSION_LEVEL}"),
    };
    let archive_tmp = temp_in(dir, &header.archive)?;
    let manifest_tmp = temp_in(dir, &manifest_name)?;
    let mut manifest = ManifestWriter::new(manifest_tmp.as_file(), manifest_tmp.path(), &header)?;
    ticker.now(0, Some(files), "archiving");
    let (archive_sha256, archive_bytes) = write_archive(
        store,
        &root,
        &mut |visit| walk::walk(store, visit),
        &mut manifest,
        (archive_tmp.as_file(), archive_tmp.path()),
        (&mut ticker, files),
    )?;
    let (totals, manifest_sha256) = manifest.finish(archive_sha256, archive_bytes)?;

    mkplan_engine::crash_hooks::kill_point("backup:archived");
    ticker.now(0, Some(files), "verifying the archive and the store");
    verify_new(
        store,
        archive_tmp.path(),
        manifest_tmp.path(),
        (&totals, &manifest_sha256),
        &mut ticker,
    )?;

    archive_tmp
        .persist_noclobber(&archive_path)
        .map_err(|e| ArchiveError::io("rename into place", &archive_path, e.error))?;
    mkplan_engine::crash_hooks::kill_point("backup:renamed");
    if let Err(e) = manifest_tmp.persist_noclobber(&manifest_path) {
        // An archive without its manifest is not a backup; take it back out.
        let _ = fs::remove_file(&archive_path);
        return Err(ArchiveError::io(
            "rename into place",
            &manifest_path,
            e.error,
        ));
    }
    fsio::sync_dir(dir)?;

    Ok(BackupRecord {
        archive: archive_path,
        manifest: manifest_path,
        archive_sha256: totals.archive_sha256,
        manifest_sha256,
        archive_bytes: totals.archive_bytes,
        files: totals.files,
        bytes: totals.bytes,
        layout: ArchiveLayout::ParentRelative,
        verified: true,
    })
}

/// A backup directory inside the store would end up in its own archive.
fn refuse_inside(store: &Path, dir: &Path) -> Result<(), ArchiveError> {
    let canon = |p: &Path| fs::canonicalize(p).map_err(|e| ArchiveError::io("resolve", p, e));
    let backup_dir = canon(dir)?;
    if backup_dir.starts_with(canon(store)?) {
        return Err(ArchiveError::Store {
            path: store.to_path_buf(),
            problem: format!(
                "contains the backup directory `{}`; back up to a directory outside the store",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// `.<final-name>.<random>.partial`, mode 0600 from the start: the backup holds every key
/// blob of the token, so only its owner may ever read it.
fn temp_in(dir: &Path, final_name: &str) -> Result<NamedTempFile, ArchiveError> {
    tempfile::Builder::new()
        .prefix(&format!(".{final_name}."))
        .suffix(".partial")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| ArchiveError::io("create a temporary file in", dir, e))
}

/// Removes what an interrupted backup of run `run_id` left in `dir`: its temporary
/// `.<run-id>….partial` files (only regular files, only of that run). Returns them.
pub fn clear_partials(dir: &Path, run_id: &str) -> Result<Vec<std::path::PathBuf>, ArchiveError> {
    fsio::check_name("run id", run_id)?;
    let prefix = format!(".{run_id}");
    let mut removed = Vec::new();
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(ArchiveError::io("list", dir, e)),
    };
    for entry in listing {
        let entry = entry.map_err(|e| ArchiveError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `.<run-id>-<token>…` or `.<run-id>.<attempt>-<token>…`, never another run's.
        let ours = name
            .strip_prefix(&prefix)
            .is_some_and(|rest| rest.starts_with(['-', '.']))
            && name.ends_with(".partial");
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| ArchiveError::io("remove", &path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The size of one entry in the tar stream: a header, data padded to 512 bytes, and a GNU
/// long-name entry for a path over 100 bytes. The blobs do not compress, so the sum (plus
/// the two end blocks) is also the archive's size.
fn tar_entry_size(root: &str, node: &Node) -> u64 {
    let name = (root.len() + 2 + node.rel.len()) as u64;
    let long = if name >= 100 {
        512 + name.div_ceil(512) * 512
    } else {
        0
    };
    512 + node.size.div_ceil(512) * 512 + long
}

/// Hands every node of the store, in walk order, to the visitor.
type Nodes<'a> =
    &'a mut dyn FnMut(&mut dyn FnMut(Node) -> Result<(), ArchiveError>) -> Result<(), ArchiveError>;

/// Streams the nodes as tar through the gzip thread into `out`, each listed in `manifest` as
/// it goes; the archive's SHA-256 and size.
fn write_archive(
    store: &Path,
    root: &str,
    nodes: Nodes<'_>,
    manifest: &mut ManifestWriter<'_>,
    (out, out_path): (&File, &Path),
    progress: (&mut Ticker<'_>, u64),
) -> Result<(String, u64), ArchiveError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    thread::scope(|s| {
        let gzip = s.spawn(move || compress(rx, free_tx, out));
        let sink = ChunkSender {
            buf: Vec::with_capacity(CHUNK + 16 * 1024),
            tx,
            free: free_rx,
        };
        let produced = produce(store, root, nodes, manifest, sink, progress);
        let compressed = gzip.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (produced, compressed) {
            // A failed gzip thread also fails the producer; its error is the cause.
            (_, Err(e)) => Err(ArchiveError::io("write", out_path, e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(done)) => Ok(done),
        }
    })
}

fn compress(rx: Receiver<Vec<u8>>, free: Sender<Vec<u8>>, out: &File) -> io::Result<(String, u64)> {
    let sink = HashWriter::new(BufWriter::with_capacity(1 << 20, out));
    let mut gz = GzEncoder::new(sink, Compression::new(COMPRESSION_LEVEL));
    for mut chunk in rx {
        gz.write_all(&chunk)?;
        chunk.clear();
        let _ = free.send(chunk);
    }
    let (buffered, sha, bytes) = gz.finish()?.finish();
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((sha, bytes))
}

/// The tar producer's writer: fills a buffer and hands it to the gzip thread when full.
struct ChunkSender {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
    free: Receiver<Vec<u8>>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + 16 * 1024));
        let full = std::mem::replace(&mut self.buf, next);
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the gzip thread stopped"))
    }

    fn finish(mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads exactly `left` bytes of a file, hashing them; a file that ends early fails.
struct Exact<'a> {
    file: &'a mut File,
    left: u64,
    hasher: Sha256,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being backed up",
            ));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

fn changed(path: &Path) -> ArchiveError {
    ArchiveError::Store {
        path: path.to_path_buf(),
        problem: "changed while it was being backed up; stop every process that uses the token"
            .to_owned(),
    }
}

fn produce(
    store: &Path,
    root: &str,
    nodes: Nodes<'_>,
    manifest: &mut ManifestWriter<'_>,
    sink: ChunkSender,
    (ticker, total): (&mut Ticker<'_>, u64),
) -> Result<(), ArchiveError> {
    let names = Names::load();
    let mut tar = tar::Builder::new(sink);
    let mut files = 0u64;
    nodes(&mut |node| {
        if node.kind == Kind::File {
            files += 1;
            ticker.tick(files, Some(total), || {
                format!("archiving: {files} of {total} files")
            });
        }
        let path = if node.rel.is_empty() {
            store.to_path_buf()
        } else {
            store.join(&node.rel)
        };
        let member = node.member(root);
        if node.mode & 0o7000 != 0 {
            // A backup that `restore` would refuse is refused now, before the store changes.
            return Err(ArchiveError::SpecialMode {
                entry: member,
                mode: node.mode,
                hint: ", and a backup of it could not be restored; find out who set it and \
                       clear it (chmod ug-s,o-t) before backing up",
            });
        }
        let (user, group) = (names.user(node.uid), names.group(node.gid));
        let io_err = |e| ArchiveError::io("archive", &path, e);
        let mtime = u64::try_from(node.mtime).map_err(|_| ArchiveError::Store {
            path: path.clone(),
            problem: "has an mtime before 1970, which a tar header cannot hold".to_owned(),
        })?;
        let mut header = TarHeader::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(node.uid.into());
        header.set_gid(node.gid.into());
        header.set_mtime(mtime);
        header.set_username(user).map_err(io_err)?;
        header.set_groupname(group).map_err(io_err)?;
        match node.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, format!("{member}/"), io::empty())
                    .map_err(io_err)?;
                manifest.member(Member::Dir(DirRecord {
                    path: member,
                    mode: node.mode,
                    uid: node.uid,
                    gid: node.gid,
                    user: user.to_owned(),
                    group: group.to_owned(),
                    mtime: node.mtime,
                }))?;
            }
            Kind::File => {
                let mut file =
                    fsio::open_nofollow(&path).map_err(|e| ArchiveError::io("open", &path, e))?;
                let meta = file
                    .metadata()
                    .map_err(|e| ArchiveError::io("inspect", &path, e))?;
                if !node.same_as(&meta) {
                    return Err(changed(&path));
                }
                header.set_entry_type(EntryType::Regular);
                header.set_size(node.size);
                let mut exact = Exact {
                    file: &mut file,
                    left: node.size,
                    hasher: Sha256::new(),
                };
                tar.append_data(&mut header, &member, &mut exact)
                    .map_err(io_err)?;
                let sha256 = fsio::hex_digest(exact.hasher);
                if file.read(&mut [0u8; 1]).map_err(io_err)? != 0 {
                    return Err(changed(&path));
                }
                manifest.member(Member::File(FileRecord {
                    path: member,
                    size: node.size,
                    mode: node.mode,
                    uid: node.uid,
                    gid: node.gid,
                    user: user.to_owned(),
                    group: group.to_owned(),
                    mtime: node.mtime,
                    sha256,
                }))?;
            }
        }
        Ok(())
    })?;
    let sink = tar
        .into_inner()
        .map_err(|e| ArchiveError::io("archive", store, e))?;
    sink.finish()
        .map_err(|e| ArchiveError::io("archive", store, e))
}

/// Reads the new archive back against the manifest as written while another thread
/// re-hashes the live store against it; both read the manifest file back, which must have
/// the digest and totals that were written.
fn verify_new(
    store: &Path,
    archive: &Path,
    manifest: &Path,
    (totals, manifest_sha256): (&Totals, &str),
    ticker: &mut Ticker<'_>,
) -> Result<(), ArchiveError> {
    let written = Journaled {
        archive_sha256: &totals.archive_sha256,
        manifest_sha256,
        file_bytes: None,
    };
    let reread = |(read, sha): (Totals, String)| {
        if sha != manifest_sha256 || read != *totals {
            return Err(ArchiveError::Manifest {
                path: manifest.to_path_buf(),
                problem: format!("reads back as SHA-256 {sha}, but {manifest_sha256} was written"),
            });
        }
        Ok(())
    };
    thread::scope(|s| {
        let live = s.spawn(|| {
            let mut reader = ManifestReader::open(manifest)?;
            compare_live(store, &mut reader)?;
            reread(reader.finish()?)
        });
        let archived = ManifestReader::open(manifest).and_then(|reader| {
            let file = File::open(archive).map_err(|e| ArchiveError::io("open", archive, e))?;
            let mut sink = HashOnly::reporting(ticker, totals.files);
            scan_open_archive(file, archive, reader, &mut sink).settle(Some(written))
        });
        let live = live.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let archived = archived?;
        live?;
        if archived != *totals {
            return Err(ArchiveError::Manifest {
                path: manifest.to_path_buf(),
                problem: "reads back with other totals than were written".to_owned(),
            });
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    use flate2::read::GzDecoder;

    use super::*;
    use crate::archive::manifest::{Doc, walk_order};
    use crate::archive::testkit::{self, NOBODY, Store, gnu_tar, listing, snapshot};

    #[test]
    fn backup_is_a_plain_tar_gz_that_gnu_tar_restores_exactly() {
        let t = Store::new();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        assert!(rec.verified);
        assert_eq!(rec.archive, t.backups.join("r1-ep11.tar.gz"));
        assert_eq!(rec.manifest, t.backups.join("r1-ep11.manifest.jsonl"));
        assert_eq!(rec.files, 4 + t.objects as u64);
        assert_eq!(
            listing(&t.backups),
            ["r1-ep11.manifest.jsonl", "r1-ep11.tar.gz"]
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!((mode(&rec.archive), mode(&rec.manifest)), (0o600, 0o600));

        let sha = Command::new("sha256sum")
            .arg(&rec.archive)
            .output()
            .unwrap();
        let sha = String::from_utf8(sha.stdout).unwrap();
        assert_eq!(
            sha.split_whitespace().next(),
            Some(rec.archive_sha256.as_str())
        );
        assert_eq!(fs::metadata(&rec.archive).unwrap().len(), rec.archive_bytes);
        assert_eq!(
            fsio::hash_file(&rec.manifest).unwrap().0,
            rec.manifest_sha256
        );

        let out = t.dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let (archive, out_dir) = (rec.archive.to_str().unwrap(), out.to_str().unwrap());
        gnu_tar(&["-xzpf", archive, "-C", out_dir]);
        assert_eq!(listing(&out), ["ep11tok"]);
        assert_eq!(snapshot(&out.join("ep11tok")), snapshot(&t.store));

        let m = Doc::read(&rec.manifest);
        let h = &m.header;
        assert_eq!(
            (h.version, h.layout.as_str(), h.root.as_str()),
            (2, "parent-relative", "ep11tok")
        );
        assert_eq!(
            (h.store.as_path(), h.archive.as_str()),
            (t.store.as_path(), "r1-ep11.tar.gz")
        );
        assert_eq!(
            (m.end.archive_sha256.as_str(), m.end.archive_bytes),
            (rec.archive_sha256.as_str(), rec.archive_bytes)
        );
        assert_eq!((m.end.files, m.end.bytes), (rec.files, rec.bytes));
        let paths: Vec<&str> = m
            .members
            .iter()
            .filter(|m| matches!(m, Member::Dir(_)))
            .map(Member::path)
            .collect();
        assert_eq!(paths, ["ep11tok", "ep11tok/TOK_OBJ", "ep11tok/spare"]);
        // Archive order: the store's files, TOK_OBJ and its contents, then `spare`.
        let order: Vec<&str> = m.members.iter().map(Member::path).collect();
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| walk_order(a, b));
        assert_eq!(order, sorted);
        let nvtok = m.files().find(|f| f.path == "ep11tok/NVTOK.DAT").unwrap();
        let meta = fs::metadata(t.store.join("NVTOK.DAT")).unwrap();
        assert_eq!(
            (nvtok.size, nvtok.mode, nvtok.mtime),
            (meta.len(), 0o600, meta.mtime())
        );
        assert_eq!(
            nvtok.sha256,
            fsio::hash_file(&t.store.join("NVTOK.DAT")).unwrap().0
        );
        assert_eq!(m.end.bytes, m.files().map(|f| f.size).sum::<u64>());
        let text = fs::read_to_string(&rec.manifest).unwrap();
        assert!(text.starts_with("{\"version\":2,"), "{text}");
        assert_eq!(text.lines().count(), m.members.len() + 2);
    }

    #[test]
    fn gnu_tar_lists_owner_names_modes_and_parent_relative_paths() {
        let t = Store::new();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        let listing = gnu_tar(&["-tzvf", rec.archive.to_str().unwrap()]);
        let names = Names::load();
        let me = rustix::process::geteuid().as_raw();
        let mine = format!(
            "{}/{}",
            names.user(me),
            names.group(rustix::process::getegid().as_raw())
        );
        assert!(
            !mine.starts_with('/'),
            "the test user needs a name in /etc/passwd"
        );
        let line = |path: &str| {
            listing
                .lines()
                .find(|l| l.ends_with(&format!(" {path}")))
                .unwrap_or_else(|| panic!("{path} not in:\n{listing}"))
                .to_owned()
        };
        let nvtok = line("ep11tok/NVTOK.DAT");
        assert!(nvtok.starts_with(&format!("-rw------- {mine} ")), "{nvtok}");
        let idx = line("ep11tok/TOK_OBJ/OBJ.IDX");
        assert!(idx.starts_with(&format!("-rw-r----- {mine} ")), "{idx}");
        assert!(line("ep11tok/TOK_OBJ/").starts_with(&format!("drwxr-x--- {mine} ")));
        assert!(line("ep11tok/").starts_with("drwxr-x--- "));
        if me == 0 {
            let user = format!("{}/{}", names.user(NOBODY), names.group(NOBODY));
            assert!(line("ep11tok/MK_USER").starts_with(&format!("-rw------- {user} ")));
        }
        assert_eq!(listing.lines().count(), t.expected_entries());
    }

    #[test]
    fn long_member_paths_use_gnu_long_names_and_still_verify() {
        let t = Store::with_objects(3);
        let deep = t.store.join("TOK_OBJ").join("d".repeat(90));
        fs::create_dir(&deep).unwrap();
        fs::write(deep.join("x".repeat(120)), b"long").unwrap();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        let out = t.dir.path().join("out");
        fs::create_dir(&out).unwrap();
        gnu_tar(&[
            "-xzpf",
            rec.archive.to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
        ]);
        assert_eq!(snapshot(&out.join("ep11tok")), snapshot(&t.store));
    }

    fn refused(t: &Store, want: &str) {
        let err = backup(&t.store, &t.backups, "r1-ep11")
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "wanted `{want}` in `{err}`");
        let left = if t.backups.exists() {
            listing(&t.backups)
        } else {
            Vec::new()
        };
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn special_files_anywhere_in_the_store_are_refused_with_their_path() {
        let t = Store::new();
        let link = t.store.join("TOK_OBJ/OBLINK");
        symlink("/etc/passwd", &link).unwrap();
        refused(&t, &format!("`{}` is a symbolic link", link.display()));
        fs::remove_file(&link).unwrap();

        let fifo = t.store.join("spare/fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        refused(&t, &format!("`{}` is a fifo", fifo.display()));
        fs::remove_file(&fifo).unwrap();

        let socket = t.store.join("sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        refused(&t, &format!("`{}` is a socket", socket.display()));
        fs::remove_file(&socket).unwrap();

        backup(&t.store, &t.backups, "r1-ep11").unwrap();
    }

    #[test]
    fn a_missing_or_odd_store_or_target_is_refused() {
        let t = Store::with_objects(2);
        let err = |store: &Path, dir: &Path, stem: &str| {
            backup(store, dir, stem).unwrap_err().to_string()
        };
        let gone = t.dir.path().join("gone");
        assert!(err(&gone, &t.backups, "r1-ep11").ends_with("does not exist"));
        let file = t.store.join("MK_SO");
        assert!(err(&file, &t.backups, "r1-ep11").ends_with("is not a directory"));
        let link = t.dir.path().join("link");
        symlink(&t.store, &link).unwrap();
        assert!(err(&link, &t.backups, "r1-ep11").contains("is a symbolic link"));
        assert!(err(&t.store, &t.backups, "../x").starts_with("invalid backup stem"));
        let inside = t.store.join("spare/backups");
        assert!(err(&t.store, &inside, "r1-ep11").contains("contains the backup directory"));
        fs::remove_dir(&inside).unwrap();

        backup(&t.store, &t.backups, "r1-ep11").unwrap();
        let again = err(&t.store, &t.backups, "r1-ep11");
        assert!(again.contains("r1-ep11.tar.gz` already exists"), "{again}");
        assert_eq!(listing(&t.backups).len(), 2);
    }

    #[test]
    fn the_room_estimate_covers_the_archive() {
        let t = Store::new();
        let mut nodes = Vec::new();
        walk::walk(&t.store, &mut |n| {
            nodes.push(n);
            Ok(())
        })
        .unwrap();
        let estimate = 1024
            + nodes
                .iter()
                .map(|n| tar_entry_size("ep11tok", n))
                .sum::<u64>();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        let mut tar_len = 0u64;
        let mut gz = GzDecoder::new(File::open(&rec.archive).unwrap());
        let mut buf = vec![0; 65536];
        loop {
            let n = gz.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            tar_len += n as u64;
        }
        assert_eq!(tar_len, estimate, "the estimate is the exact tar size here");
        assert!(rec.archive_bytes < estimate + estimate / 10);
    }

    #[test]
    fn changes_during_the_backup_are_caught() {
        let t = Store::with_objects(2);
        let mut nodes = Vec::new();
        walk::walk(&t.store, &mut |n| {
            nodes.push(n);
            Ok(())
        })
        .unwrap();
        // The file changes between the walk and the read.
        testkit::set_mode_and_age(&t.store.join("MK_SO"), 0o600, 9999);
        let out = tempfile::tempfile().unwrap();
        let listing = tempfile::tempfile().unwrap();
        let header = Header {
            version: MANIFEST_VERSION,
            created: String::new(),
            mkplan_version: String::new(),
            store: t.store.clone(),
            root: "ep11tok".to_owned(),
            layout: LAYOUT.to_owned(),
            archive: "x.tar.gz".to_owned(),
            compression: String::new(),
        };
        let mut manifest = ManifestWriter::new(&listing, Path::new("m"), &header).unwrap();
        let mut replay = |visit: &mut dyn FnMut(Node) -> Result<(), ArchiveError>| {
            nodes.iter().cloned().try_for_each(&mut *visit)
        };
        let err = write_archive(
            &t.store,
            "ep11tok",
            &mut replay,
            &mut manifest,
            (&out, Path::new("x")),
            (&mut Ticker::new(&mut |_, _, _| {}), 0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("MK_SO` changed while it was being backed up"),
            "{err}"
        );
    }
}

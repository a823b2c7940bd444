//! Restoring a backup: check everything that can be checked up front, extract into a fresh
//! directory beside the store, verify, then swap it in with two renames.
//!
//! Nothing is written outside `<parent>/.<store-name>.restore-<run-id>` except the two
//! renames of the swap. Any failure before the swap removes that directory and leaves the
//! store as it was.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use rustix::fs::{Gid, Mode, OFlags, Timespec, Timestamps, UTIME_OMIT, Uid};
use sha2::{Digest, Sha256};

use super::ArchiveError;
use super::check::{Sink, scan_open_archive};
use super::fsio::{self, Report, Ticker};
use super::journaled::{self, Journaled};
use super::manifest::{DirRecord, FileRecord, ManifestReader};
use super::place::{self, Job, Meta};
use mkplan_engine::record::backup::RestoreRecord;

/// Restores `store` from `archive` as described by `manifest`; see the module documentation.
/// Both files must have the SHA-256 the run journaled when it made the backup (`journaled`):
/// each is opened once and read once, hashed as it is extracted, and the extracted copy is
/// swapped in only once both digests and every entry checked out. The previous store, if
/// any, is kept as `<store>.replaced-<run-id>`.
pub fn restore(
    archive: &Path,
    manifest: &Path,
    store: &Path,
    run_id: &str,
    journaled: Journaled<'_>,
) -> Result<RestoreRecord, ArchiveError> {
    restore_reporting(
        (archive, manifest),
        store,
        run_id,
        journaled,
        &mut |_, _, _| {},
    )
}

/// [`restore`] of `(archive, manifest)`, reporting the files restored so far to `report`.
pub fn restore_reporting(
    (archive, manifest): (&Path, &Path),
    store: &Path,
    run_id: &str,
    journaled: Journaled<'_>,
    report: Report<'_>,
) -> Result<RestoreRecord, ArchiveError> {
    let mut ticker = Ticker::new(report);
    fsio::check_name("run id", run_id)?;
    let (parent, name) = fsio::split_store(store)?;
    let archive_file = journaled::open_regular(archive)?;
    let reader = ManifestReader::from_file(journaled::open_regular(manifest)?, manifest)?;
    let header = reader.header().clone();
    if header.root != name || header.store != store {
        return Err(ArchiveError::Refused {
            problem: format!(
                "the backup is of `{}`, not of `{}`",
                header.store.display(),
                store.display()
            ),
        });
    }
    let had_store = match fs::symlink_metadata(store) {
        Ok(meta) if meta.is_dir() => true,
        Ok(_) => {
            return Err(ArchiveError::Store {
                path: store.to_path_buf(),
                problem: "exists but is not a directory; move it away first".to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(ArchiveError::io("inspect", store, e)),
    };
    let mut replaced = parent.join(format!("{name}.replaced-{run_id}"));
    let mut n = 1;
    while had_store && fsio::exists(&replaced)? {
        n += 1;
        replaced = parent.join(format!("{name}.replaced-{run_id}.{n}"));
    }
    let tmp = parent.join(format!(".{name}.restore-{run_id}"));
    clear_leftover(&tmp)?;
    // What the manifest's last line says, unchecked: only for the room estimate and progress.
    let peeked = reader.peek_totals();
    let total_files = peeked.as_ref().map(|t| t.files);
    ticker.now(0, total_files, "restoring");
    if let Some(t) = peeked {
        let blocks = (t.files + t.directories) * 4096;
        fsio::ensure_room(&parent, fsio::with_margin(t.bytes.saturating_add(blocks)))?;
    }

    DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| ArchiveError::io("create", &tmp, e))?;
    let fresh = Fresh::of(&tmp)?;
    let extracted = std::thread::scope(|s| {
        let (jobs, queue) = place::queue();
        let placing =
            s.spawn(move || place::place(queue, &|file, m| set_file_meta(file, m, fresh)));
        let mut sink = Extract {
            tmp: &tmp,
            root: &header.root,
            buf: vec![0; fsio::BUF],
            ids: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            dirs: Vec::new(),
            jobs,
            batch: (Vec::with_capacity(place::BATCH), 0),
            progress: (&mut ticker, total_files, 0),
            budget: (journaled.file_bytes, 0),
        };
        let mut scanned = scan_open_archive(archive_file, archive, reader, &mut sink);
        if let Err(e) = sink.flush() {
            scanned.fail(e);
        }
        drop(sink.jobs);
        let placed = placing
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        // Which thread failed first cannot be told from here; the placing thread's error
        // (a file system error) is the cause when the scan only saw it stop.
        let settled = scanned.settle(Some(journaled));
        let totals = match (settled, placed) {
            (Err(e @ ArchiveError::NotJournaled { .. }), _) => return Err(e),
            (_, Err(e)) => return Err(e),
            (settled, Ok(())) => settled?,
        };
        finish_dirs(&sink.dirs, &header.root, &tmp)?;
        Ok(totals)
    });
    let totals = match extracted {
        Ok(totals) => totals,
        Err(e) => {
            let note = match remove_tree(&tmp) {
                Ok(()) => String::new(),
                Err(c) => format!(
                    " (but its temporary copy `{}` could not be removed: {c})",
                    tmp.display()
                ),
            };
            return Err(ArchiveError::Aborted {
                store: store.to_path_buf(),
                note,
                source: Box::new(e),
            });
        }
    };

    let replaced = had_store.then_some(replaced);
    mkplan_engine::crash_hooks::kill_point("restore:extracted");
    swap(store, &tmp, replaced.as_deref(), &|from, to| {
        fsio::rename_noreplace(from, to)
    })?;
    fsio::sync_dir(&parent)?;
    Ok(RestoreRecord {
        store: store.to_path_buf(),
        replaced,
        files: totals.files,
        bytes: totals.bytes,
    })
}

/// A token store never holds set-uid, set-gid or sticky bits, so a backup that would put
/// one back is refused before that entry is written. Other modes are restored exactly as
/// the manifest (the store as it was backed up) has them, never wider.
fn check_mode(entry: &str, mode: u32) -> Result<(), ArchiveError> {
    if mode & 0o7000 != 0 {
        return Err(ArchiveError::SpecialMode {
            entry: entry.to_owned(),
            mode,
            hint: ", so this backup is not restored",
        });
    }
    Ok(())
}

/// Unless we are root (`ids` = effective uid and gid), every entry must already belong to
/// us: anything else could not be restored faithfully, and a half-faithful restore is
/// refused (before that entry is written; nothing is swapped in).
fn check_owner(entry: &str, uid: u32, gid: u32, ids: (u32, u32)) -> Result<(), ArchiveError> {
    let (euid, egid) = ids;
    if euid == 0 || (uid, gid) == (euid, egid) {
        return Ok(());
    }
    Err(ArchiveError::NeedsRoot {
        entry: entry.to_owned(),
        uid,
        gid,
        euid,
        egid,
    })
}

/// A previous attempt of the same run may have left its temporary directory behind; it is
/// ours (the name carries the run id), so it goes. Anything but a real directory is refused.
fn clear_leftover(tmp: &Path) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(tmp) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io("inspect", tmp, e)),
        Ok(meta) if meta.is_dir() => {
            remove_tree(tmp).map_err(|e| ArchiveError::io("remove the leftover", tmp, e))
        }
        Ok(_) => Err(ArchiveError::Exists {
            path: tmp.to_path_buf(),
            hint: "it is not a directory mkplan made; remove it by hand",
        }),
    }
}

/// Removes a directory tree we made; makes directories writable first if that is what stops
/// the removal (only possible when not root).
fn remove_tree(dir: &Path) -> io::Result<()> {
    if fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    fn open_up(dir: &Path) {
        if let Ok(m) = fs::symlink_metadata(dir)
            && m.is_dir()
        {
            let _ = rustix::fs::chmod(dir, Mode::from_raw_mode(0o700));
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                open_up(&e.path());
            }
        }
    }
    open_up(dir);
    fs::remove_dir_all(dir)
}

/// Writes the entries [`scan_open_archive`] let through into the temporary directory.
struct Extract<'a, 'r> {
    tmp: &'a Path,
    root: &'a str,
    buf: Vec<u8>,
    /// Our effective uid and gid.
    ids: (u32, u32),
    /// The directories extracted, for their metadata at the end (a store has a handful).
    dirs: Vec<DirRecord>,
    /// To the thread that creates the files, and the batch being filled.
    jobs: SyncSender<Vec<Job>>,
    batch: (Vec<Job>, usize),
    /// Where to report, the files the manifest says there are, the files extracted so far.
    progress: (&'a mut Ticker<'r>, Option<u64>, u64),
    /// The file bytes the run journaled, if it did, and those extracted so far.
    budget: (Option<u64>, u64),
}

impl Extract<'_, '_> {
    fn send(&mut self, job: Job) -> Result<(), ArchiveError> {
        if let Job::Data(data) = &job {
            self.batch.1 += data.len();
        }
        self.batch.0.push(job);
        if self.batch.0.len() >= place::BATCH || self.batch.1 >= place::BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        let batch = std::mem::replace(&mut self.batch, (Vec::with_capacity(place::BATCH), 0));
        if batch.0.is_empty() {
            return Ok(());
        }
        self.jobs.send(batch.0).map_err(|_| place::stopped())
    }
}

/// Where the member `path` goes below `tmp`. Member paths were validated by the manifest and
/// by the archive scan: `root` or `root/` + plain components.
fn target(tmp: &Path, root: &str, path: &str) -> PathBuf {
    match path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
        Some(rest) => tmp.join(rest),
        None => tmp.to_path_buf(),
    }
}

impl Sink for Extract<'_, '_> {
    fn dir(&mut self, rec: &DirRecord) -> Result<(), ArchiveError> {
        check_mode(&rec.path, rec.mode)?;
        check_owner(&rec.path, rec.uid, rec.gid, self.ids)?;
        self.dirs.push(rec.clone());
        if rec.path == self.root {
            return Ok(());
        }
        self.send(Job::Dir(target(self.tmp, self.root, &rec.path)))
    }

    fn file(
        &mut self,
        rec: &FileRecord,
        data: &mut dyn Read,
    ) -> Result<(String, u64), ArchiveError> {
        check_mode(&rec.path, rec.mode)?;
        check_owner(&rec.path, rec.uid, rec.gid, self.ids)?;
        self.send(Job::Open(target(self.tmp, self.root, &rec.path), rec.mode))?;
        let (ticker, total, done) = &mut self.progress;
        *done += 1;
        let (done, total) = (*done, *total);
        ticker.tick(done, total, || match total {
            Some(total) => format!("restoring: {done} of {total} files"),
            None => format!("restoring: {done} files"),
        });
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ArchiveError::io("read from the archive for", &rec.path, e));
                }
            };
            hasher.update(&self.buf[..n]);
            self.budget.1 += n as u64;
            if let (Some(journaled), extracted) = self.budget
                && extracted > journaled
            {
                return Err(ArchiveError::NotJournaled {
                    detail: format!(
                        "the archive holds more than the {journaled} bytes of files this run journaled"
                    ),
                });
            }
            self.send(Job::Data(self.buf[..n].to_vec()))?;
            bytes += n as u64;
        }
        self.send(Job::Close(Meta {
            uid: rec.uid,
            gid: rec.gid,
            mode: rec.mode,
            mtime: rec.mtime,
        }))?;
        // Made durable all at once by `sync_extracted` before the swap: one fsync per file
        // made a 100,000-object restore six times slower than `tar -xzf`.
        Ok((fsio::hex_digest(hasher), bytes))
    }
}

/// What a file created below the temporary directory gets without asking: its owner and
/// group, and the permission bits taken from the mode it is created with.
#[derive(Debug, Clone, Copy)]
struct Fresh {
    uid: u32,
    gid: u32,
    umask: u32,
}

impl Fresh {
    /// Found out by creating one file in `tmp` (a directory we just made, empty) and looking
    /// at it: the umask, a default ACL, a set-gid directory, the `grpid` mount option or a
    /// file system that maps owners all show there, and the file goes again.
    fn of(tmp: &Path) -> Result<Self, ArchiveError> {
        let probe = tmp.join(".mkplan-restore-probe");
        let made = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(&probe)
            .and_then(|f| f.metadata());
        let removed = fs::remove_file(&probe);
        let meta = made.map_err(|e| ArchiveError::io("create", &probe, e))?;
        removed.map_err(|e| ArchiveError::io("remove", &probe, e))?;
        Ok(Self {
            uid: meta.uid(),
            gid: meta.gid(),
            umask: 0o777 & !meta.mode(),
        })
    }
}

/// A file's owner, mode and mtime, with the `fchown` and `fchmod` left out when the file
/// already has what they would set (two syscalls and two inode updates a file).
fn set_file_meta(fd: &File, m: Meta, fresh: Fresh) -> io::Result<()> {
    let fd = fd.as_fd();
    if (m.uid, m.gid) != (fresh.uid, fresh.gid) {
        rustix::fs::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))?;
    }
    // Created with `mode & 0o777` less the umask (`place.rs`); set-id and sticky bits are
    // refused before a file is created (`check_mode`).
    if m.mode & 0o777 & fresh.umask != 0 || m.mode & !0o777 != 0 {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode))?;
    }
    set_mtime(fd, m.mtime)
}

fn set_mtime(fd: std::os::fd::BorrowedFd<'_>, mtime: i64) -> io::Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    };
    rustix::fs::futimens(fd, &times)?;
    Ok(())
}

/// Owner first (chown clears set-id bits), then mode, then mtime.
fn set_meta(fd: impl AsFd, uid: u32, gid: u32, mode: u32, mtime: i64) -> io::Result<()> {
    let fd = fd.as_fd();
    rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
    set_mtime(fd, mtime)
}

/// Directory owners, modes and mtimes, deepest first (creating entries changes a directory's
/// mtime, and a read-only directory must get its contents first).
fn finish_dirs(dirs: &[DirRecord], root: &str, tmp: &Path) -> Result<(), ArchiveError> {
    for rec in dirs.iter().rev() {
        let path = target(tmp, root, &rec.path);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::open(&path, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| ArchiveError::io("open", &path, e.into()))?;
        set_meta(&dir, rec.uid, rec.gid, rec.mode, rec.mtime)
            .map_err(|e| ArchiveError::io("set owner, mode and mtime of", &path, e))?;
    }
    sync_extracted(tmp)
}

/// Everything extracted is on disk before the swap makes it the store: one `syncfs` of the
/// file system the temporary tree is on (the store's own), instead of an fsync per file and
/// directory. Kernels since 5.8 report write-back errors through it.
fn sync_extracted(tmp: &Path) -> Result<(), ArchiveError> {
    let dir = File::open(tmp).map_err(|e| ArchiveError::io("open", tmp, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| ArchiveError::io("sync the file system of", tmp, e.into()))
}

type Rename<'a> = &'a dyn Fn(&Path, &Path) -> io::Result<()>;

/// Moves the current store to `replaced` (if there is one) and `restored` to `store`. If the
/// second rename fails, the first is undone; if that fails too, the message says where
/// everything is.
fn swap(
    store: &Path,
    restored: &Path,
    replaced: Option<&Path>,
    rename: Rename<'_>,
) -> Result<(), ArchiveError> {
    if let Some(replaced) = replaced
        && let Err(e) = rename(store, replaced)
    {
        let cleanup = remove_tree(restored);
        return Err(ArchiveError::SwapFailed {
            message: format!(
                "restore failed: cannot move the current store `{}` aside to `{}`; the store was \
                 not changed{}",
                store.display(),
                replaced.display(),
                match cleanup {
                    Ok(()) => String::new(),
                    Err(_) => format!(" (remove `{}` by hand)", restored.display()),
                }
            ),
            source: e,
        });
    }
    if replaced.is_some() {
        mkplan_engine::crash_hooks::kill_point("restore:swapped-out");
    }
    let Err(e) = rename(restored, store) else {
        return Ok(());
    };
    let message = match replaced.map(|r| (r, rename(r, store))) {
        None => format!(
            "restore failed at the last step: cannot move the restored store `{}` to `{}`; \
             there was no store before; the restored copy is left at `{}`",
            restored.display(),
            store.display(),
            restored.display()
        ),
        Some((_, Ok(()))) => format!(
            "restore failed at the last step: cannot move the restored store `{}` to `{}`; the \
             previous store was put back in place; the restored copy is left at `{}`",
            restored.display(),
            store.display(),
            restored.display()
        ),
        Some((replaced, Err(back))) => format!(
            "RESTORE FAILED HALF-WAY: THE STORE `{}` IS MISSING. The previous store is at `{}` \
             (putting it back failed: {back}) and the restored store is at `{}`; move one of \
             them to `{}` by hand before starting any service",
            store.display(),
            replaced.display(),
            restored.display(),
            store.display()
        ),
    };
    Err(ArchiveError::SwapFailed { message, source: e })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use flate2::Compression;
    use flate2::read::GzDecoder;
    use flate2::write::GzEncoder;
    use tar::{Builder, EntryType, Header};

    use super::*;
    use crate::archive::backup;
    use crate::archive::check::compare_live;
    use crate::archive::manifest::Doc;
    use crate::archive::testkit::{Store, listing, snapshot};
    use mkplan_engine::record::backup::BackupRecord;

    fn made() -> (Store, BackupRecord) {
        let t = Store::new();
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        (t, rec)
    }

    /// The digests the run that made `rec` journaled.
    fn pinned(rec: &BackupRecord) -> Journaled<'_> {
        Journaled {
            archive_sha256: &rec.archive_sha256,
            manifest_sha256: &rec.manifest_sha256,
            file_bytes: None,
        }
    }

    struct Digests(String, String);

    impl Digests {
        fn pinned(&self) -> Journaled<'_> {
            Journaled {
                archive_sha256: &self.0,
                manifest_sha256: &self.1,
                file_bytes: None,
            }
        }
    }

    /// The files' own digests, as if a run had journaled exactly these files.
    fn own_digests(archive: &Path, manifest: &Path) -> Digests {
        Digests(
            fsio::hash_file(archive).unwrap().0,
            fsio::hash_file(manifest).unwrap().0,
        )
    }

    /// Every path below `dir` except the backups, names only.
    fn tree(dir: &Path) -> Vec<String> {
        fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                if rel == "backups" {
                    continue;
                }
                out.push(rel);
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    go(base, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        go(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn extraction_stops_past_the_file_bytes_the_run_journaled() {
        let (t, rec) = made();
        fs::write(t.store.join("TOK_OBJ/OBEXTRA"), b"changed since the backup").unwrap();
        let before = snapshot(&t.store);
        let listed = tree(t.store.parent().unwrap());
        // As if the run had journaled one byte less than this archive unpacks to (an
        // archive of the journaled size can decompress to anything).
        let journaled = Journaled {
            file_bytes: Some(rec.bytes - 1),
            ..pinned(&rec)
        };
        let err = restore(&rec.archive, &rec.manifest, &t.store, "r2", journaled)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "{} bytes of files this run journaled",
                rec.bytes - 1
            )) && err.contains("nothing was restored"),
            "{err}"
        );
        assert_eq!(snapshot(&t.store), before);
        assert_eq!(tree(t.store.parent().unwrap()), listed, "no staging left");
        // The journaled count itself is enough.
        let exact = Journaled {
            file_bytes: Some(rec.bytes),
            ..pinned(&rec)
        };
        restore(&rec.archive, &rec.manifest, &t.store, "r3", exact).unwrap();
    }

    #[test]
    fn only_the_archive_and_manifest_the_run_journaled_are_restored() {
        let (t, rec) = made();
        // Someone who can write the backup directory makes a self-consistent backup of a
        // store with an extra key and puts it under the journaled names.
        fs::write(t.store.join("TOK_OBJ/OBEXTRA"), b"a key nobody backed up").unwrap();
        let theirs = backup(&t.store, &t.backups, "r9-ep11").unwrap();
        fs::remove_file(t.store.join("TOK_OBJ/OBEXTRA")).unwrap();
        let before = snapshot(&t.store);
        fs::rename(&theirs.archive, &rec.archive).unwrap();
        let err = restore(&rec.archive, &rec.manifest, &t.store, "r2", pinned(&rec))
            .unwrap_err()
            .to_string();
        for digest in [&theirs.archive_sha256, &rec.archive_sha256] {
            assert!(err.contains(digest.as_str()), "{err}");
        }
        fs::rename(&theirs.manifest, &rec.manifest).unwrap();
        let err = restore(&rec.archive, &rec.manifest, &t.store, "r2", pinned(&rec))
            .unwrap_err()
            .to_string();
        for digest in [
            &theirs.archive_sha256,
            &rec.archive_sha256,
            &theirs.manifest_sha256,
            &rec.manifest_sha256,
        ] {
            assert!(err.contains(digest.as_str()), "{err}");
        }
        assert!(
            err.contains("the store was not touched: refusing to restore: manifest `"),
            "{err}"
        );
        assert_eq!(snapshot(&t.store), before);
        assert!(!t.parent().join(".ep11tok.restore-r2").exists());
    }

    #[test]
    fn set_id_and_sticky_bits_are_refused_at_backup_and_restore() {
        let t = Store::new();
        for (rel, mode) in [("TOK_OBJ", 0o2750), ("MK_SO", 0o4600), ("spare", 0o1700)] {
            let path = t.store.join(rel);
            let old = fs::metadata(&path).unwrap().permissions();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = backup(&t.store, &t.backups, "r1-ep11")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("`ep11tok/{rel}` has mode {mode:04o}")),
                "{err}"
            );
            fs::set_permissions(&path, old).unwrap();
            assert!(
                !t.backups.exists() || listing(&t.backups).is_empty(),
                "{:?}",
                listing(&t.backups)
            );
        }
        backup(&t.store, &t.backups, "r1-ep11").unwrap();
        check_mode("ep11tok/MK_SO", 0o640).unwrap();
        let err = check_mode("ep11tok/MK_SO", 0o6640).unwrap_err().to_string();
        assert!(
            err.contains("has mode 6640") && err.contains("not restored"),
            "{err}"
        );
    }

    #[test]
    fn backup_files_are_private_and_partials_of_an_interrupted_run_are_cleared() {
        let t = Store::with_objects(3);
        let rec = backup(&t.store, &t.backups, "r1-ep11").unwrap();
        for path in [&rec.archive, &rec.manifest] {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let partial = t.backups.join(".r2-ep11.tar.gz.x1Y2z3.partial");
        let other_run = t.backups.join(".r3-ep11.tar.gz.x1Y2z3.partial");
        fs::write(&partial, b"half").unwrap();
        fs::write(&other_run, b"half").unwrap();
        let removed = crate::archive::clear_partials(&t.backups, "r2").unwrap();
        assert_eq!(removed, std::slice::from_ref(&partial));
        assert!(!partial.exists() && other_run.exists() && rec.archive.exists());
    }

    #[test]
    fn restore_brings_back_exactly_what_was_backed_up_and_keeps_the_replaced_store() {
        let (t, rec) = made();
        let backed_up = snapshot(&t.store);
        fs::write(t.store.join("TOK_OBJ/OBNEW"), b"a new key").unwrap();
        fs::write(t.store.join("NVTOK.DAT"), b"changed token info").unwrap();
        fs::remove_file(t.store.join("TOK_OBJ/OB000000")).unwrap();
        let modified = snapshot(&t.store);

        let done = restore(&rec.archive, &rec.manifest, &t.store, "r2", pinned(&rec)).unwrap();
        let replaced = t.parent().join("ep11tok.replaced-r2");
        assert_eq!(done.replaced.as_deref(), Some(replaced.as_path()));
        assert_eq!(
            (done.store.as_path(), done.files, done.bytes),
            (t.store.as_path(), rec.files, rec.bytes)
        );
        assert_eq!(snapshot(&t.store), backed_up);
        assert_eq!(snapshot(&replaced), modified);
        assert_eq!(listing(&t.parent()), ["ep11tok", "ep11tok.replaced-r2"]);
        let mut reader = ManifestReader::open(&rec.manifest).unwrap();
        compare_live(&t.store, &mut reader).unwrap();

        // A second restore in the same run (a retried migration that failed again) keeps
        // both replaced stores, under the first free name.
        let again = restore(&rec.archive, &rec.manifest, &t.store, "r2", pinned(&rec)).unwrap();
        assert_eq!(
            again.replaced,
            Some(t.parent().join("ep11tok.replaced-r2.2"))
        );
        assert_eq!(snapshot(&t.store), backed_up);
        assert_eq!(
            snapshot(&replaced),
            modified,
            "the first replaced store is untouched"
        );
    }

    #[test]
    fn restore_recreates_a_missing_store() {
        let (t, rec) = made();
        let backed_up = snapshot(&t.store);
        fs::remove_dir_all(&t.store).unwrap();
        let done = restore(&rec.archive, &rec.manifest, &t.store, "r2", pinned(&rec)).unwrap();
        assert_eq!(done.replaced, None);
        assert_eq!(snapshot(&t.store), backed_up);
        assert_eq!(listing(&t.parent()), ["ep11tok"]);
    }

    #[test]
    fn a_leftover_temporary_directory_of_the_same_run_is_replaced() {
        let (t, rec) = made();
        let leftover = t.parent().join(".ep11tok.restore-r2");
        fs::create_dir_all(leftover.join("TOK_OBJ")).unwrap();
        fs::write(leftover.join("TOK_OBJ/junk"), b"x").unwrap();
        restore(&rec.archive, &rec.manifest, &t.store, "r2", pinned(&rec)).unwrap();
        assert!(!leftover.exists());
    }

    #[test]
    fn refusals_before_anything_is_written() {
        let (t, rec) = made();
        let before = snapshot(&t.store);
        let tree_before = tree(t.dir.path());
        let mut bytes = fs::read(&rec.archive).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        let corrupt = t.backups.join("corrupt.tar.gz");
        fs::write(&corrupt, &bytes).unwrap();
        let err = restore(&corrupt, &rec.manifest, &t.store, "r2", pinned(&rec))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("this run journaled {}", rec.archive_sha256))
                && err.ends_with("so nothing was restored"),
            "{err}"
        );
        // A manifest that describes the corrupt archive is refused for its own digest.
        let own = own_digests(&corrupt, &rec.manifest);
        let err = restore(&corrupt, &rec.manifest, &t.store, "r2", own.pinned())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("but its manifest says") && err.contains("the store was not touched"),
            "{err}"
        );

        let other = t.dir.path().join("var/lib/opencryptoki/ep11tok2");
        let err = restore(&rec.archive, &rec.manifest, &other, "r2", pinned(&rec))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("restore refused: the backup is of"),
            "{err}"
        );
        let err = restore(&rec.archive, &rec.manifest, &t.store, "../r2", pinned(&rec))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid run id"), "{err}");
        assert_eq!(snapshot(&t.store), before);
        assert_eq!(tree(t.dir.path()), tree_before);
    }

    #[test]
    fn ownership_other_than_our_own_needs_root() {
        check_owner("ep11tok", 0, 0, (0, 0)).unwrap();
        check_owner("ep11tok", 1000, 1000, (1000, 1000)).unwrap();
        check_owner("ep11tok/MK_SO", 5, 5, (0, 0)).unwrap();
        let err = check_owner("ep11tok", 0, 0, (1000, 1000))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("restoring ownership needs root; run as root or"),
            "{err}"
        );
        assert!(
            err.contains("`ep11tok` belongs to uid 0") && err.ends_with("nothing was restored"),
            "{err}"
        );
        let err = check_owner("ep11tok/MK_SO", 1000, 1001, (1000, 1000))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ep11tok/MK_SO` belongs to uid 1000 gid 1001"),
            "{err}"
        );
    }

    type Entries = Vec<(Header, Vec<u8>)>;

    fn entries_of(archive: &Path) -> Entries {
        let mut ar = tar::Archive::new(GzDecoder::new(File::open(archive).unwrap()));
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.header().clone(), data)
            })
            .collect()
    }

    /// Writes `entries` as `r9-ep11.tar.gz` with a manifest that is the original one except
    /// for the archive's name and digest, so only the entries themselves are wrong.
    fn write_hostile(t: &Store, rec: &BackupRecord, entries: &Entries) -> (PathBuf, PathBuf) {
        let mut b = Builder::new(Vec::new());
        for (h, d) in entries {
            b.append(h, &d[..]).unwrap();
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&b.into_inner().unwrap()).unwrap();
        let gz = gz.finish().unwrap();
        let archive = t.backups.join("r9-ep11.tar.gz");
        fs::write(&archive, &gz).unwrap();
        let mut m = Doc::read(&rec.manifest);
        m.header.archive = "r9-ep11.tar.gz".into();
        m.end.archive_sha256 = fsio::hash_file(&archive).unwrap().0;
        m.end.archive_bytes = gz.len() as u64;
        let manifest = t.backups.join("r9-ep11.manifest.jsonl");
        m.write(&manifest);
        (archive, manifest)
    }

    /// A header with `name` copied in byte for byte, bypassing the tar crate's path checks.
    fn raw(
        name: &[u8],
        kind: EntryType,
        data: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> (Header, Vec<u8>) {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        edit(&mut h);
        h.set_cksum();
        (h, data.to_vec())
    }

    #[test]
    fn hostile_archives_are_rejected_and_leave_no_trace() {
        let probe = tempfile::tempdir().unwrap();
        let abs = probe.path().join("abs-target");
        let abs_name = abs.to_str().unwrap().as_bytes().to_vec();
        let none = |_: &mut Header| {};
        type Edit = Box<dyn Fn(&mut Entries)>;
        let inject = |e: (Header, Vec<u8>)| -> Edit {
            Box::new(move |es: &mut Entries| es.insert(10, e.clone()))
        };
        let cases: Vec<(&str, Edit)> = vec![
            (
                "its path has a `..` component",
                inject(raw(b"../escape", EntryType::Regular, b"evil", none)),
            ),
            (
                "its path has a `..` component",
                inject(raw(
                    b"ep11tok/../../escape",
                    EntryType::Regular,
                    b"evil",
                    none,
                )),
            ),
            (
                "its path is absolute",
                inject(raw(&abs_name, EntryType::Regular, b"evil", none)),
            ),
            (
                "it is a symbolic link",
                inject(raw(b"ep11tok/TOK_OBJ/link", EntryType::Symlink, b"", |h| {
                    h.set_link_name("/etc").unwrap()
                })),
            ),
            (
                "it is a hard link",
                inject(raw(b"ep11tok/TOK_OBJ/hl", EntryType::Link, b"", |h| {
                    h.set_link_name("ep11tok/NVTOK.DAT").unwrap()
                })),
            ),
            (
                "it is a character device",
                inject(raw(b"ep11tok/TOK_OBJ/null", EntryType::Char, b"", |h| {
                    h.set_device_major(1).unwrap();
                    h.set_device_minor(3).unwrap();
                })),
            ),
            (
                "it is a fifo",
                inject(raw(b"ep11tok/TOK_OBJ/fifo", EntryType::Fifo, b"", none)),
            ),
            (
                "it is not in the manifest",
                inject(raw(
                    b"ep11tok/TOK_OBJ/EXTRA",
                    EntryType::Regular,
                    b"extra",
                    none,
                )),
            ),
            (
                "empty or `.` component",
                inject(raw(b"ep11tok/./MK_SO", EntryType::Regular, b"x", none)),
            ),
            (
                "it appears twice",
                Box::new(|es: &mut Entries| {
                    let dup = es
                        .iter()
                        .find(|(h, _)| &*h.path_bytes() == b"ep11tok/MK_SO")
                        .unwrap()
                        .clone();
                    es.push(dup);
                }),
            ),
            (
                "has SHA-256",
                Box::new(|es: &mut Entries| es[20].1[100] ^= 1),
            ),
            (
                "differs: mode 0666 (manifest 0640)",
                Box::new(|es: &mut Entries| {
                    let h = &mut es
                        .iter_mut()
                        .find(|(h, _)| h.path_bytes().ends_with(b"OBJ.IDX"))
                        .unwrap()
                        .0;
                    h.set_mode(0o666);
                    h.set_cksum();
                }),
            ),
            (
                "is in the manifest but not in the archive",
                Box::new(|es: &mut Entries| {
                    es.remove(30);
                }),
            ),
        ];
        for (want, edit) in cases {
            let (t, rec) = made();
            let mut entries = entries_of(&rec.archive);
            edit(&mut entries);
            let (archive, manifest) = write_hostile(&t, &rec, &entries);
            let before = snapshot(&t.store);
            let tree_before = tree(t.dir.path());
            let digests = own_digests(&archive, &manifest);
            let err = restore(&archive, &manifest, &t.store, "r2", digests.pinned())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "wanted `{want}` in `{err}`");
            assert!(
                err.contains("aborted, the store was not touched: "),
                "{err}"
            );
            assert_eq!(snapshot(&t.store), before, "{want}");
            assert_eq!(tree(t.dir.path()), tree_before, "{want}");
            assert!(!t.parent().join(".ep11tok.restore-r2").exists());
            assert!(!abs.exists() && listing(probe.path()).is_empty());
        }
    }

    #[test]
    fn a_failed_swap_puts_the_old_store_back_or_says_loudly_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (store, restored, replaced) = (
            dir.path().join("tok"),
            dir.path().join(".tok.restore-r"),
            dir.path().join("tok.replaced-r"),
        );
        let reset = || {
            let _ = fs::remove_dir_all(&store);
            let _ = fs::remove_dir_all(&replaced);
            fs::create_dir_all(&store).unwrap();
            fs::write(store.join("old"), b"old").unwrap();
            fs::create_dir_all(&restored).unwrap();
        };
        // Rename number `fail` (and later ones if `keep_failing`) fail; others are real.
        let renamer = |fail: usize, keep_failing: bool| {
            let calls = Cell::new(0);
            move |from: &Path, to: &Path| {
                calls.set(calls.get() + 1);
                if calls.get() == fail || (keep_failing && calls.get() > fail) {
                    Err(io::Error::other("injected"))
                } else {
                    fsio::rename_noreplace(from, to)
                }
            }
        };

        reset();
        let err = swap(&store, &restored, Some(&replaced), &renamer(2, false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the previous store was put back in place"),
            "{err}"
        );
        assert_eq!(fs::read(store.join("old")).unwrap(), b"old");
        assert!(restored.exists() && !replaced.exists());

        reset();
        let err = swap(&store, &restored, Some(&replaced), &renamer(2, true))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("RESTORE FAILED HALF-WAY: THE STORE"),
            "{err}"
        );
        assert!(
            err.contains(&format!("previous store is at `{}`", replaced.display())),
            "{err}"
        );
        assert_eq!(fs::read(replaced.join("old")).unwrap(), b"old");

        reset();
        let err = swap(&store, &restored, Some(&replaced), &renamer(1, false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot move the current store") && err.contains("was not changed"),
            "{err}"
        );
        assert!(!restored.exists() && store.join("old").exists());

        reset();
        swap(&store, &restored, Some(&replaced), &renamer(0, false)).unwrap();
        assert!(replaced.join("old").exists() && !store.join("old").exists() && !restored.exists());
    }

    /// Files are created with their final mode less what the directory takes away; the
    /// `fchmod` that is then skipped must still come whenever the umask took bits away.
    #[test]
    fn a_restored_file_gets_back_the_bits_the_umask_took() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = Fresh::of(dir.path()).unwrap();
        assert_eq!(fresh.uid, rustix::process::geteuid().as_raw());
        assert!(listing(dir.path()).is_empty(), "the probe is gone");
        for (umask, created, wanted) in [(0o077, 0o600, 0o660), (0o022, 0o640, 0o640)] {
            let path = dir.path().join(format!("f{wanted:o}-{umask:o}"));
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(created)
                .open(&path)
                .unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(created)).unwrap();
            let meta = Meta {
                uid: fresh.uid,
                gid: fresh.gid,
                mode: wanted,
                mtime: 1_000_000,
            };
            set_file_meta(&file, meta, Fresh { umask, ..fresh }).unwrap();
            let m = fs::metadata(&path).unwrap();
            assert_eq!((m.mode() & 0o7777, m.mtime()), (wanted, 1_000_000));
        }
    }
}

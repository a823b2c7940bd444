//! Small file-system helpers: hashing readers and writers, room checks, durable renames and
//! directory fsync, and the rules for names mkplan puts into file names.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, OFlags, RenameFlags};
use sha2::{Digest, Sha256};

use super::ArchiveError;

/// Read buffer for hashing and copying.
pub(super) const BUF: usize = 256 * 1024;
/// Safety margin on top of 110 % of the estimated size in every room check.
pub(super) const ROOM_MARGIN: u64 = 16 * 1024 * 1024;

/// Where progress goes: `(done, total once known, what is being done)`, in files.
pub type Report<'a> = &'a mut dyn FnMut(u64, Option<u64>, &str);

/// Passes progress on at most every [`Ticker::EVERY`], so a million files cost nothing.
pub(super) struct Ticker<'a> {
    report: Report<'a>,
    last: Option<std::time::Instant>,
}

impl<'a> Ticker<'a> {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

    pub(super) fn new(report: Report<'a>) -> Self {
        Self { report, last: None }
    }

    /// Reports if the last report is old enough; `what` is only built then.
    pub(super) fn tick(&mut self, done: u64, total: Option<u64>, what: impl FnOnce() -> String) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= Self::EVERY)
        {
            self.last = Some(now);
            (self.report)(done, total, &what());
        }
    }

    /// Reports now (a new phase).
    pub(super) fn now(&mut self, done: u64, total: Option<u64>, what: &str) {
        self.last = Some(std::time::Instant::now());
        (self.report)(done, total, what);
    }
}

/// Lowercase hex SHA-256 of what was fed to `hasher`.
pub(super) fn hex_digest(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

/// `bytes` as MiB with one decimal, for messages.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `estimate` × 1.1 + [`ROOM_MARGIN`].
pub(super) fn with_margin(estimate: u64) -> u64 {
    estimate
        .saturating_add(estimate / 10)
        .saturating_add(ROOM_MARGIN)
}

/// Refuses when the file system holding `dir` has less than `needed` bytes free for us.
pub(super) fn ensure_room(dir: &Path, needed: u64) -> Result<(), ArchiveError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| ArchiveError::io("statvfs", dir, e.into()))?;
    room_check(dir, needed, st.f_bavail.saturating_mul(st.f_frsize))
}

pub(super) fn room_check(dir: &Path, needed: u64, free: u64) -> Result<(), ArchiveError> {
    if free < needed {
        return Err(ArchiveError::NoSpace {
            dir: dir.to_path_buf(),
            needed,
            free,
        });
    }
    Ok(())
}

/// Writes through to `inner`, hashing and counting what was written.
pub(super) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the hex SHA-256 and the byte count.
    pub(super) fn finish(self) -> (W, String, u64) {
        (self.inner, hex_digest(self.hasher), self.bytes)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads from `inner`, hashing and counting what was read.
pub(super) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashReader<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex SHA-256 and the byte count.
    pub(super) fn finish(self) -> (String, u64) {
        (hex_digest(self.hasher), self.bytes)
    }

    pub(super) fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reads `reader` to its end into `buf`-sized pieces; returns hex SHA-256 and length.
pub(super) fn hash_stream(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex_digest(hasher), bytes))
}

/// SHA-256 and length of the file at `path` (an archive or manifest: a symlink to one is
/// fine, its content is what gets checked).
#[cfg(test)]
pub(super) fn hash_file(path: &Path) -> Result<(String, u64), ArchiveError> {
    let mut file = File::open(path).map_err(|e| ArchiveError::io("open", path, e))?;
    let mut buf = vec![0u8; BUF];
    hash_stream(&mut file, &mut buf).map_err(|e| ArchiveError::io("read", path, e))
}

/// Opens `path` read-only without following a symlink in its last component and without
/// blocking on a fifo that appeared in a race.
pub(super) fn open_nofollow(path: &Path) -> io::Result<File> {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
}

/// fsync of a directory, so that renames and new entries in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io("fsync directory", dir, e))
}

/// `rename(from, to)` that fails instead of replacing an existing `to`.
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// Whether anything (even a dangling symlink) exists at `path`.
pub(super) fn exists(path: &Path) -> Result<bool, ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ArchiveError::io("inspect", path, e)),
    }
}

/// Checks a run id, token or stem that becomes part of a file name: 1–200 characters of
/// `A–Z a–z 0–9 . _ - : +`, not starting with `.` or `-`.
pub(super) fn check_name(what: &'static str, value: &str) -> Result<(), ArchiveError> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > 200 {
        Some("it is longer than 200 characters")
    } else if value.starts_with('.') || value.starts_with('-') {
        Some("it starts with `.` or `-`")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:+".contains(&b))
    {
        Some("only letters, digits and `._-:+` are allowed")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ArchiveError::InvalidName {
            what,
            value: value.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// The store's parent directory and its name; the name must be UTF-8.
pub(super) fn split_store(store: &Path) -> Result<(PathBuf, String), ArchiveError> {
    let name = store
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && !n.contains('\n'))
        .ok_or_else(|| ArchiveError::Store {
            path: store.to_path_buf(),
            problem: "does not end in a UTF-8 directory name".to_owned(),
        })?;
    let parent = match store.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_become_file_names_are_checked() {
        for ok in ["20250101T120000Z-ab12", "ep11", "r1:2+x_y.z"] {
            check_name("run id", ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "..",
            "a b",
            "a\nb",
            &"x".repeat(201),
        ] {
            let err = check_name("run id", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid run id"), "{err}");
        }
    }

    #[test]
    fn room_check_says_what_is_needed_and_free() {
        let err = room_check(Path::new("/backups"), 50 << 20, 10 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not enough room in `/backups`: 50.0 MiB needed (52428800 bytes), 10.0 MiB free \
             (10485760 bytes)"
        );
        room_check(Path::new("/backups"), 10, 10).unwrap();
        assert_eq!(with_margin(1000), 1100 + ROOM_MARGIN);
    }

    #[test]
    fn hashing_reader_and_writer_agree_with_known_digest() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (out, sha, n) = w.finish();
        assert_eq!(out, b"abc");
        assert_eq!(n, 3);
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha, expected);
        let mut r = HashReader::new(&b"abc"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (expected.to_owned(), 3));
    }

    #[test]
    fn store_is_split_into_parent_and_name() {
        let (p, n) = split_store(Path::new("/var/lib/opencryptoki/ep11tok")).unwrap();
        assert_eq!(
            (p, n.as_str()),
            (PathBuf::from("/var/lib/opencryptoki"), "ep11tok")
        );
        assert_eq!(
            split_store(Path::new("ep11tok")).unwrap().0,
            PathBuf::from(".")
        );
        assert!(split_store(Path::new("/")).is_err());
    }
}

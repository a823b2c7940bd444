//! Small file operations steps need done for them: a kept copy, an atomic replacement that
//! keeps mode and owner, and looking at a directory's mode.

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use mkplan_engine::crash_hooks::kill_point;

/// Copies `from` to `to`.
pub(crate) fn copy(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::copy(from, to).map(|_| ())
}

/// Temporary file in the same directory with the original's mode and owner, fsync, rename
/// over the original, fsync the directory.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let meta = std::fs::metadata(path)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let _ = rustix::fs::fchown(
        temp.as_file(),
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    );
    temp.as_file().sync_all()?;
    kill_point("set_expected_wkvp:written");
    temp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The permission bits of `dir`.
pub(crate) fn mode(dir: &Path) -> Option<u32> {
    Some(std::fs::metadata(dir).ok()?.mode() & 0o7777)
}

/// Whether `path` is a directory (through symlinks).
pub(crate) fn is_dir(path: &Path) -> io::Result<bool> {
    std::fs::metadata(path).map(|m| m.is_dir())
}

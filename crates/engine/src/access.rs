//! Who may read what mkplan keeps: the state directory, its runs, journals, plan copies
//! and reports hold the key inventory (labels, IDs, blob digests) and the run's history,
//! so nobody but their owner reads them — unless a group is configured.
//!
//! A group is configured on the state directory itself: give it the group and let that
//! group read it (`chgrp auditors /var/lib/mkplan && chmod 750 /var/lib/mkplan`). Then
//! every directory mkplan creates in it is 0750 and every file 0640, with that group;
//! otherwise 0700 and 0600. Others never get any access. The modes are set explicitly, so
//! neither the umask nor a stray setgid bit changes them.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The access of what mkplan creates under one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The group that may read, when one is configured.
    group: Option<u32>,
}

impl Access {
    /// Owner only.
    pub const PRIVATE: Access = Access { group: None };

    /// What goes into `dir`: readable by `dir`'s group if `dir` lets its group read it,
    /// else by the owner only.
    pub fn inside(dir: &Path) -> io::Result<Self> {
        let meta = fs::metadata(dir)?;
        Ok(Access {
            group: (meta.mode() & 0o040 != 0).then(|| meta.gid()),
        })
    }

    pub fn dir_mode(self) -> u32 {
        if self.group.is_some() { 0o750 } else { 0o700 }
    }

    pub fn file_mode(self) -> u32 {
        if self.group.is_some() { 0o640 } else { 0o600 }
    }

    /// Gives a file mkplan just created its mode (and group).
    pub fn apply(self, file: &File) -> io::Result<()> {
        if let Some(gid) = self.group {
            rustix::fs::fchown(file, None, Some(rustix::fs::Gid::from_raw(gid)))?;
        }
        file.set_permissions(fs::Permissions::from_mode(self.file_mode()))
    }

    /// Creates the directory `path` (its parent exists) with this access.
    pub fn create_dir(self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new().mode(self.dir_mode()).create(path)?;
        self.fix_dir(path)
    }

    /// Gives an existing directory mkplan created this access.
    pub fn fix_dir(self, path: &Path) -> io::Result<()> {
        if let Some(gid) = self.group {
            rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(self.dir_mode()))
    }
}

/// Creates `dir` and whatever parents it lacks, each owner-only (0700); an existing `dir`
/// is left as it is (its mode is how a group is configured).
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // Explicitly: the umask may have taken bits, never added them, but be exact.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn owner_only_unless_the_directory_lets_its_group_read() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b/state");
        create_private_dirs(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        let access = Access::inside(&state).unwrap();
        assert_eq!(access, Access::PRIVATE);
        let run = state.join("run");
        access.create_dir(&run).unwrap();
        assert_eq!(mode(&run), 0o700);
        let file = File::create(run.join("f")).unwrap();
        access.apply(&file).unwrap();
        assert_eq!(mode(&run.join("f")), 0o600);

        fs::set_permissions(&state, fs::Permissions::from_mode(0o750)).unwrap();
        let access = Access::inside(&state).unwrap();
        assert_eq!((access.dir_mode(), access.file_mode()), (0o750, 0o640));
        let shared = state.join("shared");
        access.create_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o750);
        assert_eq!(
            fs::metadata(&shared).unwrap().gid(),
            fs::metadata(&state).unwrap().gid()
        );
    }
}

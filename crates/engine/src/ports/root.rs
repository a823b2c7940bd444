//! The host's root directory and the paths openCryptoki derives from it: pure path
//! arithmetic that the host adapters and the simulated host share.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

/// The host's root directory: `/` on a real system, a prepared tree in tests and rehearsal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    /// The real system.
    pub fn system() -> Self {
        Self(PathBuf::from("/"))
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `absolute` (a path as the host sees it, e.g. `/sys/bus/ap`) under this root.
    pub fn path(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let absolute = absolute.as_ref();
        self.0.join(absolute.strip_prefix("/").unwrap_or(absolute))
    }
}

/// Where openCryptoki's releases write pkcsslotd's pid file, newest first
/// (opencryptoki-ep11.md 3.3): 3.8 writes `/var/run/pkcsslotd.pid` (= `/run/pkcsslotd.pid`),
/// later releases `/run/opencryptoki/pkcsslotd.pid`.
pub const SLOTD_PID_FILES: &[&str] = &[
    "/run/opencryptoki/pkcsslotd.pid",
    "/var/run/opencryptoki/pkcsslotd.pid",
    "/run/pkcsslotd.pid",
    "/var/run/pkcsslotd.pid",
];

/// The token's POSIX shm file: the token directory with `/` → `.` and the leading `/`
/// dropped, under `/dev/shm` (opencryptoki-ep11.md 3.3, `convert_path_to_shm_name`):
/// `/var/lib/opencryptoki/ep11tok` → `<root>/dev/shm/var.lib.opencryptoki.ep11tok`.
/// The token builds its directory path without a trailing or doubled `/`, so those are
/// dropped here too.
pub fn token_shm_path(root: &HostRoot, store: &Path) -> PathBuf {
    let mut name = OsString::new();
    for part in store.components() {
        let part = match part {
            Component::Normal(part) => part,
            Component::ParentDir => OsStr::new(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        if !name.is_empty() {
            name.push(".");
        }
        name.push(part);
    }
    root.path("/dev/shm").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_the_root() {
        let root = HostRoot::new("/tmp/sim");
        assert_eq!(
            root.path("/sys/bus/ap"),
            PathBuf::from("/tmp/sim/sys/bus/ap")
        );
        assert_eq!(HostRoot::system().path("/run/x"), PathBuf::from("/run/x"));
    }

    #[test]
    fn the_token_shm_file_is_named_as_opencryptoki_names_it() {
        let root = HostRoot::new("/tmp/sim");
        for store in [
            "/var/lib/opencryptoki/ep11tok",
            "/var/lib/opencryptoki/ep11tok/",
            "/var//lib/opencryptoki/ep11tok",
        ] {
            assert_eq!(
                token_shm_path(&root, Path::new(store)),
                Path::new("/tmp/sim/dev/shm/var.lib.opencryptoki.ep11tok")
            );
        }
        assert_eq!(
            token_shm_path(&HostRoot::system(), Path::new("/var/lib/opencryptoki/tok2")),
            Path::new("/dev/shm/var.lib.opencryptoki.tok2")
        );
    }
}

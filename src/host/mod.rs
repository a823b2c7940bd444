//! The only code that touches the system. Every path is resolved under a [`HostRoot`], so
//! tests and rehearsal run the same code against a prepared tree.

pub mod archive;
pub mod ep11conf;
pub mod inventory;
pub mod pin;
pub mod pkcs11;
pub mod process;
pub mod procscan;
pub mod slotd;
pub mod tools;
pub mod zcrypt;

use std::path::{Path, PathBuf};

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
}

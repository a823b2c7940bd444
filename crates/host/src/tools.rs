//! Finding the programs mkplan runs. They are looked up under the host root on a fixed
//! system path, not the caller's `PATH`: a privileged key-management tool must not run
//! whatever `pkcsep11_migrate` or `systemctl` happens to come first in a user's `PATH`.

use std::path::{Path, PathBuf};

use mkplan_engine::ports::host::PortError;
use mkplan_engine::ports::root::HostRoot;

/// Where system tools live (`pkcsep11_migrate` is in sbin, reference 1.6).
pub const SYSTEM_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where distributions install openCryptoki's PKCS#11 library.
const PKCS11_MODULES: &[&str] = &[
    "/usr/lib/s390x-linux-gnu/opencryptoki/libopencryptoki.so",
    "/usr/lib64/opencryptoki/libopencryptoki.so",
    "/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
    "/usr/lib/opencryptoki/libopencryptoki.so",
];

/// Why a program or module was not found, or cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{program}` does not exist under the host root `{}`", root.display())]
    NotUnderRoot { program: String, root: PathBuf },
    #[error("`{program}` is a relative path; write it absolute or as a bare name")]
    Relative { program: String },
    #[error(
        "`{program}` is not on the system path ({}) under the host root `{}`",
        SYSTEM_PATH.join(":"),
        root.display()
    )]
    NotOnPath { program: String, root: PathBuf },
    #[error(
        "openCryptoki's libopencryptoki.so is not in any usual place ({}); name it with `module:`",
        PKCS11_MODULES.join(", ")
    )]
    NoPkcs11Module,
    #[error("`{}` is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("`{}`: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` cannot be run by this user: {source}", path.display())]
    NotExecutable {
        path: PathBuf,
        #[source]
        source: rustix::io::Errno,
    },
}

/// Through the host ports, in the same words.
impl From<ToolError> for PortError {
    fn from(error: ToolError) -> Self {
        PortError::new(error.to_string())
    }
}

/// `name` on the system path under `root`, if it exists.
pub fn find(root: &HostRoot, name: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .iter()
        .map(|dir| root.path(Path::new(dir).join(name)))
        .find(|p| p.is_file())
}

/// The program for a plan's argv[0]: an absolute path is taken under the root, a bare name
/// is looked up on the system path under the root.
pub fn resolve(root: &HostRoot, program: &str) -> Result<PathBuf, ToolError> {
    if program.starts_with('/') {
        let path = root.path(program);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ToolError::NotUnderRoot {
                program: program.to_owned(),
                root: root.dir().to_owned(),
            })
        };
    }
    if program.contains('/') {
        return Err(ToolError::Relative {
            program: program.to_owned(),
        });
    }
    find(root, program).ok_or_else(|| ToolError::NotOnPath {
        program: program.to_owned(),
        root: root.dir().to_owned(),
    })
}

/// openCryptoki's PKCS#11 library: `given` (as the plan names it) under the root, else the
/// first of the usual places that holds a file.
pub fn pkcs11_module(root: &HostRoot, given: Option<&Path>) -> Result<PathBuf, ToolError> {
    if let Some(module) = given {
        return Ok(root.path(module));
    }
    PKCS11_MODULES
        .iter()
        .map(|m| root.path(Path::new(m)))
        .find(|p| p.is_file())
        .ok_or(ToolError::NoPkcs11Module)
}

/// Whether `path` is a regular file (through symlinks) that this user may execute.
pub fn runnable(path: &Path) -> Result<(), ToolError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(ToolError::NotAFile {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(ToolError::Unreadable {
                path: path.to_owned(),
                source,
            });
        }
    }
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK).map_err(|source| {
        ToolError::NotExecutable {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_under_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        std::fs::create_dir_all(dir.path().join("usr/sbin")).unwrap();
        std::fs::write(dir.path().join("usr/sbin/pkcsep11_migrate"), "").unwrap();
        assert_eq!(
            find(&root, "pkcsep11_migrate"),
            Some(dir.path().join("usr/sbin/pkcsep11_migrate"))
        );
        assert!(resolve(&root, "systemctl").is_err());
        assert!(resolve(&root, "/usr/sbin/pkcsep11_migrate").is_ok());
        assert!(resolve(&root, "bin/x").is_err());
    }
}

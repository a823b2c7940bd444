//! Who may write what mkplan trusts, checked the way ssh's `StrictModes` checks
//! `authorized_keys`: a plan, an approvals file, the migration tool, a signing key and the
//! state directory are refused when someone other than root or the operator owns them or
//! could write them — or could write any directory on the way to them, and so replace
//! them. Whoever can write an approvals file can approve a TKE checkpoint; whoever can
//! write the tool gets the token's PIN. A signing key must also be unreadable by others.
//!
//! A refusal names the path, its owner or mode, and the `chmod`/`chown` that fixes it.
//! Directories that are sticky and owned by root (`/tmp`) are writable by all by design;
//! nobody can rename or remove someone else's entry in them, so they do not count.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What is being checked, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trusted {
    Plan,
    Approvals,
    Tool,
    SigningKey,
    StateDir,
}

impl Trusted {
    fn what(self) -> &'static str {
        match self {
            Trusted::Plan => "the plan",
            Trusted::Approvals => "the approvals file",
            Trusted::Tool => "the migration tool",
            Trusted::SigningKey => "the report-signing key",
            Trusted::StateDir => "the state directory",
        }
    }

    /// What someone else could do by writing it.
    fn stake(self) -> &'static str {
        match self {
            Trusted::Plan => "change what this run does",
            Trusted::Approvals => "approve a checkpoint in anyone's name",
            Trusted::Tool => "run their own code with the token's PIN",
            Trusted::SigningKey => "sign reports in mkplan's name",
            Trusted::StateDir => "plant or change journals that `resume` acts on",
        }
    }

    fn is_dir(self) -> bool {
        self == Trusted::StateDir
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "{} `{}` is owned by uid {owner}, neither root nor you ({me}): its owner could {} (hint: chown {me} {})",
        .what.what(), .path.display(), .what.stake(), .path.display()
    )]
    Owner {
        what: Trusted,
        path: PathBuf,
        owner: u32,
        me: String,
    },
    #[error(
        "{} `{}` has mode {mode:04o}: {who} can write it and could {} (hint: chmod {fixed:o} {})",
        .what.what(), .path.display(), .what.stake(), .path.display()
    )]
    Writable {
        what: Trusted,
        path: PathBuf,
        mode: u32,
        fixed: u32,
        who: &'static str,
    },
    #[error(
        "{} `{}` lies in `{}`, which is owned by uid {owner}, neither root nor you ({me}): its owner could replace it and {} (hint: chown {me} {})",
        .what.what(), .path.display(), .dir.display(), .what.stake(), .dir.display()
    )]
    DirOwner {
        what: Trusted,
        path: PathBuf,
        dir: PathBuf,
        owner: u32,
        me: String,
    },
    #[error(
        "{} `{}` lies in `{}`, which has mode {mode:04o}: {who} can replace what is in it and could {} (hint: chmod {fixed:o} {})",
        .what.what(), .path.display(), .dir.display(), .what.stake(), .dir.display()
    )]
    DirWritable {
        what: Trusted,
        path: PathBuf,
        dir: PathBuf,
        mode: u32,
        fixed: u32,
        who: &'static str,
    },
    #[error(
        "{} `{}` has mode {mode:04o}: {who} can read it and could sign reports in mkplan's name (hint: chmod {fixed:o} {})",
        .what.what(), .path.display(), .path.display()
    )]
    Readable {
        what: Trusted,
        path: PathBuf,
        mode: u32,
        fixed: u32,
        who: &'static str,
    },
    #[error("{} `{}` is not a regular file", .what.what(), .path.display())]
    NotAFile { what: Trusted, path: PathBuf },
    #[error("cannot check {} `{}`: {source}", .what.what(), .path.display())]
    Io {
        what: Trusted,
        path: PathBuf,
        source: io::Error,
    },
}

/// Whether the owner `uid` may be trusted: root, the user mkplan runs as, or the user who
/// ran it through sudo (who could change the file anyway).
fn trusted_owner(uid: u32) -> bool {
    let me = rustix::process::geteuid().as_raw();
    uid == 0
        || uid == me
        || (me == 0
            && std::env::var("SUDO_UID")
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                == Some(uid))
}

/// The user mkplan runs as, as `chown` takes it.
fn me() -> String {
    match rustix::process::geteuid().as_raw() {
        0 => "root".to_owned(),
        uid => uid.to_string(),
    }
}

/// `group`, `others` or `group and others`, for the bits of `mask` set in `mode`.
fn who(mode: u32, mask: u32) -> &'static str {
    match (mode & mask & 0o070 != 0, mode & mask & 0o007 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

/// Checks `path` (followed through symlinks, as it will be opened) and every directory
/// above it.
pub fn check(path: &Path, what: Trusted) -> Result<(), TrustError> {
    let io_error = |source| TrustError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let real = fs::canonicalize(path).map_err(io_error)?;
    let meta = fs::metadata(&real).map_err(io_error)?;
    let kind_ok = if what.is_dir() {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    if !kind_ok {
        return Err(TrustError::NotAFile {
            what,
            path: path.to_owned(),
        });
    }
    check_entry(path, &meta, what)?;
    let mut dir = real.parent();
    while let Some(current) = dir {
        let meta = fs::metadata(current).map_err(io_error)?;
        check_dir(path, current, &meta, what)?;
        dir = current.parent();
    }
    Ok(())
}

fn check_entry(path: &Path, meta: &Metadata, what: Trusted) -> Result<(), TrustError> {
    let mode = meta.mode() & 0o7777;
    if !trusted_owner(meta.uid()) {
        return Err(TrustError::Owner {
            what,
            path: path.to_owned(),
            owner: meta.uid(),
            me: me(),
        });
    }
    if mode & 0o022 != 0 {
        return Err(TrustError::Writable {
            what,
            path: path.to_owned(),
            mode,
            fixed: mode & !0o022,
            who: who(mode, 0o022),
        });
    }
    if what == Trusted::SigningKey && mode & 0o077 != 0 {
        return Err(TrustError::Readable {
            what,
            path: path.to_owned(),
            mode,
            fixed: mode & 0o700,
            who: who(mode, 0o077),
        });
    }
    Ok(())
}

fn check_dir(path: &Path, dir: &Path, meta: &Metadata, what: Trusted) -> Result<(), TrustError> {
    let mode = meta.mode() & 0o7777;
    if !trusted_owner(meta.uid()) {
        return Err(TrustError::DirOwner {
            what,
            path: path.to_owned(),
            dir: dir.to_owned(),
            owner: meta.uid(),
            me: me(),
        });
    }
    let sticky_root = mode & 0o1000 != 0 && meta.uid() == 0;
    if mode & 0o022 != 0 && !sticky_root {
        return Err(TrustError::DirWritable {
            what,
            path: path.to_owned(),
            dir: dir.to_owned(),
            mode,
            fixed: mode & !0o022,
            who: who(mode, 0o022),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn writable_files_and_directories_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let file = sub.join("approvals.yaml");
        fs::write(&file, "approvals: []\n").unwrap();
        chmod(&sub, 0o755);
        chmod(&file, 0o644);
        check(&file, Trusted::Approvals).unwrap();

        chmod(&file, 0o664);
        let error = check(&file, Trusted::Approvals).unwrap_err().to_string();
        assert!(
            error.contains("mode 0664")
                && error.contains("its group can write it")
                && error.contains(&format!("chmod 644 {}", file.display())),
            "{error}"
        );
        chmod(&file, 0o644);

        chmod(&sub, 0o777);
        let error = check(&file, Trusted::Approvals).unwrap_err().to_string();
        assert!(
            error.contains("mode 0777")
                && error.contains("group and others can replace")
                && error.contains(&format!("chmod 755 {}", sub.display())),
            "{error}"
        );
        // A sticky directory owned by root (like /tmp) is fine; owned by someone else, not.
        chmod(&sub, 0o1777);
        let sticky = check(&file, Trusted::Approvals);
        assert_eq!(sticky.is_ok(), me() == "root", "{sticky:?}");
    }

    #[test]
    fn a_signing_key_must_not_be_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        fs::write(&key, "key").unwrap();
        chmod(&key, 0o640);
        let error = check(&key, Trusted::SigningKey).unwrap_err().to_string();
        assert!(
            error.contains("mode 0640") && error.contains(&format!("chmod 600 {}", key.display())),
            "{error}"
        );
        chmod(&key, 0o600);
        check(&key, Trusted::SigningKey).unwrap();
        // The same mode is fine for anything that is not secret.
        chmod(&key, 0o640);
        check(&key, Trusted::Plan).unwrap();
    }
}

//! Is openCryptoki's slot daemon, `pkcsslotd`, running? Every tool and library user needs
//! it (opencryptoki-ep11.md 3.4). Its pid file depends on the release (3.3): openCryptoki
//! 3.8 writes `/var/run/pkcsslotd.pid` (= `/run/pkcsslotd.pid`), later releases
//! `/run/opencryptoki/pkcsslotd.pid`. A pid file can outlive its daemon and pids are
//! reused, so the pid is confirmed through `/proc/<pid>/exe`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::tools;
use mkplan_engine::ports::host::SlotDaemon;
use mkplan_engine::ports::root::{HostRoot, SLOTD_PID_FILES as PID_FILES};
use mkplan_plan::input;

/// Why no running pkcsslotd was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pkcsslotd is not running: {why}; start it (`systemctl start pkcsslotd`)")]
pub struct NotRunning {
    pub why: String,
}

/// Why a pid is not a live pkcsslotd: said after "names pid N, which".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NotTheDaemon {
    #[error("does not exist")]
    Gone,
    #[error("has exited")]
    Exited,
    #[error("runs `{0}`, not pkcsslotd")]
    Runs(String),
    #[error("is `{0}`, not pkcsslotd")]
    Named(String),
}

/// The running pkcsslotd of the host under `root`, with `/proc` at `proc_dir`.
pub fn find(root: &HostRoot, proc_dir: &Path) -> Result<SlotDaemon, NotRunning> {
    let mut seen = Vec::new();
    for pid_file in PID_FILES {
        let text = match input::read_to_string(&root.path(pid_file), input::SMALL) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                seen.push(format!("`{pid_file}` cannot be read: {e}"));
                continue;
            }
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            seen.push(format!("`{pid_file}` does not hold a pid"));
            continue;
        };
        match confirm(root, proc_dir, pid) {
            Ok(exe) => {
                return Ok(SlotDaemon {
                    pid,
                    pid_file: PathBuf::from(pid_file),
                    exe,
                });
            }
            Err(what) => seen.push(format!("`{pid_file}` names pid {pid}, which {what}")),
        }
    }
    let why = if seen.is_empty() {
        format!("none of its pid files exists ({})", PID_FILES.join(", "))
    } else {
        seen.join("; ")
    };
    Err(NotRunning { why })
}

/// The daemon's executable if `pid` is a live pkcsslotd: its `/proc/<pid>/exe` is named
/// `pkcsslotd` or is the host's own `pkcsslotd` (a simulated host links its stand-in there).
/// Without the right to read `exe` (another user's process), its `comm` decides.
fn confirm(root: &HostRoot, proc_dir: &Path, pid: u32) -> Result<String, NotTheDaemon> {
    let dir = proc_dir.join(pid.to_string());
    let stat = input::read(&dir.join("stat"), input::SMALL).map_err(|_| NotTheDaemon::Gone)?;
    let state = stat
        .iter()
        .rposition(|b| *b == b')')
        .and_then(|close| stat[close + 1..].iter().find(|b| **b != b' '));
    if matches!(state, Some(b'Z' | b'X' | b'x') | None) {
        return Err(NotTheDaemon::Exited);
    }
    match fs::read_link(dir.join("exe")) {
        Ok(exe) => {
            let shown = exe.to_string_lossy();
            let live = Path::new(shown.strip_suffix(" (deleted)").unwrap_or(&shown)).to_owned();
            let named = live.file_name().is_some_and(|n| n == "pkcsslotd");
            let hosts_own = tools::find(root, "pkcsslotd")
                .and_then(|p| fs::canonicalize(p).ok())
                .is_some_and(|own| own == live);
            if named || hosts_own {
                Ok(live.display().to_string())
            } else {
                Err(NotTheDaemon::Runs(live.display().to_string()))
            }
        }
        Err(_) => {
            let comm = input::read_to_string(&dir.join("comm"), input::SMALL).unwrap_or_default();
            if comm.trim() == "pkcsslotd" {
                Ok("pkcsslotd (by its name; its executable cannot be read)".to_owned())
            } else {
                Err(NotTheDaemon::Named(comm.trim().to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn each_release_pid_file_is_read_and_the_pid_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let err = find(&root, Path::new("/proc")).unwrap_err().to_string();
        assert!(err.contains("none of its pid files exists"), "{err}");
        // A pid file naming a process that is not pkcsslotd (this test) is not believed.
        let me = std::process::id();
        write(dir.path(), "/var/run/pkcsslotd.pid", &format!("{me}\n"));
        let err = find(&root, Path::new("/proc")).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "`/var/run/pkcsslotd.pid` names pid {me}, which runs `"
            )),
            "{err}"
        );
        write(dir.path(), "/run/opencryptoki/pkcsslotd.pid", "junk");
        let err = find(&root, Path::new("/proc")).unwrap_err().to_string();
        assert!(err.contains("does not hold a pid"), "{err}");
        // This process counts once the host's own pkcsslotd is this very executable.
        let sbin = dir.path().join("usr/sbin");
        fs::create_dir_all(&sbin).unwrap();
        std::os::unix::fs::symlink(std::env::current_exe().unwrap(), sbin.join("pkcsslotd"))
            .unwrap();
        let found = find(&root, Path::new("/proc")).unwrap();
        assert_eq!(found.pid, me);
        assert_eq!(found.pid_file, Path::new("/var/run/pkcsslotd.pid"));
    }
}

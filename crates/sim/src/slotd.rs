//! Whether the simulated host's pkcsslotd runs, found the way mkplan finds a real one
//! (`host::slotd`): through any release's pid file, confirmed in `/proc` to be a live
//! pkcsslotd — the host's own (`usr/sbin/pkcsslotd`, the stand-in) or one so named.

use std::path::Path;

use mkplan_engine::ports::root::SLOTD_PID_FILES;

/// The pid of the running pkcsslotd of the simulated host under `root`.
pub(crate) fn running(root: &Path) -> Option<i32> {
    SLOTD_PID_FILES.iter().find_map(|pid_file| {
        let path = root.join(pid_file.trim_start_matches('/'));
        let pid: i32 = mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (pid > 0 && is_slotd(root, pid)).then_some(pid)
    })
}

/// `pid` lives, is not a zombie, and runs pkcsslotd: its executable is named so or is the
/// host's own, or (when `exe` cannot be read) its `comm` says so.
fn is_slotd(root: &Path, pid: i32) -> bool {
    let dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = mkplan_plan::input::read(&dir.join("stat"), mkplan_plan::input::SMALL) else {
        return false;
    };
    let state = stat
        .iter()
        .rposition(|b| *b == b')')
        .and_then(|close| stat[close + 1..].iter().find(|b| **b != b' '));
    if matches!(state, Some(b'Z' | b'X' | b'x') | None) {
        return false;
    }
    match std::fs::read_link(dir.join("exe")) {
        Ok(exe) => {
            let shown = exe.to_string_lossy();
            let live = Path::new(shown.strip_suffix(" (deleted)").unwrap_or(&shown)).to_owned();
            let own = std::fs::canonicalize(root.join("usr/sbin/pkcsslotd")).ok();
            live.file_name().is_some_and(|n| n == "pkcsslotd") || own.as_ref() == Some(&live)
        }
        Err(_) => mkplan_plan::input::read_to_string(&dir.join("comm"), mkplan_plan::input::SMALL)
            .is_ok_and(|comm| comm.trim() == "pkcsslotd"),
    }
}

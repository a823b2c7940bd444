//! The bodies of the simulated host's long-lived processes, which `procs` starts, finds and
//! stops: a unit or stray (attached to every token until a signal ends it, and using the keys
//! if the unit is an application), a standalone application, and the pkcsslotd daemon.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::procs::{
    app_pid_file, attach_tokens, read_pid, slotd_pid_file, stray_dir, unit_pid_file,
};
use crate::state::{self, write_atomic};
use crate::{SimError, workload};

/// The body of a unit or stray: attach to every token as a library user would, record the
/// pid, and sleep until a signal ends it.
pub(crate) fn unit_process_main(root: &Path, unit: Option<&str>) -> Result<(), SimError> {
    let state = state::load(root)?;
    let _keep = attach_tokens(root, &state)?;
    let pid = std::process::id();
    let pid_file = match unit {
        Some(unit) => unit_pid_file(root, unit),
        None => stray_dir(root).join(format!("{pid}.pid")),
    };
    if let Some(dir) = pid_file.parent() {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    write_atomic(&pid_file, format!("{pid}\n").as_bytes())?;
    // A unit that is an application uses the keys until it is stopped (`sim::workload`).
    if let Some(unit) = unit
        && state.apps.iter().any(|a| a.in_unit && a.name == unit)
    {
        return workload::run(root, unit);
    }
    // SIGTERM keeps its default action: the unit ends at once, as a simple daemon would.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The body of a standalone app: attached to every token as a library user, then the
/// workload until a signal ends it.
pub(crate) fn app_process_main(root: &Path, name: &str) -> Result<(), SimError> {
    let state = state::load(root)?;
    let _keep = attach_tokens(root, &state)?;
    let pid_file = app_pid_file(root, name);
    if let Some(dir) = pid_file.parent() {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    write_atomic(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    workload::run(root, name)
}

/// The pkcsslotd daemon: writes its pid file and waits for SIGTERM/SIGINT, then removes the
/// pid file (if it still names this process) and exits 0.
pub(crate) fn slotd_main(root: &Path) -> Result<(), SimError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| SimError::Process(format!("cannot handle signals: {e}")))?;
    }
    let pid_file = slotd_pid_file(root);
    if let Some(dir) = pid_file.parent() {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    let pid = std::process::id();
    write_atomic(&pid_file, format!("{pid}\n").as_bytes())?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if read_pid(&pid_file) == i32::try_from(pid).ok() {
        let _ = fs::remove_file(&pid_file);
    }
    Ok(())
}

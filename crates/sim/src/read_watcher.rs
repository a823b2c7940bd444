//! The watcher of a counted `interrupted-read` fault (`readfault`): a process that counts the
//! reads of one APQN's `mkvps` with inotify (`IN_CLOSE_NOWRITE`) and clears the fault after
//! the last one. A read made while the watcher re-arms on a new generation of the tree is not
//! counted, so "N reads" means at least N.

use std::fs;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify;

use crate::state::{self, write_atomic};
use crate::{Fault, SimError, persist};
use mkplan_plan::model::Apqn;

/// `run/mkplan-sim/watchers/<apqn>.pid`.
pub(crate) fn watcher_pid_file(root: &Path, apqn: Apqn) -> PathBuf {
    root.join("run/mkplan-sim/watchers")
        .join(format!("{}.pid", apqn.lszcrypt()))
}

/// The body of the watcher: counts reads of the APQN's `mkvps` until the fault's number is
/// reached, then clears the fault (state and `faults.json`). Ends early when the fault is
/// gone (cleared by hand).
pub(crate) fn watcher_main(root: &Path, apqn: Apqn) -> Result<(), SimError> {
    let io = |e: rustix::io::Errno| SimError::Process(format!("inotify: {e}"));
    let notify = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
        .map_err(io)?;
    let link = root
        .join("sys/bus/ap/devices")
        .join(apqn.lszcrypt())
        .join("mkvps");
    let mut watched: Option<(PathBuf, i32)> = None;
    let mut seen = 0u32;
    let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
    let pid_file = watcher_pid_file(root, apqn);
    while let Some(wanted) = state::load(root)?.read_fault(apqn).and_then(|f| f.reads) {
        if seen >= wanted {
            finish(root, apqn)?;
            break;
        }
        // Every state change is a new generation of the tree: follow the file in force.
        if let Ok(target) = link.canonicalize()
            && watched.as_ref().is_none_or(|(path, _)| *path != target)
        {
            if let Some((_, wd)) = watched.take() {
                let _ = inotify::remove_watch(&notify, wd);
            }
            let wd = inotify::add_watch(&notify, &target, inotify::WatchFlags::CLOSE_NOWRITE)
                .map_err(io)?;
            watched = Some((target, wd));
            if !pid_file.exists() {
                // Ready: the spawner waits for this file.
                if let Some(dir) = pid_file.parent() {
                    fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
                }
                write_atomic(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
            }
        }
        let mut reader = inotify::Reader::new(&notify, &mut buffer);
        loop {
            match reader.next() {
                Ok(event) if event.events().contains(inotify::ReadFlags::CLOSE_NOWRITE) => {
                    seen += 1;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = fs::remove_file(&pid_file);
    Ok(())
}

/// The last counted read happened: the fault ends.
fn finish(root: &Path, apqn: Apqn) -> Result<(), SimError> {
    let lock = state::lock(root)?;
    // The list first: once sysfs shows the registers, the fault is not listed any more.
    let mut faults = state::faults(root)?;
    faults.retain(|f| !matches!(f, Fault::InterruptedRead(spec) if spec.apqn == apqn));
    state::save_faults(root, faults, &lock)?;
    let mut state = state::load(root)?;
    state.set_read_fault(apqn, None)?;
    persist::save(root, &state, &lock)
}

//! Saving the simulated host's state: the state and the sysfs tree made from it, written
//! as a new generation and made current at once (see `state`'s module documentation). The
//! one place that knows both the records and their sysfs rendering.

use std::fs;
use std::path::{Path, PathBuf};

use crate::SimError;
use crate::state::{Locked, SimState, sim_dir, state_path, write_new, written};

/// `var/lib/mkplan-sim/current`: the symlink to the generation in force.
fn current_link(root: &Path) -> PathBuf {
    sim_dir(root).join("current")
}

fn generations(root: &Path) -> PathBuf {
    sim_dir(root).join("gens")
}

/// The number of the generation in force, if there is one.
fn current_generation(root: &Path) -> Option<u64> {
    let target = fs::read_link(current_link(root)).ok()?;
    target.file_name()?.to_str()?.parse().ok()
}

/// Writes the state and the sysfs tree made from it as a new generation, then makes both
/// current at once (see the module documentation). Call with the lock held.
pub(crate) fn save(root: &Path, state: &SimState, _lock: &Locked) -> Result<(), SimError> {
    let gens = generations(root);
    fs::create_dir_all(&gens).map_err(|e| SimError::io(&gens, e))?;
    let previous = current_generation(root);
    let next = previous.map_or(1, |n| n + 1);
    let dir = gens.join(next.to_string());
    if dir.exists() {
        // A change killed before its swap: never current, so nobody reads it.
        fs::remove_dir_all(&dir).map_err(|e| SimError::io(&dir, e))?;
    }
    fs::create_dir(&dir).map_err(|e| SimError::io(&dir, e))?;
    let text = serde_json::to_string_pretty(state).expect("state serializes");
    write_new(&dir.join("state.json"), text.as_bytes())?;
    crate::sysfs::write(&dir, state)?;
    let staged = sim_dir(root).join("current.new");
    remove_link(&staged)?;
    std::os::unix::fs::symlink(format!("gens/{next}"), &staged)
        .map_err(|e| SimError::io(&staged, e))?;
    fs::rename(&staged, current_link(root)).map_err(|e| SimError::io(&staged, e))?;
    written();
    fixed_link(&state_path(root), Path::new("current/state.json"))?;
    fixed_link(
        &root.join("sys"),
        Path::new("var/lib/mkplan-sim/current/sys"),
    )?;
    // The one before stays for a reader that is still in it; older ones go.
    for entry in fs::read_dir(&gens).map_err(|e| SimError::io(&gens, e))? {
        let entry = entry.map_err(|e| SimError::io(&gens, e))?;
        let n = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok());
        if n.is_some_and(|n| n != next && Some(n) != previous) {
            fs::remove_dir_all(entry.path()).map_err(|e| SimError::io(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// A symlink that never changes once made.
fn fixed_link(at: &Path, target: &Path) -> Result<(), SimError> {
    match fs::read_link(at) {
        Ok(existing) if existing == target => Ok(()),
        _ => {
            remove_link(at)?;
            std::os::unix::fs::symlink(target, at).map_err(|e| SimError::io(at, e))
        }
    }
}

fn remove_link(at: &Path) -> Result<(), SimError> {
    match fs::remove_file(at) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SimError::io(at, e)),
        _ => Ok(()),
    }
}

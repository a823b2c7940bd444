//! The `interrupted-read` fault (zcrypt-sysfs.md 1.6b): a signal during the kernel's card
//! query makes a `mkvps` read print `- -` placeholders: on every line, or (CCA's info is two
//! card queries) on the APKA lines only. The fault lives in the APQN's state, so the sysfs
//! tree is rendered with it. It lasts until cleared, or for a number of reads: then a watcher
//! process counts the reads of that APQN's `mkvps` with inotify (`IN_CLOSE_NOWRITE`) and
//! clears the fault after the last one. A read made while the watcher re-arms on a new
//! generation of the tree is not counted, so "N reads" means at least N.

use std::fs;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify;
use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::state::{self, SimState, write_atomic};
use mkplan_plan::model::Apqn;

/// Which lines of `mkvps` show `- -`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadScope {
    /// Every line (EP11: both).
    All,
    /// CCA: the three APKA lines (the second card query); EP11 reads it as `All`.
    Apka,
}

/// An interrupted read in force on one APQN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFault {
    pub scope: ReadScope,
    /// `None`: every read until the fault is cleared.
    pub reads: Option<u32>,
}

/// The fault as `mkplan-sim fault interrupted-read APQN[:apka][:N]` names it (and so
/// `faults.json` holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFaultSpec {
    pub apqn: Apqn,
    pub fault: ReadFault,
}

impl ReadFaultSpec {
    /// `0c.0011`, `0c.0011:apka`, `0c.0011:3`, `0c.0011:apka:3`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let apqn_text = parts.next().unwrap_or_default();
        let apqn = Apqn::from_plan_value(&serde_json::Value::String(apqn_text.to_owned()))
            .map_err(|_| format!("`{apqn_text}` is not an APQN in lszcrypt notation (0c.0011)"))?;
        let mut fault = ReadFault {
            scope: ReadScope::All,
            reads: None,
        };
        for part in parts {
            match part {
                "apka" => fault.scope = ReadScope::Apka,
                "all" => fault.scope = ReadScope::All,
                n => match n.parse::<u32>() {
                    Ok(n) if n > 0 => fault.reads = Some(n),
                    _ => {
                        return Err(format!(
                            "`{part}` in `{text}`: give `apka`, `all` or a number of reads (1 or more)"
                        ));
                    }
                },
            }
        }
        Ok(Self { apqn, fault })
    }
}

impl std::fmt::Display for ReadFaultSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.apqn.lszcrypt())?;
        if self.fault.scope == ReadScope::Apka {
            f.write_str(":apka")?;
        }
        if let Some(n) = self.fault.reads {
            write!(f, ":{n}")?;
        }
        Ok(())
    }
}

impl Serialize for ReadFaultSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ReadFaultSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ReadFaultSpec::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Sets (or, with `None`, clears) the fault on the APQN, whichever kind of queue it is.
pub(crate) fn set_in_state(
    state: &mut SimState,
    apqn: Apqn,
    fault: Option<ReadFault>,
) -> Result<(), SimError> {
    let name = apqn.lszcrypt();
    if let Some(queue) = state.apqns.get_mut(&name) {
        queue.read_fault = fault;
    } else if let Some(queue) = state.cca_apqns.get_mut(&name) {
        queue.read_fault = fault;
    } else {
        return Err(SimError::Usage(format!(
            "APQN {apqn} is not simulated on this host"
        )));
    }
    Ok(())
}

/// Clears every read fault of the state.
pub(crate) fn clear_all(state: &mut SimState) {
    for queue in state.apqns.values_mut() {
        queue.read_fault = None;
    }
    for queue in state.cca_apqns.values_mut() {
        queue.read_fault = None;
    }
}

fn read_fault_of(state: &SimState, apqn: Apqn) -> Option<ReadFault> {
    let name = apqn.lszcrypt();
    state
        .apqns
        .get(&name)
        .and_then(|q| q.read_fault)
        .or_else(|| state.cca_apqns.get(&name).and_then(|q| q.read_fault))
}

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
    while let Some(wanted) = read_fault_of(&state::load(root)?, apqn).and_then(|f| f.reads) {
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
    faults.retain(|f| !matches!(f, crate::Fault::InterruptedRead(spec) if spec.apqn == apqn));
    state::save_faults(root, faults, &lock)?;
    let mut state = state::load(root)?;
    set_in_state(&mut state, apqn, None)?;
    crate::persist::save(root, &state, &lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_argument_names_apqn_scope_and_reads() {
        let spec = ReadFaultSpec::parse("0c.0011:apka:3").unwrap();
        assert_eq!(spec.apqn, Apqn::new(12, 17));
        assert_eq!(
            spec.fault,
            ReadFault {
                scope: ReadScope::Apka,
                reads: Some(3)
            }
        );
        assert_eq!(spec.to_string(), "0c.0011:apka:3");
        let all = ReadFaultSpec::parse("0a.0011").unwrap();
        assert_eq!((all.fault.scope, all.fault.reads), (ReadScope::All, None));
        assert!(ReadFaultSpec::parse("0a.0011:0").is_err());
        assert!(ReadFaultSpec::parse("0a.0011:sym").is_err());
        assert!(ReadFaultSpec::parse("10.17").is_err());
    }
}

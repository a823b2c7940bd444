//! The simulated host's own records under the root: the WK registers and flags of every
//! APQN, the tokens and units `init` laid out (`var/lib/mkplan-sim/state.json`), and the
//! chosen faults (`var/lib/mkplan-sim/faults.json`). Several processes (the stand-ins, the
//! TKE command, tests) touch them, so every read-modify-write holds an exclusive `flock` on
//! `var/lib/mkplan-sim/lock`, and every write is a temporary file renamed into place.
//!
//! The state and the sysfs tree made from it change together, as one: each change writes a
//! new generation `var/lib/mkplan-sim/gens/<n>/` (its `state.json` and its `sys/`) beside
//! the one in force, then swaps the one symlink `var/lib/mkplan-sim/current` to it with a
//! rename. `var/lib/mkplan-sim/state.json` and `<root>/sys` are fixed symlinks through
//! `current`, so a process killed at any moment of a change leaves the old state and the
//! old sysfs, or the new state and the new sysfs, never one of each.
//!
//! `state.json` (format version 1):
//!
//! ```json
//! { "format": "mkplan-sim-state", "version": 1, "sim_exe": "/…/mkplan-sim",
//!   "cards": { "0a": { "type": "CEX8P", "online": true, "config": true, "chkstop": false } },
//!   "apqns": { "0a.0011": { "adapter": 10, "domain": 17, "token": "ep11",
//!               "online": true, "config": true, "chkstop": false,
//!               "cur": { "state": "valid", "vp": "<64 hex>" },
//!               "new": { "state": "empty", "vp": null } } },
//!   "tokens": { "ep11": { "slot": 4, "store": "/var/lib/opencryptoki/ep11tok",
//!               "config": "/etc/opencryptoki/ep11tok.conf", "apqns": ["0a.0011"],
//!               "wkvp_new": "0x…" } },
//!   "units": ["myapp.service"], "commands": [ { "name": "payments", "stop": […], … } ] }
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::readfault::ReadFault;
use mkplan_plan::model::Apqn;

pub(crate) const STATE_FORMAT: &str = "mkplan-sim-state";
pub(crate) const FAULTS_FORMAT: &str = "mkplan-sim-faults";
pub(crate) const VERSION: u32 = 1;

/// `<root>/var/lib/mkplan-sim`.
pub(crate) fn sim_dir(root: &Path) -> PathBuf {
    root.join("var/lib/mkplan-sim")
}

pub(crate) fn state_path(root: &Path) -> PathBuf {
    sim_dir(root).join("state.json")
}

fn faults_path(root: &Path) -> PathBuf {
    sim_dir(root).join("faults.json")
}

/// Everything the simulator knows about its host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SimState {
    pub format: String,
    pub version: u32,
    /// The `mkplan-sim` executable the stand-ins link to (units are spawned from it).
    pub sim_exe: PathBuf,
    /// Card flags, by two lowercase hex digits.
    pub cards: BTreeMap<String, Card>,
    /// By lszcrypt name (`0a.0011`).
    pub apqns: BTreeMap<String, Queue>,
    pub tokens: BTreeMap<String, TokenRecord>,
    /// Simulated systemd units (`….service`).
    pub units: Vec<String>,
    /// Command-controlled services, driven through stand-ins at their programs' paths.
    pub commands: Vec<CommandService>,
    /// CCA APQNs (`CEX8C` cards), by lszcrypt name; `apqns` holds the EP11 ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cca_apqns: BTreeMap<String, crate::cca::CcaQueue>,
    /// Configured slots without a token (`pkcshsm_mk_change` asks before it goes on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_slots: Vec<u64>,
    /// The applications that use the keys (`sim::workload`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<crate::host_spec::AppSpec>,
    #[serde(default)]
    pub cca_sysfs: crate::cca::CcaSysfsForm,
}

impl SimState {
    /// Sets (or, with `None`, clears) the interrupted-read fault on the APQN, whichever kind
    /// of queue it is.
    pub fn set_read_fault(&mut self, apqn: Apqn, fault: Option<ReadFault>) -> Result<(), SimError> {
        let name = apqn.lszcrypt();
        if let Some(queue) = self.apqns.get_mut(&name) {
            queue.read_fault = fault;
        } else if let Some(queue) = self.cca_apqns.get_mut(&name) {
            queue.read_fault = fault;
        } else {
            return Err(SimError::Usage(format!(
                "APQN {apqn} is not simulated on this host"
            )));
        }
        Ok(())
    }

    /// Clears every interrupted-read fault.
    pub fn clear_read_faults(&mut self) {
        for queue in self.apqns.values_mut() {
            queue.read_fault = None;
        }
        for queue in self.cca_apqns.values_mut() {
            queue.read_fault = None;
        }
    }

    /// The interrupted-read fault in force on the APQN.
    pub fn read_fault(&self, apqn: Apqn) -> Option<ReadFault> {
        let name = apqn.lszcrypt();
        self.apqns
            .get(&name)
            .and_then(|q| q.read_fault)
            .or_else(|| self.cca_apqns.get(&name).and_then(|q| q.read_fault))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Card {
    #[serde(rename = "type")]
    pub card_type: String,
    pub online: bool,
    pub config: bool,
    pub chkstop: bool,
}

/// One APQN: its queue flags and the domain's two WK registers (EP11 has no OLD register).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Queue {
    pub adapter: u8,
    pub domain: u8,
    /// The plan token this APQN belongs to (the default WKVP of `tke load` comes from it).
    pub token: String,
    pub online: bool,
    pub config: bool,
    pub chkstop: bool,
    pub cur: Register<CurRegister>,
    pub new: Register<NewRegister>,
    /// An interrupted read in force (`mkvps` shows `- -`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_fault: Option<ReadFault>,
}

impl Queue {
    pub fn apqn(&self) -> Apqn {
        Apqn::new(self.adapter, self.domain)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CurRegister {
    Valid,
    Invalid,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NewRegister {
    Empty,
    Uncommitted,
    Committed,
    Unknown,
}

/// A register's state and its 32-byte VP (hex in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Register<S> {
    pub state: S,
    #[serde(with = "vp_hex")]
    pub vp: Option<[u8; 32]>,
}

mod vp_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(vp: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match vp {
            Some(vp) => s.serialize_str(&hex::encode(vp)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|text| {
            let mut vp = [0u8; 32];
            hex::decode_to_slice(&text, &mut vp).map_err(serde::de::Error::custom)?;
            Ok(vp)
        })
        .transpose()
    }
}

/// What the stand-ins need to know about a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    /// EP11 unless said otherwise (state written before CCA tokens existed has none).
    #[serde(default)]
    pub kind: TokenKind,
    pub slot: u64,
    /// As the host sees it (absolute, resolved under the root by the simulator).
    pub store: PathBuf,
    pub config: Option<PathBuf>,
    pub apqns: Vec<String>,
    /// `0x` + 32 hex digits: the plan's `wkvp.new`, the default of `tke load` (EP11 only).
    #[serde(default)]
    pub wkvp_new: String,
    /// CCA: the new MKVP per MK type, the default of `tke load` (the token's MK types).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cca_new: BTreeMap<crate::cca::MkType, crate::cca::Mkvp>,
}

/// Which openCryptoki token a record is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    #[default]
    Ep11,
    Cca,
}

/// A service the plan controls with its own commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommandService {
    pub name: String,
    pub stop: Vec<String>,
    pub start: Vec<String>,
    pub is_active: Vec<String>,
}

/// The faults in force (`faults.json`, format version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FaultsFile {
    format: String,
    version: u32,
    faults: Vec<crate::Fault>,
}

/// An exclusive lock on the simulator's records, released on drop.
pub(crate) struct Locked {
    _file: File,
}

/// Takes the records' lock (blocking).
pub(crate) fn lock(root: &Path) -> Result<Locked, SimError> {
    Ok(Locked {
        _file: lock_file_exclusive(&sim_dir(root).join("lock"))?,
    })
}

/// Opens (creating) `path` and takes an exclusive `flock` on it (blocking).
pub(crate) fn lock_file_exclusive(path: &Path) -> Result<File, SimError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| SimError::io(path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| SimError::io(path, e.into()))?;
    Ok(file)
}

/// Writes `bytes` to `path` through `<path>.tmp` and a rename, so readers see old or new.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| SimError::io(path, e))
}

/// Reads the state; `NotInitialised` when `init` never ran on this root.
pub(crate) fn load(root: &Path) -> Result<SimState, SimError> {
    let path = state_path(root);
    let text = match mkplan_plan::input::read_to_string(&path, mkplan_plan::input::STORE_FILE) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SimError::NotInitialised(root.to_path_buf()));
        }
        Err(e) => return Err(SimError::io(&path, e)),
    };
    let state: SimState = serde_json::from_str(&text)
        .map_err(|e| SimError::Format(format!("`{}`: {e}", path.display())))?;
    if state.format != STATE_FORMAT || state.version != VERSION {
        return Err(SimError::Format(format!(
            "`{}` is `{}` version {}, this simulator reads `{STATE_FORMAT}` version {VERSION}",
            path.display(),
            state.format,
            state.version
        )));
    }
    Ok(state)
}

/// Writes a file of a generation that is not in force yet (nobody reads it until the swap).
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    fs::write(path, bytes).map_err(|e| SimError::io(path, e))?;
    written();
    Ok(())
}

/// Fault injection for the simulator's own crash test: with
/// `MKPLAN_SIM_TEST_KILL_AFTER_WRITES=n`, a state change kills its process after its n-th
/// write (file, link or the swap).
pub(crate) fn written() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    let kill_after = std::env::var("MKPLAN_SIM_TEST_KILL_AFTER_WRITES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if kill_after == Some(n) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// The faults in force (none when the file does not exist).
pub(crate) fn faults(root: &Path) -> Result<Vec<crate::Fault>, SimError> {
    let path = faults_path(root);
    match mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL) {
        Ok(text) => {
            let file: FaultsFile = serde_json::from_str(&text)
                .map_err(|e| SimError::Format(format!("`{}`: {e}", path.display())))?;
            if file.format != FAULTS_FORMAT || file.version != VERSION {
                return Err(SimError::Format(format!(
                    "`{}` is not `{FAULTS_FORMAT}` version {VERSION}",
                    path.display()
                )));
            }
            Ok(file.faults)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(SimError::io(&path, e)),
    }
}

/// Replaces the faults in force. Call with the lock held.
pub(crate) fn save_faults(
    root: &Path,
    faults: Vec<crate::Fault>,
    _lock: &Locked,
) -> Result<(), SimError> {
    let file = FaultsFile {
        format: FAULTS_FORMAT.to_owned(),
        version: VERSION,
        faults,
    };
    let text = serde_json::to_string_pretty(&file).expect("faults serialize");
    write_atomic(&faults_path(root), text.as_bytes())
}

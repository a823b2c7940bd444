//! The simulated EP11 host (design.md, "The simulated host"): sysfs with WK registers, token
//! stores with sealed key blobs, a TKE, and stand-ins for `pkcsep11_migrate`, `systemctl` and
//! `pkcsslotd` that are real processes. `mkplan rehearse` and the tests use this API; the
//! engine and the steps never import it.
//!
//! Everything lives under a root directory. The root should be canonical (no symlinks in the
//! path): `/proc/<pid>/maps` shows resolved paths, and the functions here canonicalize it.

pub mod cli;
mod crypto;
mod layout;
mod migrate;
mod migrate_args;
mod prober;
mod procs;
mod standins;
mod state;
mod store;
mod sysfs;
mod tke;
mod token;
mod verify;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::model::{Apqn, Plan, Wkvp};

pub use prober::SimProber;
pub use verify::{Counts, TokenVerdict, VerifyReport};

/// The executable name the stand-ins link to.
pub const SIM_EXE_NAME: &str = "mkplan-sim";

/// Something the simulator could not do.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("`{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "`{0}` is not a simulated host (no `var/lib/mkplan-sim/state.json`); run `mkplan-sim init` first"
    )]
    NotInitialised(PathBuf),
    #[error("`{0}` is already a simulated host; shut it down and remove it first")]
    AlreadyInitialised(PathBuf),
    #[error("{0}")]
    Format(String),
    /// A TKE action the registers do not allow (nothing was changed).
    #[error("{0}")]
    Tke(String),
    #[error("{0}")]
    Process(String),
    #[error("{0}")]
    Usage(String),
}

impl SimError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What the simulated TKE operator does to the NEW and CUR registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TkeAction {
    /// NEW := uncommitted with the given WKVP (default: the plan's `wkvp.new` of the
    /// APQN's token).
    Load,
    /// NEW uncommitted → committed.
    Commit,
    /// NEW committed becomes CUR valid, NEW empty; the old WK is gone (EP11 has no OLD).
    Activate,
    /// NEW := empty.
    Clear,
}

/// A fault, chosen in `<root>/var/lib/mkplan-sim/faults.json` (`mkplan-sim fault`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", content = "arg", rename_all = "kebab-case")]
pub enum Fault {
    /// `pkcsep11_migrate`: the K-th key (1-based, keys with a blob) fails on the card.
    FailAtKey(usize),
    /// `pkcsep11_migrate`: sleep this many milliseconds per key.
    SlowKeys(u64),
    /// `pkcsep11_migrate` 3.9–3.18: the PIN needs a terminal on stdin.
    RequireTty,
    /// `pkcsep11_migrate` ≤ 3.27: reading the PIN fails (`get_user_pin() failed`), exit 0.
    PinReadExitZero,
    /// `pkcsep11_migrate`: libopencryptoki cannot be loaded, exit 0 (all versions).
    LibLoadFailure,
    /// `pkcsep11_migrate` < 3.9: the PIN comes from `PKCS11_USER_PIN`, there is no prompt.
    EnvPin,
    /// `systemctl stop UNIT` fails (exit 1) and the unit keeps running.
    UnitWontStop(String),
    /// A process of no unit keeps the token shm mapped (started by `set_fault`).
    Stray,
}

impl Fault {
    /// Parses `mkplan-sim fault` arguments: a name and its argument, if it takes one.
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Self, String> {
        let need = |what: &str| arg.ok_or_else(|| format!("fault `{name}` needs {what}"));
        let number = |what: &str| {
            need(what)?.parse::<u64>().map_err(|_| {
                format!(
                    "fault `{name}`: `{}` is not a number",
                    arg.unwrap_or_default()
                )
            })
        };
        let fault = match name {
            "fail-at-key" => {
                Self::FailAtKey(usize::try_from(number("a key number")?).unwrap_or(usize::MAX))
            }
            "slow-keys" => Self::SlowKeys(number("milliseconds")?),
            "require-tty" => Self::RequireTty,
            "pin-read-exit-zero" => Self::PinReadExitZero,
            "lib-load-failure" => Self::LibLoadFailure,
            "env-pin" => Self::EnvPin,
            "unit-wont-stop" => Self::UnitWontStop(need("a unit name")?.to_owned()),
            "stray" => Self::Stray,
            other => {
                return Err(format!(
                    "unknown fault `{other}`; known: {}",
                    Self::NAMES.join(", ")
                ));
            }
        };
        if matches!(fault, Self::FailAtKey(0)) {
            return Err("fault `fail-at-key`: keys are counted from 1".to_owned());
        }
        let takes_arg = matches!(
            fault,
            Self::FailAtKey(_) | Self::SlowKeys(_) | Self::UnitWontStop(_)
        );
        if arg.is_some() && !takes_arg {
            return Err(format!("fault `{name}` takes no argument"));
        }
        Ok(fault)
    }

    pub const NAMES: &[&str] = &[
        "fail-at-key K",
        "slow-keys MS",
        "require-tty",
        "pin-read-exit-zero",
        "lib-load-failure",
        "env-pin",
        "unit-wont-stop UNIT",
        "stray",
    ];
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailAtKey(k) => write!(f, "fail-at-key {k}"),
            Self::SlowKeys(ms) => write!(f, "slow-keys {ms}"),
            Self::RequireTty => f.write_str("require-tty"),
            Self::PinReadExitZero => f.write_str("pin-read-exit-zero"),
            Self::LibLoadFailure => f.write_str("lib-load-failure"),
            Self::EnvPin => f.write_str("env-pin"),
            Self::UnitWontStop(unit) => write!(f, "unit-wont-stop {unit}"),
            Self::Stray => f.write_str("stray"),
        }
    }
}

/// `root` made absolute and canonical (as `/proc/<pid>/maps` shows paths), or as given if it
/// does not exist.
/// Whether `root` is a simulated host `init` laid out.
pub fn is_simulated_host(root: &Path) -> bool {
    state::state_path(root).is_file()
}

pub fn canonical_root(root: &Path) -> PathBuf {
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

/// `mkplan-sim` beside the running executable (for `mkplan rehearse`, which is installed
/// next to it), if it is there.
pub fn sim_exe_beside_current() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join(SIM_EXE_NAME);
    candidate.is_file().then_some(candidate)
}

/// Lays out a simulated host for `plan` under `root` (created if needed; it must not be a
/// simulated host already): sysfs with every APQN's CUR = the token's `wkvp.current` and NEW
/// empty, each token's store with `keys` key objects (plus a certificate and a data object)
/// sealed under that WK and `pin` as USER PIN, its `ep11tok.conf` if the plan names one, the
/// stand-ins (symlinks to `sim_exe`), a running pkcsslotd, and the plan's services running.
pub fn init(
    root: &Path,
    plan: &Plan,
    keys: usize,
    pin: &str,
    sim_exe: &Path,
) -> Result<(), SimError> {
    std::fs::create_dir_all(root).map_err(|e| SimError::io(root, e))?;
    let root = canonical_root(root);
    let sim_exe = sim_exe
        .canonicalize()
        .map_err(|e| SimError::io(sim_exe, e))?;
    layout::lay_out(&root, plan, keys, pin, &sim_exe)?;
    layout::start_everything(&root)
}

/// Performs a TKE action on one APQN, or on every simulated APQN with `None`. Nothing
/// changes if the action is not allowed on any of them.
pub fn tke(
    root: &Path,
    action: TkeAction,
    apqn: Option<Apqn>,
    wkvp: Option<Wkvp>,
) -> Result<(), SimError> {
    tke::act(&canonical_root(root), action, apqn, wkvp)
}

/// For every key object of every token: does its blob open under the current WK of the
/// token's APQNs?
pub fn verify(root: &Path) -> Result<VerifyReport, SimError> {
    verify::verify(&canonical_root(root))
}

/// Adds a fault (replacing one of the same kind; `UnitWontStop` is per unit). `Stray`
/// starts the stray process.
pub fn set_fault(root: &Path, fault: Fault) -> Result<(), SimError> {
    standins::set_fault(&canonical_root(root), fault)
}

/// Removes every fault and stops the strays.
pub fn clear_faults(root: &Path) -> Result<(), SimError> {
    standins::clear_faults(&canonical_root(root))
}

/// The faults in force.
pub fn faults(root: &Path) -> Result<Vec<Fault>, SimError> {
    state::faults(&canonical_root(root))
}

/// Sets a queue online or offline (an offline queue's `mkvps` shows `- -`, and
/// `pkcsep11_migrate` cannot reach it).
pub fn set_queue_online(root: &Path, apqn: Apqn, online: bool) -> Result<(), SimError> {
    tke::set_queue_online(&canonical_root(root), apqn, online)
}

/// Stops every simulated process of this root (units, strays, pkcsslotd). Idempotent.
pub fn shutdown(root: &Path) -> Result<(), SimError> {
    procs::shutdown(&canonical_root(root))
}

/// Whether the simulated unit (a systemd unit name, or a command service's name) runs.
pub fn unit_running(root: &Path, unit: &str) -> bool {
    unit_pid(root, unit).is_some()
}

/// The pid of a running simulated unit.
pub fn unit_pid(root: &Path, unit: &str) -> Option<i32> {
    procs::unit_pid(&canonical_root(root), unit)
}

/// Whether this root's pkcsslotd stand-in runs.
pub fn slotd_running(root: &Path) -> bool {
    procs::slotd_running(&canonical_root(root)).is_some()
}

/// Starts (`true`) or stops this root's pkcsslotd stand-in.
pub fn set_slotd_running(root: &Path, running: bool) -> Result<(), SimError> {
    let root = canonical_root(root);
    if running {
        procs::start_slotd(&root).map(drop)
    } else if procs::stop_slotd(&root) {
        Ok(())
    } else {
        Err(SimError::Process("pkcsslotd did not stop".to_owned()))
    }
}

//! The simulated EP11 and CCA host (design.md, "The simulated host"), laid out from a
//! [`HostSpec`]: sysfs with WK and MK registers, token stores with sealed key blobs, a TKE,
//! applications that keep using the keys, and stand-ins for `pkcsep11_migrate`,
//! `pkcshsm_mk_change`, `pkcscca`, `systemctl` and `pkcsslotd` that are real processes.
//! `mkplan rehearse` and the tests use this API; the engine and the steps never import it.
//!
//! Everything lives under a root directory. The root should be canonical (no symlinks in the
//! path): `/proc/<pid>/maps` shows resolved paths, and the functions here canonicalize it.
//!
//! The modules are layered so that every dependency points one way (no module cycle): a module
//! uses only modules named before it in this list.
//!
//! 1. Data: `readfault`, `cca`, `host_spec`, `state`, `crypto`, `store`, `cca_store`,
//!    `mkchange_ops` (the fault, the registers, the host's description and state, key blobs,
//!    token stores, MK change operation files), `ockconf` (the host's opencryptoki.conf).
//! 2. The sysfs tree and saving: `cca_sysfs` ← `sysfs` ← `persist`.
//! 3. What a token makes of them: `token`, `keyuse`, `presence` (whether it starts).
//! 4. Changes to the registers: `tke`, `cca_tke`, `read_watcher` (ends a counted read fault).
//! 5. Processes: `procs` (start, find, stop) ← `workload` (the apps) ← `process_main` (what
//!    each process runs).
//! 6. What runs on the host: `layout` (`init`), the stand-ins (`migrate`, `mkchange`,
//!    `pkcscca`, `standins`), `prober`, `verify`, `units` (which unit a process runs in, for
//!    `mkplan init`).
//! 7. Entry points: `cli`, `rehearsal`, this file.
//!
//! `migrate_args`, `pin_prompt`, `slotd` and `syslog` use no other module (any may use them).

// First: mkplan_engine's `print!`/`println!`/`eprint!`/`eprintln!` replace std's in every
// module below (a closed pipe drops output instead of panicking).
#[macro_use]
extern crate mkplan_engine;

mod cca;
mod cca_store;
mod cca_sysfs;
mod cca_tke;
pub mod cli;
mod crypto;
pub mod host_spec;
mod keyuse;
mod layout;
mod migrate;
mod migrate_args;
mod mkchange;
mod mkchange_ops;
mod ockconf;
mod persist;
mod pin_prompt;
mod pkcscca;
mod presence;
mod prober;
mod process_main;
mod procs;
mod read_watcher;
mod readfault;
pub mod rehearsal;
mod slotd;
mod standins;
mod state;
mod store;
mod sysfs;
mod syslog;
mod tke;
mod token;
mod units;
mod verify;
mod workload;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use mkplan_plan::model::{Apqn, Plan, Wkvp};

pub use cca::{CcaSysfsForm, MkType, Mkvp};
pub use cca_store::{CcaConfig, parse_ccatok_conf, rewrite_expected_mkvps};
pub use cca_tke::TkeRequest;
pub use host_spec::HostSpec;
pub use prober::SimProber;
pub use readfault::{ReadFault, ReadFaultSpec, ReadScope};
pub use state::TokenKind;
pub use store::DEFAULT_SO_PIN;
pub use units::{SimUnits, is_simulated_host};
pub use verify::{Counts, TokenVerdict, VerifyReport};
pub use workload::{AppCounts, AppStatus, AppsReport, Failure, Tally};

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
    /// `mkvps` of an APQN prints `- -` placeholders, as a read interrupted by a signal does:
    /// every line or the APKA lines, until cleared or for a number of reads.
    InterruptedRead(ReadFaultSpec),
    /// `pkcshsm_mk_change`: the token in this slot answers the INITIATE query negatively.
    MkChangeRefuseInitiate(u64),
    /// `pkcshsm_mk_change reencipher`: re-enciphering the K-th key object fails (the tool
    /// cancels by itself).
    MkChangeFailReencipher(usize),
    /// `pkcshsm_mk_change finalize`: the K-th key object fails (the operation goes to ERROR).
    MkChangeFailFinalize(usize),
    /// `pkcshsm_mk_change cancel`: the K-th key object fails (the operation goes to ERROR).
    MkChangeFailCancel(usize),
    /// `pkcshsm_mk_change`: sleep this many milliseconds per key object.
    MkChangeSlow(u64),
    /// `opencryptoki.conf` has `disable-event-support`: pkcsslotd has no admin socket.
    DisableEventSupport,
    /// `pkcscca -m keys`: the K-th key of the MK type fails (counted; the run goes on, exit 0).
    CcaFailAtKey(usize),
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
        let count = |n: u64| match usize::try_from(n) {
            Ok(0) => Err(format!("fault `{name}`: key objects are counted from 1")),
            Ok(n) => Ok(n),
            Err(_) => Ok(usize::MAX),
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
            "interrupted-read" => Self::InterruptedRead(ReadFaultSpec::parse(need(
                "an APQN (`0c.0011`, `0c.0011:apka`, `0c.0011:apka:3`)",
            )?)?),
            "mk-change-refuse-initiate" => Self::MkChangeRefuseInitiate(number("a slot")?),
            "mk-change-fail-reencipher" => {
                Self::MkChangeFailReencipher(count(number("a key object number")?)?)
            }
            "mk-change-fail-finalize" => {
                Self::MkChangeFailFinalize(count(number("a key object number")?)?)
            }
            "mk-change-fail-cancel" => {
                Self::MkChangeFailCancel(count(number("a key object number")?)?)
            }
            "mk-change-slow" => Self::MkChangeSlow(number("milliseconds")?),
            "disable-event-support" => Self::DisableEventSupport,
            "cca-fail-at-key" => Self::CcaFailAtKey(count(number("a key number")?)?),
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
            Self::FailAtKey(_)
                | Self::SlowKeys(_)
                | Self::UnitWontStop(_)
                | Self::InterruptedRead(_)
                | Self::MkChangeRefuseInitiate(_)
                | Self::MkChangeFailReencipher(_)
                | Self::MkChangeFailFinalize(_)
                | Self::MkChangeFailCancel(_)
                | Self::MkChangeSlow(_)
                | Self::CcaFailAtKey(_)
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
        "interrupted-read APQN[:apka][:READS]",
        "mk-change-refuse-initiate SLOT",
        "mk-change-fail-reencipher K",
        "mk-change-fail-finalize K",
        "mk-change-fail-cancel K",
        "mk-change-slow MS",
        "disable-event-support",
        "cca-fail-at-key K",
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
            Self::InterruptedRead(spec) => write!(f, "interrupted-read {spec}"),
            Self::MkChangeRefuseInitiate(slot) => write!(f, "mk-change-refuse-initiate {slot}"),
            Self::MkChangeFailReencipher(k) => write!(f, "mk-change-fail-reencipher {k}"),
            Self::MkChangeFailFinalize(k) => write!(f, "mk-change-fail-finalize {k}"),
            Self::MkChangeFailCancel(k) => write!(f, "mk-change-fail-cancel {k}"),
            Self::MkChangeSlow(ms) => write!(f, "mk-change-slow {ms}"),
            Self::DisableEventSupport => f.write_str("disable-event-support"),
            Self::CcaFailAtKey(k) => write!(f, "cca-fail-at-key {k}"),
        }
    }
}

/// `root` made absolute and canonical (as `/proc/<pid>/maps` shows paths), or as given if it
/// does not exist.
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

/// Lays out a simulated host for `plan` under `root`: the host [`HostSpec::from_plan`]
/// describes, laid out by [`init_host`] with openCryptoki's default SO PIN.
pub fn init(
    root: &Path,
    plan: &Plan,
    keys: usize,
    pin: &str,
    sim_exe: &Path,
) -> Result<(), SimError> {
    init_host(
        root,
        &HostSpec::from_plan(plan),
        keys,
        (pin, DEFAULT_SO_PIN),
        sim_exe,
    )
}

/// Lays out the host `spec` describes under `root` (created if needed; it must not be a
/// simulated host already): sysfs with every APQN's registers at the token's current
/// patterns and NEW empty, each token's store with `keys` key objects (plus public halves, a
/// certificate and a data object) sealed under them, with `pins` = (USER PIN, SO PIN), its
/// config file, the stand-ins (symlinks to `sim_exe`), a running pkcsslotd, and the units,
/// command services and apps running.
pub fn init_host(
    root: &Path,
    spec: &HostSpec,
    keys: usize,
    pins: (&str, &str),
    sim_exe: &Path,
) -> Result<(), SimError> {
    std::fs::create_dir_all(root).map_err(|e| SimError::io(root, e))?;
    let root = canonical_root(root);
    let sim_exe = sim_exe
        .canonicalize()
        .map_err(|e| SimError::io(sim_exe, e))?;
    layout::lay_out(&root, spec, keys, pins, &sim_exe)?;
    layout::start_everything(&root)
}

/// Performs a TKE action on one EP11 APQN, or on every simulated EP11 APQN with `None`.
/// Nothing changes if the action is not allowed on any of them. ([`tke_request`] also
/// reaches CCA APQNs.)
pub fn tke(
    root: &Path,
    action: TkeAction,
    apqn: Option<Apqn>,
    wkvp: Option<Wkvp>,
) -> Result<(), SimError> {
    tke::act(&canonical_root(root), action, apqn, wkvp)
}

/// Performs a TKE action on EP11 and CCA APQNs (`TkeRequest`): all are checked first,
/// then all change at once.
pub fn tke_request(root: &Path, request: &TkeRequest) -> Result<(), SimError> {
    cca_tke::act(&canonical_root(root), request)
}

/// What every simulated application has counted (`mkplan-sim apps`).
pub fn apps(root: &Path) -> Result<AppsReport, SimError> {
    workload::report(&canonical_root(root))
}

/// Starts the standalone application `name` using the keys of `tokens` (all when empty),
/// recording it in the state first if it is new.
pub fn start_app(
    root: &Path,
    name: &str,
    tokens: &[String],
    interval_ms: Option<u64>,
) -> Result<(), SimError> {
    procs::start_app(&canonical_root(root), name, tokens, interval_ms)
}

/// Stops the standalone application `name` (its counts stay).
pub fn stop_app(root: &Path, name: &str) -> Result<(), SimError> {
    procs::stop_app(&canonical_root(root), name)
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

/// A host reboot: every simulated process stops, then pkcsslotd, the units, the command
/// services and the standalone apps start again. Files (stores, operation files, the
/// registers) stay as they are.
pub fn reboot(root: &Path) -> Result<(), SimError> {
    let root = canonical_root(root);
    procs::shutdown(&root)?;
    layout::start_everything(&root)
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

//! The options every executing command takes, and the host and state directory they name.

use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;

use mkplan_engine::ports::Ports;
use mkplan_engine::ports::keys::KeyProber;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::rundir::{DEFAULT_STATE_DIR, StateDir};
use mkplan_host::linux::LinuxHost;
use mkplan_host::pin::PinSources;
use mkplan_host::pkcs11::Pkcs11Prober;
use mkplan_host::signing::Pkcs11Signer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Options every executing command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// The host root: sysfs, the token stores and the tools are found under it [default: /;
    /// for `rehearse`, a new temporary simulated host].
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Where runs and their journals are kept [default: /var/lib/mkplan; for `rehearse`,
    /// the user's state directory, which `resume` and `report` search too].
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log lines as text for people, or one JSON object per event for a SIEM.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More detail in the log.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Globals {
    pub fn state(&self) -> StateDir {
        StateDir::new(
            self.state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        )
    }

    /// The host root: `--root`, or `/`.
    pub fn root(&self) -> HostRoot {
        HostRoot::new(self.root.clone().unwrap_or_else(|| PathBuf::from("/")))
    }

    /// The real host under the root: its adapters, PKCS#11 and PIN sources.
    pub fn ports(&self) -> Ports {
        ports_at(self.root())
    }
}

/// The real host under `root`: its adapters, PKCS#11 and PIN sources, people at checkpoints.
pub fn ports_at(root: HostRoot) -> Ports {
    Ports {
        host: Arc::new(LinuxHost::new(root.clone())),
        keys: prober_at(&root),
        pins: Arc::new(PinSources::new(root)),
        signing: Arc::new(Pkcs11Signer),
        tke: None,
    }
}

/// Who probes the keys: PKCS#11. No module can open a simulated EP11 token, so on a root
/// `mkplan-sim init` laid out (only ever named with --root, never `/`), the simulator does;
/// approvals and the TKE stay real, since nobody acts for them.
fn prober_at(root: &HostRoot) -> Arc<dyn KeyProber> {
    #[cfg(feature = "rehearse")]
    if root.dir() != std::path::Path::new("/") && mkplan_sim::is_simulated_host(root.dir()) {
        return Arc::new(mkplan_sim::SimProber::new(root.dir()));
    }
    let _ = root;
    Arc::new(Pkcs11Prober)
}

/// Where `mkplan rehearse` keeps its runs unless `--state-dir` says otherwise: the user's
/// state directory, apart from the real runs of `/var/lib/mkplan`.
pub fn rehearsal_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mkplan/rehearsals")
}

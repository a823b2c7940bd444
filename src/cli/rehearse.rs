//! `mkplan rehearse PLAN`: the operator's real plan, run by the real engine and steps,
//! against a fresh simulated EP11 host. A simulated TKE operator performs each checkpoint's
//! `tke:` action and approves (journaled as `rehearsal`); the PKCS#11 probe uses the
//! simulator's (no module can open a simulated EP11 token). Everything is marked REHEARSAL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::common::{Globals, load_for_execution, operator_name, rehearsal_state_dir};
use crate::cli::exit_code;
use crate::cli::run::Launch;
use crate::engine::approvals::ApprovalInputs;
use crate::engine::executor::RunOptions;
use crate::engine::ports::Ports;
use crate::engine::ports::operator::Operator;
use crate::engine::ports::root::HostRoot;
use crate::engine::rundir::StateDir;
use crate::host::linux::LinuxHost;
use crate::host::pin::PinSources;
use crate::host::signing::Pkcs11Signer;
use crate::plan::model::{Plan, SignKey};
use crate::sim::rehearsal::{Faults, Rehearsal};

/// Rehearse a plan on a simulated EP11 host, with optional faults.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Faults (repeatable --fault):
  fail-at-key=K         pkcsep11_migrate fails on the K-th key (the store is left partly migrated)
  slow-keys=MS          pkcsep11_migrate takes MS milliseconds per key
  require-tty | pin-read-exit-zero | lib-load-failure | env-pin
                        pkcsep11_migrate behaviours of older openCryptoki releases
  unit-wont-stop=UNIT   systemctl cannot stop UNIT
  stray                 a process outside every service keeps the token open
  commit-only-on=APQN   the TKE commits the new WK on that APQN only (the others stay uncommitted)
  wrong-new-wkvp        the TKE loads a different new WK than the plan names
  activate-only-on=APQN the TKE activates the new WK on that APQN only
  deny=CHECKPOINT       the simulated operator does not approve that checkpoint (id, name or steps[N])
  wrong-pin             the plan's PIN source gives a wrong PIN (found by one login before any step)

The simulated host is a temporary directory, removed afterwards unless --keep or --root is
given; runs and reports go to --state-dir (default: $XDG_STATE_HOME/mkplan/rehearsals, where
`mkplan resume` and `mkplan report` also look for a run id).")]
pub struct Args {
    /// The plan to rehearse.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    /// Key objects per token in the simulated stores.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Inject a fault (see below).
    #[arg(long = "fault", value_name = "NAME[=ARG]")]
    faults: Vec<String>,
    /// Keep the simulated host's files afterwards.
    #[arg(long)]
    keep: bool,
}

/// The ports of a rehearsal on `rehearsal`'s simulated host: the real adapters rooted at
/// it, the simulator's prober (no PKCS#11 module can open a simulated EP11 token) and its
/// TKE operator, which reads the registers through those adapters.
fn simulated_host(rehearsal: &Rehearsal) -> Ports {
    let host_root = HostRoot::new(rehearsal.root());
    let host = Arc::new(LinuxHost::new(host_root.clone()));
    Ports {
        tke: Some(Arc::new(rehearsal.tke(host.clone()))),
        host,
        keys: Arc::new(rehearsal.prober()),
        pins: Arc::new(PinSources::new(host_root)),
        signing: Arc::new(Pkcs11Signer),
    }
}

/// For `mkplan resume` of a rehearsal: the same simulated host, operator and PINs again.
pub fn resume_host(plan: &Plan, root: &Path) -> anyhow::Result<(Ports, Box<dyn Operator>)> {
    let rehearsal = Rehearsal::reopen(root, plan)?;
    Ok((simulated_host(&rehearsal), Box::new(rehearsal.operator())))
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    let Some(loaded) = load_for_execution(&args.plan) else {
        return Ok(exit_code::INVALID);
    };
    let faults = match Faults::parse(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mkplan: error: {e}");
            return Ok(exit_code::INVALID);
        }
    };
    let mut plan = loaded.plan.clone();
    if let Some(key) = plan.report.sign.take() {
        let named = match key {
            SignKey::File(path) => format!("the key file `{}`", path.display()),
            SignKey::Pkcs11 { slot, .. } => format!("the PKCS#11 key in slot {slot}"),
        };
        eprintln!(
            "rehearse: the report is signed with an ephemeral key, not the plan's `report.sign` key ({named}): a rehearsal never signs with a real key, and the simulated host has none"
        );
    }
    let (root, temporary) = match &globals.root {
        Some(root) if root == Path::new("/") => {
            eprintln!(
                "mkplan: error: a rehearsal never runs against the real root `/`; give --root an empty directory, or none"
            );
            return Ok(exit_code::INVALID);
        }
        Some(root) => (root.clone(), false),
        None => (
            tempfile::Builder::new()
                .prefix("mkplan-rehearsal-")
                .tempdir()?
                .keep(),
            true,
        ),
    };
    // The copy would be inside the simulated host, gone when this command exits.
    if temporary
        && !args.keep
        && let Some(dir) = plan.report.dir.take()
    {
        eprintln!(
            "rehearse: the report is not copied to the plan's `report.dir` ({}): that would be inside the simulated host, which is removed at the end (--keep keeps both)",
            dir.display()
        );
    }
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        eprintln!(
            "mkplan: error: `{}` is not empty; a rehearsal needs a fresh simulated host",
            root.display()
        );
        return Ok(exit_code::INVALID);
    }
    let rehearsal = Rehearsal::create(&root, &plan, args.keys, faults)?;
    let outcome = rehearse(globals, &plan, &loaded, &rehearsal);
    // A run refused or interrupted before it started (a failed preflight, another run's
    // lock) leaves nothing to resume: the simulated host is not kept up for one.
    let finished = matches!(outcome, Ok((_, true)));
    rehearsal.finish(finished, finished && temporary && !args.keep);
    outcome.map(|(code, _)| code)
}

fn rehearse(
    globals: &Globals,
    plan: &Plan,
    loaded: &crate::cli::common::ExecutablePlan,
    rehearsal: &Rehearsal,
) -> anyhow::Result<(i32, bool)> {
    globals.init_logging();
    let host = simulated_host(rehearsal);
    let operator = rehearsal.operator();
    let options = RunOptions {
        operator_name: format!("{} (rehearsal)", operator_name(None)),
        ..RunOptions::default()
    };
    let state = StateDir::new(
        globals
            .state_dir
            .clone()
            .unwrap_or_else(rehearsal_state_dir),
    );
    let approvals = ApprovalInputs::default();
    Launch {
        plan,
        plan_text: &loaded.text,
        plan_path: &loaded.path,
        state,
        ports: host,
        operator: &operator,
        approvals: &approvals,
        options: &options,
        rehearsal: true,
        cancel: crate::engine::cancel::Cancel::install(crate::cli::exit_code::FAILURE)?,
    }
    .start(globals)
}

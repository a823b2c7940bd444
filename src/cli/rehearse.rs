//! `mkplan rehearse PLAN`: the operator's real plan, run by the real engine and steps,
//! against a fresh simulated EP11 host. A simulated TKE operator performs each checkpoint's
//! `tke:` action and approves (journaled as `rehearsal`); the PKCS#11 probe uses the
//! simulator's (no module can open a simulated EP11 token). Everything is marked REHEARSAL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::cli::common::{Globals, load_for_execution, operator_name, rehearsal_state_dir};
use crate::cli::exit_code;
use crate::cli::run::Launch;
use crate::engine::approvals::ApprovalInputs;
use crate::engine::events::StepRef;
use crate::engine::executor::RunOptions;
use crate::engine::ports::Ports;
use crate::engine::ports::operator::{Answer, Operator};
use crate::engine::ports::tke::CheckpointActor;
use crate::engine::rundir::StateDir;
use crate::engine::secret::Pin;
use crate::host::linux::LinuxHost;
use crate::host::pin::PinSources;
use crate::host::signing::Pkcs11Signer;
use crate::plan::model::{
    Apqn, Checkpoint, PinSource, Plan, SignKey, Step, TkeAction as PlanTke, Wkvp,
};
use crate::sim::{self, Fault, SimProber, TkeAction};

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

/// What the simulated TKE operator does differently from the plan.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct OperatorFaults {
    /// lszcrypt notation, validated when parsed.
    commit_only_on: Option<String>,
    wrong_new_wkvp: bool,
    activate_only_on: Option<String>,
    deny: Vec<String>,
    /// The PIN sources give a PIN the simulated tokens refuse.
    #[serde(default)]
    wrong_pin: bool,
}

fn apqn(text: &str) -> Result<Apqn, String> {
    Apqn::from_plan_value(&serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is not an APQN in lszcrypt notation (e.g. 0a.0011)"))
}

/// Whether a fault that names one APQN lets the action happen on `target`.
fn allows(only: Option<&str>, target: Apqn) -> bool {
    only.is_none_or(|text| apqn(text).is_ok_and(|only| only == target))
}

fn parse_faults(specs: &[String]) -> Result<(Vec<Fault>, OperatorFaults), String> {
    let mut sim_faults = Vec::new();
    let mut operator = OperatorFaults::default();
    for spec in specs {
        let (name, arg) = match spec.split_once('=') {
            Some((n, a)) => (n, Some(a)),
            None => (spec.as_str(), None),
        };
        match (name, arg) {
            ("commit-only-on", Some(a)) => operator.commit_only_on = Some(apqn(a)?.lszcrypt()),
            ("activate-only-on", Some(a)) => operator.activate_only_on = Some(apqn(a)?.lszcrypt()),
            ("wrong-new-wkvp", None) => operator.wrong_new_wkvp = true,
            ("wrong-pin", None) => operator.wrong_pin = true,
            ("deny", Some(a)) => operator.deny.push(a.to_owned()),
            _ => sim_faults.push(Fault::parse(name, arg)?),
        }
    }
    Ok((sim_faults, operator))
}

/// The simulated TKE operator: does the checkpoint's `tke:` action on the simulated
/// adapters, then approves as the allowed approvers (method `rehearsal`).
struct SimulatedTke {
    root: PathBuf,
    faults: OperatorFaults,
}

impl SimulatedTke {
    /// The APQN's current WKVP and its committed new one (first 16 bytes), as sysfs shows.
    fn registers(&self, apqn: Apqn) -> Option<([u8; 16], Option<[u8; 16]>)> {
        let status = crate::host::zcrypt::read_apqn(
            &crate::engine::ports::root::HostRoot::new(&self.root),
            apqn,
        )
        .ok()?;
        let first16 = |vp: [u8; 32]| -> [u8; 16] { vp[..16].try_into().expect("16 of 32 bytes") };
        let cur = status.cur.vp.map(first16)?;
        let committed = (status.new.state == crate::engine::record::wk::NewState::Committed)
            .then(|| status.new.vp.map(first16))
            .flatten();
        Some((cur, committed))
    }
}

impl CheckpointActor for SimulatedTke {
    fn act(
        &self,
        plan: &Plan,
        step: &Step,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<String>, String> {
        let position = StepRef::of(step).position();
        if self
            .faults
            .deny
            .iter()
            .any(|d| step.id.as_deref() == Some(d.as_str()) || *d == step.name || *d == position)
        {
            return Ok(Vec::new());
        }
        let tokens: Vec<_> = match &checkpoint.until {
            Some(until) => plan.tokens.get(&until.check.token).into_iter().collect(),
            None => plan.tokens.values().collect(),
        };
        let act = |action, apqn, wkvp| {
            sim::tke(&self.root, action, Some(apqn), wkvp).map_err(|e| e.to_string())
        };
        match &checkpoint.tke {
            Some(PlanTke::Commit) => {
                for token in &tokens {
                    let new = if self.faults.wrong_new_wkvp {
                        Wkvp::parse("0x5eed5eed5eed5eed5eed5eed5eed5eed")
                            .map(|(w, _)| w)
                            .ok()
                    } else {
                        Some(token.wkvp_new)
                    };
                    for apqn in &token.apqns {
                        // A resumed run may replay a checkpoint whose TKE work is done.
                        if self.registers(*apqn).is_some_and(|(cur, committed)| {
                            cur == token.wkvp_new.bytes()[..]
                                || new.is_some_and(|n| committed == Some(*n.bytes()))
                        }) {
                            continue;
                        }
                        act(TkeAction::Load, *apqn, new)?;
                        if allows(self.faults.commit_only_on.as_deref(), *apqn) {
                            act(TkeAction::Commit, *apqn, None)?;
                        }
                    }
                }
            }
            Some(PlanTke::Activate) => {
                for token in &tokens {
                    for apqn in &token.apqns {
                        let done = self
                            .registers(*apqn)
                            .is_some_and(|(cur, _)| cur == token.wkvp_new.bytes()[..]);
                        if !done && allows(self.faults.activate_only_on.as_deref(), *apqn) {
                            act(TkeAction::Activate, *apqn, None)?;
                        }
                    }
                }
            }
            Some(PlanTke::Other(_)) | None => {}
        }
        let needed = checkpoint.approvals as usize;
        Ok(if checkpoint.approvers.is_empty() {
            (1..=needed).map(|i| format!("rehearsal-{i}")).collect()
        } else {
            checkpoint.approvers.iter().take(needed).cloned().collect()
        })
    }
}

/// Gives the simulated token's PIN for a `pin: {prompt: true}` or `{env: NAME}` token;
/// never answers anything else.
struct RehearsalOperator {
    pin: String,
}

impl Operator for RehearsalOperator {
    fn interactive(&self) -> bool {
        true
    }

    fn say(&self, _: &str) {}

    fn ask(&self, _: &str, _: Option<Instant>) -> Answer {
        Answer::Closed
    }

    fn ask_secret(&self, _: &str) -> Option<Pin> {
        Some(Pin::new(self.pin.clone()))
    }

    fn pin_variable(&self, _: &str) -> Option<String> {
        Some(self.pin.clone())
    }
}

/// What a rehearsal's resume needs again, kept in the simulated host: the simulated
/// token's PIN (a rehearsal value, not a secret of anyone's) and the operator's faults.
#[derive(serde::Serialize, serde::Deserialize)]
struct RehearsalRecord {
    version: u32,
    pin: String,
    operator_faults: OperatorFaults,
}

fn record_path(root: &Path) -> PathBuf {
    root.join("var/lib/mkplan-sim/rehearsal.json")
}

/// The simulated host a rehearsal runs on: the real adapters rooted at it, the simulator's
/// prober (no PKCS#11 module can open a simulated EP11 token) and its TKE operator.
fn simulated_host(root: &Path, faults: OperatorFaults) -> Ports {
    let host_root = crate::engine::ports::root::HostRoot::new(sim::canonical_root(root));
    Ports {
        host: Arc::new(LinuxHost::new(host_root.clone())),
        keys: Arc::new(SimProber::new(root)),
        pins: Arc::new(PinSources::new(host_root)),
        signing: Arc::new(Pkcs11Signer),
        tke: Some(Arc::new(SimulatedTke {
            root: sim::canonical_root(root),
            faults,
        })),
    }
}

/// For `mkplan resume` of a rehearsal: the same simulated host, operator and PINs again.
pub fn resume_host(plan: &Plan, root: &Path) -> anyhow::Result<(Ports, Box<dyn Operator>)> {
    let text = crate::plan::input::read_to_string(&record_path(root), crate::plan::input::SMALL).map_err(|e| {
        anyhow::anyhow!("the rehearsal's simulated host at `{}` is gone ({e}); a rehearsal can only be resumed while its host is kept", root.display())
    })?;
    let record: RehearsalRecord = serde_json::from_str(&text)?;
    provide_pins(plan, root, &record.pin)?;
    Ok((
        simulated_host(root, record.operator_faults),
        Box::new(RehearsalOperator { pin: record.pin }),
    ))
}

/// A new file only its owner can read: the rehearsal record holds the simulated PIN.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

fn random_pin() -> String {
    let mut bytes = [0u8; 9];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    format!("rh-{}", hex::encode(bytes))
}

/// Puts the simulated PIN in every PIN file the plan names, the way an operator's host
/// would (mode 0600). `env` and `prompt` sources are answered by [`RehearsalOperator`]:
/// the PIN never goes into mkplan's environment, from which children could inherit it.
fn provide_pins(plan: &Plan, root: &Path, pin: &str) -> anyhow::Result<()> {
    for token in plan.tokens.values() {
        match &token.pin {
            PinSource::Env(_) | PinSource::Prompt => {}
            PinSource::File(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let path = crate::engine::ports::root::HostRoot::new(root).path(path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                std::io::Write::write_all(&mut file, format!("{pin}\n").as_bytes())?;
            }
        }
    }
    Ok(())
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    let Some(loaded) = load_for_execution(&args.plan) else {
        return Ok(exit_code::INVALID);
    };
    let (sim_faults, operator_faults) = match parse_faults(&args.faults) {
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
    // The simulated tokens get the PIN the plan would read, when it is already there (so a
    // rehearsal can use the operator's own variable), else a random one.
    let pin = plan
        .tokens
        .values()
        .find_map(|t| match &t.pin {
            PinSource::Env(name) => std::env::var(name).ok().filter(|p| !p.is_empty()),
            _ => None,
        })
        .unwrap_or_else(random_pin);
    let standin = std::env::current_exe()?;
    eprintln!(
        "REHEARSAL on a simulated EP11 host at {} ({} keys per token)",
        root.display(),
        args.keys
    );
    sim::init(&root, &plan, args.keys, &pin, &standin)
        .map_err(|e| anyhow::anyhow!("cannot lay out the simulated host: {e}"))?;
    install_simulator_command(&root, &standin)?;
    // What the operator's PIN sources give: the tokens' PIN, or (fault) one they refuse.
    let pin = if operator_faults.wrong_pin {
        format!("{pin}-wrong")
    } else {
        pin
    };
    provide_pins(&plan, &root, &pin)?;
    let record = RehearsalRecord {
        version: 1,
        pin: pin.clone(),
        operator_faults: operator_faults.clone(),
    };
    write_private(
        &record_path(&sim::canonical_root(&root)),
        &serde_json::to_vec_pretty(&record)?,
    )?;
    let outcome = rehearse(
        globals,
        &plan,
        &root,
        &loaded,
        sim_faults,
        operator_faults,
        &pin,
    );
    // A run refused or interrupted before it started (a failed preflight, another run's
    // lock) leaves nothing to resume: the simulated host is not kept up for one.
    let finished = matches!(outcome, Ok((_, true)));
    match sim::verify(&root) {
        Ok(report) => {
            for (token, verdict) in &report.tokens {
                eprintln!(
                    "REHEARSAL end state: token `{token}`: {} keys usable, {} unusable, {} objects without a key (current WK {})",
                    verdict.counts.usable,
                    verdict.counts.unusable,
                    verdict.counts.skipped,
                    verdict.current_wkvp.as_deref().unwrap_or("none agreed")
                );
            }
        }
        Err(e) => eprintln!("REHEARSAL: cannot verify the simulated end state: {e}"),
    }
    if !finished {
        // Its run can be resumed, which needs the simulated host as it is.
        eprintln!(
            "REHEARSAL: the run did not finish; the simulated host stays up at {} for `mkplan resume` (stop it with `{} shutdown --root {}`)",
            root.display(),
            simulator_command(&root),
            root.display()
        );
        return outcome.map(|(code, _)| code);
    }
    if let Err(e) = sim::shutdown(&root) {
        eprintln!("REHEARSAL: stopping the simulated processes failed: {e}");
    }
    if temporary && !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        eprintln!(
            "REHEARSAL: the simulated host is kept at {} (`{} verify --root {}`)",
            root.display(),
            simulator_command(&root),
            root.display()
        );
    }
    outcome.map(|(code, _)| code)
}

/// Where a simulated host keeps its own `mkplan-sim`: this mkplan under that name, so the
/// commands a rehearsal suggests work although `cargo run` built no `mkplan-sim`.
const SIMULATOR_IN_HOST: &str = "usr/bin/mkplan-sim";

fn install_simulator_command(root: &Path, mkplan: &Path) -> anyhow::Result<()> {
    let link = sim::canonical_root(root).join(SIMULATOR_IN_HOST);
    std::os::unix::fs::symlink(mkplan, &link)
        .map_err(|e| anyhow::anyhow!("cannot link `{}`: {e}", link.display()))
}

/// How to run `mkplan-sim` for this host: by name when the one on PATH was installed with
/// this mkplan (`cargo install` puts both in one directory), else the host's own.
fn simulator_command(root: &Path) -> String {
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(sim::SIM_EXE_NAME)));
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(sim::SIM_EXE_NAME))
            .find(|candidate| candidate.is_file())
    });
    match (installed, on_path) {
        (Some(installed), Some(on_path)) if installed == on_path => sim::SIM_EXE_NAME.to_owned(),
        _ => root.join(SIMULATOR_IN_HOST).display().to_string(),
    }
}

fn rehearse(
    globals: &Globals,
    plan: &Plan,
    root: &Path,
    loaded: &crate::cli::common::ExecutablePlan,
    sim_faults: Vec<Fault>,
    operator_faults: OperatorFaults,
    pin: &str,
) -> anyhow::Result<(i32, bool)> {
    for fault in sim_faults {
        sim::set_fault(root, fault).map_err(|e| anyhow::anyhow!("cannot set the fault: {e}"))?;
    }
    globals.init_logging();
    let host = simulated_host(root, operator_faults);
    let operator = RehearsalOperator {
        pin: pin.to_owned(),
    };
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

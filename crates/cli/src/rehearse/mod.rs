//! `mkplan rehearse PLAN`: the operator's real plan, run by the real engine and steps,
//! against a fresh simulated EP11 host. A simulated TKE operator performs each checkpoint's
//! `tke:` action and approves (journaled as `rehearsal`); the PKCS#11 probe uses the
//! simulator's (no module can open a simulated EP11 token). Everything is marked REHEARSAL.

mod args;
mod host;
mod park;

pub use args::Args;
pub use host::resume_host;
use host::{simulated_host, simulated_root};

use crate::error::CliError;
use crate::exit_code;
use crate::finish::{ReportWith, finish};
use crate::globals::{Globals, rehearsal_state_dir};
use crate::plan_input::{load_for_execution, operator_name};
use crate::preflight::preflight;
use mkplan_engine::approvals::ApprovalInputs;
use mkplan_engine::cancel::Cancel;
use mkplan_engine::executor::RunOptions;
use mkplan_engine::lifecycle::{NewRun, StartError, start};
use mkplan_engine::preflight::Depth;
use mkplan_engine::rundir::StateDir;
use mkplan_plan::model::{Plan, SignKey};
use mkplan_sim::rehearsal::{Faults, Rehearsal};
use mkplan_steps::registry::Registry;

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let loaded = load_for_execution(&args.plan).ok_or(CliError::InvalidSaid)?;
    let faults = Faults::parse(&args.faults).map_err(CliError::Invalid)?;
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
    let (root, temporary) = simulated_root(globals.root.as_deref())?;
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
    let rehearsal =
        Rehearsal::create(&root, &plan, args.keys, faults).map_err(anyhow::Error::from)?;
    let outcome = rehearse(globals, (&plan, &loaded), &rehearsal, &args)
        .and_then(|()| park::apps_verdict(&rehearsal.root()));
    // A run refused or interrupted before it started (a failed preflight, another run's
    // lock) leaves nothing to resume: the simulated host is not kept up for one.
    let finished = matches!(
        outcome,
        Ok(())
            | Err(CliError::RunFailed | CliError::RunAborted)
            | Err(CliError::Start(
                StartError::Busy(_)
                    | StartError::Unfinished { .. }
                    | StartError::Preflight(_)
                    | StartError::PreflightInterrupted
            ))
    );
    rehearsal.finish(finished, finished && temporary && !args.keep);
    crate::prune::rehearsals(&rehearsal_state(globals), args.keep_rehearsals);
    outcome
}

fn rehearsal_state(globals: &Globals) -> StateDir {
    StateDir::new(
        globals
            .state_dir
            .clone()
            .unwrap_or_else(rehearsal_state_dir),
    )
}

fn rehearse(
    globals: &Globals,
    (plan, loaded): (&Plan, &crate::plan_input::ExecutablePlan),
    rehearsal: &Rehearsal,
    args: &Args,
) -> Result<(), CliError> {
    globals.init_logging();
    let host = simulated_host(rehearsal);
    let operator = rehearsal.operator();
    let options = RunOptions {
        operator_name: format!("{} (rehearsal)", operator_name(None)),
        ..RunOptions::default()
    };
    let state = rehearsal_state(globals);
    let approvals = ApprovalInputs::default();
    let root = host.host.root().clone();
    let concluded = start(
        NewRun {
            plan,
            plan_text: &loaded.text,
            plan_path: &loaded.path,
            state,
            ports: host.clone(),
            steps: &Registry,
            operator: &operator,
            approvals: &approvals,
            options: &options,
            rehearsal: true,
            cancel: Cancel::install(exit_code::FAILURE)?,
        },
        &mut |scope| preflight(plan, &host, &operator, Depth::Run, scope).0,
    )?;
    let concluded = match args.stop_at_park {
        true => concluded,
        false => park::through_parks(
            concluded,
            (plan, loaded),
            globals,
            (&host, &operator),
            args.park_days,
        )?,
    };
    let with = ReportWith {
        root: &root,
        operator: &operator,
        signer: None,
    };
    finish(plan, concluded, globals, with)
}

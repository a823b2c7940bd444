//! `mkplan resume RUN`: continue an interrupted run from its journal. The journal's chain is
//! verified first; a changed plan is refused; succeeded steps are not run again and given
//! approvals are not asked again; a step interrupted half-way needs a recorded decision.

use std::path::PathBuf;

use crate::cli::common::{Globals, load_for_execution, operator_name};
use crate::cli::exit_code;
use crate::cli::run::{ApprovalArgs, finish};
use crate::engine::cancel::Cancel;
use crate::engine::digest::sha256_hex;
use crate::engine::events::{DecisionKind, EventKind};
use crate::engine::executor::{Executor, RunOptions};
use crate::engine::journal::Journal;
use crate::engine::lock::StateLock;
use crate::engine::recorder::Recorder;
use crate::engine::sinks::LogSink;
use crate::engine::state::{Phase, RunState, StepStatus};
use crate::engine::step::{RunInfo, Steps, UncertainContext};
use crate::host::linux::LinuxHost;
use crate::host::terminal::Terminal;
use crate::plan::model::{BackupStep, RestoreStep};
use crate::steps::registry::Registry;

/// Continue an interrupted run where its journal says it stopped.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (see `mkplan runs`).
    #[arg(value_name = "RUN")]
    run: String,
    /// The plan file, if not at the path the run recorded; it must be byte-identical.
    #[arg(long, value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// Run the step that was interrupted half-way again.
    #[arg(long, conflicts_with = "accept_step")]
    retry_step: bool,
    /// Take the step that was interrupted half-way as done.
    #[arg(long)]
    accept_step: bool,
    #[command(flatten)]
    approval: ApprovalArgs,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    let (state_dir, run_dir) = match globals.find_run(&args.run) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("mkplan: error: {e}");
            return Ok(exit_code::INVALID);
        }
    };
    let _lock = match StateLock::acquire(&state_dir, &run_dir.id) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("mkplan: error: {e}");
            return Ok(exit_code::PRECONDITION);
        }
    };
    let (journal, entries) = match Journal::reopen(&run_dir.journal()) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!(
                "mkplan: error: {e}\n  the journal is the run's record; it will not be resumed from a broken one"
            );
            return Ok(exit_code::PRECONDITION);
        }
    };
    let state = RunState::replay(&entries);
    if let Phase::Finished(outcome) = state.phase {
        eprintln!(
            "mkplan: error: run {} already finished ({}); there is nothing to resume",
            run_dir.id,
            outcome.as_str()
        );
        return Ok(exit_code::INVALID);
    }

    let plan_path = args
        .plan
        .clone()
        .unwrap_or_else(|| PathBuf::from(&state.plan_path));
    let recorded = run_dir.recorded_digest()?;
    let current =
        crate::plan::input::read(&plan_path, crate::plan::input::PLAN).map(|b| sha256_hex(&b));
    match current {
        Ok(digest) if digest == recorded && digest == state.plan_sha256 => {}
        Ok(digest) => {
            eprintln!(
                "mkplan: error: the plan changed since run {} started: `{}` has sha256 {digest}, the run recorded {recorded}",
                run_dir.id,
                plan_path.display()
            );
            eprintln!(
                "  hint: resume with the plan as it was (a copy is in {}), or finish this run first",
                run_dir.plan_copy().display()
            );
            return Ok(exit_code::PRECONDITION);
        }
        Err(e) => {
            eprintln!(
                "mkplan: error: cannot read the plan `{}`: {e}",
                plan_path.display()
            );
            eprintln!(
                "  hint: pass `--plan {}` (the run's own copy)",
                run_dir.plan_copy().display()
            );
            return Ok(exit_code::PRECONDITION);
        }
    }
    let Some(loaded) = load_for_execution(&plan_path) else {
        return Ok(exit_code::INVALID);
    };
    let mut rehearsal_plan = loaded.plan.clone();
    // A rehearsal signs with an ephemeral key: the plan's key is not on the simulated host.
    if state.rehearsal {
        rehearsal_plan.report.sign = None;
    }
    let plan = if state.rehearsal {
        &rehearsal_plan
    } else {
        &loaded.plan
    };

    // Design rule 8: nothing resumes beside a migration tool that rewrites a token, whoever
    // started it (a tool a killed mkplan left behind is found in /proc, not in the journal).
    let host_root = crate::engine::ports::root::HostRoot::new(if state.host_root.is_empty() {
        "/"
    } else {
        &state.host_root
    });
    let journaled_host = LinuxHost::new(host_root.clone());
    let refusals = tools_running(plan, &journaled_host)
        .or_else(|| users_of_an_uncertain_store(plan, &journaled_host, &state));
    if let Some(refusals) = refusals {
        for refusal in refusals {
            eprintln!("mkplan: error: {refusal}");
        }
        eprintln!(
            "  nothing was resumed or changed; resume again once no migration tool runs: mkplan resume {}",
            run_dir.id
        );
        return Ok(exit_code::PRECONDITION);
    }
    let decision = match (args.retry_step, args.accept_step) {
        (true, _) => Some(DecisionKind::Retry),
        (_, true) => Some(DecisionKind::Accept),
        _ => None,
    };
    match (state.uncertain(), decision) {
        (Some(record), None) => {
            eprintln!(
                "run {}: {} `{}` ({}) started and has no recorded outcome: it may have changed the system half-way",
                run_dir.id,
                record.step.position(),
                record.step.name,
                record.step.kind
            );
            let uncertain = UncertainContext {
                plan,
                state: &state,
                host: &journaled_host,
            };
            let attempts = record.attempts;
            eprintln!("  it was started {attempts} time(s); no outcome was recorded");
            if let Some(step) = plan.step_at(record.step.section, record.step.index) {
                for line in Registry.describe_uncertain(step, &uncertain) {
                    eprintln!("  {line}");
                }
            }
            eprintln!("decide, and the decision is journaled with your name:");
            eprintln!(
                "  mkplan resume {} --retry-step    run it again",
                run_dir.id
            );
            eprintln!(
                "  mkplan resume {} --accept-step   take it as done",
                run_dir.id
            );
            return Ok(exit_code::NEEDS_DECISION);
        }
        (None, Some(_)) => {
            eprintln!(
                "mkplan: error: no step of run {} is uncertain; resume without --retry-step/--accept-step",
                run_dir.id
            );
            return Ok(exit_code::INVALID);
        }
        _ => {}
    }
    // Accepting a half-done migration would activate a WK that part of the store is not
    // under, and accepting a half-done restore would start services on a store that is not
    // the backup: the store must show the step complete, or the operator has to retry.
    let uncertain = UncertainContext {
        plan,
        state: &state,
        host: &journaled_host,
    };
    if let (Some(record), Some(DecisionKind::Accept)) = (state.uncertain(), decision)
        && let Some(step) = plan.step_at(record.step.section, record.step.index)
        && let Err(refusal) = Registry.refuse_accept(step, &uncertain)
    {
        eprintln!("mkplan: error: refusing --accept-step: {refusal}; use --retry-step");
        return Ok(exit_code::NEEDS_DECISION);
    }
    if let Some(refusal) = crate::cli::common::untrusted(&state_dir, plan, &host_root) {
        eprintln!("mkplan: error: {refusal}");
        return Ok(exit_code::PRECONDITION);
    }
    let approvals = match args.approval.inputs(plan) {
        Ok(inputs) => inputs,
        Err(e) => {
            eprintln!("mkplan: error: {e}");
            return Ok(exit_code::INVALID);
        }
    };
    // Before the operator: a stop request must end a prompt that is waiting.
    let cancel = Cancel::install(crate::cli::exit_code::FAILURE)?;
    // A rehearsal resumes on its own simulated host, with its simulated operator.
    let (host, operator) = if state.rehearsal {
        match crate::cli::rehearse::resume_host(plan, std::path::Path::new(&state.host_root)) {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("mkplan: error: {e}");
                return Ok(exit_code::PRECONDITION);
            }
        }
    } else {
        (
            globals.ports(),
            Terminal::detect(args.approval.non_interactive, &cancel),
        )
    };
    globals.init_logging();
    let operator_name = operator_name(args.approval.operator.as_deref());
    let mut recorder = Recorder::new(
        journal,
        state.clone(),
        vec![Box::new(LogSink::new(operator.as_ref()))],
    );
    recorder.record(EventKind::Resumed {
        operator: operator_name.clone(),
        pid: std::process::id(),
    })?;
    let done = state
        .steps
        .values()
        .filter(|r| matches!(r.status, StepStatus::Succeeded { .. }))
        .count();
    tracing::info!(
        "resuming run {}: {done} steps already succeeded and are not run again",
        run_dir.id
    );
    let options = RunOptions {
        decision,
        operator_name,
        ..RunOptions::default()
    };
    let executor = Executor {
        plan,
        ports: &host,
        info: RunInfo {
            run_id: run_dir.id.clone(),
            run_dir: run_dir.dir.clone(),
            plan_sha256: recorded,
        },
        recorder,
        options: &options,
        cancel,
        operator: operator.as_ref(),
        approvals: &approvals,
        pins: Default::default(),
        steps: &Registry,
    };
    finish(executor, globals)
}

/// The refusals of design rule 8 for every token a step of the plan backs up, migrates or
/// restores; `None` when no migration tool runs against any of them.
fn tools_running(plan: &crate::plan::Plan, host: &LinuxHost) -> Option<Vec<String>> {
    use crate::plan::model::StepKind;
    let mut tokens: Vec<&crate::plan::model::TokenId> = plan
        .all_steps()
        .filter_map(|s| match &s.kind {
            StepKind::Backup(BackupStep { token, .. })
            | StepKind::Restore(RestoreStep { token, .. }) => Some(token),
            StepKind::Migrate(m) => Some(&m.token),
            _ => None,
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    let refusals: Vec<String> = tokens
        .into_iter()
        .filter_map(|id| {
            crate::steps::guards::tools::refuse_while_tools_run(
                host,
                plan,
                &plan.tokens[id],
                "resume",
            )
            .err()
        })
        .collect();
    (!refusals.is_empty()).then_some(refusals)
}

/// A migration or restore interrupted half-way is retried (or accepted) only while nothing
/// maps the token: a process that does would see the store change under it, and the retry's
/// restore would be refused half-way through the resumed run instead of now.
fn users_of_an_uncertain_store(
    plan: &crate::plan::Plan,
    host: &LinuxHost,
    state: &RunState,
) -> Option<Vec<String>> {
    use crate::plan::model::StepKind;
    let record = state.uncertain()?;
    let token = match &plan.step_at(record.step.section, record.step.index)?.kind {
        StepKind::Migrate(m) => &m.token,
        StepKind::Restore(RestoreStep { token, .. }) => token,
        _ => return None,
    };
    let users = crate::steps::guards::users::token_users(host, plan).users;
    let first = users.first()?;
    Some(vec![format!(
        "refusing to resume: {} `{}` left token `{token}` half-changed, and {} process(es) use a token now: {}; hint: stop them (`kill {}`) or wait for them to end, then resume",
        record.step.position(),
        record.step.name,
        users.len(),
        crate::steps::guards::users::describe_users(&users),
        first.pid
    )])
}

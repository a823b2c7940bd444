//! `mkplan run PLAN`: execute a plan with a journal, checkpoints and rescue/always.

use std::path::PathBuf;

use crate::cli::common::{Globals, load_for_execution, operator_name, print_recap};
use crate::cli::exit_code;
use crate::cli::preflight::{Depth, Preflight, Scope, preflight};
use crate::engine::access::create_private_dirs;
use crate::engine::approvals::ApprovalInputs;
use crate::engine::cancel::Cancel;
use crate::engine::error::EngineError;
use crate::engine::events::{EventKind, Outcome, StepRef};
use crate::engine::executor::{Executor, RunEnd, RunOptions};
use crate::engine::journal::Journal;
use crate::engine::lock::StateLock;
use crate::engine::recorder::Recorder;
use crate::engine::sinks::LogSink;
use crate::engine::state::{Phase, RunState};
use crate::engine::step::RunInfo;
use crate::engine::trust::{self, Trusted};
use crate::host::terminal::Terminal;
use crate::plan::Plan;
use crate::steps::registry::Registry;

/// Execute a plan: each step journaled before it acts, rescue on failure, always at the end.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Approvals: on a terminal, each checkpoint asks its approvers; otherwise (or with
--non-interactive) approvals come only from --approve CHECKPOINT=NAME (repeatable; CHECKPOINT
is a step id, name, or position like steps[2]) and --approvals FILE, and a missing approval
is an immediate deny.")]
pub struct Args {
    /// The plan to run.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    #[command(flatten)]
    approval: ApprovalArgs,
    /// Run only main steps with one of these tags (rescue and always steps always run).
    #[arg(long, value_delimiter = ',', value_name = "TAG")]
    tags: Vec<String>,
    /// Skip main steps with one of these tags.
    #[arg(long, value_delimiter = ',', value_name = "TAG")]
    skip_tags: Vec<String>,
    /// Print the steps and exit without running anything.
    #[arg(long)]
    list_steps: bool,
    /// Ask before each main step (needs a terminal).
    #[arg(long)]
    step: bool,
}

/// Approval and identity options shared by `run` and `resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApprovalArgs {
    /// Approve a checkpoint ahead of time: CHECKPOINT=NAME (repeatable).
    #[arg(long = "approve", value_name = "CHECKPOINT=NAME")]
    pub approve: Vec<String>,
    /// A file of approvals: `approvals: [{checkpoint: ID, approver: NAME}, …]`.
    #[arg(long = "approvals", value_name = "FILE")]
    pub approvals_file: Option<PathBuf>,
    /// Never prompt: a missing approval is an immediate deny.
    #[arg(long)]
    pub non_interactive: bool,
    /// Who is running mkplan (default: $SUDO_USER, $USER).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
}

impl ApprovalArgs {
    pub fn inputs(&self, plan: &Plan) -> Result<ApprovalInputs, String> {
        let mut inputs = ApprovalInputs::default();
        for flag in &self.approve {
            inputs.add_flag(flag).map_err(|e| e.to_string())?;
        }
        if let Some(file) = &self.approvals_file {
            inputs.add_file(file).map_err(|e| e.to_string())?;
        }
        inputs.check_names(plan).map_err(|e| e.to_string())?;
        Ok(inputs)
    }
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    let Some(loaded) = load_for_execution(&args.plan) else {
        return Ok(exit_code::INVALID);
    };
    let plan = &loaded.plan;
    if args.list_steps {
        list_steps(plan);
        return Ok(exit_code::SUCCESS);
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
    let operator = Terminal::detect(args.approval.non_interactive, &cancel);
    if args.step && !operator.interactive() {
        eprintln!("mkplan: error: --step needs a terminal to ask on");
        return Ok(exit_code::INVALID);
    }
    globals.init_logging();
    let options = RunOptions {
        tags: args.tags,
        skip_tags: args.skip_tags,
        step_by_step: args.step,
        decision: None,
        operator_name: operator_name(args.approval.operator.as_deref()),
    };
    let launch = Launch {
        plan,
        plan_text: &loaded.text,
        plan_path: &loaded.path,
        state: globals.state(),
        ports: globals.ports(),
        operator: operator.as_ref(),
        approvals: &approvals,
        options: &options,
        rehearsal: false,
        cancel,
    };
    launch.start(globals).map(|(code, _)| code)
}

/// Everything a new run needs; `run` and `rehearse` differ only in what they put here.
pub struct Launch<'a> {
    pub plan: &'a Plan,
    pub plan_text: &'a str,
    pub plan_path: &'a std::path::Path,
    pub state: crate::engine::rundir::StateDir,
    pub ports: crate::engine::ports::Ports,
    pub operator: &'a dyn crate::engine::ports::operator::Operator,
    pub approvals: &'a ApprovalInputs,
    pub options: &'a RunOptions,
    pub rehearsal: bool,
    /// The stop flag, its signal handlers installed.
    pub cancel: Cancel,
}

impl Launch<'_> {
    /// Creates the run (refusing while another run holds the lock or did not finish, or when
    /// the preflight finds a problem or is interrupted), journals its start, and executes it
    /// to the end. Returns the exit code and whether nothing is left to resume: the run
    /// finished, or none was recorded.
    pub fn start(self, globals: &Globals) -> anyhow::Result<(i32, bool)> {
        let state_dir = &self.state;
        // A missing state directory is made, owner-only; nothing more before it is trusted.
        create_private_dirs(state_dir.dir())?;
        let scope = Scope {
            plan_file: self.plan_path,
            approvals_files: self.approvals.files(),
            state_dir: state_dir.dir(),
            cancel: &self.cancel,
        };
        // Nothing is created in a state directory others could write (a link planted there
        // would turn the lock or the run's files into someone else's): the preflight, which
        // asks for no PIN then, says why with every other problem.
        if trust::check(state_dir.dir(), Trusted::StateDir).is_err() {
            let checked = preflight(self.plan, &self.ports, self.operator, Depth::Run, &scope);
            return Ok((refuse(&checked), true));
        }
        state_dir.ensure()?;
        let run_dir = state_dir.create_run(self.plan_text)?;
        let _lock = match StateLock::acquire(state_dir, &run_dir.id) {
            Ok(lock) => lock,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run_dir.dir);
                eprintln!("mkplan: error: {e}");
                eprintln!("  hint: wait for it to finish, or see `mkplan runs`");
                return Ok((exit_code::PRECONDITION, true));
            }
        };
        if let Some(unfinished) = unfinished_run(state_dir, &run_dir.id) {
            let _ = std::fs::remove_dir_all(&run_dir.dir);
            eprintln!(
                "mkplan: error: run {} did not finish ({}); a new run could meet its half-done work",
                unfinished.0, unfinished.1
            );
            eprintln!("  hint: continue it with `mkplan resume {}`", unfinished.0);
            return Ok((exit_code::PRECONDITION, true));
        }
        // Design rule 9: what must hold now is verified before the run is recorded or any step
        // acts; the PINs are obtained and verified before anything is stopped.
        let checked = preflight(self.plan, &self.ports, self.operator, Depth::Run, &scope);
        if checked.interrupted || !checked.problems.is_empty() {
            let _ = std::fs::remove_dir_all(&run_dir.dir);
            return Ok((refuse(&checked), true));
        }
        for finding in &checked.holds {
            tracing::info!("preflight: {}: {}", finding.what, finding.text);
        }
        for line in &checked.later {
            tracing::info!("preflight: {line}");
        }
        let journal = Journal::create(&run_dir.journal(), &run_dir.id)?;
        let plan_sha256 = run_dir.recorded_digest()?;
        let mut recorder = Recorder::new(
            journal,
            RunState::replay(&[]),
            vec![Box::new(LogSink::new(self.operator))],
        );
        recorder.record(EventKind::RunStarted {
            plan_name: self.plan.name.clone(),
            plan_path: self.plan_path.display().to_string(),
            plan_sha256: plan_sha256.clone(),
            change_ticket: self.plan.change.ticket.clone(),
            mkplan_version: env!("CARGO_PKG_VERSION").to_owned(),
            host_root: self.ports.host.root().dir().display().to_string(),
            operator: self.options.operator_name.clone(),
            pid: std::process::id(),
            rehearsal: self.rehearsal,
        })?;
        let executor = Executor {
            plan: self.plan,
            ports: &self.ports,
            info: RunInfo {
                run_id: run_dir.id.clone(),
                run_dir: run_dir.dir.clone(),
                plan_sha256,
            },
            recorder,
            options: self.options,
            cancel: self.cancel,
            operator: self.operator,
            approvals: self.approvals,
            pins: checked.pins,
            steps: &Registry,
        };
        conclude(executor, globals, checked.signer.as_ref())
    }
}

/// Says why the preflight ends the run before it was recorded, and returns the exit code:
/// an interruption at a prompt (1, like any interrupted run; nothing to resume), else one
/// line per problem (3).
fn refuse(checked: &Preflight) -> i32 {
    if checked.interrupted {
        eprintln!(
            "mkplan: interrupted in the preflight, before the run started: nothing was stopped or changed, and no run was recorded; run again when ready"
        );
        return exit_code::FAILURE;
    }
    for problem in &checked.problems {
        eprintln!(
            "mkplan: error: preflight: {}: {}",
            problem.what, problem.text
        );
    }
    eprintln!(
        "  nothing was started or changed, and no run was recorded; fix {}, then run again (`mkplan check` shows the whole preflight)",
        if checked.problems.len() == 1 {
            "this"
        } else {
            "these"
        }
    );
    exit_code::PRECONDITION
}

/// Runs the executor to its end, prints the recap and maps the end to an exit code.
pub fn finish(executor: Executor<'_>, globals: &Globals) -> anyhow::Result<i32> {
    conclude(executor, globals, None).map(|(code, _)| code)
}

/// As [`finish`], and whether the run finished (as opposed to being interrupted); the report
/// is signed by `signer` when the preflight prepared one.
pub fn conclude(
    mut executor: Executor<'_>,
    globals: &Globals,
    signer: Option<&crate::report::sign::ReportSigner>,
) -> anyhow::Result<(i32, bool)> {
    let end = executor.execute();
    let state = executor.recorder.state().clone();
    print_recap(executor.plan, &state, globals.log_format);
    let end = match end {
        Ok(end) => end,
        Err(EngineError::Journal(e)) => {
            eprintln!("mkplan: error: {e}");
            eprintln!(
                "  the run stopped before its next action; nothing was done after the last journaled event"
            );
            return Ok((exit_code::FAILURE, false));
        }
    };
    let finished = matches!(end, RunEnd::Finished(_));
    eprintln!(
        "run {} in {}",
        state.run_id,
        executor.info.run_dir.display()
    );
    if let RunEnd::Finished(outcome) = end {
        eprintln!(
            "outcome: {}: {}",
            outcome.as_str(),
            crate::engine::outcome::describe(executor.plan, &state)
        );
    }
    // A finished run is reported and signed whatever its outcome: a failed or rescued run is
    // when the evidence matters most. A report failure is loud, but the exit code stays the
    // run's own, so it can never hide (or fake) the outcome.
    if let RunEnd::Finished(_) = end {
        crate::cli::report::after_run(
            executor.plan,
            &executor.info.run_dir,
            executor.ports.host.root(),
            executor.operator,
            signer,
        );
    }
    let code = match end {
        RunEnd::Finished(Outcome::Succeeded) => exit_code::SUCCESS,
        RunEnd::Finished(Outcome::Aborted) => exit_code::ABORTED,
        RunEnd::Finished(Outcome::Failed | Outcome::Rescued) => exit_code::FAILURE,
        RunEnd::Interrupted => {
            eprintln!(
                "interrupted: continue with `mkplan resume {}`",
                state.run_id
            );
            exit_code::FAILURE
        }
    };
    Ok((code, finished))
}

/// A run of this state directory (other than `except`) that did not finish.
fn unfinished_run(
    state: &crate::engine::rundir::StateDir,
    except: &str,
) -> Option<(String, &'static str)> {
    let runs = state.list_runs().ok()?;
    runs.into_iter().rev().find_map(|run| {
        if run.id == except {
            return None;
        }
        let entries = crate::engine::journal::read_verified(&run.journal())
            .ok()?
            .entries;
        let state = RunState::replay(&entries);
        (!matches!(state.phase, Phase::Finished(_)) && !entries.is_empty())
            .then(|| (run.id.clone(), state.state_name()))
    })
}

fn list_steps(plan: &Plan) {
    println!(
        "{:<11} {:<14} {:<17} {:<40} when / tags",
        "STEP", "ID", "KIND", "NAME"
    );
    for step in plan.all_steps() {
        let mut extra = Vec::new();
        if let Some(when) = &step.when {
            extra.push(format!("when {when}"));
        }
        if !step.tags.is_empty() {
            extra.push(format!("tags {}", step.tags.join(",")));
        }
        println!(
            "{:<11} {:<14} {:<17} {:<40} {}",
            StepRef::of(step).position(),
            step.id.as_deref().unwrap_or("-"),
            step.kind_name(),
            step.name,
            extra.join("; ")
        );
    }
}

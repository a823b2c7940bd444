//! `mkplan run PLAN`: execute a plan with a journal, checkpoints and rescue/always.

use std::path::PathBuf;

use crate::approval_args::ApprovalArgs;
use crate::error::CliError;
use crate::exit_code;
use crate::finish::{ReportWith, finish};
use crate::globals::Globals;
use crate::plan_input::{load_for_execution, operator_name};
use crate::preflight::preflight;
use mkplan_engine::cancel::Cancel;
use mkplan_engine::events::StepRef;
use mkplan_engine::executor::RunOptions;
use mkplan_engine::lifecycle::{NewRun, start};
use mkplan_engine::preflight::Depth;
use mkplan_host::terminal::Terminal;
use mkplan_plan::Plan;
use mkplan_steps::registry::Registry;

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

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let loaded = load_for_execution(&args.plan).ok_or(CliError::InvalidSaid)?;
    let plan = &loaded.plan;
    if args.list_steps {
        list_steps(plan);
        return Ok(());
    }
    let approvals = args
        .approval
        .inputs(plan, &loaded.text, &globals.state(), None)?;
    // Before the operator: a stop request must end a prompt that is waiting.
    let cancel = Cancel::install(exit_code::FAILURE)?;
    let operator = Terminal::detect(args.approval.non_interactive, &cancel);
    if args.step && !operator.interactive() {
        return Err(CliError::Invalid(
            "--step needs a terminal to ask on".to_owned(),
        ));
    }
    globals.init_logging();
    let options = RunOptions {
        tags: args.tags,
        skip_tags: args.skip_tags,
        step_by_step: args.step,
        decision: None,
        operator_name: operator_name(args.approval.operator.as_deref()),
    };
    let ports = globals.ports();
    let root = ports.host.root().clone();
    let mut signer = None;
    let concluded = start(
        NewRun {
            plan,
            plan_text: &loaded.text,
            plan_path: &loaded.path,
            state: globals.state(),
            ports: ports.clone(),
            steps: &Registry,
            operator: operator.as_ref(),
            approvals: &approvals,
            options: &options,
            rehearsal: false,
            cancel,
        },
        &mut |scope| {
            let (checked, proven) = preflight(plan, &ports, operator.as_ref(), Depth::Run, scope);
            signer = proven;
            checked
        },
    )?;
    let with = ReportWith {
        root: &root,
        operator: operator.as_ref(),
        signer: signer.as_ref(),
    };
    finish(plan, concluded, globals, with)
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

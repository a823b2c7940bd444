//! `mkplan check PLAN`: the honest dry run. Every step's read-only check against the live
//! host, in order: "will run", "would skip (why)", "cannot simulate (why)" or a failed
//! precondition. It changes nothing: steps only get a read-only view here.

use std::path::PathBuf;

use crate::cli::common::{Globals, load_for_execution};
use crate::cli::exit_code;
use crate::cli::preflight::{Depth, Preflight, Scope, preflight, render};
use crate::engine::cancel::Cancel;
use crate::engine::digest::sha256_hex;
use crate::engine::events::StepRef;
use crate::engine::step::{CheckContext, CheckReport, Steps};
use crate::plan::model::{ExpectedWkvpStep, RestoreStep};
use crate::plan::model::{Step, StepKind};
use crate::plan::template::evaluate_condition;
use crate::steps::registry::Registry;

/// Dry run against the live system: what each step would do, with the state it read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan to check.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    let Some(loaded) = load_for_execution(&args.plan) else {
        return Ok(exit_code::INVALID);
    };
    let plan = &loaded.plan;
    let ports = globals.ports();
    let host = &*ports.host;
    println!(
        "check: plan `{}` ({}), sha256 {}, host root {}",
        plan.name,
        plan.change.ticket,
        sha256_hex(loaded.text.as_bytes()),
        host.root().dir().display()
    );
    // What must hold now, each problem once (`run` checks the same before any step acts).
    let operator = crate::engine::ports::operator::Nobody;
    let state_dir = globals.state();
    let scope = Scope {
        plan_file: &loaded.path,
        approvals_files: &[],
        state_dir: state_dir.dir(),
        cancel: &Cancel::new(),
    };
    let checked = preflight(plan, &ports, &operator, Depth::DryRun, &scope);
    println!("preflight (must hold before any step acts):");
    print!("{}", render(&checked));
    let mut blocked = Vec::new();
    for (section, list) in [
        ("steps", &plan.steps),
        ("rescue", &plan.rescue),
        ("always", &plan.always),
    ] {
        if list.is_empty() {
            continue;
        }
        if section != "steps" {
            println!(
                "{section} (runs {}):",
                if section == "rescue" {
                    "only if a step fails or a checkpoint is denied"
                } else {
                    "at the end, whatever happened"
                }
            );
        }
        for (i, step) in list.iter().enumerate() {
            let report = match step
                .when
                .as_deref()
                .map(|w| (w, evaluate_condition(&plan.template_scope, w)))
            {
                Some((w, Ok(false))) => CheckReport::WouldSkip(format!("`when: {w}` is false")),
                Some((w, Err(e))) => {
                    CheckReport::Blocked(format!("`when: {w}` cannot be evaluated: {e}"))
                }
                _ => Registry.check(
                    step,
                    &CheckContext {
                        plan,
                        step,
                        host,
                        earlier: &list[..i],
                    },
                ),
            };
            let report = refer_to_preflight(step, report, &checked);
            let (label, text) = match &report {
                CheckReport::WillRun(t) => ("will run", t),
                CheckReport::WouldSkip(t) => ("would skip", t),
                CheckReport::CannotSimulate(t) => ("cannot simulate", t),
                CheckReport::Blocked(t) => ("PRECONDITION FAILS", t),
            };
            let position = StepRef::of(step).position();
            println!(
                "  {position:<11} {:<40} {label}: {text}",
                format!("`{}`", step.name)
            );
            // Rescue and always only run after something went wrong; their state now is not a
            // precondition of the run.
            if matches!(report, CheckReport::Blocked(_)) && section == "steps" {
                blocked.push(position);
            }
        }
    }
    let problems = checked.problems.len();
    if problems > 0 {
        blocked.insert(
            0,
            format!(
                "the preflight ({problems} problem{})",
                if problems == 1 { "" } else { "s" }
            ),
        );
    }
    if blocked.is_empty() {
        println!("result: every precondition holds");
        Ok(exit_code::SUCCESS)
    } else {
        println!("result: preconditions fail at {}", blocked.join(", "));
        Ok(exit_code::PRECONDITION)
    }
}

/// A step whose token the preflight found unreadable (no AP bus, a missing or offline APQN,
/// an unreadable config), or whose own problem the preflight already named, points there
/// instead of saying it again.
fn refer_to_preflight(step: &Step, report: CheckReport, checked: &Preflight) -> CheckReport {
    let token = match &step.kind {
        StepKind::AssertWk(a) => Some(&a.token),
        StepKind::Checkpoint(c) => c.until.as_ref().map(|u| &u.check.token),
        StepKind::Migrate(m) => Some(&m.token),
        StepKind::Restore(RestoreStep { token, .. })
        | StepKind::SetExpectedWkvp(ExpectedWkvpStep { token }) => Some(token),
        _ => None,
    };
    let said = |text: &str| checked.problems.iter().any(|p| p.text.contains(text));
    match report {
        CheckReport::Blocked(text) if said(&text) => {
            CheckReport::Blocked("see the preflight problem above".to_owned())
        }
        CheckReport::WillRun(_) | CheckReport::Blocked(_)
            if token.is_some_and(|t| checked.unreadable.contains(t)) =>
        {
            CheckReport::CannotSimulate(format!(
                "the adapters or config of token `{}` cannot be read now (see the preflight problems above)",
                token.expect("matched")
            ))
        }
        other => other,
    }
}

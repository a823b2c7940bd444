//! `mkplan check PLAN`: the honest dry run. Every step's read-only check against the live
//! host, in order: "will run", "would skip (why)", "cannot simulate (why)" or a failed
//! precondition. It changes nothing: steps only get a read-only view here.

use std::path::PathBuf;

use crate::error::CliError;
use crate::globals::Globals;
use crate::plan_input::load_for_execution;
use crate::preflight::preflight;
use mkplan_engine::cancel::Cancel;
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::events::StepRef;
use mkplan_engine::lifecycle::{DryRun, dry_run};
use mkplan_engine::ports::operator::Nobody;
use mkplan_engine::preflight::{Depth, Scope, render};
use mkplan_engine::step::CheckReport;
use mkplan_plan::model::Section;
use mkplan_steps::registry::Registry;

/// Dry run against the live system: what each step would do, with the state it read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan to check.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
}

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let loaded = load_for_execution(&args.plan).ok_or(CliError::InvalidSaid)?;
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
    let state_dir = globals.state();
    let scope = Scope {
        plan_file: &loaded.path,
        approvals_files: &[],
        state_dir: state_dir.dir(),
        cancel: &Cancel::new(),
    };
    let (checked, _) = preflight(plan, &ports, &Nobody, Depth::DryRun, &scope);
    println!("preflight (must hold before any step acts):");
    print!("{}", render(&checked));
    let dry = dry_run(plan, &Registry, host, &checked);
    print_steps(&dry);
    if dry.blocked.is_empty() {
        println!("result: every precondition holds");
        Ok(())
    } else {
        println!("result: preconditions fail at {}", dry.blocked.join(", "));
        Err(CliError::PreconditionsFail)
    }
}

fn print_steps(dry: &DryRun<'_>) {
    for (section, checked) in &dry.sections {
        match section {
            _ if checked.is_empty() => continue,
            Section::Steps => {}
            Section::Rescue => {
                println!("rescue (runs only if a step fails or a checkpoint is denied):")
            }
            Section::Always => println!("always (runs at the end, whatever happened):"),
        }
        for c in checked {
            let (label, text) = match &c.report {
                CheckReport::WillRun(t) => ("will run", t),
                CheckReport::WouldSkip(t) => ("would skip", t),
                CheckReport::CannotSimulate(t) => ("cannot simulate", t),
                CheckReport::Blocked(t) => ("PRECONDITION FAILS", t),
            };
            println!(
                "  {:<11} {:<40} {label}: {text}",
                StepRef::of(c.step).position(),
                format!("`{}`", c.step.name)
            );
        }
    }
}

//! `mkplan validate PLAN…`: schema, notations, references, templates and safety rules.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::error::CliError;
use mkplan_plan::diagnostic::{Severity, escape_for_terminal};
use mkplan_plan::{Loaded, load_file};

/// Check plans against the schema and the safety rules, reporting every problem at once.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plan files to check.
    #[arg(required = true, value_name = "PLAN")]
    plans: Vec<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let loaded: Vec<Loaded> = args.plans.iter().map(|p| load_file(p)).collect();
    let failed = |l: &Loaded| {
        l.plan.is_none() || (args.strict && l.diagnostics.count(Severity::Warning) > 0)
    };
    let printed = match args.format {
        Format::Human => print_human(&loaded, &failed),
        Format::Json => print_json(&loaded, &failed),
    };
    // A reader that went away (`| head`) does not change the verdict.
    if let Err(e) = printed
        && !is_broken_pipe(&e)
    {
        return Err(e.into());
    }
    if loaded.iter().any(failed) {
        Err(CliError::InvalidSaid)
    } else {
        Ok(())
    }
}

fn print_human(loaded: &[Loaded], failed: &dyn Fn(&Loaded) -> bool) -> anyhow::Result<()> {
    let mut stderr = std::io::stderr().lock();
    let mut stdout = std::io::stdout().lock();
    for l in loaded {
        for d in l.diagnostics.iter() {
            writeln!(stderr, "{}", d.render(&l.source))?;
        }
        let name = l.source.name().display().to_string();
        let name = escape_for_terminal(&name);
        let errors = l.diagnostics.count(Severity::Error);
        let warnings = l.diagnostics.count(Severity::Warning);
        match &l.plan {
            Some(plan) if !failed(l) => {
                let tokens: Vec<String> = plan
                    .tokens
                    .values()
                    .map(|t| {
                        format!(
                            "`{}` (slot {}, {} APQN{})",
                            t.id,
                            t.slot,
                            t.apqns.len(),
                            plural(t.apqns.len())
                        )
                    })
                    .collect();
                writeln!(
                    stdout,
                    "{name}: valid: {} step{}, {} rescue, {} always; tokens {}{}",
                    plan.steps.len(),
                    plural(plan.steps.len()),
                    plan.rescue.len(),
                    plan.always.len(),
                    tokens.join(", "),
                    if warnings > 0 {
                        format!("; {warnings} warning{}", plural(warnings))
                    } else {
                        String::new()
                    }
                )?;
            }
            _ => writeln!(
                stderr,
                "{name}: invalid: {errors} error{}, {warnings} warning{}",
                plural(errors),
                plural(warnings)
            )?,
        }
    }
    Ok(())
}

fn print_json(loaded: &[Loaded], failed: &dyn Fn(&Loaded) -> bool) -> anyhow::Result<()> {
    let files: Vec<serde_json::Value> = loaded
        .iter()
        .map(|l| {
            serde_json::json!({
                "file": l.source.name().display().to_string(),
                "valid": !failed(l),
                "errors": l.diagnostics.count(Severity::Error),
                "warnings": l.diagnostics.count(Severity::Warning),
                "diagnostics": l.diagnostics.iter().map(|d| d.to_json(&l.source)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let out = serde_json::json!({ "version": 1, "files": files });
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &out)?;
    writeln!(stdout)?;
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Whether `error` (anywhere in its chain) is a write to a stream whose reader is gone.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            // serde_json's writer errors keep the io::Error to themselves.
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}

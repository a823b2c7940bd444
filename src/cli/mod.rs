//! The command line: clap definitions, one file per command, and the mapping of each
//! command's outcome to an exit code.

mod check;
pub mod common;
mod completions;
mod keygen;
mod man;
pub mod preflight;
pub mod rehearse;
mod report;
mod resume;
mod run;
mod runs;
mod schema;
mod validate;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::exit_code;

const EXAMPLES: &str = "\
Examples:
  mkplan validate plans/ep11-offline.yaml      check a plan against the schema and safety rules
  mkplan validate --format json plans/*.yaml   the same, as JSON for editors and CI
  mkplan rehearse plans/ep11-offline.yaml      the whole plan on a simulated EP11 host
  mkplan check plans/ep11-offline.yaml         dry run against the live system
  mkplan run --approve tke-commit=alice --approve tke-commit=bob plans/ep11-offline.yaml
  mkplan resume 20261129T153000Z-3fa9c1 --accept-step
  mkplan schema > schemas/plan.schema.json     the plan JSON Schema (draft 2020-12)
  mkplan completions bash > /etc/bash_completion.d/mkplan";

/// Declarative, journaled HSM master-key changes for openCryptoki EP11 tokens on IBM Z.
#[derive(Debug, Parser)]
#[command(name = "mkplan", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    globals: common::Globals,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Check(check::Args),
    Run(run::Args),
    Resume(resume::Args),
    Rehearse(rehearse::Args),
    Runs(runs::Args),
    Report(report::Args),
    Keygen(keygen::Args),
    Schema(schema::Args),
    Completions(completions::Args),
    Man(man::Args),
}

/// Runs mkplan with `args` (the program name first) and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                exit_code::INVALID
            } else {
                exit_code::SUCCESS
            };
        }
    };
    let outcome = match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Check(args) => check::run(args, &cli.globals),
        Command::Run(args) => run::run(args, &cli.globals),
        Command::Resume(args) => resume::run(args, &cli.globals),
        Command::Rehearse(args) => rehearse::run(args, &cli.globals),
        Command::Runs(args) => runs::run(args, &cli.globals),
        Command::Report(args) => report::run(args, &cli.globals),
        Command::Keygen(args) => keygen::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mkplan: error: {error:#}");
            exit_code::FAILURE
        }
    }
}

/// The clap command, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

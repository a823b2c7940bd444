//! The command line: clap definitions, one file per command, and the mapping of each
//! command's outcome to an exit code.

mod check;
pub mod common;
mod completions;
mod init;
mod keygen;
mod man;
mod manual;
pub mod preflight;
pub mod rehearse;
mod report;
mod resume;
mod run;
mod runs;
mod schema;
mod validate;

use std::ffi::OsString;

use clap::{FromArgMatches, Parser, Subcommand};

use crate::exit_code;

/// Declarative, journaled HSM master-key changes for openCryptoki EP11 tokens on IBM Z.
#[derive(Debug, Parser)]
#[command(name = "mkplan", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    globals: common::Globals,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::Args),
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
    let parsed = command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
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
        Command::Init(args) => init::run(args, &cli.globals),
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

/// The clap command as `--help` shows it: each command's exit status and examples after
/// its options.
pub fn command() -> clap::Command {
    manual::decorate(base_command())
}

/// The clap command without the exit status and examples, which the man pages render as
/// sections of their own.
fn base_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

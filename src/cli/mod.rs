//! The command line: clap definitions, one file per command, and the mapping of each
//! command's outcome to an exit code.

mod args;
mod check;
pub mod common;
mod completions;
pub mod exit_code;
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

use clap::FromArgMatches;

use crate::cli::args::{Cli, Command, base_command, command};

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
        Command::Validate(args) => validate::run(args),
        Command::Check(args) => check::run(args, &cli.globals),
        Command::Run(args) => run::run(args, &cli.globals),
        Command::Resume(args) => resume::run(args, &cli.globals),
        Command::Rehearse(args) => rehearse::run(args, &cli.globals),
        Command::Runs(args) => runs::run(args, &cli.globals),
        Command::Report(args) => report::run(args, &cli.globals),
        Command::Keygen(args) => keygen::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => completions::run(args, command()),
        Command::Man(args) => man::run(args, base_command()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mkplan: error: {error:#}");
            exit_code::FAILURE
        }
    }
}

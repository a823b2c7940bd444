//! The command line: clap definitions, one file per command, and the mapping of each
//! command's outcome to an exit code.

// First: mkplan_engine's `print!`/`println!`/`eprint!`/`eprintln!` replace std's in every
// module below (a closed pipe drops output instead of panicking).
#[macro_use]
extern crate mkplan_engine;

mod approval_args;
mod approve;
mod args;
mod check;
mod completions;
mod error;
pub mod exit_code;
mod finish;
pub mod globals;
mod init;
mod key_arg;
mod keygen;
mod logging;
mod man;
mod manual;
mod parked;
mod plan_input;
pub mod preflight;
mod prune;
mod recap;
#[cfg(feature = "rehearse")]
pub mod rehearse;
mod report;
mod resume;
mod run;
mod run_lookup;
mod runs;
mod schema;
mod validate;

use std::ffi::OsString;

use clap::FromArgMatches;

use crate::args::{Cli, Command, base_command, command};

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
        #[cfg(feature = "rehearse")]
        Command::Rehearse(args) => rehearse::run(args, &cli.globals),
        Command::Runs(args) => runs::run(args, &cli.globals),
        Command::Report(args) => report::run(args, &cli.globals),
        Command::Keygen(args) => keygen::run(args),
        Command::Approve(args) => approve::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => completions::run(args, command()),
        Command::Man(args) => man::run(args, base_command()),
    };
    match outcome {
        Ok(()) => exit_code::SUCCESS,
        Err(error) => {
            error.print();
            error.code()
        }
    }
}

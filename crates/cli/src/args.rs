//! The command line as clap defines it: the global options and one subcommand per file.

use clap::{Parser, Subcommand};

use crate::globals::Globals;
#[cfg(feature = "rehearse")]
use crate::rehearse;
use crate::{
    approve, check, completions, init, keygen, man, manual, report, resume, run, runs, schema,
    validate,
};

/// Declarative, journaled HSM master-key changes for openCryptoki EP11 tokens on IBM Z.
#[derive(Debug, Parser)]
#[command(name = "mkplan", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub globals: Globals,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    Validate(validate::Args),
    Check(check::Args),
    Run(run::Args),
    Resume(resume::Args),
    #[cfg(feature = "rehearse")]
    Rehearse(rehearse::Args),
    Runs(runs::Args),
    Report(report::Args),
    Keygen(keygen::Args),
    Approve(approve::Args),
    Schema(schema::Args),
    Completions(completions::Args),
    Man(man::Args),
}

/// The clap command as `--help` shows it: each command's exit status and examples after
/// its options.
pub fn command() -> clap::Command {
    manual::decorate(base_command())
}

/// The clap command without the exit status and examples, which the man pages render as
/// sections of their own.
pub fn base_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

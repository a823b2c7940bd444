//! `mkplan init`'s command line.

use std::path::PathBuf;

use clap::ValueEnum;

/// Write a plan from what the host has: tokens, APQNs, WKVPs, services, a backup directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the plan to PLAN (never over an existing file) instead of stdout.
    #[arg(short, long, value_name = "PLAN", conflicts_with = "check")]
    pub(super) output: Option<PathBuf>,
    /// Compare an existing plan with the host instead: exit 3 and one line per disagreement.
    #[arg(long, value_name = "PLAN")]
    pub(super) check: Option<PathBuf>,
    /// The procedure [default: offline; the header says which the release suggests].
    #[arg(long, value_enum)]
    pub(super) procedure: Option<ProcedureArg>,
    /// A token by `tokname` or store directory name (repeatable).
    #[arg(long = "token", value_name = "NAME")]
    pub(super) tokens: Vec<String>,
    /// A token by slot number (repeatable).
    #[arg(long = "slot", value_name = "N")]
    pub(super) slots: Vec<u16>,
    /// The backup directory [default: a conventional one that is writable, has room and is
    /// on another file system than the store if one is].
    #[arg(long, value_name = "DIR")]
    pub(super) backup_dir: Option<PathBuf>,
    /// The change ticket [default: UNSET, marked to fill in].
    #[arg(long)]
    pub(super) ticket: Option<String>,
    /// One line on the change.
    #[arg(long)]
    pub(super) summary: Option<String>,
    /// Who may approve the checkpoints (repeatable).
    #[arg(long = "approver", value_name = "NAME")]
    pub(super) approvers: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ProcedureArg {
    Offline,
    Concurrent,
}

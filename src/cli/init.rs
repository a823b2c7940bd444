//! `mkplan init`: a plan written from what the host has (`-o PLAN`, or stdout), or
//! `--check PLAN`: where an existing plan and the host disagree now. Reading is in
//! `host::inventory`, deciding and writing in `plan::init`; this parses and maps outcomes.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::cli::common::{Globals, load_for_execution};
use crate::exit_code;
use crate::host::HostRoot;
use crate::host::inventory::{self, CgroupUnits, Sources, UnitOf};
use crate::plan::diagnostic::{Severity, escape_for_terminal};
use crate::plan::init::{self, ChangeRecord, Choice, InitError, Procedure};
use crate::plan::source::SourceFile;

/// Write a plan from what the host has: tokens, APQNs, WKVPs, services, a backup directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the plan to PLAN (never over an existing file) instead of stdout.
    #[arg(short, long, value_name = "PLAN", conflicts_with = "check")]
    output: Option<PathBuf>,
    /// Compare an existing plan with the host instead: exit 3 and one line per disagreement.
    #[arg(long, value_name = "PLAN")]
    check: Option<PathBuf>,
    /// The procedure [default: offline; the header says which the release suggests].
    #[arg(long, value_enum)]
    procedure: Option<ProcedureArg>,
    /// A token by `tokname` or store directory name (repeatable).
    #[arg(long = "token", value_name = "NAME")]
    tokens: Vec<String>,
    /// A token by slot number (repeatable).
    #[arg(long = "slot", value_name = "N")]
    slots: Vec<u16>,
    /// The backup directory [default: a conventional one that is writable, has room and is
    /// on another file system than the store if one is].
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// The change ticket [default: UNSET, marked to fill in].
    #[arg(long)]
    ticket: Option<String>,
    /// One line on the change.
    #[arg(long)]
    summary: Option<String>,
    /// Who may approve the checkpoints (repeatable).
    #[arg(long = "approver", value_name = "NAME")]
    approvers: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProcedureArg {
    Offline,
    Concurrent,
}

/// Why nothing was written; one exhaustive match maps it to the exit code.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Host(String),
    #[error("{0:#}")]
    Io(#[from] anyhow::Error),
}

impl From<InitError> for Refusal {
    fn from(e: InitError) -> Self {
        match e {
            InitError::Usage(m) => Self::Usage(m),
            InitError::Host(_) => Self::Host(e.to_string()),
        }
    }
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    let refusal = match init(args, globals) {
        Ok(code) => return Ok(code),
        Err(refusal) => refusal,
    };
    for line in refusal.to_string().lines() {
        eprintln!("mkplan: error: {}", escape_for_terminal(line));
    }
    Ok(match refusal {
        Refusal::Usage(_) => exit_code::INVALID,
        Refusal::Host(_) => exit_code::PRECONDITION,
        Refusal::Io(_) => exit_code::FAILURE,
    })
}

fn init(args: Args, globals: &Globals) -> Result<i32, Refusal> {
    if let Some(dir) = args.backup_dir.as_ref().filter(|d| !d.is_absolute()) {
        return Err(Refusal::Usage(format!(
            "--backup-dir `{}` must be absolute",
            dir.display()
        )));
    }
    if let Some(path) = args
        .output
        .as_ref()
        .filter(|p| p.symlink_metadata().is_ok())
    {
        return Err(Refusal::Usage(format!(
            "`{}` exists; init never overwrites a plan (name a new file, or compare with `--check`)",
            path.display()
        )));
    }
    let root = HostRoot::new(globals.root.clone().unwrap_or_else(|| PathBuf::from("/")));
    let proc_dir = Path::new("/proc");
    // The simulated host's processes cannot be put in cgroups: the simulator says (never
    // for `/`: a simulated host is never the real root).
    let simulated = root.dir() != Path::new("/") && crate::sim::is_simulated_host(root.dir());
    let units: Box<dyn UnitOf> = match simulated {
        true => Box::new(crate::sim::SimUnits::new(root.dir())),
        false => Box::new(CgroupUnits {
            proc_dir: proc_dir.to_path_buf(),
        }),
    };
    let sources = Sources {
        root: &root,
        proc_dir,
        units: units.as_ref(),
        backup_dirs: args.backup_dir.as_slice(),
    };
    let inventory = inventory::read(&sources).map_err(|e| Refusal::Host(e.to_string()))?;
    if let Some(plan) = &args.check {
        return Ok(check(plan, &inventory));
    }
    let procedure = args.procedure.map(|p| match p {
        ProcedureArg::Offline => Procedure::Offline,
        ProcedureArg::Concurrent => Procedure::Concurrent,
    });
    let choice = Choice {
        procedure,
        tokens: args.tokens,
        slots: args.slots,
    };
    let draft = init::draft(&inventory, &choice)?;
    let change = ChangeRecord {
        ticket: args.ticket,
        summary: args.summary,
        approvers: args.approvers,
    };
    let text = init::render(&inventory, &draft, &change);
    let name = args.output.clone().unwrap_or_else(|| "(stdout)".into());
    let to_fill = crate::plan::load(SourceFile::new(&name, text.clone()))
        .diagnostics
        .count(Severity::Error);
    match &args.output {
        Some(path) => write_new(path, &text)?,
        None => print!("{text}"),
    }
    let next = match to_fill {
        0 => "it validates; review it, then `mkplan rehearse` and `mkplan check` it".to_owned(),
        n => format!("{n} value(s) to fill in (marked FILL IN; `mkplan validate` shows where)"),
    };
    eprintln!("init: wrote {}: {next}", name.display());
    Ok(exit_code::SUCCESS)
}

/// `--check`: the plan must be valid; each disagreement with the host is one line.
fn check(plan: &Path, inventory: &init::Inventory) -> i32 {
    let Some(loaded) = load_for_execution(plan) else {
        return exit_code::INVALID;
    };
    let found = init::drift(&loaded.plan, inventory);
    for line in &found {
        println!("drift: {}", escape_for_terminal(line));
    }
    let (plan, at) = (plan.display(), &inventory.read_at);
    if found.is_empty() {
        println!("init --check: `{plan}` matches the host (read at {at})");
        exit_code::SUCCESS
    } else {
        eprintln!(
            "init --check: `{plan}` disagrees with the host in {} place(s)",
            found.len()
        );
        exit_code::PRECONDITION
    }
}

/// A new file (mode 0644: a plan is no secret, and only its owner may change it).
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

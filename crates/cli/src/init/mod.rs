//! `mkplan init`: a plan written from what the host has (`-o PLAN`, or stdout), or
//! `--check PLAN`: where an existing plan and the host disagree now. Reading is in
//! `host::inventory`, deciding and writing in `plan::init`; this parses and maps outcomes.

mod args;
mod output;

pub use args::Args;

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::globals::Globals;
use args::ProcedureArg;
use mkplan_engine::ports::root::HostRoot;
use mkplan_host::inventory::{self, CgroupUnits, Sources, UnitOf};
use mkplan_plan::diagnostic::{Severity, escape_for_terminal};
use mkplan_plan::init::{self, ChangeRecord, Choice, InitError, Procedure};
use mkplan_plan::source::SourceFile;

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

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let refusal = match init(args, globals) {
        Ok(result) => return result,
        Err(refusal) => refusal,
    };
    for line in refusal.to_string().lines() {
        eprintln!("mkplan: error: {}", escape_for_terminal(line));
    }
    Err(match refusal {
        Refusal::Usage(_) => CliError::InvalidSaid,
        Refusal::Host(_) => CliError::PreconditionsFail,
        Refusal::Io(_) => CliError::FailedSaid,
    })
}

/// What `init` did (`--check`'s verdict is the inner result), or why it wrote nothing.
fn init(args: Args, globals: &Globals) -> Result<Result<(), CliError>, Refusal> {
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
    let units = units_of(&root, proc_dir);
    let sources = Sources {
        root: &root,
        proc_dir,
        units: units.as_ref(),
        backup_dirs: args.backup_dir.as_slice(),
    };
    let inventory = inventory::read(&sources).map_err(|e| Refusal::Host(e.to_string()))?;
    if let Some(plan) = &args.check {
        return Ok(output::check(plan, &inventory));
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
    let to_fill = mkplan_plan::load(SourceFile::new(&name, text.clone()))
        .diagnostics
        .count(Severity::Error);
    match &args.output {
        Some(path) => output::write_new(path, &text)?,
        None => print!("{text}"),
    }
    let next = match to_fill {
        0 => "it validates; review it, then `mkplan rehearse` and `mkplan check` it".to_owned(),
        n => format!("{n} value(s) to fill in (marked FILL IN; `mkplan validate` shows where)"),
    };
    eprintln!("init: wrote {}: {next}", name.display());
    Ok(Ok(()))
}

/// Who tells which unit a process runs in: `/proc/<pid>/cgroup`, or, on a simulated host
/// (whose processes cannot be put in cgroups; never `/`), the simulator.
fn units_of(root: &HostRoot, proc_dir: &Path) -> Box<dyn UnitOf> {
    #[cfg(feature = "rehearse")]
    if root.dir() != Path::new("/") && mkplan_sim::is_simulated_host(root.dir()) {
        return Box::new(mkplan_sim::SimUnits::new(root.dir()));
    }
    let _ = root;
    Box::new(CgroupUnits {
        proc_dir: proc_dir.to_path_buf(),
    })
}

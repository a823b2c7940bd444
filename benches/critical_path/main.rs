//! `critical_path`: mkplan's time on the critical path of a master-key change, measured side
//! by side with what an operator would otherwise script (issue 7). `scripts/bench` builds
//! and runs it; `BENCHMARKS.md` is rendered from its results.
//!
//! The `backup` and `restore` subcommands are the mkplan side of benchmarks 1–3: one
//! operation per process, through the same library calls as `mkplan run`'s steps. `run`
//! drives everything and writes the raw results; `render` turns them into BENCHMARKS.md.

mod archive_suite;
mod findings;
mod findings_overhead;
mod findings_restore;
mod machine;
mod measure;
mod overhead;
mod rehearse_suite;
mod render;
mod results;
mod scale;
mod scale_findings;
mod scale_section;
mod sections;
mod store;
mod summary;
mod trash;
mod validate_suite;
mod window;
mod worker;

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::archive_suite::Env;
use crate::results::{RESULTS_VERSION, Results, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "critical_path",
    about = "mkplan benchmarks (run them with scripts/bench)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a token store like the benchmark's: `<PARENT>/ep11tok`.
    Generate {
        #[arg(long)]
        parent: PathBuf,
        #[arg(long)]
        objects: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// mkplan's verified backup of STORE, once (what `mkplan run`'s `backup` step calls).
    Backup {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        stem: String,
    },
    /// mkplan's verified atomic restore, once (what `mkplan run`'s `restore` step calls).
    Restore {
        #[arg(long)]
        archive: PathBuf,
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        run_id: String,
    },
    /// SHA-256 of FILE with the sha2 crate and the restore's buffer size: what one pass of
    /// hashing an archive costs (a context row of the restore).
    Hash {
        #[arg(long)]
        file: PathBuf,
    },
    /// Run the benchmarks and write the raw results.
    Run(Box<RunArgs>),
    /// Render BENCHMARKS.md from the raw results.
    Render {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// `scripts/bench-scale`'s samples (JSON Lines), stored into RESULTS first
        /// (replacing any it holds).
        #[arg(long)]
        scale: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The release `mkplan` binary.
    #[arg(long)]
    mkplan: PathBuf,
    #[arg(long)]
    check_jsonschema: PathBuf,
    #[arg(long)]
    plan: PathBuf,
    #[arg(long)]
    schema: PathBuf,
    /// Scratch space for stores, archives and rehearsals (removed piece by piece).
    #[arg(long)]
    work: PathBuf,
    /// Where the raw results go.
    #[arg(long)]
    out: PathBuf,
    /// Fewer runs and the 10,000-object store only.
    #[arg(long)]
    quick: bool,
    /// Rounds of each backup and restore command at 100,000 objects (default 5; quick 3);
    /// stores of up to 20,000 objects get three times as many.
    #[arg(long)]
    runs: Option<usize>,
    /// Store sizes in objects (default 10000,100000; quick 10000).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Runs of each validation command (default 30; quick 10).
    #[arg(long)]
    validate_runs: Option<usize>,
    /// Rehearsals of each kind (default 5; quick 2).
    #[arg(long)]
    rehearse_runs: Option<usize>,
    /// Keys in the rehearsal's simulated store.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Leave out the restore context commands (`tar -xzf` + fsync / syncfs).
    #[arg(long)]
    no_context: bool,
    /// Which suites: archive, validate, rehearse.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "archive,validate,rehearse"
    )]
    only: Vec<String>,
    #[arg(long, default_value_t = 0x6d6b_706c_616e)]
    seed: u64,
    /// `git describe --always --dirty` of the tree the binaries were built from.
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// The last commit that changed `crates/`, `-dirty` if `crates/` has changes on top.
    #[arg(long, default_value = "unknown")]
    src_commit: String,
}

fn run(a: RunArgs) -> Result<()> {
    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    fs::create_dir_all(&a.work).with_context(|| format!("create `{}`", a.work.display()))?;
    let work = fs::canonicalize(&a.work)?;
    let mut machine = machine::describe(&work, &a.mkplan, &a.check_jsonschema);
    let (runs, sizes, validate_runs, rehearse_runs) = if a.quick {
        (3, vec![10_000], 10, 2)
    } else {
        (5, vec![10_000, 100_000], 30, 5)
    };
    let settings = Settings {
        sizes: a.sizes.unwrap_or(sizes),
        archive_runs: a.runs.unwrap_or(runs),
        validate_runs: a.validate_runs.unwrap_or(validate_runs),
        rehearse_runs: a.rehearse_runs.unwrap_or(rehearse_runs),
        rehearse_keys: a.keys,
        seed: a.seed,
        commit: a.commit.clone(),
        src_commit: a.src_commit.clone(),
        work_dir: work.display().to_string(),
        plan: a.plan.display().to_string(),
    };
    // The trash (what an earlier run or `scripts/bench-scale archive` left) is emptied
    // before the room is counted.
    let trash = trash::Trash::open(&work)?;
    check_room(&work, &settings)?;
    let env = Env {
        bench: std::env::current_exe().context("locate this binary")?,
        work: work.clone(),
        runs: settings.archive_runs,
        seed: a.seed,
        context: !a.no_context,
        trash,
    };
    let wants = |s: &str| a.only.iter().any(|o| o == s);
    let mut archive = Vec::new();
    if wants("archive") {
        for &objects in &settings.sizes {
            archive.push(archive_suite::run_size(&env, objects)?);
        }
    }
    let validate = if wants("validate") {
        Some(validate_suite::run(
            &a.mkplan,
            &a.check_jsonschema,
            &a.schema,
            &a.plan,
            settings.validate_runs,
        )?)
    } else {
        None
    };
    let rehearse = if wants("rehearse") {
        Some(rehearse_suite::run(
            &env.trash,
            &a.mkplan,
            &a.plan,
            &work,
            a.keys,
            settings.rehearse_runs,
        )?)
    } else {
        None
    };
    machine.load_end = machine::load();
    env.trash.empty()?;
    let results = Results {
        version: RESULTS_VERSION,
        mode: if a.quick { "quick" } else { "full" }.to_owned(),
        started: started.to_string(),
        finished: jiff::Timestamp::now().to_string(),
        total_seconds: clock.elapsed().as_secs_f64(),
        machine,
        settings,
        archive,
        validate,
        rehearse,
        scale: Vec::new(),
    };
    if let Some(dir) = a.out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create `{}`", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&results)?;
    fs::write(&a.out, text + "\n").with_context(|| format!("write `{}`", a.out.display()))?;
    eprintln!(
        "bench: results in `{}` ({:.0} s)",
        a.out.display(),
        results.total_seconds
    );
    Ok(())
}

/// Outputs stay in the trash until the end (see `trash.rs`): refuse to start without room
/// for them. About 4.5 KiB on disk per file (one block and an inode), per copy of a store.
fn check_room(work: &std::path::Path, s: &Settings) -> Result<()> {
    const PER_FILE: u64 = 4608;
    let copies = |n: usize| {
        (2 * archive_suite::rounds_for(n, s.archive_runs) + 2 * archive_suite::CONTEXT_RUNS + 4)
            as u64
    };
    let stores: u64 = s
        .sizes
        .iter()
        .map(|n| *n as u64 * PER_FILE * copies(*n))
        .sum();
    let rehearsals = (2 * s.rehearse_runs + 1) as u64 * s.rehearse_keys as u64 * 3 * PER_FILE;
    let needed = stores + rehearsals + (1 << 30);
    let st = rustix::fs::statvfs(work).context("statvfs of the work directory")?;
    let free = st.f_bavail * st.f_frsize;
    if free < needed {
        anyhow::bail!(
            "`{}` has {} MiB free; this run needs about {} MiB (outputs are kept until the end)",
            work.display(),
            free >> 20,
            needed >> 20
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` runs every bench target with `--bench`; this one needs the tools and
    // release binaries that `scripts/bench` sets up, so it only points there.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().all(|a| a == "--bench") {
        eprintln!("critical_path: run the benchmarks with `scripts/bench` (see BENCHMARKS.md)");
        return Ok(());
    }
    match Cli::parse().command {
        Command::Generate {
            parent,
            objects,
            seed,
        } => {
            fs::create_dir_all(&parent)?;
            let made = store::generate(&parent, objects, seed)?;
            println!("{}", serde_json::to_string(&made)?);
            Ok(())
        }
        Command::Backup { store, dir, stem } => {
            worker::backup(&store::absolute(&store)?, &dir, &stem)
        }
        Command::Restore {
            archive,
            manifest,
            store,
            run_id,
        } => worker::restore(&archive, &manifest, &store::absolute(&store)?, &run_id),
        Command::Hash { file } => worker::hash(&file),
        Command::Run(args) => run(*args),
        Command::Render {
            results,
            out,
            scale,
        } => render::render_file(&results, &scale, &out),
    }
}

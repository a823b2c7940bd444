//! Benchmarks 1–3: backup with verification and restore, mkplan against the shell an operator
//! would write, at one store size; peak RSS comes from the same runs (each mkplan run is a
//! process that does just that one operation).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::measure::{self, Timed, arg, rounds, rounds_in, shown, timed};
use crate::results::{ArchiveSize, Pair, Series};
use crate::store::{self, STORE_NAME, remove, sync_fs};
use crate::trash::Trash;

/// Rounds in which the restore's context commands run (they explain, they are not
/// targets, and per-entry fsync is the slowest command here).
pub const CONTEXT_RUNS: usize = 3;

/// Stores up to this size get [`SMALL_STORE_FACTOR`] times the rounds: their runs are short,
/// so other users' bursts (their deletions slow file creation here, see `trash.rs`) land on
/// a larger share of them, and more rounds steady the median for little time.
pub const SMALL_STORE: usize = 20_000;
pub const SMALL_STORE_FACTOR: usize = 3;

/// Rounds of backup and restore for a store of `objects`, given the rounds for a large one.
pub fn rounds_for(objects: usize, runs: usize) -> usize {
    if objects <= SMALL_STORE {
        runs * SMALL_STORE_FACTOR
    } else {
        runs
    }
}

/// What every suite needs to know.
pub struct Env {
    /// This bench binary (its `backup` and `restore` subcommands are the mkplan side).
    pub bench: PathBuf,
    pub work: PathBuf,
    /// Rounds for a large store (see [`rounds_for`]).
    pub runs: usize,
    pub seed: u64,
    /// Also time the context commands that explain a restore gap.
    pub context: bool,
    pub trash: Trash,
}

/// Paths must go into `bash -c` strings unquoted, so they must not need quoting.
fn plain(path: &Path) -> Result<String> {
    let text = arg(path);
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        bail!("work path `{text}` has characters that would need shell quoting");
    }
    Ok(text)
}

fn bash(script: String) -> Vec<String> {
    vec!["bash".to_owned(), "-c".to_owned(), script]
}

/// Adds one mkplan worker run to `series`; returns the worker's JSON line.
fn record_worker(series: &mut Series, t: &Timed) -> Result<Value> {
    let line: Value = serde_json::from_str(t.stdout.trim())
        .with_context(|| format!("worker output `{}`", t.stdout.trim()))?;
    series.add(t);
    series.in_process_ms.extend(line["in_process_ms"].as_f64());
    series.vm_hwm_kib.extend(line["vm_hwm_kib"].as_u64());
    Ok(line)
}

/// Where one store size's files live.
struct Layout {
    /// `<work>/n<objects>`.
    dir: PathBuf,
    /// The store's parent (`<dir>/store`).
    parent: PathBuf,
    /// `<parent>/ep11tok`.
    store: PathBuf,
    /// GNU time's output.
    scratch: PathBuf,
    objects: usize,
}

pub fn run_size(env: &Env, objects: usize) -> Result<ArchiveSize> {
    let dir = env.work.join(format!("n{objects}"));
    env.trash.put(&dir)?;
    let parent = dir.join("store");
    fs::create_dir_all(&parent).with_context(|| format!("create `{}`", parent.display()))?;
    eprintln!("bench: generating a store of {objects} objects");
    let generated = store::generate(&parent, objects, env.seed ^ objects as u64)?;
    eprintln!(
        "bench: {objects} objects: {} files, {} bytes, made in {:.1} s",
        generated.files, generated.bytes, generated.seconds
    );
    let l = Layout {
        scratch: measure::scratch(&dir),
        store: generated.store.clone(),
        dir,
        parent,
        objects,
    };
    let runs = rounds_for(objects, env.runs);
    let (backup, archive_bytes, shell_archive_bytes) = backups(env, &l, runs)?;
    let restore = restores(env, &l, runs)?;
    env.trash.put(&l.dir)?;
    sync_fs(&env.work)?;
    Ok(ArchiveSize {
        objects,
        rounds: runs,
        files: generated.files,
        bytes: generated.bytes,
        generate_seconds: generated.seconds,
        archive_bytes,
        shell_archive_bytes,
        backup,
        restore,
    })
}

/// The bench binary's `backup` of the store into `dir`.
fn backup_argv(env: &Env, l: &Layout, dir: &Path, stem: &str) -> Vec<String> {
    [
        arg(&env.bench),
        "backup".into(),
        "--store".into(),
        arg(&l.store),
        "--dir".into(),
        arg(dir),
        "--stem".into(),
        stem.into(),
    ]
    .to_vec()
}

/// Benchmark 1: returns the pair and the two archives' sizes.
fn backups(env: &Env, l: &Layout, runs: usize) -> Result<(Pair, u64, u64)> {
    let (dir, scratch) = (&l.dir, &l.scratch);
    let mk_out = dir.join("mkplan-backups");
    let sh_out = dir.join("shell-backups");
    fs::create_dir_all(&sh_out).with_context(|| format!("create `{}`", sh_out.display()))?;
    let shell_archive = sh_out.join(format!("{STORE_NAME}.tar.gz"));
    let mk_argv = |stem: &str| backup_argv(env, l, &mk_out, stem);
    let x = plain(&shell_archive)?;
    let sh_argv = bash(format!(
        "tar -czf {x} -C {} {STORE_NAME} && sha256sum {x} && tar -tzvf {x} >/dev/null",
        plain(&l.parent)?
    ));
    let mut mk = Series::new("mkplan backup", shown(&mk_argv("bench-N")));
    let mut sh = Series::new("shell backup", shown(&sh_argv));
    let mut archive_bytes = 0;
    let mut shell_archive_bytes = 0;
    // An archive and a manifest are a handful of inodes: deleting them is harmless.
    let clean = || -> Result<()> {
        remove(&mk_out)?;
        remove(&shell_archive)?;
        sync_fs(dir)
    };
    eprintln!("bench: {} objects: backup, warm-up", l.objects);
    timed(&mk_argv("warmup"), scratch)?;
    timed(&sh_argv, scratch)?;
    clean()?;
    rounds(
        runs,
        &mut [
            &mut |i| {
                let t = timed(&mk_argv(&format!("bench-{i}")), scratch)?;
                let line = record_worker(&mut mk, &t)?;
                archive_bytes = line["record"]["archive_bytes"].as_u64().unwrap_or(0);
                eprintln!("bench:   mkplan backup  {:9.1} ms", t.wall_ms);
                clean()
            },
            &mut |_| {
                let t = timed(&sh_argv, scratch)?;
                sh.add(&t);
                shell_archive_bytes = fs::metadata(&shell_archive).map_or(0, |m| m.len());
                eprintln!("bench:   shell backup   {:9.1} ms", t.wall_ms);
                clean()
            },
        ],
    )?;
    Ok((
        Pair::new(mk, sh, Vec::new()),
        archive_bytes,
        shell_archive_bytes,
    ))
}

/// Benchmark 2, from one verified backup made by mkplan: both sides read the same archive.
fn restores(env: &Env, l: &Layout, runs: usize) -> Result<Pair> {
    let (dir, scratch) = (&l.dir, &l.scratch);
    let made = timed(
        &backup_argv(env, l, &dir.join("restore-source"), "source"),
        scratch,
    )?;
    let made: Value = serde_json::from_str(made.stdout.trim()).context("worker output")?;
    let archive = PathBuf::from(made["record"]["archive"].as_str().unwrap_or_default());
    let manifest = PathBuf::from(made["record"]["manifest"].as_str().unwrap_or_default());
    let mk_argv = |run_id: &str| -> Vec<String> {
        [
            arg(&env.bench),
            "restore".into(),
            "--archive".into(),
            arg(&archive),
            "--manifest".into(),
            arg(&manifest),
            "--store".into(),
            arg(&l.store),
            "--run-id".into(),
            run_id.into(),
        ]
        .to_vec()
    };
    let fresh = dir.join("shell-restore");
    let (a, d) = (plain(&archive)?, plain(&fresh)?);
    let sh_argv = bash(format!("mkdir {d} && tar -xzf {a} -C {d}"));
    let fsync_argv = bash(format!(
        "mkdir {d} && tar -xzf {a} -C {d} && find {d} -exec sync {{}} +"
    ));
    let syncfs_argv = bash(format!("mkdir {d} && tar -xzf {a} -C {d} && sync -f {d}"));
    let hash_argv = vec![
        arg(&env.bench),
        "hash".into(),
        "--file".into(),
        arg(&archive),
    ];
    let mut mk = Series::new("mkplan restore", shown(&mk_argv("bench-N")));
    let mut sh = Series::new("tar -xzf", shown(&sh_argv));
    let mut per_file = Series::new("tar -xzf, then fsync every entry", shown(&fsync_argv));
    let mut one_sync = Series::new("tar -xzf, then one syncfs", shown(&syncfs_argv));
    let mut hash = Series::new("sha256 of the archive (sha2 crate)", shown(&hash_argv));
    // The restored store takes the store's place (same content, modes, owners and mtimes);
    // the one it replaced goes to the trash, so every run starts from the same state.
    let replaced = |run_id: &str| l.parent.join(format!("{STORE_NAME}.replaced-{run_id}"));
    let clean_mk = |run_id: &str| -> Result<()> {
        env.trash.put(&replaced(run_id))?;
        sync_fs(dir)
    };
    let clean_sh = || -> Result<()> {
        env.trash.put(&fresh)?;
        sync_fs(dir)
    };
    eprintln!("bench: {} objects: restore, warm-up", l.objects);
    timed(&mk_argv("warmup"), scratch)?;
    clean_mk("warmup")?;
    timed(&sh_argv, scratch)?;
    clean_sh()?;
    let shell_side = |series: &mut Series, argv: &[String]| -> Result<()> {
        let t = timed(argv, scratch)?;
        series.add(&t);
        eprintln!("bench:   {:<32} {:9.1} ms", series.name, t.wall_ms);
        clean_sh()
    };
    let mut mk_side = |i: usize| -> Result<()> {
        let run_id = format!("bench-{i}");
        let t = timed(&mk_argv(&run_id), scratch)?;
        record_worker(&mut mk, &t)?;
        eprintln!("bench:   {:<32} {:9.1} ms", "mkplan restore", t.wall_ms);
        clean_mk(&run_id)
    };
    // The context commands run in the first rounds only; the rest rotate mkplan and tar.
    let with_context = if env.context {
        CONTEXT_RUNS.min(runs)
    } else {
        0
    };
    rounds_in(
        0..with_context,
        &mut [
            &mut mk_side,
            &mut |_| shell_side(&mut sh, &sh_argv),
            &mut |_| shell_side(&mut per_file, &fsync_argv),
            &mut |_| shell_side(&mut one_sync, &syncfs_argv),
            &mut |_| record_worker(&mut hash, &timed(&hash_argv, scratch)?).map(drop),
        ],
    )?;
    rounds_in(
        with_context..runs,
        &mut [&mut mk_side, &mut |_| shell_side(&mut sh, &sh_argv)],
    )?;
    let context = match env.context {
        true => vec![per_file, one_sync, hash],
        false => Vec::new(),
    };
    Ok(Pair::new(mk, sh, context))
}

//! Benchmark 5: executor overhead. `mkplan rehearse` runs the real engine and steps against a
//! simulated host; each run's downtime window is taken apart by [`crate::window`]. Two kinds
//! of run alternate: one that succeeds, and one whose migration fails half-way so that the
//! rescue's restore runs inside the window too.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::measure::Stats;
use crate::measure::{arg, rounds, shown, timed_direct_codes};
use crate::results::{RehearsalRun, Rehearse, RehearseVariant};
use crate::store::{remove, sync_fs};
use crate::trash::Trash;
use crate::window::{self, PARTS};

struct Variant {
    name: &'static str,
    faults: Vec<String>,
    outcome: &'static str,
    runs: Vec<RehearsalRun>,
}

fn argv(
    mkplan: &Path,
    plan: &Path,
    keys: usize,
    v: &Variant,
    root: &Path,
    state: &Path,
) -> Vec<String> {
    let mut argv = vec![
        arg(mkplan),
        "rehearse".into(),
        arg(plan),
        "--keys".into(),
        keys.to_string(),
    ];
    for f in &v.faults {
        argv.extend(["--fault".into(), f.clone()]);
    }
    argv.extend(["--root".into(), arg(root), "--state-dir".into(), arg(state)]);
    argv
}

fn once(
    trash: &Trash,
    mkplan: &Path,
    plan: &Path,
    keys: usize,
    v: &Variant,
    base: &Path,
    tag: &str,
) -> Result<RehearsalRun> {
    let root = base.join(format!("root-{}-{tag}", v.name));
    let state = base.join(format!("state-{}-{tag}", v.name));
    trash.put(&root)?;
    trash.put(&state)?;
    // A rescued rehearsal exits 1 (FAILURE); the outcome is checked from the report.
    let t = timed_direct_codes(&argv(mkplan, plan, keys, v, &root, &state), &[0, 1])?;
    let run = window::analyse(&state, t.wall_ms, t.load_1m)?;
    if run.outcome != v.outcome {
        bail!(
            "rehearsal `{}` ended `{}`, expected `{}` (state kept in `{}`)",
            v.name,
            run.outcome,
            v.outcome,
            state.display()
        );
    }
    trash.put(&root)?;
    sync_fs(base)?;
    Ok(run)
}

/// Appends a 200-byte line to a file in `dir` and `fdatasync`s it, `n` times: what one
/// journal event costs at least, on this disk, at this moment.
fn fdatasync_latency(dir: &Path, n: usize) -> Result<Vec<f64>> {
    let path = dir.join("fdatasync-probe.jsonl");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("create `{}`", path.display()))?;
    let mut line = vec![b'x'; 199];
    line.push(b'\n');
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        file.write_all(&line)?;
        file.sync_data()?;
        out.push(started.elapsed().as_secs_f64() * 1e3);
    }
    remove(&path)?;
    Ok(out)
}

pub fn run(
    trash: &Trash,
    mkplan: &Path,
    plan: &Path,
    work: &Path,
    keys: usize,
    runs: usize,
) -> Result<Rehearse> {
    let base = work.join("rehearse");
    trash.put(&base)?;
    fs::create_dir_all(&base).with_context(|| format!("create `{}`", base.display()))?;
    let mut ok = Variant {
        name: "successful",
        faults: Vec::new(),
        outcome: "succeeded",
        runs: Vec::new(),
    };
    let mut rescued = Variant {
        name: "rescued",
        faults: vec![format!("fail-at-key={}", keys / 2)],
        outcome: "rescued",
        runs: Vec::new(),
    };
    eprintln!(
        "bench: rehearsal of {} with {keys} keys, warm-up",
        plan.display()
    );
    once(trash, mkplan, plan, keys, &ok, &base, "warmup")?;
    let side = |v: &mut Variant, i: usize| -> Result<()> {
        let run = once(trash, mkplan, plan, keys, v, &base, &i.to_string())?;
        eprintln!(
            "bench:   rehearsal {:<9} window {:7.0} ms, overhead {:5.1} %",
            v.name, run.window_ms, run.overhead_pct
        );
        v.runs.push(run);
        Ok(())
    };
    {
        let (ok, rescued) = (&mut ok, &mut rescued);
        rounds(runs, &mut [&mut |i| side(ok, i), &mut |i| side(rescued, i)])?;
    }
    eprintln!("bench: fdatasync latency of a journal-sized append");
    let fdatasync_ms = fdatasync_latency(&base, 100)?;
    let variants = [ok, rescued]
        .into_iter()
        .map(|v| {
            let shown_argv = argv(
                mkplan,
                plan,
                keys,
                &v,
                Path::new("ROOT"),
                Path::new("STATE"),
            );
            summarise(v.name, shown(&shown_argv), keys, v.runs)
        })
        .collect();
    Ok(Rehearse {
        variants,
        fdatasync: Stats::of(&fdatasync_ms),
        fdatasync_ms,
    })
}

fn summarise(name: &str, command: String, keys: usize, runs: Vec<RehearsalRun>) -> RehearseVariant {
    let of = |f: &dyn Fn(&RehearsalRun) -> f64| Stats::of(&runs.iter().map(f).collect::<Vec<_>>());
    let parts = PARTS
        .iter()
        .filter_map(|(id, _)| {
            let samples: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.parts.iter().find(|(p, _)| p == id).map(|(_, ms)| *ms))
                .collect();
            Stats::of(&samples).map(|s| ((*id).to_owned(), s))
        })
        .collect();
    RehearseVariant {
        name: name.to_owned(),
        command,
        keys,
        parts,
        window_ms: of(&|r| r.window_ms),
        overhead_pct: of(&|r| r.overhead_pct),
        between_steps_pct: of(&|r| r.between_steps_pct),
        process_ms: of(&|r| r.process_ms),
        runs,
    }
}

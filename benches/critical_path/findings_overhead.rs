//! The executor-overhead finding: what fills the part of the downtime window that is not the
//! tool, the archive I/O, the units or the operator, part by part, as measured.

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::render::{OVERHEAD_PCT, bytes, ms, thousands};
use crate::results::RehearseVariant;

/// Median `duration_ms` of the step of `kind` over the runs.
fn step_median(v: &RehearseVariant, kind: &str) -> Option<f64> {
    let samples: Vec<f64> = v
        .runs
        .iter()
        .filter_map(|r| {
            r.steps
                .iter()
                .find(|(label, _)| label.ends_with(&format!(" {kind}")))
                .map(|(_, ms)| *ms)
        })
        .collect();
    Stats::of(&samples).map(|s| s.median)
}

fn part(v: &RehearseVariant, id: &str) -> f64 {
    v.parts
        .iter()
        .find(|(p, _)| p == id)
        .map_or(0.0, |(_, s)| s.median)
}

pub fn write(
    o: &mut String,
    v: &RehearseVariant,
    rescued: Option<&RehearseVariant>,
    fdatasync: Option<Stats>,
) {
    let (Some(pct), Some(w)) = (v.overhead_pct, v.window_ms) else {
        return;
    };
    let window = w.median;
    let share = |ms: f64| ms / window * 100.0;
    let probe = part(v, "probe_keys");
    let between = part(v, "between_steps");
    let biggest = v
        .runs
        .iter()
        .filter_map(|r| r.gaps.first())
        .map(|g| g.ms)
        .collect::<Vec<_>>();
    let gap = Stats::of(&biggest).map_or(0.0, |s| s.median);
    let line = v
        .runs
        .first()
        .and_then(|r| r.gaps.first())
        .map(|g| (g.after.clone(), g.journal_line_bytes));
    let head = if pct.median <= OVERHEAD_PCT {
        format!("**Executor overhead: target met** ({:.1} %).", pct.median)
    } else {
        format!(
            "**Executor overhead: target missed** ({:.1} % of the window in the successful \
             rehearsal, target ≤ {OVERHEAD_PCT} %: {:.1} points over).",
            pct.median,
            pct.median - OVERHEAD_PCT
        )
    };
    if probe > 0.0 {
        let _ = write!(
            o,
            "{head} Of the {} window, {} ({:.1} %) is a `probe_keys` step inside it, and {} \
             ({:.1} %) is between steps.",
            ms(window),
            ms(probe),
            share(probe),
            ms(between),
            share(between)
        );
    } else {
        let _ = write!(
            o,
            "{head} `plans/ep11-offline.yaml` probes the keys before `stop` and after \
             `start`, outside the window; of the {} window, {} ({:.1} %) is between steps.",
            ms(window),
            ms(between),
            share(between)
        );
    }
    if let Some((after, size)) = line {
        let _ = write!(
            o,
            " The largest stretch between steps, {} (median over the runs), follows `{after}`: \
             its outcome is journaled as one {} line (the key inventory is a side file named \
             by its digest, not journal data), which `Journal::append` (`crates/engine/src/journal.rs`) serialises twice (once for the hash \
             chain, once for the line), hashes, writes and `fdatasync`s before the next step \
             may start.",
            ms(gap),
            bytes(size)
        );
    }
    let small_step = step_median(v, "set_expected_wkvp");
    let _ = write!(o, " The other stretches are smaller, and");
    match fdatasync {
        Some(f) if f.median < 1.0 => {
            let _ = write!(
                o,
                " they are not I/O (a small journal append with its `fdatasync` took {} on \
                 this disk during the run)",
                ms(f.median)
            );
        }
        Some(f) => {
            let _ = write!(
                o,
                " only partly I/O (a small journal append with its `fdatasync` took {} on \
                 this disk during the run, and a step boundary has two); the rest is CPU",
                ms(f.median)
            );
        }
        None => {
            let _ = write!(o, " mostly not I/O");
        }
    }
    let _ = write!(
        o,
        ": `Executor::step` (`crates/engine/src/executor.rs`) still clones the run state \
         before each step runs, but that state no longer holds the key inventory (counts and \
         a digest only), so the clone is small. Step times include it"
    );
    if let Some(t) = small_step {
        let _ = write!(
            o,
            ": `set_expected_wkvp`, which rewrites one small file, takes {}",
            ms(t)
        );
    }
    let _ = write!(o, ".");
    if let Some(r) = rescued.and_then(|r| r.overhead_pct) {
        let _ = write!(
            o,
            " In the rescued rehearsal, where the restore runs inside the window too, the \
             overhead is {:.1} %.",
            r.median
        );
    }
    let _ = writeln!(o, "\n");
    if pct.median <= OVERHEAD_PCT {
        return;
    }
    // Where the overhead goes, largest first: the parts that are not work.
    let mut parts: Vec<(&str, f64)> = crate::window::PARTS
        .iter()
        .filter(|(id, _)| !crate::window::WORK.contains(id))
        .map(|(id, label)| (*label, part(v, id)))
        .filter(|(_, t)| *t > 0.0)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed = parts
        .iter()
        .map(|(label, t)| format!("{label}: {} ({:.1} %)", ms(*t), share(*t)))
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(
        o,
        "Where the overhead goes (medians over the runs, share of the window): {listed}. \
         Together they are mkplan's checks around the tool: the migrate step's preflight \
         (no tool or process on the token, the backup still matching the store) and its \
         parsing of the tool's per-key output, the checkpoints' `until` checks, and a \
         journaled, fsynced event at each step boundary.\n"
    );
    let _ = writeln!(
        o,
        "The rehearsal is the worst case for this ratio: the stand-in `pkcsep11_migrate` \
         re-enciphers {} keys in {} ({:.2} ms per key) and the simulated TKE operator \
         activates at once. On a real host the tool makes an adapter round trip per key and \
         a person performs the activation inside the window, so the window is longer while \
         mkplan's own part stays the same size.\n",
        thousands(v.keys),
        ms(part(v, "tool")),
        part(v, "tool") / v.keys as f64
    );
}

//! The executor-overhead finding: what fills the part of the downtime window that is not the
//! tool, the archive I/O or the units, and what would shrink it.

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
    let _ = write!(
        o,
        "{head} Of the {} window, {} ({:.1} %) is the plan's `probe_keys` step — the \
         inventory of every key before the change, which a shell runbook does not do — and \
         {} ({:.1} %) is between steps.",
        ms(window),
        ms(probe),
        share(probe),
        ms(between),
        share(between)
    );
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
    let rest = part(v, "migrate_other") + part(v, "checkpoints") + part(v, "other_steps");
    let _ = writeln!(
        o,
        "What would close it: (1) keep bulky step data out of the hot path — journal the \
         inventory's digest and counts and write the inventory itself to its own file in \
         the run directory (fsynced, referenced by digest), serialise each journal entry \
         once and hash those bytes, and stop cloning the run state per step (share it \
         behind an `Arc`, or hand the step a view of only what it reads): that removes \
         nearly all of the between-steps time and the slowdown of later steps — overhead \
         about {:.1} % here (an estimate: today's overhead less the between-steps time); (2) the `probe_keys` before the change could run before `stop` in the \
         plan, taking it out of the window — at the price of an inventory that predates the \
         stop (a key created in between would be missed); `plans/ep11-offline.yaml` now places \
         it before, and rule `probe-outside-window` warns of one inside the window without \
         need; or it could probe on both cores. With \
         (1) and (2): about {:.1} %.\n",
        share(probe + rest),
        share(rest)
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

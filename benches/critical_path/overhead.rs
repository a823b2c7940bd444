//! Section 5 of BENCHMARKS.md: the rehearsals' downtime windows taken apart.

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::render::{OVERHEAD_PCT, bytes, ms, spread, thousands};
use crate::results::{RehearseVariant, Results};
use crate::window::{PARTS, WORK};

pub fn write(o: &mut String, r: &Results) {
    let Some(reh) = &r.rehearse else { return };
    let _ = writeln!(o, "## 5. Executor overhead in the downtime window\n");
    let _ = writeln!(
        o,
        "`mkplan rehearse` runs the real plan, engine and steps against a fresh simulated \
         host. The **window** is `report.json`'s `downtime`: the first unit stopped → the \
         last unit started. Two kinds of rehearsal alternate: a successful one, and one \
         whose `pkcsep11_migrate` stand-in fails half-way (`--fault fail-at-key=K`) so that \
         the rescue's restore runs inside the window. `ROOT` and `STATE` are fresh \
         directories per run.\n"
    );
    let _ = writeln!(o, "```console");
    for v in &reh.variants {
        let _ = writeln!(o, "{}", v.command);
    }
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "**How the window is counted.** A step's interval runs from its `step_started` to \
         its outcome event in `journal.jsonl` (millisecond time stamps); its overlap with \
         the window goes to one part, by step kind. The `migrate` step's overlap is split \
         into the tool's own run (`duration_ms` in the step's data) and the rest; a \
         `checkpoint` step's, into the simulated TKE operator's time (from \
         `checkpoint_shown` to the last `checkpoint_approved`: the stand-in for a person at \
         the TKE, who would take minutes) and the rest. **Unit \
         stop/start** is the overlap of the `stop` and `start` steps: from the first unit's \
         stop to the end of the `stop` step (the other units' stops, and the scan for \
         processes still using the token), and from the start of the `start` step to the \
         last unit's start. What lies in no step is **between steps**: the executor \
         journaling one step's outcome and the next step's start (each serialised, hashed \
         into the chain, written, `fdatasync`ed), applying them to its state, and logging. \
         **Overhead** = window − tool − archive I/O (`backup`, `restore`) − unit \
         stop/start − the simulated operator: everything mkplan does inside the window that \
         a shell runbook would not do.\n"
    );
    if let Some(f) = reh.fdatasync {
        let _ = writeln!(
            o,
            "For scale: appending a 200-byte line to a file in the work directory and \
             `fdatasync`ing it took {} (median of {}; {}–{}) during this run — the floor \
             for each journal event.\n",
            ms(f.median),
            f.n,
            ms(f.min),
            ms(f.max)
        );
    }
    for v in &reh.variants {
        variant(o, v);
    }
}

fn pct(s: Option<Stats>) -> String {
    s.map_or("—".into(), |s| {
        format!("{:.1} % [{:.1}–{:.1}]", s.median, s.min, s.max)
    })
}

fn variant(o: &mut String, v: &RehearseVariant) {
    let window = v.window_ms.map_or(f64::NAN, |w| w.median);
    let _ = writeln!(
        o,
        "### {} rehearsal ({} keys, {} runs)\n",
        capitalised(&v.name),
        thousands(v.keys),
        v.runs.len()
    );
    let _ = writeln!(
        o,
        "| part of the window | median [min–max] | share of the median window | overhead? |"
    );
    let _ = writeln!(o, "|---|---|---|---|");
    for (id, stats) in &v.parts {
        let label = PARTS
            .iter()
            .find(|(p, _)| p == id)
            .map_or(id.as_str(), |(_, l)| l);
        let work = WORK.contains(&id.as_str());
        let _ = writeln!(
            o,
            "| {label} | {} | {:.1} % | {} |",
            spread(Some(*stats)),
            stats.median / window * 100.0,
            if work { "no" } else { "yes" }
        );
    }
    let _ = writeln!(o, "| **window** | **{}** | 100 % | |", spread(v.window_ms));
    let loads: Vec<f64> = v.runs.iter().filter_map(|r| r.load_1m).collect();
    let _ = writeln!(
        o,
        "\nOverhead, per run: **{}** (target ≤ {OVERHEAD_PCT} %); of it, between steps (the \
         executor proper): {}. The whole `mkplan rehearse` process (host set-up, report and \
         signing included) took {}.{}\n",
        pct(v.overhead_pct),
        pct(v.between_steps_pct),
        spread(v.process_ms),
        Stats::of(&loads).map_or(String::new(), |l| format!(
            " 1-minute load average before the runs: {:.1} [{:.1}–{:.1}].",
            l.median, l.min, l.max
        ))
    );
    if let Some(run) = v.runs.first() {
        let gaps = run
            .gaps
            .iter()
            .take(4)
            .map(|g| {
                format!(
                    "{} after `{}` (journaled as a {} line)",
                    ms(g.ms),
                    g.after,
                    bytes(g.journal_line_bytes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            o,
            "Longest stretches between steps in the first run (`{}`): {gaps}.\n",
            run.run_id
        );
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

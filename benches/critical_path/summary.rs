//! The summary table at the top of BENCHMARKS.md: one row per target, with the verdict.

use std::fmt::Write as _;

use crate::render::{
    BACKUP_RATIO, FLAT_GROWTH, OVERHEAD_PCT, RESTORE_RATIO, RSS_MIB, VALIDATE_MS, median, ms,
    peak_mib, ratio, thousands, verdict,
};
use crate::results::{ArchiveSize, Pair, Results};

/// The store size the backup target is set at.
const BACKUP_TARGET_OBJECTS: usize = 100_000;

fn median_or_dash(s: &crate::results::Series) -> String {
    median(s).map_or("—".into(), ms)
}

pub fn write(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "| # | benchmark | mkplan (median) | what an operator would run (median) | ratio | target | result |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for a in &r.archive {
        let p = &a.backup;
        let (target, result) = match p.ratio {
            Some(x) if a.objects == BACKUP_TARGET_OBJECTS => (
                format!("≤ {BACKUP_RATIO}×"),
                verdict(
                    x <= BACKUP_RATIO,
                    format!("{x:.2}× instead of ≤ {BACKUP_RATIO}×"),
                ),
            ),
            _ => ("(set at 100,000)".to_owned(), "—".to_owned()),
        };
        let _ = writeln!(
            o,
            "| 1 | backup with verification, {} objects | {} | {} (shell) | {} | {target} | {result} |",
            thousands(a.objects),
            median_or_dash(&p.mkplan),
            median_or_dash(&p.baseline),
            ratio(p)
        );
    }
    for a in &r.archive {
        let p = &a.restore;
        let result = p.ratio.map_or("—".into(), |x| {
            verdict(
                x <= RESTORE_RATIO,
                format!("{x:.1}× instead of ≤ {RESTORE_RATIO:.1}×"),
            )
        });
        let _ = writeln!(
            o,
            "| 2 | verified atomic restore, {} objects | {} | {} (`tar -xzf`) | {} | ≤ {RESTORE_RATIO:.1}× | {result} |",
            thousands(a.objects),
            median_or_dash(&p.mkplan),
            median_or_dash(&p.baseline),
            ratio(p)
        );
    }
    memory_rows(o, r);
    if let Some(v) = &r.validate {
        let m = median(&v.mkplan);
        let result = m.map_or("—".into(), |m| {
            verdict(m <= VALIDATE_MS, format!("{} over", ms(m - VALIDATE_MS)))
        });
        let _ = writeln!(
            o,
            "| 4 | `mkplan validate plans/ep11-offline.yaml` | {} | {} (`check-jsonschema`) | {} | ≤ {VALIDATE_MS} ms | {result} |",
            m.map_or("—".into(), ms),
            median_or_dash(&v.baseline),
            ratio(v)
        );
    }
    for v in r.rehearse.iter().flat_map(|x| &x.variants) {
        let Some(pct) = v.overhead_pct else { continue };
        let result = verdict(
            pct.median <= OVERHEAD_PCT,
            format!("{:.1} points over", pct.median - OVERHEAD_PCT),
        );
        let _ = writeln!(
            o,
            "| 5 | executor overhead, {} rehearsal, {} keys | {:.1} % of a {} window | | | ≤ {OVERHEAD_PCT} % | {result} |",
            v.name,
            thousands(v.keys),
            pct.median,
            v.window_ms.map_or("—".into(), |w| ms(w.median)),
        );
    }
    crate::scale_section::summary_rows(o, r);
    let _ = writeln!(
        o,
        "\nRatio: mkplan's median over the other command's median; in brackets, the range \
         of the ratio within each round. What lies behind each result, and what would close \
         each miss: [Findings](#findings).\n"
    );
}

fn memory_rows(o: &mut String, r: &Results) {
    for (op, pick) in [
        (
            "backup",
            (|a: &ArchiveSize| &a.backup) as fn(&ArchiveSize) -> &Pair,
        ),
        ("restore", |a: &ArchiveSize| &a.restore),
    ] {
        let peaks: Vec<(usize, f64)> = r
            .archive
            .iter()
            .filter_map(|a| peak_mib(&pick(a).mkplan).map(|p| (a.objects, p)))
            .collect();
        let (Some(first), Some(last)) = (peaks.first(), peaks.last()) else {
            continue;
        };
        let shown = peaks
            .iter()
            .map(|(n, p)| format!("{p:.1} MiB at {}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let worst = peaks.iter().map(|(_, p)| *p).fold(0.0, f64::max);
        let growth = last.1 / first.1;
        let result = match (worst <= RSS_MIB, peaks.len() < 2 || growth <= FLAT_GROWTH) {
            (true, true) if peaks.len() < 2 => {
                "met at this size (flatness needs two sizes)".to_owned()
            }
            (true, true) => "met".to_owned(),
            (true, false) => format!(
                "≤ {RSS_MIB} MiB met; **flat missed** ({growth:.1}× from {} to {} objects)",
                thousands(first.0),
                thousands(last.0)
            ),
            (false, _) => format!("**missed** ({worst:.1} MiB; {growth:.1}× growth)"),
        };
        let _ = writeln!(
            o,
            "| 3 | peak RSS of mkplan's {op} (largest of the runs) | {shown} | | | ≤ {RSS_MIB} MiB and flat | {result} |"
        );
    }
}

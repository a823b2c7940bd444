//! Section 6 of BENCHMARKS.md and its summary rows: memory flat in keys and objects, where a
//! restore's time goes, run history, and the longest silence of a rehearsal (issue 13).

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::render::{FLAT_GROWTH, RSS_MIB, ms, peak_mib, thousands, verdict};
use crate::results::Results;
use crate::scale::{self, Measured, Sample};

/// Issue 13's targets besides those of issue 7.
pub const BACKUP_RSS_MIB: f64 = 32.0;
pub const RUNS_MS: f64 = 50.0;
pub const SILENCE_S: f64 = 2.0;

/// Peak RSS (MiB, the largest run) and median wall (ms) of the backup or restore at each
/// size: the critical-path suites' sizes, then the scale samples'.
pub fn archive_peaks(r: &Results, op: &str) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = r
        .archive
        .iter()
        .filter_map(|a| {
            let s = if op == "backup" {
                &a.backup.mkplan
            } else {
                &a.restore.mkplan
            };
            peak_mib(s).map(|p| (a.objects, p))
        })
        .collect();
    for n in scale::archive_sizes(&r.scale) {
        if out.iter().any(|(m, _)| *m == n) {
            continue;
        }
        let ms = scale::archive(&r.scale, n, op);
        if let Some(p) = ms.iter().map(Measured::rss_mib).reduce(f64::max) {
            out.push((n, p));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out
}

/// One rehearsal size: keys, peak RSS (MiB), wall (s), longest silence (s), the line
/// before it, and the longest gap between progress lines (s).
pub type RehearsalRow = (usize, f64, f64, f64, String, f64);

/// Each rehearsal size, ascending by keys.
pub fn rehearsal_peaks(r: &Results) -> Vec<RehearsalRow> {
    let mut out = scale::pick(&r.scale, |s| match s {
        Sample::Rehearse {
            keys,
            longest_silence_s,
            longest_progress_gap_s,
            silence_after,
            m,
        } => Some((
            *keys,
            m.rss_mib(),
            m.wall_s,
            *longest_silence_s,
            silence_after.clone(),
            *longest_progress_gap_s,
        )),
        _ => None,
    });
    out.sort_by_key(|x| x.0);
    out
}

/// `mkplan runs` wall times (ms) and peak RSS by stored runs.
pub fn runs(r: &Results) -> Vec<(usize, Stats, f64)> {
    let mut stored = scale::pick(&r.scale, |s| match s {
        Sample::Runs { stored, .. } => Some(*stored),
        _ => None,
    });
    stored.sort_unstable();
    stored.dedup();
    stored
        .into_iter()
        .filter_map(|n| {
            let ms = scale::pick(&r.scale, |s| match s {
                Sample::Runs { stored, m } if *stored == n => Some(*m),
                _ => None,
            });
            let wall = scale::stats(&ms, |m| m.wall_s * 1000.0)?;
            let rss = ms.iter().map(Measured::rss_mib).fold(0.0, f64::max);
            Some((n, wall, rss))
        })
        .collect()
}

fn flat(peaks: &[(usize, f64)]) -> (f64, f64) {
    let worst = peaks.iter().map(|p| p.1).fold(0.0, f64::max);
    let growth = match (peaks.first(), peaks.last()) {
        (Some(a), Some(b)) => b.1 / a.1,
        _ => 1.0,
    };
    (worst, growth)
}

fn shown(peaks: &[(usize, f64)]) -> String {
    peaks
        .iter()
        .map(|(n, p)| format!("{p:.1} MiB at {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary rows of issue 13's targets.
pub fn summary_rows(o: &mut String, r: &Results) {
    let backup = archive_peaks(r, "backup");
    if backup.len() > 1 {
        let (worst, growth) = flat(&backup);
        let _ = writeln!(
            o,
            "| 6 | peak RSS of the backup, to 1,000,000 objects | {} | | | ≤ {BACKUP_RSS_MIB} MiB, flat | {} |",
            shown(&backup),
            verdict(
                worst <= BACKUP_RSS_MIB && growth <= FLAT_GROWTH,
                format!("{worst:.1} MiB, {growth:.1}× from the smallest")
            )
        );
    }
    let reh = rehearsal_peaks(r);
    if reh.len() > 1 {
        let peaks: Vec<(usize, f64)> = reh.iter().map(|x| (x.0, x.1)).collect();
        let (worst, growth) = flat(&peaks);
        let _ = writeln!(
            o,
            "| 6 | peak RSS of `mkplan rehearse`, keys | {} | | | ≤ {RSS_MIB} MiB, flat | {} |",
            shown(&peaks),
            verdict(
                worst <= RSS_MIB && growth <= FLAT_GROWTH,
                format!("{worst:.1} MiB, {growth:.1}× from the smallest")
            )
        );
        let (k, _, _, quiet, _, _) = reh
            .iter()
            .max_by(|a, b| a.3.total_cmp(&b.3))
            .cloned()
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "| 6 | longest silence of a rehearsal's output | {quiet:.1} s (at {} keys) | | | ≤ {SILENCE_S} s | {} |",
            thousands(k),
            verdict(quiet <= SILENCE_S, format!("{quiet:.1} s"))
        );
    }
    let runs = runs(r);
    if let Some(worst) = runs.iter().map(|x| x.1.median).reduce(f64::max) {
        let list = runs
            .iter()
            .map(|(n, w, _)| format!("{} with {n}", ms(w.median)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "| 6 | `mkplan runs`, stored runs of 10,000 keys | {list} | | | ≤ {RUNS_MS} ms, flat | {} |",
            verdict(worst <= RUNS_MS, format!("{} at worst", ms(worst)))
        );
    }
}

/// Section 6.
pub fn write(o: &mut String, r: &Results) {
    if r.scale.is_empty() {
        return;
    }
    let _ = writeln!(o, "## 6. Scale: memory flat in keys and objects\n");
    let _ = writeln!(
        o,
        "Measured by `scripts/bench-scale` in the same `scripts/bench` run (raw samples in \
         `results.json`'s `scale`). Peak RSS is GNU time's `%M`: the largest single process \
         of the command's tree — for a rehearsal, mkplan itself or a simulated tool. Each \
         row gives the 1-minute load average before it.\n"
    );
    archive_table(o, r);
    phases(o, r);
    rehearsals(o, r);
    history(o, r);
}

fn archive_table(o: &mut String, r: &Results) {
    let _ = writeln!(o, "### Backup and restore, 10,000 to 1,000,000 objects\n");
    let _ = writeln!(
        o,
        "| objects | backup peak RSS | backup wall | restore peak RSS | restore wall | `tar -xzf` wall | restore ÷ tar | rounds | load |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for a in &r.archive {
        let (b, s) = (&a.backup.mkplan, &a.restore);
        let load = Stats::of(&[b.load_1m.clone(), s.mkplan.load_1m.clone()].concat());
        let _ = writeln!(
            o,
            "| {} | {:.1} MiB | {} | {:.1} MiB | {} | {} | {} | {} (sections 1–2) | {} |",
            thousands(a.objects),
            peak_mib(b).unwrap_or(f64::NAN),
            b.wall.map_or("—".into(), |w| ms(w.median)),
            peak_mib(&s.mkplan).unwrap_or(f64::NAN),
            s.mkplan.wall.map_or("—".into(), |w| ms(w.median)),
            s.baseline.wall.map_or("—".into(), |w| ms(w.median)),
            crate::render::ratio(s),
            a.rounds,
            load.map_or("—".into(), |l| format!("{:.1}", l.median))
        );
    }
    for n in scale::archive_sizes(&r.scale) {
        let (b, s, t) = (
            scale::archive(&r.scale, n, "backup"),
            scale::archive(&r.scale, n, "restore"),
            scale::archive(&r.scale, n, "tar"),
        );
        let wall = |ms: &[Measured]| scale::stats(ms, |m| m.wall_s * 1000.0);
        let rss = |ms: &[Measured]| ms.iter().map(Measured::rss_mib).fold(0.0, f64::max);
        let ratio = match (wall(&s), wall(&t)) {
            (Some(a), Some(b)) => format!("**{:.2}×**", a.median / b.median),
            _ => "—".into(),
        };
        let loads: Vec<f64> = [&b, &s, &t]
            .iter()
            .flat_map(|v| v.iter().map(|m| m.load_1m))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {:.1} MiB | {} | {:.1} MiB | {} | {} | {ratio} | {} | {} |",
            thousands(n),
            rss(&b),
            crate::render::spread(wall(&b)),
            rss(&s),
            crate::render::spread(wall(&s)),
            crate::render::spread(wall(&t)),
            s.len(),
            Stats::of(&loads).map_or("—".into(), |l| format!("{:.1}", l.median))
        );
    }
    let _ = writeln!(
        o,
        "\nThe million-object store is generated once and kept under `target/bench/stores`; \
         its restore replaces it with its own backup, so every run starts from the same \
         bytes. One round: a backup of a million files takes minutes.\n"
    );
}

fn phases(o: &mut String, r: &Results) {
    let disk = scale::phase(&r.scale, "restore on disk");
    let (rt, tt) = (
        scale::phase(&r.scale, "restore on tmpfs"),
        scale::phase(&r.scale, "tar on tmpfs"),
    );
    if disk.is_empty() && rt.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "### Where a restore of 100,000 objects spends its time\n"
    );
    let _ = writeln!(
        o,
        "| what | wall, median [range] | user CPU | system CPU | n |\n|---|---|---|---|---|"
    );
    if let Some(a) = r.archive.iter().find(|a| a.objects == 100_000) {
        for (name, s) in [
            ("mkplan restore on disk (section 2)", &a.restore.mkplan),
            ("`tar -xzf` on disk (section 2)", &a.restore.baseline),
        ] {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {} |",
                crate::render::spread(s.wall),
                Stats::of(&s.cpu_user_ms).map_or("—".into(), |x| ms(x.median)),
                Stats::of(&s.cpu_sys_ms).map_or("—".into(), |x| ms(x.median)),
                s.wall_ms.len()
            );
        }
    }
    for (m, syncfs) in &disk {
        let _ = writeln!(
            o,
            "| mkplan restore on disk, its `syncfs` timed (strace) | {} (of which `syncfs` {}) | {} | {} | 1 |",
            ms(m.wall_s * 1000.0),
            syncfs.map_or("—".into(), |s| ms(s * 1000.0)),
            ms(m.user_s * 1000.0),
            ms(m.sys_s * 1000.0)
        );
    }
    for (name, v) in [
        ("mkplan restore on tmpfs", &rt),
        ("`tar -xzf` on tmpfs", &tt),
    ] {
        let ms_: Vec<Measured> = v.iter().map(|x| x.0).collect();
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} |",
            crate::render::spread(scale::stats(&ms_, |m| m.wall_s * 1000.0)),
            scale::stats(&ms_, |m| m.user_s * 1000.0).map_or("—".into(), |x| ms(x.median)),
            scale::stats(&ms_, |m| m.sys_s * 1000.0).map_or("—".into(), |x| ms(x.median)),
            ms_.len()
        );
    }
    let _ = writeln!(
        o,
        "\nOn tmpfs (`/dev/shm`) the same archive is extracted with no disk and no ext4 \
         allocator: what is left is each side's CPU work. mkplan's restore is durable when \
         it returns (one `syncfs` of the store's file system before the swap); `tar -xzf` \
         leaves its files in the page cache.\n"
    );
}

fn rehearsals(o: &mut String, r: &Results) {
    let reh = rehearsal_peaks(r);
    if reh.is_empty() {
        return;
    }
    let _ = writeln!(o, "### Rehearsals, 1,000 to 100,000 keys\n");
    let _ = writeln!(
        o,
        "`mkplan rehearse plans/ep11-offline.yaml --keys N`, its output a pipe (not a \
         terminal), each line stamped as it arrived. The longest silence runs from one line \
         (or the start) to the next (or the exit) that is not a progress line; the gaps that \
         end in a progress line (a step's `…` line, the simulated host's lay-out or removal \
         count) are the progress cadence, shown apart: without a terminal a step writes a \
         progress line at most every 5 s.\n"
    );
    let _ = writeln!(
        o,
        "| keys | peak RSS | wall | longest silence | after the line | longest gap before a progress line | target |\n|---|---|---|---|---|---|---|"
    );
    for (k, rss, wall, quiet, after, cadence) in &reh {
        let _ = writeln!(
            o,
            "| {} | {rss:.1} MiB | {wall:.1} s | {quiet:.2} s | `{}` | {cadence:.2} s | ≤ {RSS_MIB} MiB, flat; silence ≤ {SILENCE_S} s |",
            thousands(*k),
            after.replace('`', "'").replace('|', "\\|")
        );
    }
    let _ = writeln!(o);
}

fn history(o: &mut String, r: &Results) {
    let runs = runs(r);
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(o, "### Run history\n");
    let _ = writeln!(
        o,
        "`mkplan runs` over a state directory holding copies of one finished 10,000-key \
         rehearsal (5 runs each); then a 1,000-key rehearsal beside none and beside 100 of \
         them.\n"
    );
    let _ = writeln!(
        o,
        "| `mkplan runs`, stored runs | peak RSS | wall, median [range] | target |\n|---|---|---|---|"
    );
    for (n, wall, rss) in &runs {
        let _ = writeln!(
            o,
            "| {n} | {rss:.1} MiB | {} | ≤ {RUNS_MS} ms, flat |",
            crate::render::spread(Some(*wall))
        );
    }
    let beside = scale::pick(&r.scale, |s| match s {
        Sample::Beside { stored, m } => Some((*stored, *m)),
        _ => None,
    });
    if !beside.is_empty() {
        let _ = writeln!(
            o,
            "\n| 1,000-key rehearsal | peak RSS | wall | load |\n|---|---|---|---|"
        );
        for (n, m) in &beside {
            let _ = writeln!(
                o,
                "| beside {n} stored runs | {:.1} MiB | {:.2} s | {:.1} |",
                m.rss_mib(),
                m.wall_s,
                m.load_1m
            );
        }
    }
    let _ = writeln!(o);
}

//! The findings of issue 13's targets: memory of backup, restore and rehearsal, where a
//! restore's time goes, run history and silences. Fixed reasoning about the code (cited by
//! file); every number from the results.

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::render::{FLAT_GROWTH, RSS_MIB, ms, thousands};
use crate::results::Results;
use crate::scale::{self, Measured, Sample};
use crate::scale_section::{
    BACKUP_RSS_MIB, RUNS_MS, SILENCE_S, archive_peaks, rehearsal_peaks, runs,
};

/// Bytes per file between the smallest and the largest size.
fn slope(peaks: &[(usize, f64)]) -> Option<(f64, usize, usize, f64, f64)> {
    let (a, b) = (peaks.first()?, peaks.last()?);
    (b.0 > a.0).then(|| {
        (
            (b.1 - a.1) * 1048576.0 / (b.0 - a.0) as f64,
            a.0,
            b.0,
            a.1,
            b.1,
        )
    })
}

/// Backup and restore peak RSS, 10,000 to 1,000,000 objects.
pub fn memory(o: &mut String, r: &Results) {
    for (op, limit) in [("backup", BACKUP_RSS_MIB), ("restore", RSS_MIB)] {
        let peaks = archive_peaks(r, op);
        let Some((per_file, n0, n1, p0, p1)) = slope(&peaks) else {
            continue;
        };
        let flat = p1 / p0 <= FLAT_GROWTH;
        let head = match (p1 <= limit, flat) {
            (true, true) => format!("**Memory of the {op}: target met** (≤ {limit} MiB, flat)"),
            (true, false) => format!(
                "**Memory of the {op}: ≤ {limit} MiB met, flat missed** ({:.1}×)",
                p1 / p0
            ),
            (false, _) => format!("**Memory of the {op}: target missed** (≤ {limit} MiB)"),
        };
        let _ = write!(
            o,
            "{head}: {p0:.1} MiB at {} objects, {p1:.1} MiB at {} — {per_file:.0} bytes per \
             file more.",
            thousands(n0),
            thousands(n1)
        );
        if op == "backup" {
            let at_limit = n0 as f64 + (limit - p0) * 1048576.0 / per_file.max(1.0);
            let _ = write!(
                o,
                " The manifest is written entry by entry (JSON Lines, \
                 `crates/host/src/archive/manifest.rs`) and verification is a merge of the \
                 archive, the manifest and a second walk of the store, all in walk order \
                 (`check.rs`), so no per-file record is kept. What still grows is the walk's \
                 sorted listing of one directory (`Listing` in `crates/host/src/archive/walk.rs`): \
                 a token store keeps every object in `TOK_OBJ`, and its names (8 characters \
                 here) are held packed, at their length plus 8 bytes of offsets — about 16 \
                 bytes a file, sorted in place; the rest of the slope is allocator slack. At \
                 this slope the backup would reach {limit} MiB near {} objects.",
                thousands(((at_limit / 100_000.0).round() * 100_000.0) as usize)
            );
        } else {
            let _ = write!(
                o,
                " The restore reads the manifest and the archive as streams \
                 (`crates/host/src/archive/extract.rs`), with at most 8 batches of about \
                 256 KiB queued between its two threads (`place.rs`); the directories' \
                 records (a handful) are all it keeps."
            );
        }
        let _ = writeln!(o, "\n");
    }
}

/// Rehearsal memory, `runs`, silences.
pub fn write(o: &mut String, r: &Results) {
    let reh = rehearsal_peaks(r);
    if let (Some(a), Some(b)) = (reh.first(), reh.last()) {
        let worst = reh.iter().map(|x| x.1).fold(0.0, f64::max);
        let met = worst <= RSS_MIB && b.1 / a.1 <= FLAT_GROWTH;
        let _ = writeln!(
            o,
            "**Memory of a rehearsal: {}** ({:.1} MiB at {} keys, {:.1} MiB at {}; {:.2}×; \
             the 100,000-key rehearsal took {:.0} s). The key inventories are streamed to a \
             side file, sorted in bounded chunks spilled to disk and merged \
             (`crates/engine/src/keylist.rs`), and the journal and report carry its digest \
             and count; the peak is the largest single process of the tree, mkplan or a \
             simulated tool, whichever is larger. What still grows is rehearsal-only: the \
             simulated PKCS#11 module, which the rehearsal runs inside mkplan's process, \
             reads the whole `TOK_OBJ/OBJ.IDX` and keeps every object's name in a \
             `Vec<String>` while it probes (`objects` in `crates/sim/src/store.rs`), and the \
             `pkcsep11_migrate` stand-in holds the store's index likewise; on a real host the \
             probe goes through openCryptoki's `C_FindObjects` and the tool is IBM's.\n",
            if met { "target met" } else { "target missed" },
            a.1,
            thousands(a.0),
            b.1,
            thousands(b.0),
            b.1 / a.1,
            reh.iter()
                .find(|x| x.0 == 100_000)
                .map_or(f64::NAN, |x| x.2)
        );
        let longest = reh.iter().max_by(|x, y| x.3.total_cmp(&y.3));
        let cadence = reh.iter().map(|x| x.5).fold(0.0, f64::max);
        if let Some((k, _, _, quiet, after, _)) = longest {
            let _ = writeln!(
                o,
                "**Silences: {}** — the longest stretch without a line of output, other than \
                 the wait for a step's next progress line, was {quiet:.2} s (at {} keys), after \
                 `{}`; the longest wait for a progress line was {cadence:.2} s (steps write one \
                 at most every 5 s without a terminal). The stamped output of each rehearsal \
                 is kept as `target/bench/stamped-<keys>.log`.\n",
                if *quiet <= SILENCE_S {
                    "target met"
                } else {
                    "target missed"
                },
                thousands(*k),
                after.replace('`', "'")
            );
        }
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
            "**Run history: {}** ({list} stored runs of 10,000 keys; target ≤ {RUNS_MS} ms). \
             `mkplan runs` reads each run's small summary, never its journal; the remaining \
             time is the process itself and one directory listing.\n",
            if worst <= RUNS_MS {
                "target met"
            } else {
                "target missed"
            }
        );
    }
    let beside = scale::pick(&r.scale, |s| match s {
        Sample::Beside { stored, m } => Some((*stored, *m)),
        _ => None,
    });
    if let (Some((_, a)), Some((n, b))) = (beside.first(), beside.last())
        && beside.len() > 1
    {
        let _ = writeln!(
            o,
            "A 1,000-key rehearsal beside {n} stored runs took {:.2} s and {:.1} MiB, against \
             {:.2} s and {:.1} MiB in an empty state directory (one run each; the load \
             average was {:.1} and {:.1}).\n",
            b.wall_s,
            b.rss_mib(),
            a.wall_s,
            a.rss_mib(),
            b.load_1m,
            a.load_1m
        );
    }
}

/// Where a restore of 100,000 objects spends its time, for the restore finding.
pub fn restore_phases(o: &mut String, r: &Results) {
    let disk = scale::phase(&r.scale, "restore on disk");
    let tm: Vec<Measured> = scale::phase(&r.scale, "restore on tmpfs")
        .iter()
        .map(|x| x.0)
        .collect();
    let tt: Vec<Measured> = scale::phase(&r.scale, "tar on tmpfs")
        .iter()
        .map(|x| x.0)
        .collect();
    let wall = |v: &[Measured]| scale::stats(v, |m| m.wall_s * 1000.0);
    if let (Some(m), Some(t)) = (wall(&tm), wall(&tt)) {
        let cpu = |v: &[Measured]| {
            Stats::of(
                &v.iter()
                    .map(|m| (m.user_s + m.sys_s) * 1000.0)
                    .collect::<Vec<_>>(),
            )
            .map_or(f64::NAN, |s| s.median)
        };
        let _ = write!(
            o,
            " Without a disk, on tmpfs, the same restore takes {} against {} for `tar -xzf` \
             (**{:.2}×**; CPU {} against {}): decompressing and hashing on one thread while \
             the other creates the files beats gzip piped into tar.",
            ms(m.median),
            ms(t.median),
            m.median / t.median,
            ms(cpu(&tm)),
            ms(cpu(&tt))
        );
    }
    if let Some((m, Some(syncfs))) = disk.first() {
        let _ = write!(
            o,
            " On disk, one restore timed with strace (in the scale section's part before \
             the suites, without their wait for ext4, so slower) spent {} of its {} in the `syncfs` \
             before the swap ({:.0} %), the flush that makes the restored store durable \
             before it replaces the old one; `tar -xzf` does not flush.",
            ms(syncfs * 1000.0),
            ms(m.wall_s * 1000.0),
            100.0 * syncfs / m.wall_s
        );
        let tmpfs_sys = scale::stats(&tm, |m| m.sys_s * 1000.0).map(|s| s.median);
        if let Some(tsys) = tmpfs_sys {
            let _ = write!(
                o,
                " Its system time was {} against {} on tmpfs for the same files: the \
                 difference, {}, is ext4 creating the files — on this shared file system \
                 without a journal mostly the inode allocator skipping inodes other users \
                 freed minutes before (`recently_deleted()` and `find_inode_bit()` in \
                 `fs/ext4/ialloc.c` were most of a `perf` profile of such a restore), which \
                 `tar -xzf` meets just the same (see its system time in section 2).",
                ms(m.sys_s * 1000.0),
                ms(tsys),
                ms(m.sys_s * 1000.0 - tsys)
            );
        }
    }
}

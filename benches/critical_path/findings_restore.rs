//! The restore finding: why mkplan's verified atomic restore is slower than `tar -xzf`, with
//! the context rows that take the difference apart, and what would close it.

use std::fmt::Write as _;

use crate::findings::med;
use crate::measure::Stats;
use crate::render::{RESTORE_RATIO, ms, thousands};
use crate::results::{ArchiveSize, Pair, Series};

/// The restore as this benchmark measured it at commit `b38468a`, before `be9d667` replaced
/// the per-file fsync with one `syncfs`: 100,000 objects, median of 5 rounds, against
/// `tar -xzf` in the same rounds.
const BEFORE_SYNCFS: (&str, &str) = ("29.9 s", "9.8×");

fn context<'a>(p: &'a Pair, prefix: &str) -> Option<&'a Series> {
    p.context.iter().find(|c| c.name.starts_with(prefix))
}

fn median_of(samples: &[f64]) -> Option<f64> {
    Stats::of(samples).map(|s| s.median)
}

pub fn write(o: &mut String, a: &ArchiveSize, smaller: Option<&ArchiveSize>) {
    let p = &a.restore;
    let Some(x) = p.ratio else { return };
    let (mk, tar) = (med(&p.mkplan), med(&p.baseline));
    let also = smaller
        .and_then(|s| s.restore.ratio.map(|r| (s.objects, r)))
        .map_or(String::new(), |(n, r)| {
            format!("; {r:.2}× at {}", thousands(n))
        });
    if x <= RESTORE_RATIO {
        let _ = writeln!(
            o,
            "**Restore: target met** ({x:.2}× at {} objects{also}).\n",
            thousands(a.objects)
        );
        return;
    }
    let _ = write!(
        o,
        "**Restore: target missed** ({x:.2}× at {} objects, {} against {} for `tar -xzf`\
         {also}). The restore used to fsync every file and directory it extracted; this \
         benchmark measured that at {} for 100,000 objects ({} `tar -xzf`, at `b38468a`), and since commit \
         `be9d667` the extracted tree is made durable with one `syncfs` before the swap \
         (`sync_extracted` in `crates/host/src/archive/extract.rs`).",
        thousands(a.objects),
        ms(mk),
        ms(tar),
        BEFORE_SYNCFS.0,
        BEFORE_SYNCFS.1
    );
    let fastest = [Some(a), smaller]
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let r = &s.restore;
            match (r.ratio, r.fastest_ratio) {
                (Some(m), Some(f)) if (f / m - 1.0).abs() > 0.25 => Some(format!(
                    "{f:.2}× at {} (median {m:.2}×)",
                    thousands(s.objects)
                )),
                _ => None,
            }
        })
        .collect::<Vec<_>>();
    if !fastest.is_empty() {
        let _ = write!(
            o,
            " Each side's fastest run gives {}: the other users' load fell unevenly on the \
             two sides, mostly as system time in file creation (their deletions make new \
             inodes slow to allocate, see the method).",
            fastest.join(", ")
        );
    }
    if let Some(c) = context(p, "tar -xzf, then fsync") {
        let _ = write!(
            o,
            " The `fsync every entry` context row still shows what that cost: {} ({:.1}× \
             `tar -xzf`).",
            ms(med(c)),
            med(c) / tar
        );
    }
    if let (Some(f), Some(t)) = (context(p, "tar -xzf, then one syncfs"), p.baseline.wall) {
        let _ = write!(
            o,
            " One flush is cheap on this disk: `tar -xzf` followed by one `syncfs` took {}, \
             plain `tar -xzf` {} [{}–{}].",
            ms(med(f)),
            ms(t.median),
            ms(t.min),
            ms(t.max)
        );
    }
    let cpu = (
        median_of(&p.mkplan.cpu_user_ms),
        median_of(&p.mkplan.cpu_sys_ms),
        median_of(&p.baseline.cpu_user_ms),
        median_of(&p.baseline.cpu_sys_ms),
    );
    if let (Some(u), Some(s), Some(tu), Some(ts)) = cpu {
        let _ = write!(
            o,
            " What is left is CPU work in one thread. mkplan's restore spends {} in user \
             space (decompressing, hashing every file, checking it against the manifest) and \
             {} in the kernel (creating the files, owners, modes, times, the flush) — about \
             what `tar -xzf` spends ({} + {}) — but tar splits it over two processes, gzip \
             decompressing while tar creates the files, and finishes in {}; mkplan's wall \
             time is its CPU time plus a little.",
            ms(u),
            ms(s),
            ms(tu),
            ms(ts),
            ms(tar)
        );
    }
    let _ = writeln!(o, "\n");
    let _ = writeln!(
        o,
        "What would close it, in `crates/host/src/archive/extract.rs`:\n"
    );
    let _ = write!(
        o,
        "1. **Extract on both cores**, as the backup compresses on a second thread: one \
         thread decompresses, hashes and checks each entry, the other creates and writes \
         the files, with a bounded queue of buffers between them (`scan_archive` hands the \
         `Extract` sink one entry at a time, so the split fits behind the `Sink` trait)."
    );
    if let (Some(u), Some(s), _, _) = cpu {
        let estimate = u.max(s);
        let _ = write!(
            o,
            " The restore would then take about as long as the larger half, roughly {} \
             ({:.1}× `tar -xzf`) — an estimate from the CPU times above, not a measurement.",
            ms(estimate),
            estimate / tar
        );
    }
    let _ = writeln!(o);
    if let Some(h) = context(p, "sha256 of the archive") {
        let _ = writeln!(
            o,
            "2. **One pass over the archive, not two**: `restore` hashes the whole archive \
             (`fsio::hash_file`) before it extracts anything, and `scan_archive` hashes it \
             again while extracting. The first pass costs {} here (context row: the same \
             crate and buffer size). Nothing is swapped in until the scan's digest check \
             passes, so the first pass could go, or overlap the start of the extraction.",
            ms(med(h))
        );
    }
    let _ = writeln!(
        o,
        "\nNote that `tar -xzf` is not durable when it exits (the data is in the page cache; a \
         crash a moment later loses it), while mkplan's restore is. On a disk where a flush \
         costs more than here, the fair comparison is `tar -xzf && sync -f`.\n"
    );
}

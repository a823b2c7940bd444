//! The restore finding: how mkplan's verified atomic restore compares with `tar -xzf`, with
//! the context rows and section 6's measurements that take the difference apart.

use std::fmt::Write as _;

use crate::findings::med;
use crate::measure::Stats;
use crate::render::{RESTORE_RATIO, ms, thousands};
use crate::results::{ArchiveSize, Pair, Results, Series};

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

pub fn write(o: &mut String, r: &Results, a: &ArchiveSize, smaller: Option<&ArchiveSize>) {
    let p = &a.restore;
    let Some(x) = p.ratio else { return };
    let (mk, tar) = (med(&p.mkplan), med(&p.baseline));
    let also = smaller
        .and_then(|s| s.restore.ratio.map(|r| (s.objects, r)))
        .map_or(String::new(), |(n, r)| {
            format!("; {r:.2}× at {}", thousands(n))
        });
    let how = "The restore reads the archive once (`crates/host/src/archive/extract.rs`): one \
         thread decompresses it, checks each entry against the manifest and hashes it, the \
         other creates the files (`place.rs`), with a bounded queue between them; the \
         extracted tree is flushed with one `syncfs` and swapped in only once both digests \
         are the journaled ones. The rescue's `restore` step compares the store with the \
         manifest alone before it (`crates/steps/src/restore.rs`), so the archive is not \
         read twice.";
    if x <= RESTORE_RATIO {
        let _ = write!(
            o,
            "**Restore: target met** ({x:.2}× at {} objects{also}). {how}",
            thousands(a.objects)
        );
        crate::scale_findings::restore_phases(o, r);
        let _ = writeln!(o, "\n");
        return;
    }
    let _ = write!(
        o,
        "**Restore: target missed** ({x:.2}× at {} objects, {} against {} for `tar -xzf`\
         {also}). {how} Before `be9d667` it fsynced every file; this benchmark measured that \
         at {} for 100,000 objects ({} `tar -xzf`, at `b38468a`).",
        thousands(a.objects),
        ms(mk),
        ms(tar),
        BEFORE_SYNCFS.0,
        BEFORE_SYNCFS.1
    );
    crate::scale_findings::restore_phases(o, r);
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
            " The flush is what the miss is made of: `tar -xzf` followed by one `syncfs` \
             took {}, plain `tar -xzf` {} [{}–{}], so the flush costs {} here — more than \
             mkplan's whole margin over `tar -xzf` ({}). With the same durability, against \
             `tar -xzf && sync -f`, the restore takes **{:.2}×**.",
            ms(med(f)),
            ms(t.median),
            ms(t.min),
            ms(t.max),
            ms(med(f) - t.median),
            ms(mk - tar),
            mk / med(f)
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
            " CPU: mkplan's restore spends {} in user space (decompressing, hashing every \
             file, checking it against the manifest) and {} in the kernel (creating the \
             files, owners, modes, times, the flush), `tar -xzf` {} + {}, and finishes in {}.",
            ms(u),
            ms(s),
            ms(tu),
            ms(ts),
            ms(tar)
        );
    }
    let _ = writeln!(
        o,
        "\n\nNote that `tar -xzf` is not durable when it exits (the data is in the page cache; a \
         crash a moment later loses it), while mkplan's restore is. On a disk where a flush \
         costs more than here, the fair comparison is `tar -xzf && sync -f`.\n"
    );
}

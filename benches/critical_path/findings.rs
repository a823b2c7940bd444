//! The findings section of BENCHMARKS.md: for each benchmark, why the numbers are what they
//! are and, for a missed target, by how much, why, and what would close it. The reasoning
//! is fixed text about mkplan's code (cited by file); every number in it comes from the
//! results, and a paragraph about a miss appears only when the results show that miss.

use std::fmt::Write as _;

use crate::render::{BACKUP_RATIO, FLAT_GROWTH, RSS_MIB, VALIDATE_MS, ms, peak_mib, thousands};
use crate::results::{ArchiveSize, Pair, Results, Series};
use crate::{findings_overhead, findings_restore};

/// Median wall time, NaN if there is none.
pub fn med(s: &Series) -> f64 {
    s.wall.map_or(f64::NAN, |w| w.median)
}

/// The last commit to `crates/` that the explanations below were written against.
const REASONED_AT: &str = "be9d667";

pub fn write(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## Findings\n");
    if r.settings.src_commit != REASONED_AT {
        let _ = writeln!(
            o,
            "> The explanations below were written against `crates/` as of `{REASONED_AT}`; \
             these numbers are from `crates/` as of `{}`. Check them against the code before \
             relying on them.\n",
            r.settings.src_commit
        );
    }
    if let Some(a) = r.archive.last() {
        backup(o, a);
        let smaller = r.archive.first().filter(|s| s.objects != a.objects);
        findings_restore::write(o, a, smaller);
    }
    memory(o, r);
    if let Some(v) = &r.validate {
        let m = med(&v.mkplan);
        let _ = writeln!(
            o,
            "**Validation {}.** `mkplan validate` takes {} (target ≤ {VALIDATE_MS} ms), \
             {:.0}× faster than `check-jsonschema`, whose time is mostly Python starting and \
             importing; mkplan does more (its safety rules and templates besides the schema) \
             in a process that starts in about a millisecond.\n",
            if m <= VALIDATE_MS {
                "is fast"
            } else {
                "is too slow"
            },
            ms(m),
            med(&v.baseline) / m
        );
    }
    if let Some(reh) = &r.rehearse {
        let find = |name: &str| reh.variants.iter().find(|v| v.name == name);
        if let Some(v) = find("successful") {
            findings_overhead::write(o, v, find("rescued"), reh.fdatasync);
        }
    }
}

fn backup(o: &mut String, a: &ArchiveSize) {
    let Some(x) = a.backup.ratio else { return };
    let head = if x <= BACKUP_RATIO {
        format!(
            "**Backup: target met** ({x:.2}× at {} objects).",
            thousands(a.objects)
        )
    } else {
        format!(
            "**Backup: target missed** ({x:.2}× at {} objects, target ≤ {BACKUP_RATIO}×).",
            thousands(a.objects)
        )
    };
    let _ = writeln!(
        o,
        "{head} mkplan reads each file once and hashes it while it feeds the tar stream, \
         compresses on a second core at gzip level 1 (`crates/host/src/archive/write.rs`), and \
         verifies with two threads at once: one decompresses the new archive against the \
         manifest while the other re-hashes the live store. The shell spends most of its \
         time in gzip -6 on data that does not compress, then reads the archive twice more \
         (`sha256sum`, `tar -tzvf`) one after the other. mkplan's time includes fsyncing \
         the archive and the manifest; the shell's does not.\n"
    );
}

fn memory(o: &mut String, r: &Results) {
    let (Some(small), Some(large)) = (r.archive.first(), r.archive.last()) else {
        return;
    };
    if small.objects == large.objects {
        return;
    }
    let mut missed = Vec::new();
    for (op, pair_of) in [
        (
            "backup",
            (|a: &ArchiveSize| &a.backup) as fn(&ArchiveSize) -> &Pair,
        ),
        ("restore", |a: &ArchiveSize| &a.restore),
    ] {
        let (Some(p0), Some(p1)) = (
            peak_mib(&pair_of(small).mkplan),
            peak_mib(&pair_of(large).mkplan),
        ) else {
            continue;
        };
        let per_file = (p1 - p0) * 1048576.0 / (large.files - small.files) as f64;
        let at_limit = small.files as f64 + (RSS_MIB - p0) * 1048576.0 / per_file.max(1.0);
        if p1 / p0 > FLAT_GROWTH || p1 > RSS_MIB {
            missed.push((op, p0, p1, per_file, at_limit));
        }
    }
    if missed.is_empty() {
        let _ = writeln!(o, "**Memory: target met** (≤ {RSS_MIB} MiB and flat).\n");
        return;
    }
    let _ = write!(
        o,
        "**Memory: ≤ {RSS_MIB} MiB met at these sizes, but not flat.**"
    );
    for (op, p0, p1, per_file, at_limit) in &missed {
        let _ = write!(
            o,
            " The {op}'s peak grows from {p0:.1} MiB at {} objects to {p1:.1} MiB at {} \
             ({:.1}×): about {per_file:.0} bytes per file, so it would pass {RSS_MIB} MiB \
             near {} objects.",
            thousands(small.objects),
            thousands(large.objects),
            p1 / p0,
            thousands(((*at_limit / 1000.0).round() * 1000.0) as usize)
        );
    }
    let slopes: Vec<f64> = missed.iter().map(|m| m.3).collect();
    let (lo, hi) = (
        slopes.iter().copied().fold(f64::INFINITY, f64::min),
        slopes.iter().copied().fold(0.0, f64::max),
    );
    let measured = if hi - lo < 10.0 {
        format!("about {hi:.0}")
    } else {
        format!("{lo:.0}–{hi:.0}")
    };
    let _ = writeln!(
        o,
        " What grows is the manifest held in memory — the module documentation \
         (`crates/host/src/archive.rs`) estimates \"about 200 bytes per file\", the measurement \
         says {}. The backup keeps a `FileRecord` per file (its path, the \
         SHA-256 as a 64-character `String`, user and group names as `String`s, plus the \
         numbers) in a `Vec` that grows by doubling, and for verification an index \
         (`HashMap<&str, Slot>`) of every member; the restore parses the whole manifest \
         into the same records and builds the same index.\n",
        measured
    );
    let _ = writeln!(
        o,
        "To close it: (1) compact records — the digest as `[u8; 32]`, user and group \
         interned once per (uid, gid) instead of per file, paths as `Box<str>`, the `Vec` \
         sized from the walk — lowers the slope but keeps it; (2) flat for real — \
         the archive, the live walk and the manifest are all in the same sorted order \
         (`walk.rs` sorts each directory, the archive is written in walk order), so \
         verification can be a merge of three ordered streams instead of look-ups in an \
         index, with the manifest written and read back entry by entry (a streaming JSON \
         writer / reader, or a JSON Lines body). Then only one directory's sorted names are \
         held at a time.\n"
    );
}

//! The findings section of BENCHMARKS.md: for each benchmark, why the numbers are what they
//! are and, for a missed target, by how much, why, and what would close it. The reasoning
//! is fixed text about mkplan's code (cited by file); every number in it comes from the
//! results, and a paragraph about a miss appears only when the results show that miss.

use std::fmt::Write as _;

use crate::render::{BACKUP_RATIO, VALIDATE_MS, ms, thousands};
use crate::results::{ArchiveSize, Results, Series};
use crate::{findings_overhead, findings_restore};

/// Median wall time, NaN if there is none.
pub fn med(s: &Series) -> f64 {
    s.wall.map_or(f64::NAN, |w| w.median)
}

/// The last commit to `crates/` that the explanations below were written against.
const REASONED_AT: &str = "a178a46";

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
        findings_restore::write(o, r, a, smaller);
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
    crate::scale_findings::write(o, r);
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
    crate::scale_findings::memory(o, r);
}

//! Sections 1–4 of BENCHMARKS.md: backup, restore, memory and validation, each with the
//! commands exactly as run and the numbers.

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::render::{FLAT_GROWTH, RSS_MIB, load, median, mib, ms, ratio, spread, thousands};
use crate::results::{ArchiveSize, Pair, Results};

pub fn write(o: &mut String, r: &Results) {
    if !r.archive.is_empty() {
        backups(o, r);
        restores(o, r);
        memory(o, r);
    }
    if let Some(v) = &r.validate {
        validation(o, v);
    }
}

fn size_label(a: &ArchiveSize) -> String {
    format!("{} objects", thousands(a.objects))
}

type Pick = fn(&ArchiveSize) -> &Pair;

fn commands(o: &mut String, r: &Results, pick: Pick) {
    let Some(a) = r.archive.last() else { return };
    let p = pick(a);
    let _ = writeln!(o, "```console");
    let _ = writeln!(o, "# mkplan ({})", p.mkplan.name);
    let _ = writeln!(o, "{}", p.mkplan.command);
    let _ = writeln!(o, "# what an operator would run ({})", p.baseline.name);
    let _ = writeln!(o, "{}", p.baseline.command);
    for c in &p.context {
        let _ = writeln!(o, "# context: {}", c.name);
        let _ = writeln!(o, "{}", c.command);
    }
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "Paths as for the {} store (the others differ only in `nN`); `N` is the round.\n",
        size_label(a)
    );
}

fn cpu(s: Option<Stats>) -> String {
    s.map_or("—".into(), |s| ms(s.median))
}

fn pair_table(o: &mut String, r: &Results, pick: Pick) {
    let _ = writeln!(
        o,
        "| store | rounds | mkplan wall | operator's command wall | ratio (per-round range) | fastest / fastest | CPU time, mkplan / operator (medians) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for a in &r.archive {
        let p = pick(a);
        let _ = writeln!(
            o,
            "| {} ({} files, {:.0} MiB) | {} | {} | {} | {} | {} | {} / {} |",
            size_label(a),
            thousands(a.files),
            a.bytes as f64 / 1048576.0,
            p.mkplan.wall_ms.len(),
            spread(p.mkplan.wall),
            spread(p.baseline.wall),
            ratio(p),
            p.fastest_ratio.map_or("—".into(), |f| format!("{f:.2}×")),
            cpu(p.mkplan.cpu),
            cpu(p.baseline.cpu)
        );
    }
    let all: Vec<_> = r
        .archive
        .iter()
        .flat_map(|a| [&pick(a).mkplan, &pick(a).baseline])
        .collect();
    let _ = writeln!(
        o,
        "\n{} *Fastest / fastest* compares each side's least disturbed run: when the two \
         ratios differ much, the other users' load fell unevenly on the two sides.\n",
        load(&all)
    );
}

fn backups(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## 1. Backup with verification\n");
    let _ = writeln!(
        o,
        "mkplan: walk the store, stream it as tar through a gzip (level 1) thread while \
         hashing every file, write and fsync the archive and the manifest, then read the \
         archive back against the manifest while a second thread re-hashes the live store \
         against it, and only then rename both into place. The operator's careful \
         equivalent: `tar -czf` (GNU tar, gzip level 6 in a second process), `sha256sum` of \
         the archive, and a `tar -tzvf` read-back.\n"
    );
    commands(o, r, |a| &a.backup);
    pair_table(o, r, |a| &a.backup);
    let _ = writeln!(
        o,
        "| store | file data | mkplan's archive (gzip -1) | the shell's archive (gzip -6) |"
    );
    let _ = writeln!(o, "|---|---|---|---|");
    for a in &r.archive {
        let pct = |b: u64| b as f64 / a.bytes as f64 * 100.0;
        let _ = writeln!(
            o,
            "| {} | {} bytes | {} bytes ({:.1} %) | {} bytes ({:.1} %) |",
            size_label(a),
            thousands(a.bytes as usize),
            thousands(a.archive_bytes as usize),
            pct(a.archive_bytes),
            thousands(a.shell_archive_bytes as usize),
            pct(a.shell_archive_bytes)
        );
    }
    let _ = writeln!(
        o,
        "\nThe blobs do not compress — both archives are larger than the data (tar headers \
         and padding) — which is why mkplan uses gzip level 1.\n"
    );
}

fn restores(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## 2. Restore\n");
    let _ = writeln!(
        o,
        "mkplan: read and check the manifest, hash the archive against it, extract into \
         `.<store>.restore-<run>` beside the store — checking every entry against the \
         manifest — flush the file system once (`syncfs`), then rename the old store to \
         `<store>.replaced-<run>` and the restored one into place. The store is there when \
         the restore starts (as in a rescue); the replaced copy is moved away, untimed, \
         after each run. The operator's command: `tar -xzf` into a fresh directory. Both \
         read the same archive (mkplan's). The context commands run in the first rounds \
         (`n` below) to explain the difference; they are not targets. `fsync every entry` \
         is what mkplan's restore did until commit `be9d667`.\n"
    );
    commands(o, r, |a| &a.restore);
    pair_table(o, r, |a| &a.restore);
    if r.archive.iter().all(|a| a.restore.context.is_empty()) {
        return;
    }
    let _ = writeln!(
        o,
        "| store | context command | n | wall, median [min–max] | / `tar -xzf` | / mkplan |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    for a in &r.archive {
        let tar = median(&a.restore.baseline).unwrap_or(f64::NAN);
        let mk = median(&a.restore.mkplan).unwrap_or(f64::NAN);
        for c in &a.restore.context {
            let m = median(c).unwrap_or(f64::NAN);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {:.2}× | {:.2}× |",
                size_label(a),
                c.name,
                c.wall_ms.len(),
                spread(c.wall),
                m / tar,
                m / mk
            );
        }
    }
    let _ = writeln!(o);
}

fn memory(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## 3. Memory\n");
    let _ = writeln!(
        o,
        "Peak RSS of the mkplan processes timed above — each does exactly one backup or one \
         restore — from GNU time (`%M`), median [min–max] over the rounds. `VmHWM` is what \
         the process read from `/proc/self/status` just before it exited (the same quantity, \
         as a cross-check). For the shell, GNU time reports the largest single process of \
         the pipeline.\n"
    );
    let _ = writeln!(
        o,
        "| operation | store | mkplan peak RSS | mkplan VmHWM (median) | shell peak RSS |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    let picks: [(&str, Pick); 2] = [("backup", |a| &a.backup), ("restore", |a| &a.restore)];
    for (op, pick) in picks {
        for a in &r.archive {
            let p = pick(a);
            let hwm: Vec<f64> = p
                .mkplan
                .vm_hwm_kib
                .iter()
                .map(|k| *k as f64 / 1024.0)
                .collect();
            let _ = writeln!(
                o,
                "| {op} | {} | {} | {} | {} |",
                size_label(a),
                mib(p.mkplan.peak_rss_mib),
                Stats::of(&hwm).map_or("—".into(), |s| format!("{:.1} MiB", s.median)),
                mib(p.baseline.peak_rss_mib)
            );
        }
    }
    let _ = writeln!(
        o,
        "\nTarget: ≤ {RSS_MIB} MiB, and flat — taken here to mean at most {FLAT_GROWTH}× as \
         much at the largest store as at the smallest.\n"
    );
}

fn validation(o: &mut String, v: &Pair) {
    let _ = writeln!(o, "## 4. Validation\n");
    let _ = writeln!(
        o,
        "Wall time of the whole process, as an operator or CI waits for it: parse, schema, \
         safety rules and templates for mkplan; Python start-up, YAML load and JSON Schema \
         for `check-jsonschema` (which checks the schema only, not mkplan's rules).\n"
    );
    let _ = writeln!(
        o,
        "```console\n{}\n{}\n```\n",
        v.mkplan.command, v.baseline.command
    );
    let _ = writeln!(o, "| command | wall, median [min–max] |");
    let _ = writeln!(o, "|---|---|");
    for s in [&v.mkplan, &v.baseline] {
        let _ = writeln!(o, "| {} | {} |", s.name, spread(s.wall));
    }
    let _ = writeln!(
        o,
        "\nRatio: {}. {}\n",
        ratio(v),
        load(&[&v.mkplan, &v.baseline])
    );
}

//! Where the backup goes: writable, with room for the stores, and on another file system
//! than every store when a candidate is.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::init::inventory::{BackupFacts, SlotFacts};

#[derive(Debug, Clone, Default)]
pub struct BackupChoice {
    pub dir: Option<PathBuf>,
    /// Said beside the chosen directory (same file system as a store, …).
    pub warnings: Vec<String>,
    /// Directories looked at and not chosen, and why.
    pub rejected: Vec<String>,
}

/// The backup directory: on another file system than every chosen store when one is
/// writable and has room, else on the same one (said), else none (a placeholder).
pub(crate) fn choose_backup(candidates: &[BackupFacts], tokens: &[&SlotFacts]) -> BackupChoice {
    let need: u64 = tokens.iter().filter_map(|t| t.store_bytes).sum();
    let stores: BTreeSet<u64> = tokens.iter().filter_map(|t| t.store_fs).collect();
    let given = candidates.iter().any(|c| c.given);
    let mut rejected = Vec::new();
    let mut usable: Vec<&BackupFacts> = Vec::new();
    for candidate in candidates.iter().filter(|c| c.given == given) {
        let shown = candidate.dir.display();
        if let Some(why) = &candidate.not_writable {
            rejected.push(format!("`{shown}` is not writable: {why}"));
        } else if let Some(free) = candidate.free_bytes.filter(|free| *free < need) {
            rejected.push(format!(
                "`{shown}` has {} free, the store{} {} ({})",
                bytes(free),
                if tokens.len() == 1 {
                    " holds"
                } else {
                    "s hold"
                },
                bytes(need),
                candidate.existing.display()
            ));
        } else {
            usable.push(candidate);
        }
    }
    let elsewhere = usable
        .iter()
        .find(|c| c.fs.is_some_and(|fs| !stores.contains(&fs)));
    let (chosen, warnings) = match (elsewhere, usable.first()) {
        (Some(c), _) => (Some(*c), Vec::new()),
        (None, Some(c)) => (
            Some(*c),
            vec![format!(
                "`{}` is on the same file system as the token store: a failing disk takes both; prefer a directory on another file system (--backup-dir)",
                c.dir.display()
            )],
        ),
        (None, None) => (None, Vec::new()),
    };
    BackupChoice {
        dir: chosen.map(|c| c.dir.clone()),
        warnings,
        rejected,
    }
}

/// `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

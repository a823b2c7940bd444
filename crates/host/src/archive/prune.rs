//! Pruning old backups of one token: only pairs mkplan made (`<run-id>-<token>.tar.gz` with a
//! readable manifest beside it naming that archive and the same store as the backup just
//! made), newest first by run id, never the one just made, never anything else.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::ArchiveError;
use super::fsio;
use super::manifest::{Header, ManifestReader};

/// Keeps the `keep` newest backups of `token` in `dir` (counting `just_made`) and removes the
/// older ones, archive first, then manifest. Returns the removed paths.
pub fn prune(
    dir: &Path,
    token: &str,
    keep: u32,
    just_made: &Path,
) -> Result<Vec<PathBuf>, ArchiveError> {
    fsio::check_name("token", token)?;
    let suffix = format!("-{token}.tar.gz");
    let just_name = just_made
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.ends_with(&suffix))
        .ok_or_else(|| ArchiveError::InvalidName {
            what: "backup just made",
            value: just_made.display().to_string(),
            problem: "it is not a `<run-id>-<token>.tar.gz` file of this token",
        })?;
    let just_manifest = manifest_beside(just_made, just_name);
    let store = header(&just_manifest)?.store;
    let canon = |p: &Path| fs::canonicalize(p).map_err(|e| ArchiveError::io("resolve", p, e));
    let same_dir = match just_made.parent() {
        Some(p) if !p.as_os_str().is_empty() => canon(p)? == canon(dir)?,
        _ => canon(Path::new("."))? == canon(dir)?,
    };

    let mut backups = Vec::new();
    let listing = fs::read_dir(dir).map_err(|e| ArchiveError::io("list", dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| ArchiveError::io("list", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(run_id) = name.strip_suffix(&suffix) else {
            continue;
        };
        if fsio::check_name("run id", run_id).is_err() {
            continue;
        }
        let archive = entry.path();
        let manifest = manifest_beside(&archive, &name);
        if !is_regular(&archive)? || !is_regular(&manifest)? {
            continue;
        }
        match header(&manifest) {
            Ok(h) if h.archive == name && h.store == store => {}
            _ => continue,
        }
        let is_just_made = same_dir && name == just_name;
        backups.push((run_id.to_owned(), is_just_made, archive, manifest));
    }
    // Newest first: run ids sort by time.
    backups.sort_by(|a, b| b.0.cmp(&a.0));

    let mut removed = Vec::new();
    for (_, is_just_made, archive, manifest) in backups.into_iter().skip(keep as usize) {
        if is_just_made {
            continue;
        }
        fs::remove_file(&archive).map_err(|e| ArchiveError::io("remove", &archive, e))?;
        removed.push(archive);
        fs::remove_file(&manifest).map_err(|e| ArchiveError::io("remove", &manifest, e))?;
        removed.push(manifest);
    }
    if !removed.is_empty() {
        fsio::sync_dir(dir)?;
    }
    Ok(removed)
}

/// The manifest's header (version 1 manifests are read whole).
fn header(path: &Path) -> Result<Header, ArchiveError> {
    ManifestReader::open(path).map(|r| r.header().clone())
}

/// `<stem>.manifest.jsonl` beside `<stem>.tar.gz`, or the version 1 `<stem>.manifest.json`
/// of a backup made before.
fn manifest_beside(archive: &Path, name: &str) -> PathBuf {
    let stem = name.strip_suffix(".tar.gz").unwrap_or(name);
    let lines = archive.with_file_name(format!("{stem}.manifest.jsonl"));
    if fs::symlink_metadata(&lines).is_ok() {
        lines
    } else {
        archive.with_file_name(format!("{stem}.manifest.json"))
    }
}

fn is_regular(path: &Path) -> Result<bool, ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ArchiveError::io("inspect", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::backup;
    use crate::archive::testkit::{Store, listing};

    /// Backups `r1..=r5` of token `ep11`, plus files prune must leave alone.
    fn five_backups_and_strangers() -> Store {
        let t = Store::with_objects(3);
        for i in 1..=5 {
            backup(&t.store, &t.backups, &format!("r{i}-ep11")).unwrap();
        }
        let other = Store::with_objects(1);
        // Same name pattern, but a different store.
        backup(&other.store, &t.backups, "r0-ep11").unwrap();
        // Another token of the same store name pattern.
        backup(&t.store, &t.backups, "r0-cca").unwrap();
        let foreign = [
            ("notes.txt", "hello"),
            ("r00-ep11.tar.gz", "no manifest beside me"),
            ("r01-ep11.tar.gz", "bad manifest beside me"),
            ("r01-ep11.manifest.json", "{}"),
            ("r1-ep11.tar.gz.bak", "not the pattern"),
        ];
        for (name, text) in foreign {
            fs::write(t.backups.join(name), text).unwrap();
        }
        // A manifest copied under another name does not name its archive.
        fs::copy(
            t.backups.join("r1-ep11.manifest.jsonl"),
            t.backups.join("r02-ep11.manifest.jsonl"),
        )
        .unwrap();
        fs::copy(
            t.backups.join("r1-ep11.tar.gz"),
            t.backups.join("r02-ep11.tar.gz"),
        )
        .unwrap();
        t
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        let mut n: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn keeps_the_newest_n_and_leaves_foreign_files_alone() {
        let t = five_backups_and_strangers();
        let before = listing(&t.backups);
        let removed = prune(&t.backups, "ep11", 2, &t.backups.join("r5-ep11.tar.gz")).unwrap();
        let expected = [
            "r1-ep11.manifest.jsonl",
            "r1-ep11.tar.gz",
            "r2-ep11.manifest.jsonl",
            "r2-ep11.tar.gz",
            "r3-ep11.manifest.jsonl",
            "r3-ep11.tar.gz",
        ];
        assert_eq!(names(&removed), expected);
        let after: Vec<String> = before
            .into_iter()
            .filter(|n| !expected.contains(&n.as_str()))
            .collect();
        assert_eq!(listing(&t.backups), after);
        assert!(
            after.contains(&"r4-ep11.tar.gz".to_owned())
                && after.contains(&"r0-ep11.tar.gz".to_owned())
        );
        // Nothing more to do.
        assert!(
            prune(&t.backups, "ep11", 2, &t.backups.join("r5-ep11.tar.gz"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn never_removes_the_backup_just_made() {
        let t = five_backups_and_strangers();
        let removed = prune(&t.backups, "ep11", 1, &t.backups.join("r1-ep11.tar.gz")).unwrap();
        let removed = names(&removed);
        assert_eq!(removed.len(), 6, "{removed:?}");
        assert!(
            removed
                .iter()
                .all(|n| ["r2-", "r3-", "r4-"].iter().any(|p| n.starts_with(p))),
            "{removed:?}"
        );
        let left = listing(&t.backups);
        for kept in [
            "r1-ep11.tar.gz",
            "r5-ep11.tar.gz",
            "r0-cca.tar.gz",
            "notes.txt",
        ] {
            assert!(
                left.contains(&kept.to_owned()),
                "{kept} missing from {left:?}"
            );
        }
        let removed = prune(&t.backups, "ep11", 0, &t.backups.join("r1-ep11.tar.gz")).unwrap();
        assert_eq!(
            names(&removed),
            ["r5-ep11.manifest.jsonl", "r5-ep11.tar.gz"]
        );
    }

    #[test]
    fn refuses_a_just_made_path_that_is_not_a_backup_of_the_token() {
        let t = five_backups_and_strangers();
        let err = prune(&t.backups, "ep11", 1, &t.backups.join("notes.txt")).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid backup just made"),
            "{err}"
        );
        let err = prune(&t.backups, "ep11", 1, &t.backups.join("r00-ep11.tar.gz")).unwrap_err();
        assert!(err.to_string().contains("r00-ep11.manifest.json"), "{err}");
        assert!(prune(&t.backups, "ep/11", 1, &t.backups.join("r5-ep11.tar.gz")).is_err());
    }
}

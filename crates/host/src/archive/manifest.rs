//! The backup manifest: what the archive must contain, entry by entry, and the checks that
//! make a manifest read from disk safe to restore from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ArchiveError;

/// The manifest format this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// The only entry layout: member paths are `<store-name>/…`, relative to the store's parent.
pub const LAYOUT: &str = "parent-relative";

/// `<stem>.manifest.json`: everything the archive holds, with digests.
///
/// Member paths (`path`) are the archive's entry paths without a trailing slash:
/// `<root>` for the store directory itself, `<root>/TOK_OBJ/OBJ.IDX` and so on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// When the backup was made (RFC 3339, UTC).
    pub created: String,
    /// The mkplan version that made it.
    pub mkplan_version: String,
    /// The store that was backed up, as given.
    pub store: PathBuf,
    /// The store directory's name: the first component of every member path.
    pub root: String,
    /// [`LAYOUT`].
    pub layout: String,
    /// The archive's file name (`<stem>.tar.gz`), in the manifest's directory.
    pub archive: String,
    pub archive_sha256: String,
    pub archive_bytes: u64,
    /// For example `gzip level 1`.
    pub compression: String,
    /// Number of regular files.
    pub files: u64,
    /// Total bytes in the regular files.
    pub bytes: u64,
    /// Every directory, the store itself first, each before what it contains.
    pub directories: Vec<DirRecord>,
    /// Every regular file, in archive order.
    pub regular_files: Vec<FileRecord>,
}

/// One directory in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirRecord {
    pub path: String,
    /// Permission bits, written in octal (`"0750"`).
    #[serde(with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// User name for `uid` (from `/etc/passwd`; empty if unknown).
    pub user: String,
    /// Group name for `gid` (from `/etc/group`; empty if unknown).
    pub group: String,
    /// Seconds since the epoch.
    pub mtime: i64,
}

/// One regular file in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    #[serde(with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime: i64,
    pub sha256: String,
}

/// Where a member path sits in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Dir(usize),
    File(usize),
}

/// Member path → record, built only from a manifest that passed every check.
pub(super) struct Index<'m> {
    map: HashMap<&'m str, Slot>,
}

impl Index<'_> {
    pub(super) fn get(&self, path: &str) -> Option<Slot> {
        self.map.get(path).copied()
    }
}

/// Reads and checks a manifest; see [`Manifest`].
pub fn read_manifest(path: &Path) -> Result<Manifest, ArchiveError> {
    let manifest = load(path)?;
    manifest.index(path)?;
    Ok(manifest)
}

fn load(path: &Path) -> Result<Manifest, ArchiveError> {
    let bytes = mkplan_plan::input::read(path, mkplan_plan::input::MANIFEST)
        .map_err(|e| ArchiveError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Manifest {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

impl Manifest {
    /// Checks everything a restore relies on and returns the path index. `source` names the
    /// manifest in messages.
    pub(super) fn index(&self, source: &Path) -> Result<Index<'_>, ArchiveError> {
        self.check().map_err(|problem| ArchiveError::Manifest {
            path: source.to_path_buf(),
            problem: problem.to_string(),
        })
    }

    fn check(&self) -> Result<Index<'_>, ManifestProblem> {
        if self.version != MANIFEST_VERSION {
            return Err(ManifestProblem::Version(self.version));
        }
        if self.layout != LAYOUT {
            return Err(ManifestProblem::Layout(self.layout.clone()));
        }
        if !is_component(&self.root) {
            return Err(ManifestProblem::Root(self.root.clone()));
        }
        if !is_component(&self.archive) || !self.archive.ends_with(".tar.gz") {
            return Err(ManifestProblem::ArchiveName(self.archive.clone()));
        }
        check_sha("archive_sha256", &self.archive_sha256)?;
        match self.directories.first() {
            Some(d) if d.path == self.root => {}
            _ => return Err(ManifestProblem::RootFirst(self.root.clone())),
        }
        let mut map = HashMap::with_capacity(self.directories.len() + self.regular_files.len());
        let root = self.root.as_str();
        fn add<'m>(
            root: &str,
            path: &'m str,
            slot: Slot,
            map: &mut HashMap<&'m str, Slot>,
        ) -> Result<(), ManifestProblem> {
            check_member(root, path)?;
            if let Some((parent, _)) = path.rsplit_once('/')
                && !matches!(map.get(parent), Some(Slot::Dir(_)))
            {
                return Err(ManifestProblem::BeforeItsDirectory {
                    path: path.to_owned(),
                    parent: parent.to_owned(),
                });
            }
            if map.insert(path, slot).is_some() {
                return Err(ManifestProblem::Twice(path.to_owned()));
            }
            Ok(())
        }
        for (i, d) in self.directories.iter().enumerate() {
            add(root, &d.path, Slot::Dir(i), &mut map)?;
            check_meta(&d.path, d.mode, d.mtime)?;
        }
        let mut bytes = 0u64;
        for (i, f) in self.regular_files.iter().enumerate() {
            if f.path == self.root {
                return Err(ManifestProblem::RootAsFile(f.path.clone()));
            }
            add(root, &f.path, Slot::File(i), &mut map)?;
            check_meta(&f.path, f.mode, f.mtime)?;
            check_sha(&f.path, &f.sha256)?;
            bytes = bytes
                .checked_add(f.size)
                .ok_or(ManifestProblem::SizeOverflow)?;
        }
        if self.files != self.regular_files.len() as u64 || self.bytes != bytes {
            return Err(ManifestProblem::Totals {
                files: self.files,
                bytes: self.bytes,
                listed_files: self.regular_files.len(),
                listed_bytes: bytes,
            });
        }
        Ok(Index { map })
    }

    /// Every entry's `(path, uid, gid)`, directories first.
    pub(super) fn owners(&self) -> impl Iterator<Item = (&str, u32, u32)> {
        let dirs = self
            .directories
            .iter()
            .map(|d| (d.path.as_str(), d.uid, d.gid));
        let files = self
            .regular_files
            .iter()
            .map(|f| (f.path.as_str(), f.uid, f.gid));
        dirs.chain(files)
    }
}

/// What makes a manifest one a restore cannot rely on (said after "manifest `path`:").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ManifestProblem {
    #[error("version {0} is not supported; this mkplan reads version {MANIFEST_VERSION}")]
    Version(u32),
    #[error("layout `{0}` is not `{LAYOUT}`")]
    Layout(String),
    #[error("root `{0}` is not a plain directory name")]
    Root(String),
    #[error("archive `{0}` is not a `.tar.gz` file name")]
    ArchiveName(String),
    #[error("the first directory must be the root `{0}`")]
    RootFirst(String),
    #[error("`{path}` comes before its directory `{parent}`")]
    BeforeItsDirectory { path: String, parent: String },
    #[error("`{0}` is listed twice")]
    Twice(String),
    #[error("`{0}` is the root, not a file")]
    RootAsFile(String),
    #[error("total size overflows")]
    SizeOverflow,
    #[error(
        "it says {files} files and {bytes} bytes but lists {listed_files} files and {listed_bytes} bytes"
    )]
    Totals {
        files: u64,
        bytes: u64,
        listed_files: usize,
        listed_bytes: u64,
    },
    #[error("`{path}` is not a plain path under `{root}`")]
    NotUnderRoot { path: String, root: String },
    #[error("`{path}` has mode {mode:o}, more than permission bits")]
    Mode { path: String, mode: u32 },
    #[error("`{0}` has a negative mtime")]
    NegativeMtime(String),
    #[error("`{what}`: `{sha}` is not a lowercase hex SHA-256")]
    Sha { what: String, sha: String },
}

/// A single normal path component.
pub(super) fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// `path` is `root` or `root/a/b…` with only normal components.
fn check_member(root: &str, path: &str) -> Result<(), ManifestProblem> {
    let ok = path == root
        || path
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| rest.split('/').all(is_component));
    if ok {
        Ok(())
    } else {
        Err(ManifestProblem::NotUnderRoot {
            path: path.to_owned(),
            root: root.to_owned(),
        })
    }
}

fn check_meta(path: &str, mode: u32, mtime: i64) -> Result<(), ManifestProblem> {
    if mode > 0o7777 {
        return Err(ManifestProblem::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    if mtime < 0 {
        return Err(ManifestProblem::NegativeMtime(path.to_owned()));
    }
    Ok(())
}

fn check_sha(what: &str, sha: &str) -> Result<(), ManifestProblem> {
    let ok = sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(ManifestProblem::Sha {
            what: what.to_owned(),
            sha: sha.to_owned(),
        })
    }
}

/// Permission bits as a four-digit octal string.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        let ok = (1..=5).contains(&text.len()) && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match ok.then(|| u32::from_str_radix(&text, 8)) {
            Some(Ok(mode)) if mode <= 0o7777 => Ok(mode),
            _ => Err(D::Error::custom(format!(
                "mode `{text}` is not octal permission bits like \"0640\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Edit = Box<dyn Fn(&mut Manifest)>;

    fn sample() -> Manifest {
        let dir = |path: &str| DirRecord {
            path: path.to_owned(),
            mode: 0o750,
            uid: 0,
            gid: 0,
            user: "root".to_owned(),
            group: "root".to_owned(),
            mtime: 1_700_000_000,
        };
        let file = |path: &str, size| FileRecord {
            path: path.to_owned(),
            size,
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: "root".to_owned(),
            group: "root".to_owned(),
            mtime: 1_700_000_000,
            sha256: "ab".repeat(32),
        };
        Manifest {
            version: 1,
            created: "2025-01-01T00:00:00Z".to_owned(),
            mkplan_version: "0.1.0".to_owned(),
            store: PathBuf::from("/var/lib/opencryptoki/ep11tok"),
            root: "ep11tok".to_owned(),
            layout: LAYOUT.to_owned(),
            archive: "r1-ep11.tar.gz".to_owned(),
            archive_sha256: "cd".repeat(32),
            archive_bytes: 100,
            compression: "gzip level 1".to_owned(),
            files: 2,
            bytes: 30,
            directories: vec![dir("ep11tok"), dir("ep11tok/TOK_OBJ")],
            regular_files: vec![
                file("ep11tok/NVTOK.DAT", 10),
                file("ep11tok/TOK_OBJ/OB1", 20),
            ],
        }
    }

    fn problem(m: &Manifest) -> String {
        match m.index(Path::new("m.json")) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_manifest_round_trips_and_indexes() {
        let m = sample();
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert!(text.contains("\"mode\": \"0750\""), "{text}");
        let back: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        let index = back.index(Path::new("m.json")).unwrap();
        assert_eq!(index.get("ep11tok/TOK_OBJ"), Some(Slot::Dir(1)));
        assert_eq!(index.get("ep11tok/TOK_OBJ/OB1"), Some(Slot::File(1)));
        assert_eq!(index.get("ep11tok/x"), None);
    }

    #[test]
    fn hostile_or_inconsistent_manifests_are_refused() {
        let cases: Vec<(&str, Edit)> = vec![
            ("version 2 is not supported", Box::new(|m| m.version = 2)),
            ("layout", Box::new(|m| m.layout = "store-relative".into())),
            (
                "not a plain path",
                Box::new(|m| m.regular_files[0].path = "ep11tok/../x".into()),
            ),
            (
                "not a plain path",
                Box::new(|m| m.regular_files[0].path = "/etc/passwd".into()),
            ),
            (
                "not a plain path",
                Box::new(|m| m.regular_files[0].path = "other/x".into()),
            ),
            (
                "not a plain path",
                Box::new(|m| m.regular_files[0].path = "ep11tok//x".into()),
            ),
            (
                "listed twice",
                Box::new(|m| m.regular_files[1].path = "ep11tok/NVTOK.DAT".into()),
            ),
            ("must be the root", Box::new(|m| m.directories.swap(0, 1))),
            (
                "before its directory",
                Box::new(|m| m.directories[1].path = "ep11tok/a/b".into()),
            ),
            (
                "before its directory",
                Box::new(|m| m.regular_files[0].path = "ep11tok/a/b".into()),
            ),
            (
                "lowercase hex",
                Box::new(|m| m.regular_files[0].sha256 = "AB".repeat(32)),
            ),
            ("30 bytes", Box::new(|m| m.bytes = 31)),
            ("root `..`", Box::new(|m| m.root = "..".into())),
            (
                "`.tar.gz` file name",
                Box::new(|m| m.archive = "../x.tar.gz".into()),
            ),
            ("negative mtime", Box::new(|m| m.directories[1].mtime = -1)),
        ];
        for (want, edit) in cases {
            let mut m = sample();
            edit(&mut m);
            let got = problem(&m);
            assert!(got.contains(want), "wanted `{want}`, got `{got}`");
        }
    }

    #[test]
    fn unknown_fields_and_bad_modes_fail_to_parse() {
        let text = serde_json::to_string(&sample()).unwrap();
        let extra = text.replacen("{", "{\"surprise\":1,", 1);
        assert!(serde_json::from_str::<Manifest>(&extra).is_err());
        let bad_mode = text.replacen("\"0750\"", "\"0789\"", 1);
        let err = serde_json::from_str::<Manifest>(&bad_mode).unwrap_err();
        assert!(err.to_string().contains("octal permission bits"), "{err}");
    }

    #[test]
    fn read_manifest_reports_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(&path, "{\"version\": 1}").unwrap();
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("manifest `{}`", path.display())),
            "{err}"
        );
    }
}

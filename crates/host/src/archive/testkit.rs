//! Test support: a token store shaped like an EP11 one, tree snapshots and GNU tar.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

/// Object files in the default store.
pub(super) const OBJECTS: usize = 50;
/// uid/gid `nobody`/`nogroup` get when the tests run as root.
pub(super) const NOBODY: u32 = 65534;

/// `<tmp>/var/lib/opencryptoki/ep11tok` with `NVTOK.DAT`, `MK_SO`, `MK_USER`,
/// `TOK_OBJ/OBJ.IDX`, [`OBJECTS`] object files of 1–3 KiB of random bytes (modes 0600 and
/// 0640), an empty directory, and `<tmp>/backups` for the archives.
pub(super) struct Store {
    pub dir: TempDir,
    pub store: PathBuf,
    pub backups: PathBuf,
    pub objects: usize,
}

impl Store {
    pub(super) fn new() -> Self {
        Self::with_objects(OBJECTS)
    }

    pub(super) fn with_objects(objects: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("var/lib/opencryptoki/ep11tok");
        let backups = dir.path().join("backups");
        fs::create_dir_all(store.join("TOK_OBJ")).unwrap();
        fs::create_dir_all(store.join("spare")).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ objects as u64);
        let mut put = |rel: &str, len: usize, mode: u32, age: u64| {
            let path = store.join(rel);
            fs::write(&path, rng.bytes(len)).unwrap();
            set_mode_and_age(&path, mode, age);
        };
        put("NVTOK.DAT", 1024 + 216, 0o600, 100);
        put("MK_SO", 64, 0o600, 200);
        put("MK_USER", 64, 0o600, 300);
        let mut index = String::new();
        for i in 0..objects {
            let name = format!("OB{:06X}", i * 7919);
            index.push_str(&name);
            index.push('\n');
            let len = 1024 + (i * 997) % 2048;
            let mode = if i % 2 == 0 { 0o600 } else { 0o640 };
            put(&format!("TOK_OBJ/{name}"), len, mode, 1000 + i as u64);
        }
        let idx = store.join("TOK_OBJ/OBJ.IDX");
        fs::write(&idx, index).unwrap();
        set_mode_and_age(&idx, 0o640, 50);
        if rustix::process::geteuid().is_root() {
            for rel in ["MK_USER", "TOK_OBJ/OB000000"] {
                std::os::unix::fs::chown(store.join(rel), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        set_mode_and_age(&store.join("spare"), 0o700, 20);
        set_mode_and_age(&store.join("TOK_OBJ"), 0o750, 10);
        set_mode_and_age(&store, 0o750, 5);
        Self {
            dir,
            store,
            backups,
            objects,
        }
    }

    /// Entries a walk of the fresh store sees: root, two directories, three top files,
    /// `OBJ.IDX` and the objects.
    pub(super) fn expected_entries(&self) -> usize {
        1 + 2 + 3 + 1 + self.objects
    }

    pub(super) fn parent(&self) -> PathBuf {
        self.store.parent().unwrap().to_path_buf()
    }
}

/// Sets permission bits and an mtime `age` hours after 2023-11-14T22:13:20Z.
pub(super) fn set_mode_and_age(path: &Path, mode: u32, age: u64) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + age * 3600);
    File::open(path).unwrap().set_modified(when).unwrap();
}

/// Per path: type (`d`/`f`/`?`), mode, uid, gid, mtime, content.
pub(super) type Snapshot = BTreeMap<String, (char, u32, u32, u32, i64, Vec<u8>)>;

/// Everything about a tree that a restore must reproduce: per path (relative to `dir`) the
/// type, mode, uid, gid, mtime and content.
pub(super) fn snapshot(dir: &Path) -> Snapshot {
    fn go(base: &Path, dir: &Path, out: &mut Snapshot) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let (kind, data) = if m.is_dir() {
                go(base, &path, out);
                ('d', Vec::new())
            } else if m.is_file() {
                ('f', fs::read(&path).unwrap())
            } else {
                ('?', Vec::new())
            };
            out.insert(
                rel,
                (kind, m.mode() & 0o7777, m.uid(), m.gid(), m.mtime(), data),
            );
        }
    }
    let mut out = BTreeMap::new();
    let m = fs::symlink_metadata(dir).unwrap();
    out.insert(
        ".".to_owned(),
        (
            'd',
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.mtime(),
            Vec::new(),
        ),
    );
    go(dir, dir, &mut out);
    out
}

/// Names in `dir`, sorted.
pub(super) fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Runs GNU tar; panics with its stderr on failure. Returns stdout.
pub(super) fn gnu_tar(args: &[&str]) -> String {
    let out = Command::new("tar")
        .args(args)
        .output()
        .expect("GNU tar runs");
    assert!(
        out.status.success(),
        "tar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// xorshift64*: reproducible "random" key blobs without a dependency.
pub(super) struct Rng(pub u64);

impl Rng {
    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

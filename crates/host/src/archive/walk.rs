//! Walking a token store: every entry with its `lstat` metadata, directories before their
//! contents and names sorted, refusing anything that is not a regular file or a directory.
//! Also the uid/gid → name tables that go into the tar headers.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::ArchiveError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
}

/// One entry of the store as `lstat` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// Path inside the store; empty for the store itself.
    pub rel: String,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub dev: u64,
    pub ino: u64,
}

impl Node {
    fn new(rel: String, meta: &Metadata, path: &Path) -> Result<Self, ArchiveError> {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            let kind = if ft.is_symlink() {
                "symbolic link"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_char_device() {
                "character device"
            } else if ft.is_block_device() {
                "block device"
            } else {
                "special file"
            };
            return Err(ArchiveError::SpecialFile {
                path: path.to_path_buf(),
                kind,
            });
        };
        Ok(Self {
            rel,
            kind,
            size: if kind == Kind::File { meta.size() } else { 0 },
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The member path in the archive and manifest: `<root>` or `<root>/<rel>`.
    pub(super) fn member(&self, root: &str) -> String {
        if self.rel.is_empty() {
            root.to_owned()
        } else {
            format!("{root}/{}", self.rel)
        }
    }

    /// Whether `meta` (from `fstat` of the opened file) is still what the walk saw.
    pub(super) fn same_as(&self, meta: &Metadata) -> bool {
        meta.file_type().is_file()
            && meta.size() == self.size
            && meta.mode() & 0o7777 == self.mode
            && meta.uid() == self.uid
            && meta.gid() == self.gid
            && meta.mtime() == self.mtime
            && meta.dev() == self.dev
            && meta.ino() == self.ino
    }
}

/// Checks that `store` is a real directory (not a symlink to one).
pub(super) fn check_store_dir(store: &Path) -> Result<(), ArchiveError> {
    let problem = match fs::symlink_metadata(store) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            "is a symbolic link; name the directory it points to"
        }
        Ok(_) => "is not a directory",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(e) => return Err(ArchiveError::io("inspect", store, e)),
    };
    Err(ArchiveError::Store {
        path: store.to_path_buf(),
        problem: problem.to_owned(),
    })
}

/// Calls `visit` for the store itself and then every entry below it, depth first, each
/// directory before its contents, names in byte order.
pub(super) fn walk(
    store: &Path,
    visit: &mut dyn FnMut(Node) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    check_store_dir(store)?;
    let meta = fs::symlink_metadata(store).map_err(|e| ArchiveError::io("inspect", store, e))?;
    visit(Node::new(String::new(), &meta, store)?)?;
    walk_dir(store, "", visit)
}

fn walk_dir(
    store: &Path,
    rel: &str,
    visit: &mut dyn FnMut(Node) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let dir = if rel.is_empty() {
        store.to_path_buf()
    } else {
        store.join(rel)
    };
    let names = Listing::read(&dir)?;
    for i in 0..names.len() {
        let name = names.name(i);
        let path = dir.join(name);
        let name = name.to_str().ok_or_else(|| ArchiveError::Store {
            path: path.clone(),
            problem: "has a name that is not UTF-8".to_owned(),
        })?;
        let child = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta =
            fs::symlink_metadata(&path).map_err(|e| ArchiveError::io("inspect", &path, e))?;
        let node = Node::new(child, &meta, &path)?;
        if node.kind == Kind::Dir {
            let sub = node.rel.clone();
            visit(node)?;
            walk_dir(store, &sub, visit)?;
        } else {
            visit(node)?;
        }
    }
    Ok(())
}

/// The names in one directory, sorted byte-wise, packed into one buffer: a token store keeps
/// every object in `TOK_OBJ`, so this is the one thing the walk holds that grows with the
/// store, at the name's length plus 8 bytes (a `DirEntry` each took several times that).
struct Listing {
    bytes: Vec<u8>,
    /// Where each name is in `bytes` (start, end), sorted by name.
    spans: Vec<(u32, u32)>,
}

impl Listing {
    fn read(dir: &Path) -> Result<Self, ArchiveError> {
        use std::os::unix::ffi::OsStrExt;
        let err = |e| ArchiveError::io("list", dir, e);
        // Counted first, so both buffers are allocated once at their size: growing them
        // doubled (and copied) the largest allocation of a backup of a million objects.
        let (mut count, mut total) = (0usize, 0usize);
        for entry in fs::read_dir(dir).map_err(err)? {
            count += 1;
            total += entry.map_err(err)?.file_name().len();
        }
        let mut bytes = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(count);
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let start = bytes.len();
            bytes.extend_from_slice(entry.file_name().as_bytes());
            let end = u32::try_from(bytes.len()).map_err(|_| ArchiveError::Store {
                path: dir.to_path_buf(),
                problem: "has more names than one listing can hold (4 GiB)".to_owned(),
            })?;
            spans.push((start as u32, end));
        }
        spans.sort_unstable_by(|a, b| {
            bytes[a.0 as usize..a.1 as usize].cmp(&bytes[b.0 as usize..b.1 as usize])
        });
        Ok(Self { bytes, spans })
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn name(&self, i: usize) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        let (start, end) = self.spans[i];
        std::ffi::OsStr::from_bytes(&self.bytes[start as usize..end as usize])
    }
}

/// uid → user and gid → group names from `/etc/passwd` and `/etc/group`. Names that do not
/// fit a tar header (32 bytes) and ids without a name map to the empty string, which GNU
/// tar reads as "use the number".
pub(super) struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub(super) fn load() -> Self {
        let read = |p: &str| {
            mkplan_plan::input::read_to_string(Path::new(p), mkplan_plan::input::ACCOUNTS)
                .map(|t| parse_db(&t))
                .unwrap_or_default()
        };
        Self {
            users: read("/etc/passwd"),
            groups: read("/etc/group"),
        }
    }

    pub(super) fn user(&self, uid: u32) -> &str {
        self.users.get(&uid).map_or("", String::as_str)
    }

    pub(super) fn group(&self, gid: u32) -> &str {
        self.groups.get(&gid).map_or("", String::as_str)
    }
}

/// `name:x:id:…` lines; the first line for an id wins, as with `getpwuid`.
fn parse_db(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(id) = id.parse::<u32>()
            && !name.is_empty()
            && name.len() <= 32
            && !name.starts_with(['+', '-', '#'])
        {
            map.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::testkit;

    #[test]
    fn passwd_lines_map_ids_to_names() {
        let db =
            parse_db("root:x:0:0:root:/root:/bin/sh\n#c\nbad\nalt:x:0:0::/:/\nnobody:x:65534:");
        assert_eq!(db.get(&0).map(String::as_str), Some("root"));
        assert_eq!(db.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(db.len(), 2);
    }

    #[test]
    fn walk_lists_directories_before_contents_in_sorted_order() {
        let t = testkit::Store::new();
        let mut seen = Vec::new();
        walk(&t.store, &mut |n| {
            seen.push((n.rel, n.kind));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen[0], (String::new(), Kind::Dir));
        let pos = |p: &str| seen.iter().position(|(r, _)| r == p).unwrap();
        assert!(pos("TOK_OBJ") < pos("TOK_OBJ/OBJ.IDX"));
        assert!(pos("MK_SO") < pos("MK_USER") && pos("MK_USER") < pos("NVTOK.DAT"));
        assert_eq!(seen.len(), t.expected_entries());
    }

    #[test]
    fn the_store_itself_must_be_a_real_directory() {
        let t = testkit::Store::new();
        let link = t.dir.path().join("link");
        std::os::unix::fs::symlink(&t.store, &link).unwrap();
        for (path, want) in [
            (link, "is a symbolic link"),
            (t.store.join("NVTOK.DAT"), "is not a directory"),
            (t.dir.path().join("nothing"), "does not exist"),
        ] {
            let err = check_store_dir(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}

//! The backup manifest: what the archive must contain, entry by entry, in archive order.
//!
//! Version 2 (`<stem>.manifest.jsonl`) is JSON Lines: a [`Header`] line, one line per member
//! (`{"dir":{…}}` or `{"file":{…}}`) in the order of the walk and the archive, and an
//! `{"end":{…}}` line with the [`Totals`] and the archive's digest, known only once it is
//! written. It is written and read one member at a time: nothing proportional to the store is
//! held. The order (directories before their contents, names sorted byte-wise, depth first) is
//! what lets every check be a merge of ordered streams: a member must come after the one
//! before it ([`walk_order`]), so no path is listed twice, and its directory must be on the
//! stack of directories still open, so it never comes before its directory.
//!
//! Version 1 (`<stem>.manifest.json`, one JSON object) is still read, whole, for backups made
//! before; see [`v1`].

mod v1;

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ArchiveError;
use super::fsio::{self, HashReader, HashWriter};

/// The manifest format this code writes. Version 1 is still read.
pub const MANIFEST_VERSION: u32 = 2;
/// The only entry layout: member paths are `<store-name>/…`, relative to the store's parent.
pub const LAYOUT: &str = "parent-relative";
/// The longest line a manifest may have (a member line is about 250 bytes).
const MAX_LINE: u64 = 64 * 1024;

/// The first line: what was backed up, from where, into which archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
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
    /// For example `gzip level 1`.
    pub compression: String,
}

/// The last line: how much was listed, and the archive's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Number of directories, the store itself included.
    pub directories: u64,
    /// Number of regular files.
    pub files: u64,
    /// Total bytes in the regular files.
    pub bytes: u64,
    pub archive_sha256: String,
    pub archive_bytes: u64,
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

/// One member: a directory or a regular file. Member paths are the archive's entry paths
/// without a trailing slash: `<root>` for the store directory itself, `<root>/TOK_OBJ/OBJ.IDX`…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Member {
    Dir(DirRecord),
    File(FileRecord),
}

/// What the metadata of any member is, whatever its kind.
pub(super) struct Meta<'a> {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub user: &'a str,
    pub group: &'a str,
}

impl Member {
    pub fn path(&self) -> &str {
        match self {
            Self::Dir(d) => &d.path,
            Self::File(f) => &f.path,
        }
    }

    pub(super) fn meta(&self) -> Meta<'_> {
        match self {
            Self::Dir(d) => Meta {
                mode: d.mode,
                uid: d.uid,
                gid: d.gid,
                mtime: d.mtime,
                user: &d.user,
                group: &d.group,
            },
            Self::File(f) => Meta {
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
                mtime: f.mtime,
                user: &f.user,
                group: &f.group,
            },
        }
    }
}

/// One line of a version 2 manifest after the header.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Dir(DirRecord),
    File(FileRecord),
    End(Totals),
}

/// The order of the walk and the archive: component by component, byte-wise. Depth first
/// with sorted names lists a directory right before its contents and after everything of
/// the names that sort before it, which is exactly this order.
pub fn walk_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Checks members one at a time: each is a plain path under the root, after the member
/// before it in [`walk_order`], below a directory already listed, with sane metadata.
/// Holds only the chain of open directories.
pub(super) struct Order {
    root: String,
    last: Option<String>,
    open_dirs: Vec<String>,
    counts: (u64, u64, u64),
}

impl Order {
    pub(super) fn new(root: &str) -> Self {
        Self {
            root: root.to_owned(),
            last: None,
            open_dirs: Vec::new(),
            counts: (0, 0, 0),
        }
    }

    fn admit(&mut self, member: &Member) -> Result<(), ManifestProblem> {
        let path = member.path();
        check_member(&self.root, path)?;
        let meta = member.meta();
        check_meta(path, meta.mode, meta.mtime)?;
        match &self.last {
            None if path == self.root && matches!(member, Member::Dir(_)) => {}
            None => return Err(ManifestProblem::RootFirst(self.root.clone())),
            Some(last) => match walk_order(last, path) {
                Ordering::Less => {}
                Ordering::Equal => return Err(ManifestProblem::Twice(path.to_owned())),
                Ordering::Greater => {
                    return Err(ManifestProblem::OutOfOrder {
                        path: path.to_owned(),
                        last: last.clone(),
                    });
                }
            },
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            while self.open_dirs.last().is_some_and(|d| d != parent) {
                self.open_dirs.pop();
            }
            if self.open_dirs.is_empty() {
                return Err(ManifestProblem::BeforeItsDirectory {
                    path: path.to_owned(),
                    parent: parent.to_owned(),
                });
            }
        }
        match member {
            Member::Dir(d) => {
                self.open_dirs.push(d.path.clone());
                self.counts.0 += 1;
            }
            Member::File(f) => {
                check_sha(&f.path, &f.sha256)?;
                self.counts.1 += 1;
                self.counts.2 = self
                    .counts
                    .2
                    .checked_add(f.size)
                    .ok_or(ManifestProblem::SizeOverflow)?;
            }
        }
        self.last = Some(path.to_owned());
        Ok(())
    }

    fn check_totals(&self, totals: &Totals) -> Result<(), ManifestProblem> {
        check_sha("archive_sha256", &totals.archive_sha256)?;
        let said = (totals.directories, totals.files, totals.bytes);
        if said != self.counts {
            return Err(ManifestProblem::Totals {
                said,
                listed: self.counts,
            });
        }
        Ok(())
    }
}

/// Writes a version 2 manifest line by line, hashing what it writes.
pub(super) struct ManifestWriter<'f> {
    out: BufWriter<HashWriter<&'f File>>,
    path: PathBuf,
    order: Order,
}

impl<'f> ManifestWriter<'f> {
    pub(super) fn new(out: &'f File, path: &Path, header: &Header) -> Result<Self, ArchiveError> {
        let mut writer = Self {
            out: BufWriter::with_capacity(fsio::BUF, HashWriter::new(out)),
            path: path.to_path_buf(),
            order: Order::new(&header.root),
        };
        writer.line(header)?;
        Ok(writer)
    }

    fn line(&mut self, value: &impl Serialize) -> Result<(), ArchiveError> {
        serde_json::to_writer(&mut self.out, value)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| ArchiveError::io("write", &self.path, e))
    }

    /// Appends a member; the writer checks it as a reader will.
    pub(super) fn member(&mut self, member: Member) -> Result<(), ArchiveError> {
        self.order
            .admit(&member)
            .map_err(|p| problem(&self.path, p))?;
        self.line(&match member {
            Member::Dir(d) => Line::Dir(d),
            Member::File(f) => Line::File(f),
        })
    }

    /// Writes the `end` line, fsyncs, and returns the totals and the manifest's SHA-256.
    pub(super) fn finish(
        mut self,
        archive_sha256: String,
        archive_bytes: u64,
    ) -> Result<(Totals, String), ArchiveError> {
        let (directories, files, bytes) = self.order.counts;
        let totals = Totals {
            directories,
            files,
            bytes,
            archive_sha256,
            archive_bytes,
        };
        self.line(&Line::End(totals.clone()))?;
        let io_err = |e| ArchiveError::io("write", &self.path, e);
        let (file, sha, _) = self
            .out
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?
            .finish();
        file.sync_all().map_err(io_err)?;
        Ok((totals, sha))
    }
}

enum Source {
    Lines {
        input: BufReader<HashReader<File>>,
        line: Vec<u8>,
        number: u64,
    },
    /// A version 1 manifest, read whole; its digest is known.
    Whole {
        members: std::vec::IntoIter<Member>,
        totals: Totals,
        sha256: String,
    },
}

/// Reads a manifest member by member, checking each as it comes (see [`Order`]). The
/// manifest's own SHA-256 is known once it has been read to its end ([`Self::finish`] or
/// [`Self::digest`]).
pub struct ManifestReader {
    path: PathBuf,
    header: Header,
    source: Source,
    order: Order,
    end: Option<Totals>,
}

impl ManifestReader {
    /// Opens the manifest at `path` (a symlink to one is refused) and reads its header.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        Self::from_file(super::journaled::open_regular(path)?, path)
    }

    /// Reads the header of the manifest open in `file`; `path` names it in messages.
    pub(super) fn from_file(file: File, path: &Path) -> Result<Self, ArchiveError> {
        let mut input = BufReader::with_capacity(64 * 1024, HashReader::new(file));
        let mut line = Vec::new();
        let io_err = |e| ArchiveError::io("read", path, e);
        read_line(&mut input, &mut line, 1).map_err(|e| e.into_error(path))?;
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        match serde_json::from_slice::<Version>(&line) {
            Ok(Version { version: 2 }) => {
                let header: Header = serde_json::from_slice(&line)
                    .map_err(|e| line_problem(path, 1, &e.to_string()))?;
                let source = Source::Lines {
                    input,
                    line,
                    number: 1,
                };
                Self::checked(path, header, source)
            }
            Ok(Version { version }) => Err(problem(path, ManifestProblem::Version(version))),
            // Version 1 is one pretty-printed object: its first line is `{`.
            Err(_) => {
                let limit = mkplan_plan::input::MANIFEST.bytes;
                input
                    .by_ref()
                    .take(limit)
                    .read_to_end(&mut line)
                    .map_err(io_err)?;
                if !input.fill_buf().map_err(io_err)?.is_empty() {
                    return Err(problem(
                        path,
                        ManifestProblem::Line {
                            line: 1,
                            problem: format!("a version 1 manifest over {limit} bytes is not read"),
                        },
                    ));
                }
                let whole: v1::ManifestV1 = serde_json::from_slice(&line)
                    .map_err(|e| line_problem(path, e.line() as u64, &e.to_string()))?;
                if whole.version != 1 {
                    return Err(problem(path, ManifestProblem::Version(whole.version)));
                }
                let (sha256, _) = input.into_inner().finish();
                let (header, members, totals) = whole.split().map_err(|p| problem(path, p))?;
                let source = Source::Whole {
                    members: members.into_iter(),
                    totals,
                    sha256,
                };
                Self::checked(path, header, source)
            }
        }
    }

    fn checked(path: &Path, header: Header, source: Source) -> Result<Self, ArchiveError> {
        let check = || {
            if header.layout != LAYOUT {
                return Err(ManifestProblem::Layout(header.layout.clone()));
            }
            if !is_component(&header.root) {
                return Err(ManifestProblem::Root(header.root.clone()));
            }
            if !is_component(&header.archive) || !header.archive.ends_with(".tar.gz") {
                return Err(ManifestProblem::ArchiveName(header.archive.clone()));
            }
            Ok(())
        };
        check().map_err(|p| problem(path, p))?;
        Ok(Self {
            path: path.to_path_buf(),
            order: Order::new(&header.root),
            header,
            source,
            end: None,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next member, checked; `None` after the last one (the totals then checked too).
    pub fn next_member(&mut self) -> Result<Option<Member>, ArchiveError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let path = &self.path;
        let (member, number) = match &mut self.source {
            Source::Whole {
                members, totals, ..
            } => match members.next() {
                Some(m) => (m, 0),
                None => {
                    self.order
                        .check_totals(totals)
                        .map_err(|p| problem(path, p))?;
                    self.end = Some(totals.clone());
                    return Ok(None);
                }
            },
            Source::Lines {
                input,
                line,
                number,
            } => {
                *number += 1;
                let at = *number;
                read_line(input, line, at).map_err(|e| e.into_error(path))?;
                if line.is_empty() {
                    return Err(problem(path, ManifestProblem::Truncated));
                }
                match serde_json::from_slice::<Line>(line) {
                    Ok(Line::Dir(d)) => (Member::Dir(d), at),
                    Ok(Line::File(f)) => (Member::File(f), at),
                    Ok(Line::End(totals)) => {
                        self.order
                            .check_totals(&totals)
                            .map_err(|p| line_problem(path, at, &p.to_string()))?;
                        let more = input
                            .fill_buf()
                            .map_err(|e| ArchiveError::io("read", path, e))?;
                        if !more.is_empty() {
                            return Err(problem(path, ManifestProblem::AfterEnd));
                        }
                        self.end = Some(totals);
                        return Ok(None);
                    }
                    Err(e) => return Err(line_problem(path, at, &e.to_string())),
                }
            }
        };
        self.order.admit(&member).map_err(|p| {
            if number == 0 {
                problem(path, p)
            } else {
                line_problem(path, number, &p.to_string())
            }
        })?;
        Ok(Some(member))
    }

    /// Reads what is left (every member checked) and returns the totals and the manifest's
    /// SHA-256.
    pub fn finish(mut self) -> Result<(Totals, String), ArchiveError> {
        while self.next_member()?.is_some() {}
        let (end, sha) = self.skip_to_end()?;
        let totals = end.expect("next_member returned None only at the `end` line");
        Ok((totals, sha))
    }

    /// Reads the rest of the file without checking the members: the `end` line's totals if
    /// the last line is one, and the manifest's SHA-256. For telling which file is not the
    /// journaled one (or not the archive's manifest) when something else failed first.
    pub fn skip_to_end(self) -> Result<(Option<Totals>, String), ArchiveError> {
        match self.source {
            Source::Whole { sha256, totals, .. } => Ok((Some(totals), sha256)),
            Source::Lines { .. } if self.end.is_some() => {
                let Source::Lines { mut input, .. } = self.source else {
                    unreachable!()
                };
                let rest = io::copy(&mut input, &mut io::sink());
                rest.map_err(|e| ArchiveError::io("read", &self.path, e))?;
                Ok((self.end, input.into_inner().finish().0))
            }
            Source::Lines {
                mut input,
                mut line,
                ..
            } => {
                let mut end = None;
                loop {
                    line.clear();
                    let n = input
                        .read_until(b'\n', &mut line)
                        .map_err(|e| ArchiveError::io("read", &self.path, e))?;
                    if n == 0 {
                        break;
                    }
                    end = line
                        .starts_with(b"{\"end\"")
                        .then(|| serde_json::from_slice::<Line>(&line).ok())
                        .flatten()
                        .and_then(|l| match l {
                            Line::End(t) => Some(t),
                            _ => None,
                        });
                }
                Ok((end, input.into_inner().finish().0))
            }
        }
    }

    /// The totals as the manifest's last line states them, read ahead without reading the
    /// rest (and without any check): for a room estimate before extracting.
    pub(super) fn peek_totals(&self) -> Option<Totals> {
        use std::os::unix::fs::FileExt;
        match &self.source {
            Source::Whole { totals, .. } => Some(totals.clone()),
            Source::Lines { input, .. } => {
                let file = input.get_ref().get_ref();
                let len = file.metadata().ok()?.len();
                let tail = len.min(MAX_LINE);
                let mut buf = vec![0; tail as usize];
                file.read_exact_at(&mut buf, len - tail).ok()?;
                let text = buf.strip_suffix(b"\n")?;
                let last = text.rsplit(|&b| b == b'\n').next()?;
                match serde_json::from_slice::<Line>(last).ok()? {
                    Line::End(t) => Some(t),
                    _ => None,
                }
            }
        }
    }
}

/// Reads one line (without its `\n`) into `line`, at most [`MAX_LINE`] bytes; empty at the
/// end of the file.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, number: u64) -> Result<(), LineError> {
    line.clear();
    let n = input
        .take(MAX_LINE + 1)
        .read_until(b'\n', line)
        .map_err(LineError::Io)?;
    if n as u64 > MAX_LINE {
        return Err(LineError::Long(number));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(())
}

enum LineError {
    Io(io::Error),
    Long(u64),
}

impl LineError {
    fn into_error(self, path: &Path) -> ArchiveError {
        match self {
            Self::Io(e) => ArchiveError::io("read", path, e),
            Self::Long(n) => problem(path, ManifestProblem::LongLine(n)),
        }
    }
}

fn problem(path: &Path, problem: ManifestProblem) -> ArchiveError {
    ArchiveError::Manifest {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

fn line_problem(path: &Path, line: u64, text: &str) -> ArchiveError {
    problem(
        path,
        ManifestProblem::Line {
            line,
            problem: text.to_owned(),
        },
    )
}

/// What makes a manifest one a restore cannot rely on (said after "manifest `path`:").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ManifestProblem {
    #[error("version {0} is not supported; this mkplan reads version {MANIFEST_VERSION}")]
    Version(u32),
    #[error("layout `{0}` is not `{LAYOUT}`")]
    Layout(String),
    #[error("root `{0}` is not a plain directory name")]
    Root(String),
    #[error("archive `{0}` is not a `.tar.gz` file name")]
    ArchiveName(String),
    #[error("the first entry must be the root directory `{0}`")]
    RootFirst(String),
    #[error("`{path}` comes after `{last}`; entries must be in archive order")]
    OutOfOrder { path: String, last: String },
    #[error("`{path}` comes before its directory `{parent}`")]
    BeforeItsDirectory { path: String, parent: String },
    #[error("`{0}` is listed twice")]
    Twice(String),
    #[error("total size overflows")]
    SizeOverflow,
    #[error(
        "it says {} directories, {} files and {} bytes but lists {} directories, {} files and \
         {} bytes", said.0, said.1, said.2, listed.0, listed.1, listed.2
    )]
    Totals {
        said: (u64, u64, u64),
        listed: (u64, u64, u64),
    },
    #[error("line {line}: {problem}")]
    Line { line: u64, problem: String },
    #[error("ends without its `end` line; it is incomplete")]
    Truncated,
    #[error("has more after its `end` line")]
    AfterEnd,
    #[error("line {0} is longer than {MAX_LINE} bytes")]
    LongLine(u64),
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
pub(super) fn check_member(root: &str, path: &str) -> Result<(), ManifestProblem> {
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

/// Test support: a whole version 2 manifest in memory, to edit and write back.
#[cfg(test)]
pub(super) struct Doc {
    pub header: Header,
    pub members: Vec<Member>,
    pub end: Totals,
}

#[cfg(test)]
impl Doc {
    /// Reads a manifest through [`ManifestReader`] (so it must pass every check).
    pub(super) fn read(path: &Path) -> Self {
        let mut reader = ManifestReader::open(path).unwrap();
        let mut members = Vec::new();
        while let Some(m) = reader.next_member().unwrap() {
            members.push(m);
        }
        let header = reader.header().clone();
        let (end, _) = reader.finish().unwrap();
        Self {
            header,
            members,
            end,
        }
    }

    pub(super) fn write(&self, path: &Path) {
        let mut text = serde_json::to_string(&self.header).unwrap();
        for m in &self.members {
            text.push('\n');
            text.push_str(&serde_json::to_string(m).unwrap());
        }
        text.push('\n');
        text.push_str(&serde_json::to_string(&Line::End(self.end.clone())).unwrap());
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    /// The `i`-th regular file.
    pub(super) fn file(&mut self, i: usize) -> &mut FileRecord {
        self.members
            .iter_mut()
            .filter_map(|m| match m {
                Member::File(f) => Some(f),
                Member::Dir(_) => None,
            })
            .nth(i)
            .unwrap()
    }

    /// The `i`-th directory.
    pub(super) fn dir(&mut self, i: usize) -> &mut DirRecord {
        self.members
            .iter_mut()
            .filter_map(|m| match m {
                Member::Dir(d) => Some(d),
                Member::File(_) => None,
            })
            .nth(i)
            .unwrap()
    }

    /// The index in `members` of the member at `path`.
    pub(super) fn position(&self, path: &str) -> usize {
        self.members.iter().position(|m| m.path() == path).unwrap()
    }

    pub(super) fn files(&self) -> impl Iterator<Item = &FileRecord> {
        self.members.iter().filter_map(|m| match m {
            Member::File(f) => Some(f),
            Member::Dir(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> Member {
        Member::Dir(DirRecord {
            path: path.to_owned(),
            mode: 0o750,
            uid: 0,
            gid: 0,
            user: "root".to_owned(),
            group: "root".to_owned(),
            mtime: 1_700_000_000,
        })
    }

    fn file(path: &str, size: u64) -> Member {
        Member::File(FileRecord {
            path: path.to_owned(),
            size,
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: "root".to_owned(),
            group: "root".to_owned(),
            mtime: 1_700_000_000,
            sha256: "ab".repeat(32),
        })
    }

    fn sample() -> Doc {
        Doc {
            header: Header {
                version: 2,
                created: "2025-01-01T00:00:00.000Z".to_owned(),
                mkplan_version: "0.1.0".to_owned(),
                store: PathBuf::from("/var/lib/opencryptoki/ep11tok"),
                root: "ep11tok".to_owned(),
                layout: LAYOUT.to_owned(),
                archive: "r1-ep11.tar.gz".to_owned(),
                compression: "gzip level 1".to_owned(),
            },
            members: vec![
                dir("ep11tok"),
                file("ep11tok/NVTOK.DAT", 10),
                dir("ep11tok/TOK_OBJ"),
                file("ep11tok/TOK_OBJ/OB1", 20),
                file("ep11tok/TOK_OBJ/OB2", 0),
                file("ep11tok/TOK_OBJ.b", 1),
                dir("ep11tok/spare"),
            ],
            end: Totals {
                directories: 3,
                files: 4,
                bytes: 31,
                archive_sha256: "cd".repeat(32),
                archive_bytes: 100,
            },
        }
    }

    /// Writes `doc` and reads it through; the first error, or `accepted`.
    fn problem(doc: &Doc) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        doc.write(&path);
        let run = || -> Result<Totals, ArchiveError> {
            let mut r = ManifestReader::open(&path)?;
            while r.next_member()?.is_some() {}
            Ok(r.finish()?.0)
        };
        match run() {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn walk_order_is_depth_first_with_sorted_names() {
        let mut paths = ["a.b", "a/x", "a", "a/x/y", "b", "a/w"];
        paths.sort_by(|a, b| walk_order(a, b));
        assert_eq!(paths, ["a", "a/w", "a/x", "a/x/y", "a.b", "b"]);
    }

    #[test]
    fn a_good_manifest_is_one_line_per_member_and_reads_back() {
        let doc = sample();
        assert_eq!(problem(&doc), "accepted");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        doc.write(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2 + doc.members.len());
        assert!(
            text.contains("{\"dir\":{\"path\":\"ep11tok\",\"mode\":\"0750\""),
            "{text}"
        );
        assert!(
            text.lines().last().unwrap().starts_with("{\"end\":"),
            "{text}"
        );
        let back = Doc::read(&path);
        assert_eq!((back.members, back.end), (doc.members, doc.end));
    }

    #[test]
    fn hostile_or_inconsistent_manifests_are_refused_with_the_line() {
        type Edit = Box<dyn Fn(&mut Doc)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "version 3 is not supported",
                Box::new(|d| d.header.version = 3),
            ),
            (
                "layout",
                Box::new(|d| d.header.layout = "store-relative".into()),
            ),
            (
                "line 3: `ep11tok/../x` is not a plain path",
                Box::new(|d| d.file(0).path = "ep11tok/../x".into()),
            ),
            (
                "not a plain path",
                Box::new(|d| d.file(0).path = "/etc/passwd".into()),
            ),
            (
                "not a plain path",
                Box::new(|d| d.file(0).path = "ep11tok//x".into()),
            ),
            (
                "line 6: `ep11tok/TOK_OBJ/OB2` is listed twice",
                Box::new(|d| d.file(1).path = "ep11tok/TOK_OBJ/OB2".into()),
            ),
            (
                "entries must be in archive order",
                Box::new(|d| d.members.swap(3, 4)),
            ),
            (
                "the first entry must be the root directory",
                Box::new(|d| d.members.swap(0, 1)),
            ),
            (
                "comes before its directory `ep11tok/a`",
                Box::new(|d| d.file(1).path = "ep11tok/a/b".into()),
            ),
            (
                "lowercase hex",
                Box::new(|d| d.file(0).sha256 = "AB".repeat(32)),
            ),
            (
                "but lists 3 directories, 4 files and 31 bytes",
                Box::new(|d| d.end.bytes = 32),
            ),
            ("root `..`", Box::new(|d| d.header.root = "..".into())),
            (
                "`.tar.gz` file name",
                Box::new(|d| d.header.archive = "../x.tar.gz".into()),
            ),
            ("negative mtime", Box::new(|d| d.dir(1).mtime = -1)),
        ];
        for (want, edit) in cases {
            let mut doc = sample();
            edit(&mut doc);
            let got = problem(&doc);
            assert!(got.contains(want), "wanted `{want}`, got `{got}`");
        }
    }

    #[test]
    fn truncated_extended_or_odd_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        sample().write(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let run = || -> Result<Totals, ArchiveError> {
                let mut r = ManifestReader::open(&path)?;
                while r.next_member()?.is_some() {}
                Ok(r.finish()?.0)
            };
            run().map(drop).map_err(|e| e.to_string())
        };
        let without_end = text.rsplitn(3, '\n').nth(2).unwrap().to_owned() + "\n";
        assert!(
            read(&without_end)
                .unwrap_err()
                .contains("without its `end` line")
        );
        let extra = text.clone() + "{}\n";
        assert!(
            read(&extra)
                .unwrap_err()
                .contains("more after its `end` line")
        );
        let unknown = text.replacen("{\"dir\":{", "{\"dir\":{\"surprise\":1,", 1);
        assert!(
            read(&unknown)
                .unwrap_err()
                .contains("line 2: unknown field")
        );
        let bad_mode = text.replacen("\"0750\"", "\"0789\"", 1);
        assert!(
            read(&bad_mode)
                .unwrap_err()
                .contains("octal permission bits")
        );
        let long = text.replacen("\"root\"", &format!("\"{}\"", "r".repeat(70_000)), 1);
        assert!(read(&long).unwrap_err().contains("longer than"));
        read(&text).unwrap();
    }

    #[test]
    fn a_version_1_manifest_is_read_in_archive_order() {
        let doc = sample();
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        for m in &doc.members {
            match m {
                Member::Dir(d) => dirs.push(d.clone()),
                Member::File(f) => files.push(f.clone()),
            }
        }
        let v1 = serde_json::json!({
            "version": 1,
            "created": doc.header.created,
            "mkplan_version": "0.1.0",
            "store": doc.header.store,
            "root": "ep11tok",
            "layout": LAYOUT,
            "archive": "r1-ep11.tar.gz",
            "archive_sha256": doc.end.archive_sha256,
            "archive_bytes": 100,
            "compression": "gzip level 1",
            "files": 4,
            "bytes": 31,
            "directories": dirs,
            "regular_files": files,
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let text = serde_json::to_string_pretty(&v1).unwrap() + "\n";
        std::fs::write(&path, &text).unwrap();
        let back = Doc::read(&path);
        assert_eq!(back.header.version, 1);
        assert_eq!((back.members, back.end), (doc.members, doc.end));
        let reader = ManifestReader::open(&path).unwrap();
        let (_, sha) = reader.skip_to_end().unwrap();
        assert_eq!(
            sha,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text))
        );
    }

    #[test]
    fn skip_to_end_finds_the_totals_and_the_digest_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut doc = sample();
        doc.file(1).sha256 = "nothex".into();
        doc.write(&path);
        let mut reader = ManifestReader::open(&path).unwrap();
        assert_eq!(reader.peek_totals(), Some(doc.end.clone()));
        reader.next_member().unwrap();
        reader.next_member().unwrap();
        reader.next_member().unwrap();
        assert!(reader.next_member().is_err());
        let (end, sha) = reader.skip_to_end().unwrap();
        assert_eq!(end, Some(doc.end));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            sha,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
    }
}

//! The key inventory's side file: every object a `probe_keys` listed, one JSON object a line
//! (JSON Lines), sorted by class, `CKA_ID`, label and key type, in the run directory. The
//! journal and the signed report hold its name, SHA-256 and line count, never the objects,
//! so nothing in memory grows with the number of keys: the writer sorts in bounded chunks
//! spilled to disk and merged, the reader streams and checks the digest at its end.

use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::access::Access;
use crate::record::probe::{Inventory, InventoryFile, InventoryTotals, ObjectInfo, Usability};

/// Objects sorted in memory before a chunk is spilled: bounds the writer's memory
/// (a few MiB) whatever the number of keys.
const CHUNK: usize = 8192;

/// Unusable keys named in the journal record and the step's error; the side file has all.
pub const UNUSABLE_NAMED: usize = 20;

/// Why the side file could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum KeyListError {
    #[error("key inventory `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("key inventory `{path}` line {line}: {source}")]
    Format {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "key inventory `{path}` is not the one the journal recorded (SHA-256 {found}, {lines} lines; recorded {recorded}, {expected} lines): it was changed after the probe"
    )]
    Digest {
        path: PathBuf,
        found: String,
        lines: u64,
        recorded: String,
        expected: u64,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyListError + '_ {
    move |source| KeyListError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the writer learned while the objects went by.
#[derive(Debug, Clone, Default)]
pub struct KeyListSummary {
    pub file: Option<InventoryFile>,
    pub totals: InventoryTotals,
    /// `CKO_SECRET_KEY/CKK_AES` → count; objects that are not keys by class alone.
    pub counts: std::collections::BTreeMap<String, usize>,
    /// The first [`UNUSABLE_NAMED`] unusable keys, as `class `label` (id …): reason`.
    pub unusable: Vec<String>,
}

/// Writes a side file from objects given in any order.
pub struct KeyListWriter {
    dir: PathBuf,
    name: String,
    access: Access,
    chunk: Vec<ObjectInfo>,
    spilled: Vec<PathBuf>,
    summary: KeyListSummary,
}

impl KeyListWriter {
    /// A writer of `dir/name` (the first free `name`, `name.2`, … so an earlier attempt's
    /// file stays as its record says).
    pub fn create(dir: &Path, stem: &str) -> Result<Self, KeyListError> {
        let access = Access::inside(dir).map_err(io_error(dir))?;
        let name = (1..)
            .map(|n| match n {
                1 => format!("{stem}.jsonl"),
                n => format!("{stem}.{n}.jsonl"),
            })
            .find(|name| !dir.join(name).exists())
            .expect("an unbounded range has a free name");
        Ok(Self {
            dir: dir.to_owned(),
            name,
            access,
            chunk: Vec::new(),
            spilled: Vec::new(),
            summary: KeyListSummary::default(),
        })
    }

    pub fn push(&mut self, object: ObjectInfo) -> Result<(), KeyListError> {
        self.count(&object);
        self.chunk.push(object);
        if self.chunk.len() >= CHUNK {
            self.spill()?;
        }
        Ok(())
    }

    fn count(&mut self, object: &ObjectInfo) {
        let totals = &mut self.summary.totals;
        totals.objects += 1;
        let key = match &object.key_type {
            Some(key_type) => {
                totals.keys += 1;
                format!("{}/{key_type}", object.class)
            }
            None => object.class.clone(),
        };
        *self.summary.counts.entry(key).or_insert(0) += 1;
        match &object.usable {
            Usability::Usable => totals.usable += 1,
            Usability::Unusable(reason) => {
                totals.unusable += 1;
                if self.summary.unusable.len() < UNUSABLE_NAMED {
                    self.summary.unusable.push(format!(
                        "{} `{}` (id {}): {reason}",
                        object.class, object.label, object.id
                    ));
                }
            }
            Usability::NotExercised(_) => {}
        }
    }

    /// Sorts the chunk and writes it to a spill file beside the side file.
    fn spill(&mut self) -> Result<(), KeyListError> {
        self.chunk.sort_by(ObjectInfo::order);
        let path = self
            .dir
            .join(format!(".{}.part{}", self.name, self.spilled.len()));
        let file = File::create(&path).map_err(io_error(&path))?;
        self.access.apply(&file).map_err(io_error(&path))?;
        let mut out = BufWriter::new(file);
        for object in self.chunk.drain(..) {
            write_line(&mut out, &object).map_err(io_error(&path))?;
        }
        out.flush().map_err(io_error(&path))?;
        self.spilled.push(path);
        Ok(())
    }

    /// Merges the sorted chunks into the side file, synced, and says what it holds.
    pub fn finish(mut self) -> Result<KeyListSummary, KeyListError> {
        self.chunk.sort_by(ObjectInfo::order);
        let mut sources: Vec<Box<dyn Iterator<Item = Result<ObjectInfo, KeyListError>>>> =
            Vec::new();
        for path in &self.spilled {
            sources.push(Box::new(Lines::open(path)?));
        }
        sources.push(Box::new(
            std::mem::take(&mut self.chunk).into_iter().map(Ok),
        ));
        let path = self.dir.join(&self.name);
        let tmp = self.dir.join(format!(".{}.tmp", self.name));
        let file = File::create(&tmp).map_err(io_error(&tmp))?;
        self.access.apply(&file).map_err(io_error(&tmp))?;
        let mut out = HashingWriter::new(BufWriter::new(file));
        let mut lines = 0u64;
        for object in Merge::new(sources)? {
            write_line(&mut out, &object?).map_err(io_error(&tmp))?;
            lines += 1;
        }
        let (file, sha256) = out.finish().map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_error(&path))?;
        for spilled in &self.spilled {
            let _ = fs::remove_file(spilled);
        }
        self.summary.file = Some(InventoryFile {
            name: self.name.clone(),
            sha256,
            lines,
        });
        Ok(self.summary)
    }
}

fn write_line(out: &mut impl Write, object: &ObjectInfo) -> io::Result<()> {
    serde_json::to_writer(&mut *out, object)?;
    out.write_all(b"\n")
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }
}

impl HashingWriter<BufWriter<File>> {
    fn finish(self) -> io::Result<(File, String)> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        Ok((file, hex::encode(self.hasher.finalize())))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The objects of a JSON Lines file, one by one.
struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    line: u64,
    buf: String,
    hasher: Sha256,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, KeyListError> {
        let file = File::open(path).map_err(io_error(path))?;
        Ok(Self {
            path: path.to_owned(),
            reader: BufReader::new(file),
            line: 0,
            buf: String::new(),
            hasher: Sha256::new(),
        })
    }
}

impl Iterator for Lines {
    type Item = Result<ObjectInfo, KeyListError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        match self.reader.read_line(&mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                self.hasher.update(self.buf.as_bytes());
                Some(
                    serde_json::from_str(&self.buf).map_err(|source| KeyListError::Format {
                        path: self.path.clone(),
                        line: self.line,
                        source,
                    }),
                )
            }
            Err(source) => Some(Err(KeyListError::Io {
                path: self.path.clone(),
                source,
            })),
        }
    }
}

/// Reads a side file back object by object; the last item is an error if the file is not the
/// one `recorded` describes (its digest or line count), so a consumer that reads to the end
/// never accepts a changed inventory.
pub fn read(
    run_dir: &Path,
    recorded: &InventoryFile,
) -> Result<impl Iterator<Item = Result<ObjectInfo, KeyListError>> + use<>, KeyListError> {
    let mut lines = Lines::open(&run_dir.join(&recorded.name))?;
    let recorded = recorded.clone();
    let mut checked = false;
    Ok(std::iter::from_fn(move || {
        if checked {
            return None;
        }
        match lines.next() {
            Some(item) => Some(item),
            None => {
                checked = true;
                let found = hex::encode(std::mem::take(&mut lines.hasher).finalize());
                (found != recorded.sha256 || lines.line != recorded.lines).then(|| {
                    Err(KeyListError::Digest {
                        path: lines.path.clone(),
                        found,
                        lines: lines.line,
                        recorded: recorded.sha256.clone(),
                        expected: recorded.lines,
                    })
                })
            }
        }
    }))
}

/// A k-way merge of sorted streams (a handful: one per spilled chunk).
struct Merge<I> {
    sources: Vec<I>,
    heads: Vec<Option<ObjectInfo>>,
}

impl<I: Iterator<Item = Result<ObjectInfo, KeyListError>>> Merge<I> {
    fn new(mut sources: Vec<I>) -> Result<Self, KeyListError> {
        let heads = sources
            .iter_mut()
            .map(|s| s.next().transpose())
            .collect::<Result<_, _>>()?;
        Ok(Self { sources, heads })
    }
}

impl<I: Iterator<Item = Result<ObjectInfo, KeyListError>>> Iterator for Merge<I> {
    type Item = Result<ObjectInfo, KeyListError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut smallest: Option<(usize, &ObjectInfo)> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(head) = head
                && smallest.is_none_or(|(_, best)| head.order(best) == Ordering::Less)
            {
                smallest = Some((i, head));
            }
        }
        let smallest = smallest?.0;
        let object = self.heads[smallest].take();
        match self.sources[smallest].next().transpose() {
            Ok(next) => self.heads[smallest] = next,
            Err(e) => return Some(Err(e)),
        }
        object.map(Ok)
    }
}

/// Every object of `inventory`, in order: streamed from its side file in `run_dir` (the digest
/// checked at the end), or the inline objects of an older journal.
pub fn objects<'a>(
    inventory: &'a Inventory,
    run_dir: &Path,
) -> Result<Box<dyn Iterator<Item = Result<ObjectInfo, KeyListError>> + 'a>, KeyListError> {
    match &inventory.file {
        Some(file) => Ok(Box::new(read(run_dir, file)?)),
        None => Ok(Box::new(inventory.objects.iter().cloned().map(Ok))),
    }
}

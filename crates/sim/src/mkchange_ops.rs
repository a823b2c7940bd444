//! Concurrent MK change operations as files (opencryptoki-ep11.md 2.6):
//! `var/lib/opencryptoki/HSM_MK_CHANGE/<ID>` (the operation) and `<ID>-<slot>` (the token's
//! current MKVPs at reencipher time), mode rw-rw----, every access under `flock` on
//! `var/lock/opencryptoki/LCK..HSM_MK_CHANGElock` (exclusive to change, shared to read).
//!
//! The real files are binary; the simulator's are its own JSON (format version 1):
//!
//! ```json
//! { "mkplan_sim_hsm_mk_change": 1, "id": "aB3dE9", "state": 11,
//!   "apqns": [[10, 17], [11, 17]],
//!   "new_mkvps": [{"type": "EP11", "mkvp": "9b7d…"}, {"type": "CCA AES", "mkvp": "2222…"}],
//!   "slots": [4, 5] }
//! { "mkplan_sim_hsm_mk_change_slot": 1, "id": "aB3dE9", "slot": 4,
//!   "current_mkvps": [{"type": "EP11", "mkvp": "6f1e…"}] }
//! ```
//!
//! `state` is the number of the real enum: INITIAL 0, REENCIPHERING 10, REENCIPHERED 11,
//! FINALIZING 20, CANCELING 30, ERROR 100. MKVPs are lowercase hex (EP11 16 bytes, CCA 8).
//!
//! The `pkcshsm_mk_change` stand-in (`mkchange`) writes them; every process a token runs in
//! reads them (`presence`, `workload`, `verify`, the prober), so they are apart from the tool.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::cca::{MkType, Mkvp};
use crate::crypto;

/// `var/lib/opencryptoki/HSM_MK_CHANGE` under the root.
pub(crate) fn dir(root: &Path) -> PathBuf {
    root.join("var/lib/opencryptoki/HSM_MK_CHANGE")
}

/// `var/lock/opencryptoki/LCK..HSM_MK_CHANGElock` under the root.
pub(crate) fn lock_path(root: &Path) -> PathBuf {
    root.join("var/lock/opencryptoki/LCK..HSM_MK_CHANGElock")
}

/// A `flock` on the lock file, released on drop.
pub(crate) struct OpsLock {
    _file: File,
}

fn lock(root: &Path, operation: rustix::fs::FlockOperation) -> Result<OpsLock, SimError> {
    let path = lock_path(root);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| SimError::io(parent, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o660)
        .open(&path)
        .map_err(|e| SimError::io(&path, e))?;
    rustix::fs::flock(&file, operation).map_err(|e| SimError::io(&path, e.into()))?;
    Ok(OpsLock { _file: file })
}

pub(crate) fn lock_exclusive(root: &Path) -> Result<OpsLock, SimError> {
    lock(root, rustix::fs::FlockOperation::LockExclusive)
}

pub(crate) fn lock_shared(root: &Path) -> Result<OpsLock, SimError> {
    lock(root, rustix::fs::FlockOperation::LockShared)
}

/// An operation's state, numbered as openCryptoki numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u32")]
pub(crate) enum OpState {
    Initial,
    Reenciphering,
    Reenciphered,
    Finalizing,
    Canceling,
    Error,
}

impl From<OpState> for u32 {
    fn from(state: OpState) -> u32 {
        match state {
            OpState::Initial => 0,
            OpState::Reenciphering => 10,
            OpState::Reenciphered => 11,
            OpState::Finalizing => 20,
            OpState::Canceling => 30,
            OpState::Error => 100,
        }
    }
}

impl TryFrom<u32> for OpState {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        Ok(match n {
            0 => OpState::Initial,
            10 => OpState::Reenciphering,
            11 => OpState::Reenciphered,
            20 => OpState::Finalizing,
            30 => OpState::Canceling,
            100 => OpState::Error,
            other => return Err(format!("unknown operation state {other}")),
        })
    }
}

/// Whose master key a pattern names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub(crate) enum KeyType {
    Ep11,
    Cca(MkType),
}

impl KeyType {
    /// `EP11`, `CCA SYM`, `CCA ASYM`, `CCA AES`, `CCA APKA` (as `list` prints them).
    pub fn name(self) -> String {
        match self {
            KeyType::Ep11 => "EP11".to_owned(),
            KeyType::Cca(mk) => format!("CCA {mk}"),
        }
    }

    fn width(self) -> usize {
        if self == KeyType::Ep11 { 16 } else { 8 }
    }
}

impl From<KeyType> for String {
    fn from(kind: KeyType) -> String {
        kind.name()
    }
}

impl TryFrom<String> for KeyType {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "EP11" {
            return Ok(KeyType::Ep11);
        }
        text.strip_prefix("CCA ")
            .and_then(MkType::parse)
            .map(KeyType::Cca)
            .ok_or_else(|| format!("unknown MK type `{text}`"))
    }
}

/// One pattern: EP11 16 bytes, CCA 8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TypedMkvp {
    #[serde(rename = "type")]
    pub kind: KeyType,
    #[serde(with = "hex_bytes")]
    pub mkvp: Vec<u8>,
}

impl TypedMkvp {
    pub fn ep11(wkvp: [u8; 16]) -> Self {
        Self {
            kind: KeyType::Ep11,
            mkvp: wkvp.to_vec(),
        }
    }

    pub fn cca(mk: MkType, mkvp: Mkvp) -> Self {
        Self {
            kind: KeyType::Cca(mk),
            mkvp: mkvp.bytes().to_vec(),
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An APQN as the tool takes it: card ≤ 0xFF, domain ≤ 0xFFFF.
pub(crate) type ToolApqn = (u8, u16);

/// `%02X.%04X`, as the tool and the token print an APQN.
pub(crate) fn upper(apqn: ToolApqn) -> String {
    format!("{:02X}.{:04X}", apqn.0, apqn.1)
}

/// The operation file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Operation {
    pub mkplan_sim_hsm_mk_change: u32,
    pub id: String,
    pub state: OpState,
    pub apqns: Vec<ToolApqn>,
    pub new_mkvps: Vec<TypedMkvp>,
    pub slots: Vec<u64>,
}

impl Operation {
    pub fn new_mkvp(&self, kind: KeyType) -> Option<&[u8]> {
        self.new_mkvps
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| &m.mkvp[..kind.width().min(m.mkvp.len())])
    }

    /// The MK types a CCA token acts on in this operation: SYM, AES and APKA only. The tool
    /// takes `--cca-asym-mkvp`, but openCryptoki's CCA token neither queries, re-enciphers
    /// nor counts itself affected by an ASYM MK (`cca_mk_change_is_affected` and the query
    /// callbacks in `usr/lib/cca_stdll/cca_mkchange.c` know SYM, AES and APKA).
    pub fn cca_token_types(&self) -> Vec<MkType> {
        self.cca_types()
            .into_iter()
            .filter(|mk| *mk != MkType::Asym)
            .collect()
    }

    pub fn cca_types(&self) -> Vec<MkType> {
        self.new_mkvps
            .iter()
            .filter_map(|m| match m.kind {
                KeyType::Cca(mk) => Some(mk),
                KeyType::Ep11 => None,
            })
            .collect()
    }

    pub fn includes(&self, apqn: mkplan_plan::model::Apqn) -> bool {
        self.apqns
            .contains(&(apqn.adapter(), u16::from(apqn.domain())))
    }

    /// Whether tokens run in the MK-change mode for it (a process that starts picks up an
    /// operation in REENCIPHERING or later, until its files are removed).
    pub fn is_active(&self) -> bool {
        self.state != OpState::Initial
    }
}

/// The `<ID>-<slot>` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotRecord {
    pub mkplan_sim_hsm_mk_change_slot: u32,
    pub id: String,
    pub slot: u64,
    pub current_mkvps: Vec<TypedMkvp>,
}

impl SlotRecord {
    pub fn current(&self, kind: KeyType) -> Option<&[u8]> {
        self.current_mkvps
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| m.mkvp.as_slice())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o660)
            .open(&tmp)?;
        // rw-rw---- whatever the umask (the real files' mode).
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
        file.write_all(bytes)?;
        file.sync_data()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| SimError::io(path, e))
}

/// Reserves a new ID as `mkstemp` does (6 random `[A-Za-z0-9]`, the file created
/// exclusively). Call with the lock held.
pub(crate) fn reserve_id(root: &Path, _lock: &OpsLock) -> Result<String, SimError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let dir = dir(root);
    fs::create_dir_all(&dir).map_err(|e| SimError::io(&dir, e))?;
    loop {
        let bytes =
            crypto::random_bytes(6).map_err(|e| SimError::io(Path::new("/dev/urandom"), e))?;
        let id: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        let path = dir.join(&id);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o660)
            .open(&path)
        {
            Ok(_) => return Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(SimError::io(&path, e)),
        }
    }
}

/// Writes the operation file. Call with the lock held.
pub(crate) fn save(root: &Path, op: &Operation, _lock: &OpsLock) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(op).expect("operation serializes");
    write_file(&dir(root).join(&op.id), text.as_bytes())
}

pub(crate) fn save_slot(root: &Path, record: &SlotRecord, _lock: &OpsLock) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(record).expect("slot record serializes");
    write_file(
        &dir(root).join(format!("{}-{}", record.id, record.slot)),
        text.as_bytes(),
    )
}

/// The operation `id`; `None` when there is no such file (or it is being created).
pub(crate) fn load(root: &Path, id: &str, _lock: &OpsLock) -> Result<Option<Operation>, SimError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let path = dir(root).join(id);
    let text = match mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL) {
        Ok(text) if text.is_empty() => return Ok(None),
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SimError::io(&path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SimError::Format(format!("`{}`: {e}", path.display())))
}

pub(crate) fn load_slot(
    root: &Path,
    id: &str,
    slot: u64,
    _lock: &OpsLock,
) -> Result<Option<SlotRecord>, SimError> {
    let path = dir(root).join(format!("{id}-{slot}"));
    match mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SimError::Format(format!("`{}`: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SimError::io(&path, e)),
    }
}

/// Every operation, by ID.
pub(crate) fn all(root: &Path, lock: &OpsLock) -> Result<Vec<Operation>, SimError> {
    let dir = dir(root);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SimError::io(&dir, e)),
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| valid_id(name))
        .collect();
    ids.sort();
    let mut ops = Vec::new();
    for id in ids {
        ops.extend(load(root, &id, lock)?);
    }
    Ok(ops)
}

/// Removes the operation's files. Call with the lock held.
pub(crate) fn remove(root: &Path, id: &str, _lock: &OpsLock) -> Result<(), SimError> {
    let dir = dir(root);
    let prefix = format!("{id}-");
    for entry in fs::read_dir(&dir)
        .map_err(|e| SimError::io(&dir, e))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            fs::remove_file(entry.path()).map_err(|e| SimError::io(&entry.path(), e))?;
        }
    }
    let path = dir.join(id);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SimError::io(&path, e)),
        _ => Ok(()),
    }
}

/// The active operation covering `slot` and the slot's record, as a token process finds it
/// when it starts or polls (the simulator's stand-in for the event pkcsslotd relays).
pub(crate) fn active_for_slot(root: &Path, slot: u64) -> Option<(Operation, SlotRecord)> {
    if !dir(root).is_dir() {
        return None;
    }
    let lock = lock_shared(root).ok()?;
    let ops = all(root, &lock).ok()?;
    ops.into_iter()
        .filter(|op| op.is_active() && op.slots.contains(&slot))
        .find_map(|op| {
            let record = load_slot(root, &op.id, slot, &lock).ok().flatten()?;
            Some((op, record))
        })
}

//! What `probe_keys` records: the key inventory of a token, with per-key usability, and the
//! comparison of one before a change with one after it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mkplan_plan::model::TokenId;

mod compare;

pub use compare::{InventoryComparison, ObjectIdentity, UnusableKey, compare};

/// What `probe_keys` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutput {
    pub token: TokenId,
    pub inventory: Inventory,
}

/// Every object on a token, as the user sees it, with per-key usability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub module: String,
    pub slot: u64,
    /// Sorted by class, id, label (handles are not stable across sessions).
    pub objects: Vec<ObjectInfo>,
    /// `CKO_SECRET_KEY/CKK_AES` → count; objects that are not keys by class alone.
    pub counts: BTreeMap<String, usize>,
}

/// One object on the token, identified without its (session-bound) handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// `CKO_…`, or `unknown` for a class cryptoki cannot name (vendor-defined).
    pub class: String,
    /// `CKK_…` for keys.
    pub key_type: Option<String>,
    pub label: String,
    /// `CKA_ID` in lowercase hex, empty when the object has none.
    pub id: String,
    /// `CKA_TOKEN`: a token object (false: a session object of this probe's session).
    pub token: bool,
    /// Length of `CKA_IBM_OPAQUE`, when the token has and shows one.
    pub blob_len: Option<u64>,
    /// SHA-256 of `CKA_IBM_OPAQUE` in lowercase hex: changes when a key is re-enciphered.
    pub blob_sha256: Option<String>,
    pub usable: Usability,
}

/// Whether a key was shown to work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Usability {
    /// The key did its job (encrypted a block, signed a digest).
    Usable,
    /// The token refused: the reason names the call and the `CKR_…` code.
    Unusable(String),
    /// Not tried, and why (public keys, certificates, data, attributes forbidding the use).
    NotExercised(String),
}

impl Inventory {
    /// Key objects (secret, private, public) only.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectInfo> {
        self.objects.iter().filter(|object| object.is_key())
    }
}

impl ObjectInfo {
    pub fn is_key(&self) -> bool {
        self.key_type.is_some()
    }
}

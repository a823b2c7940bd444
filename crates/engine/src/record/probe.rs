//! What `probe_keys` records: the key inventory of a token, with per-key usability, and the
//! comparison of one before a change with one after it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mkplan_plan::model::TokenId;

mod compare;

pub use compare::{
    ComparisonTotals, InventoryComparison, LISTED, ObjectIdentity, UnusableKey, compare,
};

/// What `probe_keys` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutput {
    pub token: TokenId,
    pub inventory: Inventory,
}

/// Every object on a token, as the user sees it, with per-key usability: counts here, the
/// objects in the run directory's side file (`keylist`) this record names by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub module: String,
    pub slot: u64,
    /// Journals written before the side file held every object here, sorted by class, id,
    /// label (handles are not stable across sessions); they are still read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectInfo>,
    /// The side file with every object, one a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<InventoryFile>,
    /// `None` in older journals: count [`Inventory::objects`] instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<InventoryTotals>,
    /// `CKO_SECRET_KEY/CKK_AES` → count; objects that are not keys by class alone.
    pub counts: BTreeMap<String, usize>,
}

/// The side file of an inventory: its name in the run directory, SHA-256 and line count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryFile {
    pub name: String,
    pub sha256: String,
    pub lines: u64,
}

/// How many objects, keys, usable and unusable keys an inventory has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryTotals {
    pub objects: u64,
    pub keys: u64,
    pub usable: u64,
    pub unusable: u64,
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
    /// The inline key objects (secret, private, public) of an older journal or an in-memory
    /// probe; a side file's are read with `keylist::objects`.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectInfo> {
        self.objects.iter().filter(|object| object.is_key())
    }

    /// Its totals, counted from the inline objects of an older journal.
    pub fn totals(&self) -> InventoryTotals {
        if let Some(totals) = self.totals {
            return totals;
        }
        let mut totals = InventoryTotals {
            objects: self.objects.len() as u64,
            ..InventoryTotals::default()
        };
        for object in self.objects.iter().filter(|o| o.is_key()) {
            totals.keys += 1;
            match object.usable {
                Usability::Usable => totals.usable += 1,
                Usability::Unusable(_) => totals.unusable += 1,
                Usability::NotExercised(_) => {}
            }
        }
        totals
    }
}

impl ObjectInfo {
    pub fn is_key(&self) -> bool {
        self.key_type.is_some()
    }
}

//! The end state: what every token looked like when the run was over — every APQN's
//! wrapping-key registers and whether each key works — read after `always`, whatever the
//! outcome, so the report shows the state the operator leaves the host in (after a rescue:
//! the restored one). Journaled as `end_state`; it never changes the outcome.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::probe::{Inventory, ObjectInfo, Usability};
use crate::record::wk::WkTable;
use mkplan_plan::model::TokenId;

/// At most this many unusable keys are named; the counts say how many there are.
pub const UNUSABLE_LISTED: usize = 50;

/// What the end state records: every token of the plan, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndStateRecord {
    /// The last step run before it was read (`always[0]`), if any.
    #[serde(default)]
    pub after: Option<String>,
    pub tokens: Vec<TokenEnd>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEnd {
    pub token: TokenId,
    pub apqns: Reading<WkTable>,
    pub keys: Reading<EndKeys>,
}

/// A reading, or why it could not be taken (never a PIN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reading<T> {
    Read { value: T },
    NotRead { reason: String },
}

impl<T> Reading<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Read { value } => Some(value),
            Reading::NotRead { .. } => None,
        }
    }
}

/// The keys at the end, as counts (the full inventory belongs in a side file, not here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndKeys {
    pub module: String,
    pub objects: u64,
    /// `CKO_SECRET_KEY/CKK_AES` → counts; keys only.
    pub by_type: BTreeMap<String, TypeCounts>,
    /// The first [`UNUSABLE_LISTED`] keys that do not work, each with the token's reason.
    pub unusable: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts {
    pub total: u64,
    pub usable: u64,
    pub unusable: u64,
    pub not_exercised: u64,
}

impl TypeCounts {
    pub fn add(&mut self, usable: &Usability) {
        self.total += 1;
        match usable {
            Usability::Usable => self.usable += 1,
            Usability::Unusable(_) => self.unusable += 1,
            Usability::NotExercised(_) => self.not_exercised += 1,
        }
    }
}

impl EndKeys {
    /// The counts of `inventory`'s keys by type, and the keys that do not work.
    pub fn of(inventory: &Inventory) -> Self {
        let mut keys = Self {
            module: inventory.module.clone(),
            ..Self::default()
        };
        inventory.objects.iter().for_each(|object| keys.add(object));
        keys
    }

    /// Counts one more object as a probe streams it (nothing per key is kept beyond the
    /// first [`UNUSABLE_LISTED`] unusable ones).
    pub fn add(&mut self, object: &ObjectInfo) {
        self.objects += 1;
        if !object.is_key() {
            return;
        }
        let name = format!(
            "{}/{}",
            object.class,
            object.key_type.as_deref().unwrap_or("?")
        );
        self.by_type.entry(name).or_default().add(&object.usable);
        if let Usability::Unusable(reason) = &object.usable
            && self.unusable.len() < UNUSABLE_LISTED
        {
            self.unusable.push(format!(
                "{} `{}` (id {}): {reason}",
                object.class, object.label, object.id
            ));
        }
    }

    /// Totals over every type.
    pub fn total(&self) -> TypeCounts {
        self.by_type
            .values()
            .fold(TypeCounts::default(), |mut sum, c| {
                sum.total += c.total;
                sum.usable += c.usable;
                sum.unusable += c.unusable;
                sum.not_exercised += c.not_exercised;
                sum
            })
    }
}

//! Before/after: the same keys (by class, `CKA_ID` and label) and every one usable after —
//! what the report shows for a migration.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Inventory, ObjectInfo, Usability};

/// An object named without its handle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectIdentity {
    pub class: String,
    pub id: String,
    pub label: String,
    pub key_type: Option<String>,
}

/// A key that works no more, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusableKey {
    pub key: ObjectIdentity,
    pub reason: String,
}

/// The comparison of a probe before a change with one after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryComparison {
    /// Every object before is there after, and nothing was added.
    pub same_keys: bool,
    /// No object after is [`Usability::Unusable`].
    pub all_usable: bool,
    /// Before, not after.
    pub missing: Vec<ObjectIdentity>,
    /// After, not before.
    pub extra: Vec<ObjectIdentity>,
    /// Usable before, unusable after.
    pub newly_unusable: Vec<UnusableKey>,
    /// Every object unusable after (including those unusable before).
    pub unusable_after: Vec<UnusableKey>,
    /// Present in both with a different `CKA_IBM_OPAQUE` fingerprint: re-enciphered.
    pub blob_changed: Vec<ObjectIdentity>,
}

impl InventoryComparison {
    /// The change kept every key and every key works.
    pub fn ok(&self) -> bool {
        self.same_keys && self.all_usable
    }
}

impl ObjectInfo {
    pub fn identity(&self) -> ObjectIdentity {
        ObjectIdentity {
            class: self.class.clone(),
            id: self.id.clone(),
            label: self.label.clone(),
            key_type: self.key_type.clone(),
        }
    }

    /// What objects are matched by: class, id, label.
    fn match_key(&self) -> (&str, &str, &str) {
        (&self.class, &self.id, &self.label)
    }
}

/// Compares two inventories. Objects are matched by (class, id, label); several objects with
/// the same triple are matched in order, so a duplicate that disappears is reported missing.
pub fn compare(before: &Inventory, after: &Inventory) -> InventoryComparison {
    let mut after_by_key: BTreeMap<(&str, &str, &str), Vec<&ObjectInfo>> = BTreeMap::new();
    for object in &after.objects {
        after_by_key
            .entry(object.match_key())
            .or_default()
            .push(object);
    }
    let mut missing = Vec::new();
    let mut newly_unusable = Vec::new();
    let mut blob_changed = Vec::new();
    for old in &before.objects {
        let Some(new) = after_by_key
            .get_mut(&old.match_key())
            .and_then(|candidates| (!candidates.is_empty()).then(|| candidates.remove(0)))
        else {
            missing.push(old.identity());
            continue;
        };
        if let (Usability::Usable, Usability::Unusable(reason)) = (&old.usable, &new.usable) {
            newly_unusable.push(UnusableKey {
                key: new.identity(),
                reason: reason.clone(),
            });
        }
        if old.blob_sha256.is_some() && old.blob_sha256 != new.blob_sha256 {
            blob_changed.push(new.identity());
        }
    }
    let extra: Vec<ObjectIdentity> = after_by_key
        .into_values()
        .flatten()
        .map(ObjectInfo::identity)
        .collect();
    let unusable_after: Vec<UnusableKey> = after
        .objects
        .iter()
        .filter_map(|object| match &object.usable {
            Usability::Unusable(reason) => Some(UnusableKey {
                key: object.identity(),
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect();
    InventoryComparison {
        same_keys: missing.is_empty() && extra.is_empty(),
        all_usable: unusable_after.is_empty(),
        missing,
        extra,
        newly_unusable,
        unusable_after,
        blob_changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(
        class: &str,
        id: &str,
        label: &str,
        blob: Option<&str>,
        usable: Usability,
    ) -> ObjectInfo {
        ObjectInfo {
            class: class.to_owned(),
            key_type: class.ends_with("KEY").then(|| "CKK_AES".to_owned()),
            label: label.to_owned(),
            id: id.to_owned(),
            token: true,
            blob_len: blob.map(|_| 64),
            blob_sha256: blob.map(str::to_owned),
            usable,
        }
    }

    fn inventory(objects: Vec<ObjectInfo>) -> Inventory {
        Inventory {
            module: "m.so".to_owned(),
            slot: 4,
            objects,
            counts: BTreeMap::new(),
        }
    }

    #[test]
    fn the_same_usable_keys_compare_ok() {
        let before = inventory(vec![
            object("CKO_SECRET_KEY", "01", "a", Some("aa"), Usability::Usable),
            object(
                "CKO_CERTIFICATE",
                "02",
                "c",
                None,
                Usability::NotExercised("cert".into()),
            ),
        ]);
        let mut after = before.clone();
        after.objects[0].blob_sha256 = Some("bb".to_owned());
        let comparison = compare(&before, &after);
        assert!(comparison.ok(), "{comparison:?}");
        assert_eq!(comparison.blob_changed.len(), 1);
        assert_eq!(comparison.blob_changed[0].label, "a");
    }

    #[test]
    fn missing_extra_and_unusable_keys_are_reported() {
        let before = inventory(vec![
            object("CKO_SECRET_KEY", "01", "a", None, Usability::Usable),
            object("CKO_SECRET_KEY", "02", "b", None, Usability::Usable),
            object("CKO_SECRET_KEY", "02", "b", None, Usability::Usable),
        ]);
        let after = inventory(vec![
            object(
                "CKO_SECRET_KEY",
                "01",
                "a",
                None,
                Usability::Unusable("C_Encrypt: CKR_X".into()),
            ),
            object("CKO_SECRET_KEY", "02", "b", None, Usability::Usable),
            object("CKO_SECRET_KEY", "03", "new", None, Usability::Usable),
        ]);
        let comparison = compare(&before, &after);
        assert!(!comparison.ok());
        assert!(!comparison.same_keys && !comparison.all_usable);
        assert_eq!(comparison.missing.len(), 1);
        assert_eq!(comparison.missing[0].id, "02");
        assert_eq!(comparison.extra.len(), 1);
        assert_eq!(comparison.extra[0].label, "new");
        assert_eq!(comparison.newly_unusable.len(), 1);
        assert_eq!(comparison.newly_unusable[0].reason, "C_Encrypt: CKR_X");
        assert_eq!(comparison.unusable_after.len(), 1);
    }
}

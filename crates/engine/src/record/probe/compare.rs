//! Before/after: the same keys (by class, `CKA_ID` and label) and every one usable after —
//! what the report shows for a migration.

use std::cmp::Ordering;

use serde::Serialize;

use super::{ObjectInfo, Usability};

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

/// Keys named in each list of a comparison; the totals count them all.
pub const LISTED: usize = 100;

/// The comparison of a probe before a change with one after it. Each list names at most
/// [`LISTED`] objects, in the inventories' order; `totals` counts every one.
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
    pub totals: ComparisonTotals,
}

/// How many objects each list of an [`InventoryComparison`] has in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ComparisonTotals {
    pub missing: u64,
    pub extra: u64,
    pub newly_unusable: u64,
    pub unusable_after: u64,
    /// Present in both with a different `CKA_IBM_OPAQUE` fingerprint: re-enciphered.
    pub blob_changed: u64,
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

    /// The order of an inventory: class, id, label, key type.
    pub fn order(&self, other: &ObjectInfo) -> Ordering {
        (&self.class, &self.id, &self.label, &self.key_type).cmp(&(
            &other.class,
            &other.id,
            &other.label,
            &other.key_type,
        ))
    }
}

fn push_capped<T>(list: &mut Vec<T>, total: &mut u64, item: impl FnOnce() -> T) {
    *total += 1;
    if list.len() < LISTED {
        list.push(item());
    }
}

/// Compares two inventories, each in [`ObjectInfo::order`], as a merge of the two streams
/// (nothing of either is held beyond the current pair). Objects are matched by (class, id,
/// label); several objects with the same triple are matched in order, so a duplicate that
/// disappears is reported missing. The first error of either stream ends the comparison.
pub fn compare<E>(
    before: impl Iterator<Item = Result<ObjectInfo, E>>,
    after: impl Iterator<Item = Result<ObjectInfo, E>>,
) -> Result<InventoryComparison, E> {
    let (mut before, mut after) = (before.peekable(), after.peekable());
    let mut c = InventoryComparison {
        same_keys: true,
        all_usable: true,
        missing: Vec::new(),
        extra: Vec::new(),
        newly_unusable: Vec::new(),
        unusable_after: Vec::new(),
        totals: ComparisonTotals::default(),
    };
    loop {
        let side = match (before.peek(), after.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => return Err(before.next().and_then(Result::err).expect("peeked")),
            (_, Some(Err(_))) => return Err(after.next().and_then(Result::err).expect("peeked")),
            (Some(Ok(_)), None) => Ordering::Less,
            (None, Some(Ok(_))) => Ordering::Greater,
            (Some(Ok(old)), Some(Ok(new))) => old.match_key().cmp(&new.match_key()),
        };
        let old = (side != Ordering::Greater)
            .then(|| before.next())
            .flatten()
            .transpose()?;
        let new = (side != Ordering::Less)
            .then(|| after.next())
            .flatten()
            .transpose()?;
        match (old, new) {
            (Some(old), None) => {
                push_capped(&mut c.missing, &mut c.totals.missing, || old.identity());
            }
            (old, Some(new)) => {
                if old.is_none() {
                    push_capped(&mut c.extra, &mut c.totals.extra, || new.identity());
                }
                if let Usability::Unusable(reason) = &new.usable {
                    let key = || UnusableKey {
                        key: new.identity(),
                        reason: reason.clone(),
                    };
                    if old.as_ref().is_some_and(|o| o.usable == Usability::Usable) {
                        push_capped(&mut c.newly_unusable, &mut c.totals.newly_unusable, key);
                    }
                    push_capped(&mut c.unusable_after, &mut c.totals.unusable_after, key);
                }
                if let Some(old) = old
                    && old.blob_sha256.is_some()
                    && old.blob_sha256 != new.blob_sha256
                {
                    c.totals.blob_changed += 1;
                }
            }
            (None, None) => unreachable!("one side was peeked"),
        }
    }
    c.same_keys = c.totals.missing == 0 && c.totals.extra == 0;
    c.all_usable = c.totals.unusable_after == 0;
    Ok(c)
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

    fn inventory(objects: Vec<ObjectInfo>) -> Vec<ObjectInfo> {
        objects
    }

    fn compare(before: &[ObjectInfo], after: &[ObjectInfo]) -> InventoryComparison {
        let stream = |objects: &[ObjectInfo]| {
            let mut objects = objects.to_vec();
            objects.sort_by(ObjectInfo::order);
            objects.into_iter().map(Ok::<_, ()>)
        };
        super::compare(stream(before), stream(after)).unwrap()
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
        after[0].blob_sha256 = Some("bb".to_owned());
        let comparison = compare(&before, &after);
        assert!(comparison.ok(), "{comparison:?}");
        assert_eq!(comparison.totals.blob_changed, 1);
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

    #[test]
    fn long_lists_are_capped_and_counted_in_full() {
        let before: Vec<ObjectInfo> = (0..LISTED + 5)
            .map(|n| {
                object(
                    "CKO_SECRET_KEY",
                    &format!("{n:04}"),
                    "k",
                    None,
                    Usability::Usable,
                )
            })
            .collect();
        let comparison = compare(&before, &[]);
        assert_eq!(comparison.missing.len(), LISTED);
        assert_eq!(comparison.totals.missing, (LISTED + 5) as u64);
        assert!(!comparison.same_keys);
    }

    #[test]
    fn a_stream_error_ends_the_comparison() {
        let good = [Ok(object(
            "CKO_SECRET_KEY",
            "01",
            "a",
            None,
            Usability::Usable,
        ))];
        let result = super::compare(good.into_iter(), [Err("unreadable")].into_iter());
        assert_eq!(result.unwrap_err(), "unreadable");
    }
}

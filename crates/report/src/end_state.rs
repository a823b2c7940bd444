//! The end state in the report: each token as the run left it (read after `always`), its
//! key counts beside those before the change, and the token warnings — true of what
//! happened, judged from the end state when the run recorded one.

use std::collections::BTreeMap;

use crate::model::{
    ApqnState, ApqnTable, CcaMkState, EndFacts, EndKeyFacts, KeyCounts, KeyTypeSummary,
};
use mkplan_engine::events::EventKind;
use mkplan_engine::journal::Verified;
use mkplan_engine::record::end_state::{EndStateRecord, Reading, TokenEnd};
use mkplan_engine::record::probe::{ObjectInfo, Usability};
use mkplan_engine::record::wk::WkTable;
use mkplan_engine::record::wk::cca::{CcaMasterKeys, CcaMkType, CcaVp};

/// The run's end state and when it was read.
pub(crate) struct RunEnd {
    pub time: String,
    pub record: EndStateRecord,
}

/// The last `end_state` of the journal; one this mkplan cannot read is said in `warnings`.
pub(crate) fn run_end(journal: &Verified, warnings: &mut Vec<String>) -> Option<RunEnd> {
    let (entry, data) = journal.entries.iter().rev().find_map(|e| match &e.event {
        EventKind::EndState { data, .. } => Some((e, data)),
        _ => None,
    })?;
    match data.read::<EndStateRecord>() {
        Ok(record) => Some(RunEnd {
            time: entry.time.clone(),
            record,
        }),
        Err(e) => {
            warnings.push(format!(
                "the end state (journal seq {}) could not be read ({e}): the state the run left the tokens in is missing from this report; read it in the journal",
                entry.seq
            ));
            None
        }
    }
}

/// `token`'s part of the end state.
pub(crate) fn end_facts(end: &RunEnd, token: &TokenEnd, restored_by: Option<String>) -> EndFacts {
    let source = match &end.record.after {
        Some(after) => format!("end state, after {after}"),
        None => "end state".to_owned(),
    };
    let (apqns, apqns_not_read) = match &token.apqns {
        Reading::Read { value } => (
            Some(ApqnTable {
                step: "end".to_owned(),
                source,
                time: end.time.clone(),
                apqns: apqn_rows(value),
            }),
            None,
        ),
        Reading::NotRead { reason } => (None, Some(reason.clone())),
    };
    let (keys, keys_not_read) = match &token.keys {
        Reading::Read { value } => {
            let total = value.total();
            (
                Some(EndKeyFacts {
                    module: value.module.clone(),
                    objects: value.objects,
                    keys: total.total,
                    usable: total.usable,
                    unusable: total.unusable,
                    not_exercised: total.not_exercised,
                    unusable_keys: value.unusable.clone(),
                }),
                None,
            )
        }
        Reading::NotRead { reason } => (None, Some(reason.clone())),
    };
    EndFacts {
        time: end.time.clone(),
        after: end.record.after.clone(),
        restored_by,
        apqns,
        apqns_not_read,
        keys,
        keys_not_read,
    }
}

/// Per key type: the counts before (an inventory) and at the end (the end state).
pub(crate) fn key_summary(
    before: Option<impl Iterator<Item = ObjectInfo>>,
    end: Option<&TokenEnd>,
) -> Vec<KeyTypeSummary> {
    let mut rows: BTreeMap<String, KeyTypeSummary> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<String, KeyTypeSummary>, key_type: &str| {
        rows.entry(key_type.to_owned())
            .or_insert_with(|| KeyTypeSummary {
                key_type: key_type.to_owned(),
                before: None,
                end: None,
            })
            .clone()
    };
    if let Some(objects) = before {
        for key in objects.filter(ObjectInfo::is_key) {
            let name = format!("{}/{}", key.class, key.key_type.as_deref().unwrap_or("?"));
            let mut r = row(&mut rows, &name);
            let counts = r.before.get_or_insert(KeyCounts {
                total: 0,
                usable: 0,
            });
            counts.total += 1;
            counts.usable += u64::from(key.usable == Usability::Usable);
            rows.insert(name, r);
        }
    }
    if let Some(Reading::Read { value }) = end.map(|t| &t.keys) {
        for (name, c) in &value.by_type {
            let mut r = row(&mut rows, name);
            r.end = Some(KeyCounts {
                total: c.total,
                usable: c.usable,
            });
            rows.insert(name.clone(), r);
        }
    }
    rows.into_values().collect()
}

/// Each APQN of a table as the report shows it.
pub(crate) fn apqn_rows(table: &WkTable) -> Vec<ApqnState> {
    table
        .apqns
        .iter()
        .map(|a| ApqnState {
            apqn: a.apqn.lszcrypt(),
            adapter: a.apqn.adapter(),
            domain: a.apqn.domain(),
            card_type: a.card_type.clone(),
            online: a.card_online && a.queue_online,
            config: a.card_config && a.queue_config,
            chkstop: a.card_chkstop || a.queue_chkstop,
            cur_state: a.cur.state.as_str().to_owned(),
            cur_wkvp: a.cur.vp.map(|vp| format!("0x{}", hex::encode(vp))),
            new_state: a.new.state.as_str().to_owned(),
            new_wkvp: a.new.vp.map(|vp| format!("0x{}", hex::encode(vp))),
            cca: a.cca.as_ref().map(cca_rows).unwrap_or_default(),
        })
        .collect()
}

/// A CCA card's registers, in the kernel's order of MK types.
fn cca_rows(cca: &CcaMasterKeys) -> Vec<CcaMkState> {
    let hex = |vp: &Option<CcaVp>| {
        vp.as_ref()
            .map(|vp| format!("0x{}", hex::encode(vp.bytes())))
    };
    CcaMkType::ALL
        .iter()
        .filter_map(|mk| cca.get(*mk).map(|registers| (mk, registers)))
        .map(|(mk, r)| CcaMkState {
            mk: mk.name().to_owned(),
            new_state: r.new.state.word().to_owned(),
            new_mkvp: hex(&r.new.vp),
            cur_state: r.cur.state.word().to_owned(),
            cur_mkvp: hex(&r.cur.vp),
            old_state: r.old.state.word().to_owned(),
            old_mkvp: hex(&r.old.vp),
        })
        .collect()
}

/// What the token warnings are judged from.
pub(crate) struct TokenFacts<'a> {
    pub token: &'a str,
    /// The plan's WKVPs, `0x` and 32 hex digits.
    pub wkvp_current: &'a str,
    pub wkvp_new: &'a str,
    /// A CCA token: its MKs are not in the end state's WK reading, so no WK warning fits.
    pub cca: bool,
    /// A `migrate` of the token started.
    pub migrated: bool,
    pub migration_succeeded: bool,
    /// The restore step, when the run restored the store from its backup.
    pub restored_by: Option<&'a str>,
    pub probe_before: bool,
    pub probe_after: bool,
    /// An APQN reading with the new WK current after the migration.
    pub apqns_after: bool,
    pub end: Option<&'a EndFacts>,
}

/// The token's warnings: each true of what happened. With an end state, the end state
/// decides; a run without one (unfinished, or by an older mkplan) keeps the warnings that
/// say what is missing.
pub(crate) fn token_warnings(t: &TokenFacts<'_>) -> Vec<String> {
    let id = t.token;
    let mut warnings = Vec::new();
    if t.migrated && t.restored_by.is_none() && !t.probe_before {
        warnings.push(format!("token `{id}` was migrated but no `probe_keys` inventory was taken before the migration: there is nothing to compare its keys with"));
    }
    let Some(end) = t.end else {
        if t.migrated && !t.probe_after {
            warnings.push(format!("token `{id}` was migrated but never probed after: nothing in this run shows its keys work under the new WK"));
        }
        if t.migration_succeeded && !t.apqns_after {
            warnings.push(format!("token `{id}`: no APQN reading after activation (an `until` or `assert_wk` with the new WK current): nothing in this run shows the new WK became current"));
        }
        return warnings;
    };
    match (&end.keys, &end.keys_not_read) {
        (Some(keys), _) if keys.unusable > 0 => warnings.push(format!(
            "token `{id}`: at the end of the run, {} of {} keys do not work",
            keys.unusable, keys.keys
        )),
        (Some(_), _) => {}
        (None, reason) => warnings.push(format!(
            "token `{id}`: the keys were not probed at the end of the run ({}): nothing in this report shows they work",
            reason.as_deref().unwrap_or("no reason recorded")
        )),
    }
    if t.cca {
        // The end state reads EP11 WK registers; a CCA token's MKs are judged by the steps
        // (migrate, set_expected_mkvps, start) and its keys by the probe above.
        return warnings;
    }
    let Some(apqns) = &end.apqns else {
        warnings.push(format!(
            "token `{id}`: the WK state was not read at the end of the run ({})",
            end.apqns_not_read
                .as_deref()
                .unwrap_or("no reason recorded")
        ));
        return warnings;
    };
    warnings.extend(apqn_warnings(t, apqns));
    warnings
}

/// What the end APQN reading shows: APQNs that disagree, or a CUR the keys do not fit.
fn apqn_warnings(t: &TokenFacts<'_>, apqns: &ApqnTable) -> Vec<String> {
    let id = t.token;
    let mut warnings = Vec::new();
    let cur = |a: &ApqnState| format!("{} {}", a.cur_state, a.cur_wkvp.as_deref().unwrap_or("-"));
    let mut distinct: Vec<String> = apqns.apqns.iter().map(cur).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() > 1 {
        let each: Vec<String> = apqns
            .apqns
            .iter()
            .map(|a| format!("{} has CUR {}", a.apqn, wk_name(a, t)))
            .collect();
        warnings.push(format!(
            "token `{id}`: at the end of the run the APQNs disagree: {}",
            each.join(", ")
        ));
    }
    let not_current = |wkvp: &str| -> Vec<String> {
        apqns
            .apqns
            .iter()
            .filter(|a| !is_current(a, wkvp))
            .map(|a| a.apqn.clone())
            .collect()
    };
    if let Some(restore) = t.restored_by {
        let off = not_current(t.wkvp_current);
        if !off.is_empty() {
            warnings.push(format!("token `{id}` was restored ({restore}) to the keys of the old WK, but the current WK on {} is not the old one: its keys cannot work there", off.join(", ")));
        }
    } else if t.migrated {
        let off = not_current(t.wkvp_new);
        if !off.is_empty() {
            warnings.push(format!("token `{id}` was re-enciphered but the new WK is not current on {}: its keys cannot work there", off.join(", ")));
        }
    }
    warnings
}

/// CUR holds the WK whose (16-byte) verification pattern is `wkvp`.
pub(crate) fn is_current(a: &ApqnState, wkvp: &str) -> bool {
    a.cur_state == "valid"
        && a.cur_wkvp.as_deref().is_some_and(|vp| {
            vp.to_ascii_lowercase()
                .starts_with(&wkvp.to_ascii_lowercase())
        })
}

/// CUR in the plan's words: `the current WK (plan)`, `the new WK (plan)`, or what it is.
pub(crate) fn wk_name(a: &ApqnState, t: &TokenFacts<'_>) -> String {
    if is_current(a, t.wkvp_current) {
        "the old WK".to_owned()
    } else if is_current(a, t.wkvp_new) {
        "the new WK".to_owned()
    } else {
        format!("{} {}", a.cur_state, a.cur_wkvp.as_deref().unwrap_or("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5";
    const NEW: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";

    fn apqn(id: &str, wk: &str) -> ApqnState {
        ApqnState {
            apqn: id.to_owned(),
            adapter: 10,
            domain: 17,
            card_type: "CEX8P".to_owned(),
            online: true,
            config: true,
            chkstop: false,
            cur_state: "valid".to_owned(),
            cur_wkvp: Some(format!("{wk}{}", "ab".repeat(16))),
            new_state: "empty".to_owned(),
            new_wkvp: None,
            cca: Vec::new(),
        }
    }

    fn end(curs: &[&str], usable: u64, unusable: u64) -> EndFacts {
        EndFacts {
            time: "2026-11-30T15:54:00.439Z".to_owned(),
            after: Some("always[0]".to_owned()),
            restored_by: None,
            apqns: Some(ApqnTable {
                step: "end".to_owned(),
                source: "end state".to_owned(),
                time: "2026-11-30T15:54:00.439Z".to_owned(),
                apqns: curs
                    .iter()
                    .enumerate()
                    .map(|(i, wk)| apqn(&format!("0{}.0011", (b'a' + i as u8) as char), wk))
                    .collect(),
            }),
            apqns_not_read: None,
            keys: Some(EndKeyFacts {
                module: "libopencryptoki.so".to_owned(),
                objects: usable + unusable,
                keys: usable + unusable,
                usable,
                unusable,
                not_exercised: 0,
                unusable_keys: Vec::new(),
            }),
            keys_not_read: None,
        }
    }

    fn facts<'a>(end: Option<&'a EndFacts>, restored: Option<&'a str>) -> TokenFacts<'a> {
        TokenFacts {
            token: "ep11",
            wkvp_current: OLD,
            wkvp_new: NEW,
            cca: false,
            migrated: true,
            migration_succeeded: restored.is_none(),
            restored_by: restored,
            probe_before: true,
            probe_after: false,
            apqns_after: false,
            end,
        }
    }

    #[test]
    fn warnings_are_true_of_what_happened() {
        let restored_fine = end(&[OLD, OLD], 10, 0);
        let migrated_fine = end(&[NEW, NEW], 10, 0);
        let half_activated = end(&[NEW, OLD], 10, 0);
        let keys_broken = end(&[NEW, NEW], 7, 3);
        let restored_but_new_current = end(&[NEW, NEW], 10, 0);
        let mut keys_not_read = end(&[NEW, NEW], 0, 0);
        keys_not_read.keys = None;
        keys_not_read.keys_not_read = Some("MKPLAN_EP11_PIN is not set".to_owned());
        let mut apqns_not_read = end(&[], 10, 0);
        apqns_not_read.apqns = None;
        apqns_not_read.apqns_not_read = Some("APQN 0a.0011: no such device".to_owned());
        let rescue = Some("rescue[0]");
        let cases: [(&str, TokenFacts<'_>, &[&str]); 8] = [
            (
                "a rescue restored the old WK's keys",
                facts(Some(&restored_fine), rescue),
                &[],
            ),
            (
                "migrated and activated",
                facts(Some(&migrated_fine), None),
                &[],
            ),
            (
                "activated on one APQN only",
                facts(Some(&half_activated), None),
                &[
                    "the APQNs disagree: 0a.0011 has CUR the new WK, 0b.0011 has CUR the old WK",
                    "the new WK is not current on 0b.0011",
                ],
            ),
            (
                "keys broken at the end",
                facts(Some(&keys_broken), None),
                &["3 of 10 keys do not work"],
            ),
            (
                "restored, but the new WK is current",
                facts(Some(&restored_but_new_current), rescue),
                &[
                    "restored (rescue[0]) to the keys of the old WK, but the current WK on 0a.0011, 0b.0011 is not the old one",
                ],
            ),
            (
                "keys not probed",
                facts(Some(&keys_not_read), None),
                &["the keys were not probed at the end of the run (MKPLAN_EP11_PIN is not set)"],
            ),
            (
                "APQNs not read",
                facts(Some(&apqns_not_read), None),
                &["the WK state was not read at the end of the run (APQN 0a.0011: no such device)"],
            ),
            (
                "no end state (an older mkplan)",
                facts(None, None),
                &["never probed after", "no APQN reading after activation"],
            ),
        ];
        for (case, facts, expected) in cases {
            let warnings = token_warnings(&facts);
            assert_eq!(warnings.len(), expected.len(), "{case}: {warnings:#?}");
            for (warning, want) in warnings.iter().zip(expected) {
                assert!(warning.contains(want), "{case}: {warning}");
            }
        }
    }
}

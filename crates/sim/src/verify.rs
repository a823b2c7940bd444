//! `verify`: the tests' proof of an end state. For every key object of every token, does its
//! blob open under the current WK of the token's APQNs (CCA: the current MK of its MK type)?
//! The APQNs must all have a valid current WK and agree on it; otherwise no key can work and
//! every one counts unusable. While a concurrent MK change covers the token, each APQN need
//! only accept one of the key's blobs (`keyuse`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::cca::{MkType, Mkvp};
use crate::crypto::{BlobKind, blob_wkvp, open};
use crate::mkchange_ops::{self, Operation, SlotRecord};
use crate::state::{SimState, TokenKind};
use crate::store::StoredObject;
use crate::token::{SimToken, agreed_current_wk, all};
use crate::{SimError, keyuse, state, store};

/// The outcome for every token, and the totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub tokens: BTreeMap<String, TokenVerdict>,
    pub total: Counts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Key objects whose blob opens under the current WK.
    pub usable: usize,
    /// Key objects whose blob does not (or has none that opens).
    pub unusable: usize,
    /// Objects without a blob (certificates, data objects): nothing to check.
    pub skipped: usize,
}

/// One token's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenVerdict {
    #[serde(rename = "type")]
    pub kind: TokenKind,
    #[serde(flatten)]
    pub counts: Counts,
    /// `0x` + 32 hex digits: the current WK all the token's APQNs agree on (EP11).
    pub current_wkvp: Option<String>,
    /// CCA: the current MK of each MK type all the token's APQNs agree on (`AES` → `0x…`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub current_mkvps: BTreeMap<String, String>,
    /// Why no key can work (the APQNs disagree, or one has no valid current WK).
    pub problem: Option<String>,
    /// The concurrent MK change operation active for the token, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// How many blobs name each WKVP (`0x…`; CCA: `AES 0x…`) in their header: shows a partly
    /// migrated store.
    pub blobs_by_wkvp: BTreeMap<String, usize>,
    /// Objects with a `CKA_IBM_OPAQUE_REENC` blob (an operation re-enciphered them).
    #[serde(skip_serializing_if = "is_zero")]
    pub reenc_blobs: usize,
    /// Objects with a `CKA_IBM_OPAQUE_OLD` blob (an operation was finalized).
    #[serde(skip_serializing_if = "is_zero")]
    pub old_blobs: usize,
    /// Object files (in `TOK_OBJ`) whose key does not open.
    pub unusable_objects: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl VerifyReport {
    /// No key of any token is unusable.
    pub fn all_usable(&self) -> bool {
        self.total.unusable == 0
    }
}

impl fmt::Display for VerifyReport {
    /// `token ep11: usable 30, unusable 0, skipped 2 (current WK 0x…)` per token, then the total.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, verdict) in &self.tokens {
            let c = verdict.counts;
            write!(
                f,
                "token {name}: usable {}, unusable {}, skipped {}",
                c.usable, c.unusable, c.skipped
            )?;
            let mkvps: Vec<String> = verdict
                .current_mkvps
                .iter()
                .map(|(mk, vp)| format!("{mk} {vp}"))
                .collect();
            match (&verdict.current_wkvp, &verdict.problem) {
                (_, Some(problem)) => write!(f, " ({problem})")?,
                (Some(wkvp), None) => write!(f, " (current WK {wkvp})")?,
                (None, None) if !mkvps.is_empty() => {
                    write!(f, " (current MKs {})", mkvps.join(", "))?;
                }
                (None, None) => {}
            }
            if let Some(id) = &verdict.operation {
                write!(f, " [operation {id} active]")?;
            }
            writeln!(f)?;
        }
        let t = self.total;
        writeln!(
            f,
            "total: usable {}, unusable {}, skipped {}",
            t.usable, t.unusable, t.skipped
        )
    }
}

pub(crate) fn verify(root: &Path) -> Result<VerifyReport, SimError> {
    let state = state::load(root)?;
    let mut report = VerifyReport {
        tokens: BTreeMap::new(),
        total: Counts::default(),
    };
    for token in all(root, &state) {
        let active = mkchange_ops::active_for_slot(root, token.record.slot);
        let mut verdict = match token.record.kind {
            TokenKind::Ep11 => ep11_verdict(&state, &token, active.as_ref())?,
            TokenKind::Cca => cca_verdict(&state, &token, active.is_some())?,
        };
        verdict.operation = active.map(|(op, _)| op.id);
        report.total.usable += verdict.counts.usable;
        report.total.unusable += verdict.counts.unusable;
        report.total.skipped += verdict.counts.skipped;
        report.tokens.insert(token.name.to_owned(), verdict);
    }
    Ok(report)
}

fn empty_verdict(kind: TokenKind) -> TokenVerdict {
    TokenVerdict {
        kind,
        counts: Counts::default(),
        current_wkvp: None,
        current_mkvps: BTreeMap::new(),
        problem: None,
        operation: None,
        blobs_by_wkvp: BTreeMap::new(),
        reenc_blobs: 0,
        old_blobs: 0,
        unusable_objects: Vec::new(),
    }
}

/// Counts one object: `opens` tells whether its key works; objects without a blob are
/// skipped.
fn tally(verdict: &mut TokenVerdict, stored: StoredObject, named: Option<String>, opens: bool) {
    let object = &stored.object;
    verdict.reenc_blobs += usize::from(object.blob_reenc.is_some());
    verdict.old_blobs += usize::from(object.blob_old.is_some());
    let Some(named) = named else {
        verdict.counts.skipped += 1;
        return;
    };
    *verdict.blobs_by_wkvp.entry(named).or_default() += 1;
    if opens {
        verdict.counts.usable += 1;
    } else {
        verdict.counts.unusable += 1;
        verdict.unusable_objects.push(stored.file);
    }
}

/// EP11: without an operation every key's OPAQUE blob must open under the WK all the
/// token's APQNs agree on; during one, each APQN must accept one of the key's blobs
/// (`keyuse`), whichever WK it holds.
fn ep11_verdict(
    state: &SimState,
    token: &SimToken<'_>,
    active: Option<&(Operation, SlotRecord)>,
) -> Result<TokenVerdict, SimError> {
    let current = agreed_current_wk(state, token.record);
    let mut verdict = empty_verdict(TokenKind::Ep11);
    verdict.current_wkvp = current
        .as_ref()
        .ok()
        .map(|vp| format!("0x{}", hex::encode(&vp[..16])));
    if active.is_none() {
        verdict.problem = current.as_ref().err().cloned();
    }
    let queues: Vec<_> = token
        .record
        .apqns
        .iter()
        .filter_map(|name| state.apqns.get(name))
        .collect();
    for stored in store::objects(&token.store)? {
        let stored = stored?;
        let Some(blob) = stored.object.blob_bytes() else {
            tally(&mut verdict, stored, None, false);
            continue;
        };
        let named = blob_wkvp(&blob).map_or_else(
            || "malformed".to_owned(),
            |w| format!("0x{}", hex::encode(w)),
        );
        let opens = match active {
            None => current.as_ref().is_ok_and(|vp| open(&blob, vp).is_ok()),
            Some(_) => {
                let blobs = keyuse::candidates(&stored.object, true);
                !queues.is_empty() && queues.iter().all(|q| keyuse::on_ep11(q, &blobs).is_ok())
            }
        };
        tally(&mut verdict, stored, Some(named), opens);
    }
    Ok(verdict)
}

/// CCA: every key's blob must open under the current MK of its MK type on every APQN of
/// the token (during an operation: one of its blobs); a key still under the OLD MK is not
/// migrated, so it counts unusable here although the card would still take it.
fn cca_verdict(
    state: &SimState,
    token: &SimToken<'_>,
    operation_active: bool,
) -> Result<TokenVerdict, SimError> {
    let mut verdict = empty_verdict(TokenKind::Cca);
    let queues: Vec<_> = token
        .record
        .apqns
        .iter()
        .filter_map(|name| state.cca_apqns.get(name))
        .collect();
    for mk in MkType::ALL {
        let patterns: Vec<Option<Mkvp>> = queues.iter().map(|q| q.mk(mk).cur.valid_vp()).collect();
        match patterns.first() {
            Some(Some(first)) if patterns.iter().all(|p| *p == Some(*first)) => {
                verdict
                    .current_mkvps
                    .insert(mk.name().to_owned(), first.to_string());
            }
            Some(Some(_)) if !operation_active => {
                verdict.problem =
                    Some(format!("the token's APQNs disagree on the current {mk} MK"));
            }
            _ => {}
        }
    }
    for stored in store::objects(&token.store)? {
        let stored = stored?;
        let Some(blob) = stored.object.blob_bytes() else {
            tally(&mut verdict, stored, None, false);
            continue;
        };
        let mk = BlobKind::of(&blob).and_then(BlobKind::cca_mk);
        let named = match (mk, blob_wkvp(&blob)) {
            (Some(mk), Some(vp)) => format!("{mk} 0x{}", hex::encode(&vp[..8])),
            _ => "malformed".to_owned(),
        };
        let blobs = keyuse::candidates(&stored.object, operation_active);
        let opens = !queues.is_empty()
            && queues
                .iter()
                .all(|q| keyuse::on_cca(q, &blobs, false).is_ok());
        tally(&mut verdict, stored, Some(named), opens);
    }
    Ok(verdict)
}

//! `verify`: the tests' proof of an end state. For every key object of every token, does its
//! blob open under the current WK of the token's APQNs? The APQNs must all have a valid
//! current WK and agree on it; otherwise no key can work and every one counts unusable.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::sim::crypto::{blob_wkvp, open};
use crate::sim::token::{agreed_current_wk, all};
use crate::sim::{SimError, state, store};

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
    #[serde(flatten)]
    pub counts: Counts,
    /// `0x` + 32 hex digits: the current WK all the token's APQNs agree on.
    pub current_wkvp: Option<String>,
    /// Why no key can work (the APQNs disagree, or one has no valid current WK).
    pub problem: Option<String>,
    /// How many blobs name each WKVP (`0x…`) in their header: shows a partly migrated store.
    pub blobs_by_wkvp: BTreeMap<String, usize>,
    /// Object files (in `TOK_OBJ`) whose key does not open.
    pub unusable_objects: Vec<String>,
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
            match (&verdict.current_wkvp, &verdict.problem) {
                (_, Some(problem)) => writeln!(f, " ({problem})")?,
                (Some(wkvp), None) => writeln!(f, " (current WK {wkvp})")?,
                (None, None) => writeln!(f)?,
            }
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
        let current = agreed_current_wk(&state, token.record);
        let mut verdict = TokenVerdict {
            counts: Counts::default(),
            current_wkvp: current
                .as_ref()
                .ok()
                .map(|vp| format!("0x{}", hex::encode(&vp[..16]))),
            problem: current.as_ref().err().cloned(),
            blobs_by_wkvp: BTreeMap::new(),
            unusable_objects: Vec::new(),
        };
        for stored in store::read_objects(&token.store)? {
            let Some(blob) = stored.object.blob_bytes() else {
                verdict.counts.skipped += 1;
                continue;
            };
            let named = blob_wkvp(&blob).map_or_else(
                || "malformed".to_owned(),
                |w| format!("0x{}", hex::encode(w)),
            );
            *verdict.blobs_by_wkvp.entry(named).or_default() += 1;
            let opens = current.as_ref().is_ok_and(|vp| open(&blob, vp).is_ok());
            if opens {
                verdict.counts.usable += 1;
            } else {
                verdict.counts.unusable += 1;
                verdict.unusable_objects.push(stored.file);
            }
        }
        report.total.usable += verdict.counts.usable;
        report.total.unusable += verdict.counts.unusable;
        report.total.skipped += verdict.counts.skipped;
        report.tokens.insert(token.name.to_owned(), verdict);
    }
    Ok(report)
}

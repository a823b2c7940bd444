//! The simulated tokens as the stand-ins find them: by slot, their stores under the root, their
//! APQNs, and under which WK an EP11 token's keys work. Shared by `verify`, the key prober and
//! the stand-ins; whether openCryptoki starts a token at all is `presence`.

use std::path::{Path, PathBuf};

use crate::state::{CurRegister, SimState, TokenRecord};
use mkplan_plan::model::Apqn;

/// A token of the state with its paths resolved under the root.
pub(crate) struct SimToken<'s> {
    pub name: &'s str,
    pub record: &'s TokenRecord,
    /// The store under the root.
    pub store: PathBuf,
}

pub(crate) fn by_slot<'s>(root: &Path, state: &'s SimState, slot: u64) -> Option<SimToken<'s>> {
    state
        .tokens
        .iter()
        .find(|(_, t)| t.slot == slot)
        .map(|(name, record)| SimToken {
            name,
            record,
            store: under(root, &record.store),
        })
}

pub(crate) fn all<'s>(root: &Path, state: &'s SimState) -> Vec<SimToken<'s>> {
    state
        .tokens
        .iter()
        .map(|(name, record)| SimToken {
            name,
            record,
            store: under(root, &record.store),
        })
        .collect()
}

/// `absolute` (as the host sees it) under `root`.
pub(crate) fn under(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

/// The current WK every APQN of the token agrees on (its full VP), or why there is none:
/// the simulator's stand-in for "does this key work on the token's adapters". Reads the
/// registers directly (the TKE's view), whatever Linux may see.
pub(crate) fn agreed_current_wk(state: &SimState, token: &TokenRecord) -> Result<[u8; 32], String> {
    let mut agreed: Option<[u8; 32]> = None;
    for name in &token.apqns {
        let queue = state
            .apqns
            .get(name)
            .ok_or_else(|| format!("APQN {name} is not simulated"))?;
        let vp = match (queue.cur.state, queue.cur.vp) {
            (CurRegister::Valid, Some(vp)) => vp,
            _ => return Err(format!("APQN {name} has no valid current WK")),
        };
        match agreed {
            Some(seen) if seen != vp => {
                return Err(format!(
                    "the token's APQNs disagree on the current WK (0x{} and 0x{})",
                    hex::encode(&seen[..16]),
                    hex::encode(&vp[..16])
                ));
            }
            _ => agreed = Some(vp),
        }
    }
    agreed.ok_or_else(|| "the token has no APQNs".to_owned())
}

pub(crate) fn token_apqns(token: &TokenRecord) -> Vec<Apqn> {
    token
        .apqns
        .iter()
        .filter_map(|name| Apqn::from_plan_value(&serde_json::Value::String(name.clone())).ok())
        .collect()
}

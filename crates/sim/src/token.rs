//! What the simulated EP11 token makes of the registers: under which WK its keys work, and
//! whether openCryptoki would start it at all. Shared by `verify`, the key prober and the
//! `pkcsep11_migrate` stand-in.

use std::path::{Path, PathBuf};

use crate::state::{CurRegister, SimState, TokenKind, TokenRecord};
use crate::sysfs;
use mkplan_plan::ep11conf::{self, ApqnMode};
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

/// Why openCryptoki 3.19+ would not start the token (so `C_OpenSession` gives
/// `CKR_TOKEN_NOT_PRESENT`), or `None` when it would (opencryptoki-ep11.md 1.2 step 6, 1.6).
/// CCA tokens, and EP11 tokens an active concurrent MK change covers, are judged by
/// `sim::presence`. For the others:
/// the config file must exist and parse, and the APQNs it allows that answer (online) must
/// all have the same valid current WK, equal to `EXPECTED_WKVP` when the file sets one.
/// Without a config in the plan, the token's own APQNs are used.
pub(crate) fn not_present_reason(
    root: &Path,
    state: &SimState,
    token: &TokenRecord,
) -> Option<String> {
    let active = crate::mkchange_ops::active_for_slot(root, token.slot);
    if token.kind == TokenKind::Cca {
        return crate::presence::cca_not_present(root, state, token, active.as_ref());
    }
    let (apqns, expected) = match &token.config {
        Some(config) => {
            let path = under(root, config);
            let text = match mkplan_plan::input::read_to_string(&path, mkplan_plan::input::CONFIG) {
                Ok(text) => text,
                Err(_) => {
                    return Some(format!(
                        "EP 11 config file '{}' not found",
                        config.display()
                    ));
                }
            };
            match ep11conf::parse(&text) {
                Ok(parsed) => {
                    let apqns = match parsed.apqns {
                        ApqnMode::Allowlist(list) => list,
                        ApqnMode::Any => state.apqns.values().map(|q| q.apqn()).collect(),
                    };
                    (apqns, parsed.expected_wkvp)
                }
                Err(e) => {
                    return Some(format!(
                        "Error parsing config file '{}': {e}",
                        config.display()
                    ));
                }
            }
        }
        None => (token_apqns(token), None),
    };
    if let Some(active) = &active {
        return crate::presence::ep11_not_present_during(state, &apqns, expected, active);
    }
    let mut first: Option<(Apqn, [u8; 32])> = None;
    for apqn in apqns {
        let Some(queue) = state.apqns.get(&apqn.lszcrypt()) else {
            continue;
        };
        let Some(card) = state.cards.get(&format!("{:02x}", apqn.adapter())) else {
            continue;
        };
        if !sysfs::answers(card, queue) {
            continue;
        }
        let vp = match (queue.cur.state, queue.cur.vp) {
            (CurRegister::Valid, Some(vp)) => vp,
            _ => {
                return Some(format!(
                    "no valid EP11 wrapping key on APQN {}",
                    upper(apqn)
                ));
            }
        };
        if let Some(expected) = expected
            && vp[..16] != expected.bytes()[..]
        {
            return Some(format!(
                "EP11 wrapping key on APQN {} does not match the expected wrapping key",
                upper(apqn)
            ));
        }
        match first {
            Some((_, seen)) if seen[..16] != vp[..16] => {
                return Some(format!(
                    "EP11 wrapping key on APQN {} does not match the other APQN's wrapping key",
                    upper(apqn)
                ));
            }
            Some(_) => {}
            None => first = Some((apqn, vp)),
        }
    }
    first
        .is_none()
        .then(|| "no online EP11 APQN of the token".to_owned())
}

/// `%02X.%04X`, as the token's syslog messages show an APQN.
fn upper(apqn: Apqn) -> String {
    format!("{:02X}.{:04X}", apqn.adapter(), apqn.domain())
}

pub(crate) fn token_apqns(token: &TokenRecord) -> Vec<Apqn> {
    token
        .apqns
        .iter()
        .filter_map(|name| Apqn::from_plan_value(&serde_json::Value::String(name.clone())).ok())
        .collect()
}

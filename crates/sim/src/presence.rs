//! Whether openCryptoki starts a token ([`not_present_reason`]): an EP11 token as its config
//! file and registers say (opencryptoki-ep11.md 1.2 step 6, 1.6), and:
//!
//! * CCA (3.19+, as for EP11: opencryptoki-ep11.md 0, PR #555): the online APQNs must agree on
//!   the current MK of every MK type, and each MK type `EXPECTED_MKVPS` names must be current
//!   with that pattern. A missing `ccatok.conf` sets no expectation; one that does not parse
//!   stops the token.
//! * During an operation (2.6: single-APQN mode; a process that starts then picks the
//!   operation up): each APQN may hold the old or the new WK/MK of the operation's types, and
//!   the expected pattern may name either (the operator changes it before finalize).
//!   (Inference: the reference does not spell out the start-up check during an operation;
//!   anything else would stop the token in `finalize`'s own process.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cca::{KeyState, MkType, Mkvp};
use crate::cca_store::parse_ccatok_conf;
use crate::mkchange_ops::{self, KeyType, Operation, SlotRecord};
use crate::state::{CurRegister, SimState, TokenKind, TokenRecord};
use crate::token::under;
use crate::{cca_sysfs, sysfs};
use mkplan_plan::model::{Apqn, Wkvp};

/// Why openCryptoki 3.19+ would not start the token (so `C_OpenSession` gives
/// `CKR_TOKEN_NOT_PRESENT`), or `None` when it would (opencryptoki-ep11.md 1.2 step 6, 1.6).
/// An EP11 token outside an operation: the config file must exist and parse, and the APQNs
/// it allows that answer (online) must all have the same valid current WK, equal to
/// `EXPECTED_WKVP` when the file sets one. Without a config in the plan, the token's own
/// APQNs are used. A CCA token, and an EP11 token during an operation: as the module says.
pub(crate) fn not_present_reason(
    root: &Path,
    state: &SimState,
    token: &TokenRecord,
) -> Option<String> {
    let active = mkchange_ops::active_for_slot(root, token.slot);
    if token.kind == TokenKind::Cca {
        return cca_not_present(root, state, token, active.as_ref());
    }
    let view = match ep11_view(root, state, token) {
        Ok(view) => view,
        Err(why) => return Some(why),
    };
    match &active {
        Some(active) => ep11_not_present_during(state, &view.apqns, view.expected, active),
        None => ep11_not_present(state, view.apqns, view.expected),
    }
}

/// Why the EP11 token would not start outside an operation, or `None`. `apqns` and
/// `expected` are what its config file says.
fn ep11_not_present(state: &SimState, apqns: Vec<Apqn>, expected: Option<Wkvp>) -> Option<String> {
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

/// What a CCA token reads from its config file.
pub(crate) struct CcaView {
    pub expected: BTreeMap<MkType, Mkvp>,
    pub config: Option<PathBuf>,
}

/// The CCA token's `EXPECTED_MKVPS`, or why it does not start.
pub(crate) fn cca_view(root: &Path, token: &TokenRecord) -> Result<CcaView, String> {
    let Some(config) = &token.config else {
        return Ok(CcaView {
            expected: BTreeMap::new(),
            config: None,
        });
    };
    let expected = match mkplan_plan::input::read_to_string(
        &under(root, config),
        mkplan_plan::input::CONFIG,
    ) {
        Ok(text) => {
            parse_ccatok_conf(&text)
                .map_err(|e| format!("Error parsing config file '{}': {e}", config.display()))?
                .expected_mkvps
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(format!("CCA config file '{}': {e}", config.display())),
    };
    Ok(CcaView {
        expected,
        config: Some(config.clone()),
    })
}

/// The patterns an MK type may have on the token's APQNs: its start-up value, or during an
/// operation of that type the old and the new one.
fn allowed(active: Option<&(Operation, SlotRecord)>, kind: KeyType) -> Option<(Vec<u8>, Vec<u8>)> {
    let (op, record) = active?;
    Some((record.current(kind)?.to_vec(), op.new_mkvp(kind)?.to_vec()))
}

/// Why the CCA token would not start, or `None`.
pub(crate) fn cca_not_present(
    root: &Path,
    state: &SimState,
    token: &TokenRecord,
    active: Option<&(Operation, SlotRecord)>,
) -> Option<String> {
    let view = match cca_view(root, token) {
        Ok(view) => view,
        Err(why) => return Some(why),
    };
    let online: Vec<_> = token
        .apqns
        .iter()
        .filter_map(|name| {
            let queue = state.cca_apqns.get(name)?;
            let card = state.cards.get(&format!("{:02x}", queue.adapter))?;
            cca_sysfs::answers(card, queue).then_some(queue)
        })
        .collect();
    if online.is_empty() {
        return Some("no online CCA APQN of the token".to_owned());
    }
    for mk in MkType::ALL {
        let during = allowed(active, KeyType::Cca(mk));
        let mut seen: Option<Option<Mkvp>> = None;
        for queue in &online {
            let cur = queue.mk(mk).cur;
            let vp = (cur.state == KeyState::Valid).then_some(cur.vp).flatten();
            let upper = format!("{:02X}.{:04X}", queue.adapter, queue.domain);
            if let Some((old, new)) = &during {
                if !vp.is_some_and(|vp| vp.bytes()[..] == old[..] || vp.bytes()[..] == new[..]) {
                    return Some(format!(
                        "CCA {mk} master key on APQN {upper} is neither the current nor the new one of the active operation"
                    ));
                }
                continue;
            }
            match seen {
                Some(first) if first != vp => {
                    return Some(format!(
                        "CCA {mk} master key on APQN {upper} does not match the other APQN's master key"
                    ));
                }
                _ => seen = Some(vp),
            }
        }
        if let Some(expected) = view.expected.get(&mk) {
            let matches = match &during {
                Some((old, new)) => {
                    expected.bytes()[..] == old[..] || expected.bytes()[..] == new[..]
                }
                None => seen.flatten() == Some(*expected),
            };
            if !matches {
                return Some(format!(
                    "CCA {mk} master key does not match the expected master key (EXPECTED_MKVPS)"
                ));
            }
        }
    }
    None
}

/// Why the EP11 token would not start while `active` covers it, or `None`. `apqns` and
/// `expected` are what its config file says ([`ep11_view`]).
pub(crate) fn ep11_not_present_during(
    state: &SimState,
    apqns: &[Apqn],
    expected: Option<Wkvp>,
    active: &(Operation, SlotRecord),
) -> Option<String> {
    let (old, new) = allowed(Some(active), KeyType::Ep11)?;
    let either = |vp: &[u8]| vp[..16] == old[..] || vp[..16] == new[..];
    let mut any = false;
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
        any = true;
        let upper = format!("{:02X}.{:04X}", apqn.adapter(), apqn.domain());
        match (queue.cur.state, queue.cur.vp) {
            (CurRegister::Valid, Some(vp)) if either(&vp) => {}
            _ => {
                return Some(format!(
                    "EP11 wrapping key on APQN {upper} is neither the current nor the new one of the active operation"
                ));
            }
        }
    }
    if expected.is_some_and(|w| !either(w.bytes())) {
        return Some(
            "EXPECTED_WKVP names neither the current nor the new WK of the active operation".into(),
        );
    }
    (!any).then(|| "no online EP11 APQN of the token".to_owned())
}

/// What an EP11 token reads from its config file: the APQNs it uses (`APQN_ANY`: every EP11
/// APQN of the host), whether that was `APQN_ANY`, and `EXPECTED_WKVP`. Without a config
/// file, the token's own APQNs.
pub(crate) struct Ep11View {
    pub apqns: Vec<Apqn>,
    pub any: bool,
    pub expected: Option<Wkvp>,
    pub config: Option<PathBuf>,
}

pub(crate) fn ep11_view(
    root: &Path,
    state: &SimState,
    token: &TokenRecord,
) -> Result<Ep11View, String> {
    let Some(config) = &token.config else {
        return Ok(Ep11View {
            apqns: crate::token::token_apqns(token),
            any: false,
            expected: None,
            config: None,
        });
    };
    let text = mkplan_plan::input::read_to_string(&under(root, config), mkplan_plan::input::CONFIG)
        .map_err(|_| format!("EP 11 config file '{}' not found", config.display()))?;
    let parsed = mkplan_plan::ep11conf::parse(&text)
        .map_err(|e| format!("Error parsing config file '{}': {e}", config.display()))?;
    let (apqns, any) = match parsed.apqns {
        mkplan_plan::ep11conf::ApqnMode::Allowlist(list) => (list, false),
        mkplan_plan::ep11conf::ApqnMode::Any => {
            (state.apqns.values().map(|q| q.apqn()).collect(), true)
        }
    };
    Ok(Ep11View {
        apqns,
        any,
        expected: parsed.expected_wkvp,
        config: Some(config.clone()),
    })
}

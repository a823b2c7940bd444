//! The simulated TKE for EP11 and CCA APQNs together: one request, checked on every APQN it
//! reaches, then applied at once (or nothing changes). EP11 registers change as `sim::tke`
//! says. A CCA domain, per MK type (zcrypt-sysfs.md 1.6, opencryptoki-ep11.md 5):
//!
//! * load: key parts go into NEW: `--partial` loads a first or middle part (NEW partial, no
//!   pattern yet), otherwise the last part (NEW full, with the pattern). A full NEW register
//!   takes no more parts until it is cleared.
//! * set (`activate`): NEW full → CUR, the previous CUR → OLD, NEW empty. CCA keeps the old
//!   MK in OLD, which is what `pkcscca -m keys` re-enciphers from.
//! * clear: NEW empty. CCA has no commit.

use std::path::Path;

use crate::cca::{KeyRegister, KeyState, MkRegisters, MkType, Mkvp, NewRegister, NewState};
use crate::state::{self, SimState};
use crate::{SimError, TkeAction, tke};
use mkplan_plan::model::{Apqn, Wkvp};

/// What the TKE operator does.
#[derive(Debug, Clone)]
pub struct TkeRequest {
    pub action: TkeAction,
    /// One APQN, or every APQN the action fits.
    pub apqn: Option<Apqn>,
    /// EP11 `load`: the WKVP (default: the token's new one).
    pub wkvp: Option<Wkvp>,
    /// CCA: the MK types (default: the token's).
    pub mks: Vec<MkType>,
    /// CCA `load`: the MKVP (default: the token's new one of each MK type).
    pub mkvp: Option<Mkvp>,
    /// CCA `load`: a first or middle key part only.
    pub partial: bool,
}

impl TkeRequest {
    pub fn new(action: TkeAction) -> Self {
        Self {
            action,
            apqn: None,
            wkvp: None,
            mks: Vec::new(),
            mkvp: None,
            partial: false,
        }
    }
}

fn refuse(why: String) -> SimError {
    SimError::Tke(why)
}

pub(crate) fn act(root: &Path, request: &TkeRequest) -> Result<(), SimError> {
    let cca_only = !request.mks.is_empty() || request.mkvp.is_some() || request.partial;
    let ep11_only = request.wkvp.is_some() || request.action == TkeAction::Commit;
    if cca_only && ep11_only {
        return Err(refuse(
            "`--wkvp` and `commit` are for EP11 APQNs, `--mk`, `--mkvp` and `--partial` for CCA ones".into(),
        ));
    }
    if (request.mkvp.is_some() || request.partial) && request.action != TkeAction::Load {
        return Err(refuse(
            "`--mkvp` and `--partial` only go with `load`".into(),
        ));
    }
    let lock = state::lock(root)?;
    let mut state = state::load(root)?;
    let (ep11, cca) = targets(&state, request.apqn, cca_only, ep11_only)?;
    let mut changed = state.clone();
    for name in ep11 {
        let queue = &state.apqns[&name];
        let default = match state.tokens.get(&queue.token) {
            Some(t) if !t.wkvp_new.is_empty() => Some(
                Wkvp::parse(&t.wkvp_new)
                    .map(|(w, _)| w)
                    .map_err(SimError::Format)?,
            ),
            _ => None,
        };
        let new = tke::apply(queue, request.action, request.wkvp.or(default))
            .map_err(|why| refuse(format!("{}: {why}; nothing was changed", queue.apqn())))?;
        changed.apqns.insert(name, new);
    }
    for name in cca {
        let queue = &state.cca_apqns[&name];
        let defaults = state
            .tokens
            .get(&queue.token)
            .map(|t| t.cca_new.clone())
            .unwrap_or_default();
        let mks: Vec<MkType> = if request.mks.is_empty() {
            defaults.keys().copied().collect()
        } else {
            request.mks.clone()
        };
        let mut new = queue.clone();
        for mk in mks {
            let vp = request.mkvp.or_else(|| defaults.get(&mk).copied());
            let registers = apply_cca(queue.mk(mk), mk, request.action, request.partial, vp)
                .map_err(|why| refuse(format!("{}: {why}; nothing was changed", queue.apqn())))?;
            new.registers.insert(mk, registers);
        }
        changed.cca_apqns.insert(name, new);
    }
    state = changed;
    crate::persist::save(root, &state, &lock)
}

/// The EP11 and CCA APQNs the request reaches.
fn targets(
    state: &SimState,
    apqn: Option<Apqn>,
    cca_only: bool,
    ep11_only: bool,
) -> Result<(Vec<String>, Vec<String>), SimError> {
    if let Some(apqn) = apqn {
        let name = apqn.lszcrypt();
        return match (
            state.apqns.contains_key(&name),
            state.cca_apqns.contains_key(&name),
        ) {
            (true, _) if cca_only => Err(refuse(format!(
                "APQN {apqn} is an EP11 APQN: `--mk`, `--mkvp` and `--partial` are for CCA"
            ))),
            (true, _) => Ok((vec![name], Vec::new())),
            (_, true) if ep11_only => Err(refuse(format!(
                "APQN {apqn} is a CCA APQN: CCA has no commit, and takes `--mkvp`, not `--wkvp`"
            ))),
            (_, true) => Ok((Vec::new(), vec![name])),
            _ => Err(refuse(format!("APQN {apqn} is not simulated on this host"))),
        };
    }
    let ep11: Vec<String> = if cca_only {
        Vec::new()
    } else {
        state.apqns.keys().cloned().collect()
    };
    let cca: Vec<String> = if ep11_only {
        Vec::new()
    } else {
        state.cca_apqns.keys().cloned().collect()
    };
    if ep11.is_empty() && cca.is_empty() {
        return Err(refuse("no APQN of this host fits the action".into()));
    }
    Ok((ep11, cca))
}

/// One MK type's registers after the action, or why the TKE refuses it.
pub(crate) fn apply_cca(
    registers: MkRegisters,
    mk: MkType,
    action: TkeAction,
    partial: bool,
    vp: Option<Mkvp>,
) -> Result<MkRegisters, String> {
    let mut out = registers;
    match action {
        TkeAction::Load if registers.new.state == NewState::Full => {
            return Err(format!(
                "the {mk} NEW register is full: clear it before loading key parts"
            ));
        }
        TkeAction::Load if partial => {
            out.new = NewRegister {
                state: NewState::Partial,
                vp: None,
            };
        }
        TkeAction::Load => {
            let vp = vp.ok_or_else(|| format!("no new {mk} MKVP to load (give `--mkvp`)"))?;
            out.new = NewRegister {
                state: NewState::Full,
                vp: Some(vp),
            };
        }
        TkeAction::Activate => match (registers.new.state, registers.new.vp) {
            (NewState::Full, Some(vp)) => {
                out.old = match registers.cur.valid_vp() {
                    Some(cur) => KeyRegister::valid(cur),
                    None => KeyRegister {
                        state: KeyState::Invalid,
                        vp: None,
                    },
                };
                out.cur = KeyRegister::valid(vp);
                out.new = NewRegister::EMPTY;
            }
            (NewState::Partial, _) => {
                return Err(format!(
                    "the {mk} NEW register is only partly loaded: load the last key part before setting it"
                ));
            }
            _ => return Err(format!("the {mk} NEW register is empty: nothing to set")),
        },
        TkeAction::Clear => out.new = NewRegister::EMPTY,
        TkeAction::Commit => {
            return Err(
                "CCA has no commit: the NEW register is full once its last key part is loaded"
                    .into(),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_then_set_moves_cur_to_old() {
        let first = Mkvp::parse("0x1111111111111111").unwrap();
        let second = Mkvp::parse("0x2222222222222222").unwrap();
        let start = MkRegisters {
            cur: KeyRegister::valid(first),
            ..MkRegisters::UNLOADED
        };
        let part = apply_cca(start, MkType::Aes, TkeAction::Load, true, None).unwrap();
        assert_eq!(part.new.state, NewState::Partial);
        assert!(apply_cca(part, MkType::Aes, TkeAction::Activate, false, None).is_err());
        let full = apply_cca(part, MkType::Aes, TkeAction::Load, false, Some(second)).unwrap();
        assert!(apply_cca(full, MkType::Aes, TkeAction::Load, true, None).is_err());
        let set = apply_cca(full, MkType::Aes, TkeAction::Activate, false, None).unwrap();
        assert_eq!(
            (set.cur.valid_vp(), set.old.valid_vp(), set.new.state),
            (Some(second), Some(first), NewState::Empty)
        );
        assert!(apply_cca(set, MkType::Aes, TkeAction::Commit, false, None).is_err());
        let cleared = apply_cca(full, MkType::Aes, TkeAction::Clear, false, None).unwrap();
        assert_eq!(cleared.new, NewRegister::EMPTY);
    }
}

//! The simulated TKE: what loading, committing, activating ("Set, immediate") and clearing a
//! new wrapping key do to a domain's two registers (opencryptoki-ep11.md 1.6, 2.7;
//! zcrypt-sysfs.md 1.5). EP11 has CUR and NEW only: activation replaces CUR, and the old WK
//! is gone for good.

use std::path::Path;

use crate::crypto::extend_vp;
use crate::state::{self, CurRegister, NewRegister, Queue, Register};
use crate::{SimError, TkeAction};
use mkplan_plan::model::{Apqn, Wkvp};

/// Applies `action` to `apqn` (or every APQN): all are checked first, then all change.
pub(crate) fn act(
    root: &Path,
    action: TkeAction,
    apqn: Option<Apqn>,
    wkvp: Option<Wkvp>,
) -> Result<(), SimError> {
    let lock = state::lock(root)?;
    let mut state = state::load(root)?;
    let names: Vec<String> = match apqn {
        Some(apqn) => {
            let name = apqn.lszcrypt();
            if !state.apqns.contains_key(&name) {
                return Err(SimError::Tke(format!(
                    "APQN {apqn} is not simulated on this host"
                )));
            }
            vec![name]
        }
        None => state.apqns.keys().cloned().collect(),
    };
    if wkvp.is_some() && action != TkeAction::Load {
        return Err(SimError::Tke("`--wkvp` only goes with `load`".to_owned()));
    }
    let mut changed = Vec::new();
    for name in &names {
        let queue = &state.apqns[name];
        let default_wkvp = state
            .tokens
            .get(&queue.token)
            .map(|t| Wkvp::parse(&t.wkvp_new).map(|(w, _)| w))
            .transpose()
            .map_err(SimError::Format)?;
        let new_queue = apply(queue, action, wkvp.or(default_wkvp)).map_err(|why| {
            SimError::Tke(format!("{}: {why}; nothing was changed", queue.apqn()))
        })?;
        changed.push((name.clone(), new_queue));
    }
    for (name, queue) in changed {
        state.apqns.insert(name, queue);
    }
    crate::persist::save(root, &state, &lock)
}

/// The registers after `action`, or why the TKE would refuse it.
pub(crate) fn apply(queue: &Queue, action: TkeAction, wkvp: Option<Wkvp>) -> Result<Queue, String> {
    let mut queue = queue.clone();
    match action {
        TkeAction::Load => {
            let wkvp = wkvp.ok_or("no WKVP to load (give `--wkvp`)")?;
            queue.new = Register {
                state: NewRegister::Uncommitted,
                vp: Some(extend_vp(&wkvp)),
            };
        }
        TkeAction::Commit => match queue.new.state {
            NewRegister::Uncommitted => queue.new.state = NewRegister::Committed,
            NewRegister::Committed => {}
            NewRegister::Empty => {
                return Err("the NEW register is empty: load a new WK first".into());
            }
            NewRegister::Unknown => return Err("the NEW register is unknown".into()),
        },
        TkeAction::Activate => match (queue.new.state, queue.new.vp) {
            (NewRegister::Committed, Some(vp)) => {
                queue.cur = Register {
                    state: CurRegister::Valid,
                    vp: Some(vp),
                };
                queue.new = Register {
                    state: NewRegister::Empty,
                    vp: None,
                };
            }
            (NewRegister::Uncommitted, _) => {
                return Err("the new WK is not committed: commit it before activating".into());
            }
            _ => return Err("no committed new WK to activate".into()),
        },
        TkeAction::Clear => {
            queue.new = Register {
                state: NewRegister::Empty,
                vp: None,
            };
        }
    }
    Ok(queue)
}

/// Sets the queue's `online` flag (not a TKE action: what `chzcrypt` would do).
pub(crate) fn set_queue_online(root: &Path, apqn: Apqn, online: bool) -> Result<(), SimError> {
    let lock = state::lock(root)?;
    let mut state = state::load(root)?;
    if let Some(queue) = state.cca_apqns.get_mut(&apqn.lszcrypt()) {
        queue.online = online;
        return crate::persist::save(root, &state, &lock);
    }
    let queue = state
        .apqns
        .get_mut(&apqn.lszcrypt())
        .ok_or_else(|| SimError::Tke(format!("APQN {apqn} is not simulated on this host")))?;
    queue.online = online;
    crate::persist::save(root, &state, &lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Queue {
        Queue {
            adapter: 10,
            domain: 17,
            token: "ep11".into(),
            online: true,
            config: true,
            chkstop: false,
            cur: Register {
                state: CurRegister::Valid,
                vp: Some([1; 32]),
            },
            new: Register {
                state: NewRegister::Empty,
                vp: None,
            },
            read_fault: None,
        }
    }

    #[test]
    fn the_registers_go_load_commit_activate_and_the_old_wk_is_gone() {
        let w = Wkvp::parse(&"22".repeat(16)).unwrap().0;
        let loaded = apply(&queue(), TkeAction::Load, Some(w)).unwrap();
        assert_eq!(loaded.new.state, NewRegister::Uncommitted);
        assert!(apply(&loaded, TkeAction::Activate, None).is_err());
        let committed = apply(&loaded, TkeAction::Commit, None).unwrap();
        let active = apply(&committed, TkeAction::Activate, None).unwrap();
        assert_eq!(active.cur.vp, Some(extend_vp(&w)));
        assert_eq!(active.new.state, NewRegister::Empty);
        assert!(apply(&active, TkeAction::Commit, None).is_err());
        assert_eq!(
            apply(&committed, TkeAction::Clear, None).unwrap().new.state,
            NewRegister::Empty
        );
    }
}

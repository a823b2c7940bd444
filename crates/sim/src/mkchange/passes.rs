//! What the tokens do to their token objects in the tool's process (opencryptoki-ep11.md 2.3
//! step 8, 2.4 step 5), written through the token's save path at once, object by object:
//!
//! * reencipher: the blob re-enciphered under the new WK/MK goes into
//!   `CKA_IBM_OPAQUE_REENC`; `CKA_IBM_OPAQUE` keeps the old one. EP11 on the token's single
//!   APQN with `XCP_ADM_REENCRYPT` (current WK → committed new WK); CCA for the keys of the
//!   operation's MK types, current MK → the full NEW register. Every new blob must carry the
//!   new pattern.
//! * finalize: REENC becomes OPAQUE and the old OPAQUE goes to `CKA_IBM_OPAQUE_OLD` (an
//!   object whose OPAQUE already has the new pattern is left alone).
//! * cancel: REENC and OLD are removed.
//!
//! A failure stops the pass: the token answers the event negatively (its reason in syslog).

use std::path::Path;
use std::time::Duration;

use crate::cca::MkType;
use crate::crypto::{BlobKind, blob_wkvp, reencrypt};
use crate::mkchange::Present;
use crate::mkchange_ops::{KeyType, Operation};
use crate::state::{CurRegister, NewRegister, SimState, TokenKind};
use crate::store::{self, SimObject, StoredObject};
use crate::token::token_apqns;
use crate::{Fault, cca_sysfs, sysfs, syslog};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Reencipher,
    Finalize,
    Cancel,
}

/// Runs `pass` over the token objects of every token in `tokens`; `Err(())` after the first
/// failure (logged). `done` counts the objects changed so far across calls (the faults'
/// K counts them).
pub(crate) fn run(
    root: &Path,
    state: &SimState,
    faults: &[Fault],
    tokens: &[&Present],
    op: &Operation,
    pass: Pass,
    done: &mut usize,
) -> Result<(), ()> {
    let slow = faults.iter().find_map(|f| match f {
        Fault::MkChangeSlow(ms) => Some(Duration::from_millis(*ms)),
        _ => None,
    });
    let fail_at = faults.iter().find_map(|f| match (f, pass) {
        (Fault::MkChangeFailReencipher(k), Pass::Reencipher)
        | (Fault::MkChangeFailFinalize(k), Pass::Finalize)
        | (Fault::MkChangeFailCancel(k), Pass::Cancel) => Some(*k),
        _ => None,
    });
    for token in tokens {
        let slot = token.record.slot;
        let objects = store::read_objects(&token.store).map_err(|e| {
            syslog::log(root, "pkcshsm_mk_change", &format!("Slot {slot}: {e}"));
        })?;
        for stored in objects {
            let Some(changed) = change(state, token, op, &stored.object, pass) else {
                continue;
            };
            *done += 1;
            if let Some(pause) = slow {
                std::thread::sleep(pause);
            }
            let result = if fail_at == Some(*done) {
                Err("CKR_DEVICE_ERROR (simulated card failure)".to_owned())
            } else {
                changed.and_then(|object| save(&token.store, &stored, &object))
            };
            if let Err(why) = result {
                let verb = match pass {
                    Pass::Reencipher => "re-encipher",
                    Pass::Finalize => "finalize",
                    Pass::Cancel => "cancel",
                };
                syslog::log(
                    root,
                    "pkcshsm_mk_change",
                    &format!(
                        "Slot {slot}: Failed to {verb} the key object '{}': {why}",
                        stored.object.label
                    ),
                );
                return Err(());
            }
        }
    }
    Ok(())
}

fn save(store_dir: &Path, stored: &StoredObject, object: &SimObject) -> Result<(), String> {
    let path = store_dir.join("TOK_OBJ").join(&stored.file);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    store::write_object(
        store_dir,
        &stored.file,
        object,
        usize::try_from(size).unwrap_or(0),
    )
    .map_err(|e| format!("CKR_FUNCTION_FAILED ({e})"))
}

/// The object as the pass leaves it: `None` when the pass does not touch it, `Some(Err)`
/// when the card refuses.
fn change(
    state: &SimState,
    token: &Present,
    op: &Operation,
    object: &SimObject,
    pass: Pass,
) -> Option<Result<SimObject, String>> {
    let blob = object.blob_bytes()?;
    object.key_type.as_ref()?;
    let kind = match (
        token.record.kind,
        BlobKind::of(&blob).and_then(BlobKind::cca_mk),
    ) {
        (TokenKind::Ep11, _) => KeyType::Ep11,
        (TokenKind::Cca, Some(mk)) if op.cca_token_types().contains(&mk) => KeyType::Cca(mk),
        (TokenKind::Cca, _) => return None,
    };
    let new = op.new_mkvp(kind)?;
    let mut changed = object.clone();
    match pass {
        Pass::Reencipher => {
            let reenc = match kind {
                KeyType::Ep11 => ep11_reencrypt(state, token, &blob),
                KeyType::Cca(mk) => cca_reencrypt(state, token, mk, &blob),
            };
            let reenc = match reenc {
                Ok(reenc) => reenc,
                Err(why) => return Some(Err(why)),
            };
            if blob_wkvp(&reenc).is_none_or(|vp| vp[..new.len()] != *new) {
                return Some(Err(
                    "the re-enciphered blob does not carry the new pattern".into()
                ));
            }
            changed.blob_reenc = Some(hex::encode(reenc));
        }
        Pass::Finalize => {
            let reenc = object.blob_reenc.clone()?;
            if blob_wkvp(&blob).is_some_and(|vp| vp[..new.len()] == *new) {
                return None;
            }
            changed.blob_old = object.blob.clone();
            changed.blob = Some(reenc);
            changed.blob_reenc = None;
        }
        Pass::Cancel => {
            if object.blob_reenc.is_none() && object.blob_old.is_none() {
                return None;
            }
            changed.blob_reenc = None;
            changed.blob_old = None;
        }
    }
    Some(Ok(changed))
}

/// `XCP_ADM_REENCRYPT` on the token's single APQN (the first that answers).
fn ep11_reencrypt(state: &SimState, token: &Present, blob: &[u8]) -> Result<Vec<u8>, String> {
    let queue = token_apqns(&token.record)
        .into_iter()
        .filter_map(|a| {
            let queue = state.apqns.get(&a.lszcrypt())?;
            let card = state.cards.get(&format!("{:02x}", a.adapter()))?;
            sysfs::answers(card, queue).then_some(queue)
        })
        .next()
        .ok_or("CKR_DEVICE_ERROR (no online APQN)")?;
    let (CurRegister::Valid, Some(cur), NewRegister::Committed, Some(next)) =
        (queue.cur.state, queue.cur.vp, queue.new.state, queue.new.vp)
    else {
        return Err("CKR_DEVICE_ERROR (no committed new WK on the APQN)".into());
    };
    reencrypt(blob, &cur, &next).map_err(|_| "CKR_IBM_WKID_MISMATCH".to_owned())
}

/// CCA Key Token Change to the NEW master key (`RTNMK`) on the first APQN that answers.
fn cca_reencrypt(
    state: &SimState,
    token: &Present,
    mk: MkType,
    blob: &[u8],
) -> Result<Vec<u8>, String> {
    let queue = token_apqns(&token.record)
        .into_iter()
        .filter_map(|a| {
            let queue = state.cca_apqns.get(&a.lszcrypt())?;
            let card = state.cards.get(&format!("{:02x}", a.adapter()))?;
            cca_sysfs::answers(card, queue).then_some(queue)
        })
        .next()
        .ok_or("CCA return code 12 (no online APQN)")?;
    let registers = queue.mk(mk);
    let (Some(cur), Some(next)) = (registers.cur.valid_vp(), registers.new.full_vp()) else {
        return Err(format!(
            "CCA return code 8 (the {mk} NEW register is not full)"
        ));
    };
    reencrypt(blob, &cur.identity(mk), &next.identity(mk)).map_err(|_| {
        format!(
            "CCA return code 8, reason 48 (the key token is not under the current {mk} master key)"
        )
    })
}

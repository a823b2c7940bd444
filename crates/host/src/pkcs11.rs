//! PKCS#11 through `cryptoki`: the key inventory and usability probe (`probe_keys`), its
//! before/after comparison, and ECDSA P-256 signing with a key on a token (report signing).
//!
//! Every public function loads the module, opens one read-only session on the slot, logs in
//! as USER, works, then logs out, closes the session and calls `C_Finalize` — on every path,
//! errors included. Quirks handled here (`reference/dependencies.md`, "PKCS#11"):
//!
//! * openCryptoki 3.8.1 puts "HH:MM:SS" in the token's `utcTime`, which cryptoki's
//!   `get_token_info()` refuses: the slot is found by id in `C_GetSlotList`, and token info is
//!   never read.
//! * `get_attributes` silently drops attributes it could not read, and fails as a whole on a
//!   class or key type it does not know: attributes are read one concern at a time, and the
//!   vendor blob (`CKA_IBM_OPAQUE`) is sized with `get_attribute_info` first.
//! * `C_GetMechanismList` is never called: cryptoki logs an error for every vendor mechanism
//!   it cannot name (`cryptoki::mechanism`), which is noise on openCryptoki and EP11 tokens.
//!   Unsupported mechanisms show up as `CKR_MECHANISM_INVALID` where one is used instead.

mod error;
mod inventory;
mod sign;

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use mkplan_engine::ports::keys::{KeyError, KeyProber, ObjectSink};
use mkplan_engine::secret::Pin;

pub use error::Pkcs11Error;
pub use inventory::probe;
pub use sign::{KeyRef, public_key_pem, sign_ecdsa_p256};

use error::Target;

/// `C_Initialize` and `C_Finalize` act on the whole process: two threads using one module at
/// once would finalize it under each other. Every use of a module in mkplan holds this lock
/// from loading to finalizing (documented global state, see house style 11).
static MODULE_LOCK: Mutex<()> = Mutex::new(());

/// Runs `work` in a logged-in read-only session on `slot` of `module`, then logs out, closes
/// the session and finalizes the module, whatever `work` returned.
fn with_user_session<T>(
    module: &Path,
    slot: u64,
    pin: &Pin,
    work: impl FnOnce(&Session, Target<'_>) -> Result<T, Pkcs11Error>,
) -> Result<T, Pkcs11Error> {
    let _lock = MODULE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let target = Target { module, slot };
    let pkcs11 = Pkcs11::new(module).map_err(|e| target.load(e))?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // openCryptoki 3.8.1 when it cannot attach to pkcsslotd's shared memory (observed;
        // `reference/opencryptoki-ep11.md` 1.2 step 5: the tool's exit code 144).
        Err(CryptokiError::Pkcs11(RvError::HostMemory, _)) => {
            return Err(Pkcs11Error::NoSlotDaemon {
                module: target.module_name(),
            });
        }
        Err(e) => return Err(target.call("initialize", e)),
    }
    let result = open_session(&pkcs11, target, pin, work);
    // After the session is closed: finalizing with a live session would close it twice.
    let finalized = pkcs11.finalize().map_err(|e| target.call("finalize", e));
    let value = result?;
    finalized?;
    Ok(value)
}

fn open_session<T>(
    pkcs11: &Pkcs11,
    target: Target<'_>,
    pin: &Pin,
    work: impl FnOnce(&Session, Target<'_>) -> Result<T, Pkcs11Error>,
) -> Result<T, Pkcs11Error> {
    let slot = find_slot(pkcs11, target)?;
    let session = pkcs11
        .open_ro_session(slot)
        .map_err(|e| target.call("open session", e))?;
    let result = login(&session, target, pin).and_then(|()| {
        let result = work(&session, target);
        let logged_out = session.logout().map_err(|e| target.call("logout", e));
        result.and_then(|value| logged_out.map(|()| value))
    });
    let closed = session.close().map_err(|e| target.call("close session", e));
    let value = result?;
    closed?;
    Ok(value)
}

/// The slot with id `target.slot`, from the slot list (never from token info, see above).
fn find_slot(pkcs11: &Pkcs11, target: Target<'_>) -> Result<Slot, Pkcs11Error> {
    let slots = pkcs11
        .get_all_slots()
        .map_err(|e| target.call("list slots", e))?;
    slots
        .iter()
        .copied()
        .find(|slot| slot.id() == target.slot)
        .ok_or_else(|| Pkcs11Error::NoSuchSlot {
            module: target.module_name(),
            slot: target.slot,
            present: if slots.is_empty() {
                "none".to_owned()
            } else {
                slots
                    .iter()
                    .map(|slot| slot.id().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// Checks the user PIN with exactly one `C_Login` (and logs out again): a wrong PIN costs one
/// failed login on the token's counter, never more, because nothing here retries.
pub fn verify_pin(module: &Path, slot: u64, pin: &Pin) -> Result<(), Pkcs11Error> {
    with_user_session(module, slot, pin, |_, _| Ok(()))
}

fn login(session: &Session, target: Target<'_>, pin: &Pin) -> Result<(), Pkcs11Error> {
    let auth = AuthPin::from(pin.expose());
    match session.login(UserType::User, Some(&auth)) {
        Ok(()) | Err(CryptokiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CryptokiError::Pkcs11(RvError::PinIncorrect, _)) => Err(Pkcs11Error::PinIncorrect {
            module: target.module_name(),
            slot: target.slot,
        }),
        Err(CryptokiError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
            module: target.module_name(),
            slot: target.slot,
        }),
        Err(e) => Err(target.call("login", e)),
    }
}

/// Through the token's PKCS#11 module, with `cryptoki`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pkcs11Prober;

impl KeyProber for Pkcs11Prober {
    fn probe_into(
        &self,
        module: &Path,
        slot: u64,
        pin: &Pin,
        out: &mut ObjectSink<'_>,
    ) -> Result<String, KeyError> {
        Ok(probe(module, slot, pin, out)?)
    }

    fn verify_pin(&self, module: &Path, slot: u64, pin: &Pin) -> Result<(), KeyError> {
        Ok(verify_pin(module, slot, pin)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_module_is_named_in_the_error() {
        let pin = Pin::new("S3cr3t-PIN-4711".to_owned());
        let error = probe(
            Path::new("/nonexistent/libnothing.so"),
            3,
            &pin,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Pkcs11Error::Load { .. }), "{error:?}");
        assert!(
            message.contains("`/nonexistent/libnothing.so`"),
            "{message}"
        );
        assert!(!message.contains("S3cr3t") && !format!("{error:?}").contains("S3cr3t"));
    }
}

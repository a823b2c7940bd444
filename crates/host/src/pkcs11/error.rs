//! What can go wrong talking to a PKCS#11 module, each error naming the module, the slot and
//! the PKCS#11 return code (`CKR_…`). No variant can hold a PIN.

use std::path::Path;

use cryptoki::error::{Error as CryptokiError, RvError};
use mkplan_engine::keylist::KeyListError;
use mkplan_engine::ports::keys::KeyError;
use thiserror::Error;

/// A failed PKCS#11 operation. Every message names the module and the slot.
#[derive(Debug, Error)]
pub enum Pkcs11Error {
    /// The probe's side file could not be written (not a token failure).
    #[error(transparent)]
    Inventory(#[from] KeyListError),

    #[error("cannot load the PKCS#11 module `{module}`: {reason}")]
    Load { module: String, reason: String },

    #[error(
        "`C_Initialize` of `{module}` failed: CKR_HOST_MEMORY\nhint: openCryptoki answers so \
         when `pkcsslotd` is not running, or its shared memory is gone (a second daemon was \
         started and killed); start exactly one `pkcsslotd`"
    )]
    NoSlotDaemon { module: String },

    #[error("slot {slot} not found in `{module}` (slots present: {present})")]
    NoSuchSlot {
        module: String,
        slot: u64,
        present: String,
    },

    #[error(
        "wrong user PIN for slot {slot} of `{module}` (CKR_PIN_INCORRECT): the token's \
         failed-login counter was incremented; check the PIN source before trying again"
    )]
    PinIncorrect { module: String, slot: u64 },

    #[error(
        "the user PIN of slot {slot} of `{module}` is locked (CKR_PIN_LOCKED): too many failed \
         logins; the token's security officer must reset it"
    )]
    PinLocked { module: String, slot: u64 },

    #[error("`{function}` failed on slot {slot} of `{module}`: {code}")]
    Call {
        module: String,
        slot: u64,
        function: String,
        code: String,
    },

    #[error("no {what} with {key} on slot {slot} of `{module}`")]
    KeyNotFound {
        module: String,
        slot: u64,
        what: &'static str,
        key: String,
    },

    #[error(
        "{count} {what}s match {key} on slot {slot} of `{module}`\nhint: name the key by a unique \
         label or id"
    )]
    KeyAmbiguous {
        module: String,
        slot: u64,
        what: &'static str,
        key: String,
        count: usize,
    },

    #[error("the key with {key} on slot {slot} of `{module}` is not an ECDSA P-256 key: {reason}")]
    NotP256 {
        module: String,
        slot: u64,
        key: String,
        reason: String,
    },
}

/// Through the key ports, kept whole: what kind of failure it is, and the same text.
impl From<Pkcs11Error> for KeyError {
    fn from(error: Pkcs11Error) -> Self {
        match error {
            Pkcs11Error::PinIncorrect { .. } | Pkcs11Error::PinLocked { .. } => {
                KeyError::PinRefused(Box::new(error))
            }
            Pkcs11Error::KeyNotFound { .. }
            | Pkcs11Error::KeyAmbiguous { .. }
            | Pkcs11Error::NotP256 { .. } => KeyError::Key(Box::new(error)),
            Pkcs11Error::Load { .. }
            | Pkcs11Error::NoSlotDaemon { .. }
            | Pkcs11Error::NoSuchSlot { .. }
            | Pkcs11Error::Call { .. } => KeyError::Token(Box::new(error)),
            Pkcs11Error::Inventory(error) => KeyError::Inventory(error),
        }
    }
}

/// The module and slot an operation works on: what every error names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) module: &'a Path,
    pub(crate) slot: u64,
}

impl Target<'_> {
    pub(crate) fn module_name(&self) -> String {
        self.module.display().to_string()
    }

    /// A failed cryptoki call. `operation` names the call for errors that carry no PKCS#11
    /// function of their own (conversions inside cryptoki).
    pub(crate) fn call(&self, operation: &str, error: CryptokiError) -> Pkcs11Error {
        let (function, code) = match &error {
            CryptokiError::Pkcs11(rv, function) => (format!("C_{function:?}"), ckr_name(*rv)),
            other => (operation.to_owned(), other.to_string()),
        };
        Pkcs11Error::Call {
            module: self.module_name(),
            slot: self.slot,
            function,
            code,
        }
    }

    pub(crate) fn load(&self, error: CryptokiError) -> Pkcs11Error {
        Pkcs11Error::Load {
            module: self.module_name(),
            reason: error.to_string(),
        }
    }
}

/// The PKCS#11 name of a return code, `CKR_PIN_INCORRECT` for `RvError::PinIncorrect`.
///
/// cryptoki's `Display` for `RvError` is the specification's prose, too long for a message;
/// its variant names are the `CKR_` names in CamelCase (checked against every code cryptoki
/// maps), so the name is derived from `Debug`.
pub(crate) fn ckr_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(code) => format!("CKR_VENDOR_DEFINED+{:#x}", code - 0x8000_0000),
        RvError::UnknownErrorCode(code) => format!("unknown return code {code:#x}"),
        other => {
            let camel = format!("{other:?}");
            let mut name = String::from("CKR_");
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_have_their_pkcs11_names() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(ckr_name(RvError::HostMemory), "CKR_HOST_MEMORY");
        assert_eq!(
            ckr_name(RvError::KeyFunctionNotPermitted),
            "CKR_KEY_FUNCTION_NOT_PERMITTED"
        );
        assert_eq!(
            ckr_name(RvError::UserPinNotInitialized),
            "CKR_USER_PIN_NOT_INITIALIZED"
        );
        assert_eq!(
            ckr_name(RvError::VendorDefined(0x8000_0010)),
            "CKR_VENDOR_DEFINED+0x10"
        );
    }

    #[test]
    fn through_the_key_port_an_error_keeps_its_text_and_says_its_kind() {
        let refused = Pkcs11Error::PinIncorrect {
            module: "/usr/lib/x.so".to_owned(),
            slot: 3,
        };
        let text = refused.to_string();
        let port = KeyError::from(refused);
        assert!(matches!(port, KeyError::PinRefused(_)), "{port:?}");
        assert_eq!(port.to_string(), text);
        let missing = KeyError::from(Pkcs11Error::KeyNotFound {
            module: "/usr/lib/x.so".to_owned(),
            slot: 3,
            what: "private key",
            key: "label `k`".to_owned(),
        });
        assert!(matches!(missing, KeyError::Key(_)), "{missing:?}");
    }

    #[test]
    fn call_errors_name_module_slot_function_and_code() {
        let target = Target {
            module: Path::new("/usr/lib/x.so"),
            slot: 3,
        };
        let error = target.call(
            "login",
            CryptokiError::Pkcs11(RvError::TokenNotPresent, cryptoki::context::Function::Login),
        );
        assert_eq!(
            error.to_string(),
            "`C_Login` failed on slot 3 of `/usr/lib/x.so`: CKR_TOKEN_NOT_PRESENT"
        );
    }
}

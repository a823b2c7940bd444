//! Keys on PKCS#11 tokens: proving a token's keys work (`probe_keys`) and its PIN right (one
//! login), and signing with a key on a token (the report).

use std::path::Path;

use crate::record::probe::Inventory;
use crate::secret::Pin;
use mkplan_plan::model::Pkcs11KeyRef;

/// An adapter's own error, kept whole behind a port (a caller may still downcast it).
pub type AdapterError = Box<dyn std::error::Error + Send + Sync>;

/// Why a key port failed. The text is the adapter's own: it names the module, the slot and
/// the PKCS#11 return code, never the PIN.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The token refused the PIN (wrong, or locked): its failed-login counter moved.
    #[error(transparent)]
    PinRefused(AdapterError),
    /// The key named is not on the token, not unique, or not of the kind asked for.
    #[error(transparent)]
    Key(AdapterError),
    /// The module, the slot daemon, the slot or a PKCS#11 call failed.
    #[error(transparent)]
    Token(AdapterError),
}

/// Lists a token's objects and proves its keys work, and checks a token's PIN. The real one
/// goes through PKCS#11; rehearsal injects the simulator's (no PKCS#11 module can open a
/// simulated EP11 token), whose token checks the PIN as the real login does.
pub trait KeyProber: Send + Sync {
    fn probe(&self, module: &Path, slot: u64, pin: &Pin) -> Result<Inventory, KeyError>;
    /// One `C_Login` as USER, never retried: a wrong PIN costs the token one failed login.
    fn verify_pin(&self, module: &Path, slot: u64, pin: &Pin) -> Result<(), KeyError>;
}

/// An ECDSA P-256 key on a PKCS#11 token, for signing reports.
pub trait TokenKeys: Send + Sync {
    /// The key's public half as a SubjectPublicKeyInfo PEM.
    fn public_key_pem(
        &self,
        module: &Path,
        slot: u64,
        key: &Pkcs11KeyRef,
        pin: &Pin,
    ) -> Result<String, KeyError>;
    /// A DER ECDSA signature over `digest` (a SHA-256).
    fn sign_ecdsa_p256(
        &self,
        module: &Path,
        slot: u64,
        key: &Pkcs11KeyRef,
        pin: &Pin,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, KeyError>;
}

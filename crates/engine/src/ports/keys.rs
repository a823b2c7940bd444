//! Keys on PKCS#11 tokens: proving a token's keys work (`probe_keys`) and its PIN right (one
//! login), and signing with a key on a token (the report).

use std::path::Path;

use crate::keylist::KeyListError;
use crate::record::probe::{Inventory, ObjectInfo};
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
    /// The inventory's side file could not be written.
    #[error(transparent)]
    Inventory(#[from] KeyListError),
}

/// Where a probe gives each object it describes, in any order (the run's side file).
pub type ObjectSink<'a> = dyn FnMut(ObjectInfo) -> Result<(), KeyListError> + 'a;

/// Lists a token's objects and proves its keys work, and checks a token's PIN. The real one
/// goes through PKCS#11; rehearsal injects the simulator's (no PKCS#11 module can open a
/// simulated EP11 token), whose token checks the PIN as the real login does.
pub trait KeyProber: Send + Sync {
    /// Lists every object and proves each key, giving each object to `out` as soon as it is
    /// described (nothing is kept); returns the module's name as the inventory shows it.
    fn probe_into(
        &self,
        module: &Path,
        slot: u64,
        pin: &Pin,
        out: &mut ObjectSink<'_>,
    ) -> Result<String, KeyError>;

    /// The whole inventory in memory, sorted: for tests and small tokens.
    fn probe(&self, module: &Path, slot: u64, pin: &Pin) -> Result<Inventory, KeyError> {
        let mut objects = Vec::new();
        let module = self.probe_into(module, slot, pin, &mut |object| {
            objects.push(object);
            Ok(())
        })?;
        objects.sort_by(ObjectInfo::order);
        let mut counts = std::collections::BTreeMap::new();
        for object in &objects {
            let key = match &object.key_type {
                Some(key_type) => format!("{}/{key_type}", object.class),
                None => object.class.clone(),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        let mut inventory = Inventory {
            module,
            slot,
            objects,
            file: None,
            totals: None,
            counts,
        };
        inventory.totals = Some(inventory.totals());
        Ok(inventory)
    }

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

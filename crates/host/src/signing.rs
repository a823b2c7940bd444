//! Report signing with an ECDSA P-256 key on a PKCS#11 token, as the report's port asks.

use std::path::Path;

use crate::pkcs11::{self, KeyRef};
use mkplan_engine::ports::keys::{KeyError, TokenKeys};
use mkplan_engine::secret::Pin;
use mkplan_plan::model::Pkcs11KeyRef;

/// Through the token's PKCS#11 module, with `cryptoki`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pkcs11Signer;

fn key_ref(key: &Pkcs11KeyRef) -> KeyRef {
    match key {
        Pkcs11KeyRef::Label(label) => KeyRef::Label(label.clone()),
        Pkcs11KeyRef::Id(id) => KeyRef::Id(id.clone()),
    }
}

impl TokenKeys for Pkcs11Signer {
    fn public_key_pem(
        &self,
        module: &Path,
        slot: u64,
        key: &Pkcs11KeyRef,
        pin: &Pin,
    ) -> Result<String, KeyError> {
        Ok(pkcs11::public_key_pem(module, slot, key_ref(key), pin)?)
    }

    fn sign_ecdsa_p256(
        &self,
        module: &Path,
        slot: u64,
        key: &Pkcs11KeyRef,
        pin: &Pin,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        Ok(pkcs11::sign_ecdsa_p256(
            module,
            slot,
            key_ref(key),
            pin,
            digest,
        )?)
    }
}

//! Public keys and the signatures they verify: ECDSA P-256 over SHA-256 (DER
//! `ECDSA-Sig-Value`, as `openssl dgst -sha256 -verify` checks it) and Ed25519 (raw 64 bytes
//! over the message, as `openssl pkeyutl -verify -rawin` checks it), and the DSSE
//! pre-authentication encoding they sign.
//!
//! A leaf crate without I/O: the plan checks its approvers' keys with it, the report and the
//! approvals verify with it.

use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};

/// Text that is not a public key mkplan verifies with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a PEM ECDSA P-256 or Ed25519 public key (`-----BEGIN PUBLIC KEY-----`)")]
pub struct NotAPublicKey;

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("it is not a DER ECDSA signature")]
    NotDer,
    #[error("the ECDSA P-256 signature does not match")]
    EcdsaMismatch,
    #[error("an Ed25519 signature has 64 bytes, this one {0}")]
    Ed25519Length(usize),
    #[error("the Ed25519 signature does not match")]
    Ed25519Mismatch,
}

/// A signature algorithm mkplan signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EcdsaP256,
    Ed25519,
}

impl Algorithm {
    /// The name recorded in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256 => "ecdsa-p256-sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The name people read.
    pub fn describe(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256 => "ECDSA P-256 / SHA-256",
            Algorithm::Ed25519 => "Ed25519",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ecdsa-p256-sha256" => Some(Algorithm::EcdsaP256),
            "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

/// A public key that verifies signatures.
#[derive(Debug, Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`): P-256 or Ed25519.
    pub fn from_pem(text: &str) -> Result<Self, NotAPublicKey> {
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(text) {
            return Ok(PublicKey::P256(key));
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(text) {
            return Ok(PublicKey::Ed25519(key));
        }
        Err(NotAPublicKey)
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::P256(_) => Algorithm::EcdsaP256,
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    fn spki_der(&self) -> Vec<u8> {
        let der = match self {
            PublicKey::P256(key) => key.to_public_key_der(),
            PublicKey::Ed25519(key) => key.to_public_key_der(),
        };
        der.expect("valid public keys encode").into_vec()
    }

    pub fn to_pem(&self) -> String {
        let pem = match self {
            PublicKey::P256(key) => key.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(key) => key.to_public_key_pem(LineEnding::LF),
        };
        pem.expect("valid public keys encode")
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex: the DSSE `keyid`, which
    /// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum` reproduces.
    pub fn key_id(&self) -> String {
        hex::encode(Sha256::digest(self.spki_der()))
    }

    /// Checks `signature` over `message` (ECDSA: DER over SHA-256 of it; Ed25519: raw).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match self {
            PublicKey::P256(key) => {
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::NotDer)?;
                key.verify(message, &signature)
                    .map_err(|_| SignatureError::EcdsaMismatch)
            }
            PublicKey::Ed25519(key) => {
                let bytes: [u8; 64] = signature
                    .try_into()
                    .map_err(|_| SignatureError::Ed25519Length(signature.len()))?;
                key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .map_err(|_| SignatureError::Ed25519Mismatch)
            }
        }
    }
}

/// The first 16 hex digits of a key id and an ellipsis, where the full id is printed too.
pub fn short_id(key_id: &str) -> String {
    match key_id.get(..16) {
        Some(head) if key_id.len() > 16 => format!("{head}…"),
        _ => key_id.to_owned(),
    }
}

/// The bytes a DSSE signature covers (pre-authentication encoding, DSSE v1):
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths as decimal byte counts.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_counts_bytes_not_characters() {
        assert_eq!(pae("t", b"\xc3\xa9"), b"DSSEv1 1 t 2 \xc3\xa9".to_vec());
        // The DSSE specification's test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn short_ids_keep_sixteen_digits() {
        assert_eq!(short_id(&"ab".repeat(32)), format!("{}…", "ab".repeat(8)));
        assert_eq!(short_id("abc"), "abc");
        assert!(PublicKey::from_pem("hello").is_err());
    }
}

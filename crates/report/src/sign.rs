//! Signing the exact bytes of the report: with a PEM PKCS#8 key file (ECDSA P-256 by
//! default, Ed25519 accepted), with an ECDSA P-256 key on a PKCS#11 token, or, when the plan
//! names no key, with an ephemeral P-256 key whose public half is written beside the report.
//!
//! Signature formats are the ones standard tools check: ECDSA P-256 over SHA-256 as a DER
//! `ECDSA-Sig-Value` (`openssl dgst -sha256 -verify`), Ed25519 as the raw 64 bytes over the
//! message itself (`openssl pkeyutl -verify -rawin`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::Generate;
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};

use crate::model::SigningFacts;
use mkplan_engine::ports::keys::{KeyError, TokenKeys};
use mkplan_engine::ports::operator::Operator;
use mkplan_engine::ports::pins::{PinError, PinReader};
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::secret::Pin;
use mkplan_engine::trust::TrustError;
use mkplan_plan::model::{Pkcs11KeyRef, Plan, SignKey, StepKind};

/// Why a report-signing key cannot be made, read or used. Each names the key as the plan
/// does, never a PIN.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no randomness for a new key: {0}")]
    NoRandomness(String),
    #[error("cannot encode the key: {0}")]
    Encode(String),
    #[error(
        "the report-signing key is in slot {slot}, which is token `{token}` that this plan migrates (rule 5); sign with a key on another token or a key file"
    )]
    KeyInMigratedSlot { slot: u16, token: String },
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("the report-signing key: {0}")]
    TokenKey(#[source] KeyError),
    #[error(transparent)]
    PublicKey(#[from] NotAPublicKey),
    #[error("signing on the token failed: {0}")]
    TokenSign(#[source] KeyError),
    #[error("cannot read the report-signing key `{}`: {source}", file.display())]
    KeyFileUnreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error("the report-signing key `{}`: {reason}", file.display())]
    KeyFile {
        file: PathBuf,
        #[source]
        reason: KeyFormatError,
    },
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A private key mkplan cannot take, and how to make one it can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error(
        "it is an encrypted PKCS#8 key; mkplan needs it unencrypted (protected by its file mode): `openssl pkcs8 -in KEY -out NEW.pem` then `chmod 600 NEW.pem`"
    )]
    Encrypted,
    #[error(
        "it is a SEC1 `EC PRIVATE KEY`; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY -out NEW.pem`"
    )]
    Sec1,
    #[error(
        "it is not a PEM PKCS#8 ECDSA P-256 or Ed25519 private key (`-----BEGIN PRIVATE KEY-----`; `mkplan keygen` makes one)"
    )]
    Unknown,
}

pub use mkplan_sig::{Algorithm, NotAPublicKey, PublicKey, SignatureError};

/// A private key in memory.
pub enum SoftKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl SoftKey {
    /// A new random key of `algorithm`, from the operating system's random source.
    pub fn generate(algorithm: Algorithm) -> Result<Self, SignError> {
        let no_randomness = |e: &dyn std::fmt::Display| SignError::NoRandomness(e.to_string());
        match algorithm {
            Algorithm::EcdsaP256 => p256::ecdsa::SigningKey::try_generate()
                .map(SoftKey::P256)
                .map_err(|e| no_randomness(&e)),
            Algorithm::Ed25519 => <[u8; 32]>::try_generate()
                .map(|seed| SoftKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)))
                .map_err(|e| no_randomness(&e)),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SoftKey::P256(_) => Algorithm::EcdsaP256,
            SoftKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). An Ed25519 key is written as PKCS#8 v1
    /// (RFC 8410, without the public key): OpenSSL 3.0 cannot read the v2 form, and an
    /// approver signs with openssl offline (README).
    pub fn private_pem(&self) -> Result<String, SignError> {
        let pem = match self {
            SoftKey::P256(key) => key.to_pkcs8_pem(LineEnding::LF),
            SoftKey::Ed25519(key) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
        };
        pem.map(|p| p.as_str().to_owned())
            .map_err(|e| SignError::Encode(e.to_string()))
    }

    pub fn public(&self) -> PublicKey {
        match self {
            SoftKey::P256(key) => PublicKey::P256(*key.verifying_key()),
            SoftKey::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SoftKey::P256(key) => {
                // RFC 6979: deterministic, so the same bytes give the same signature.
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            SoftKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

/// Reads a PEM PKCS#8 private key: P-256 or Ed25519.
pub fn parse_private_pem(text: &str) -> Result<SoftKey, KeyFormatError> {
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(KeyFormatError::Encrypted);
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return Err(KeyFormatError::Sec1);
    }
    if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_pem(text) {
        return Ok(SoftKey::P256(key));
    }
    if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(text) {
        return Ok(SoftKey::Ed25519(key));
    }
    Err(KeyFormatError::Unknown)
}

/// The key that signs this report, ready to use.
pub struct ReportSigner {
    key: KeySource,
    public: PublicKey,
    facts: SigningFacts,
}

enum KeySource {
    Soft(SoftKey),
    Pkcs11 {
        module: PathBuf,
        slot: u64,
        key: Pkcs11KeyRef,
        pin: Pin,
        keys: Arc<dyn TokenKeys>,
    },
}

/// What signing a report needs of the host: key files and modules are found under `root`,
/// a token's PIN comes from `pins` (asking `operator` if it is to be typed), and a key on a
/// token signs through `keys`.
pub struct SigningPorts<'a> {
    pub root: &'a HostRoot,
    pub pins: &'a dyn PinReader,
    pub keys: Arc<dyn TokenKeys>,
    pub operator: &'a dyn Operator,
}

/// `label `x`` or `id `0a0b``, as messages and the report name a key on a token.
fn shown_key(key: &Pkcs11KeyRef) -> String {
    match key {
        Pkcs11KeyRef::Label(label) => format!("label `{label}`"),
        Pkcs11KeyRef::Id(id) => format!("id `{}`", hex::encode(id)),
    }
}

impl ReportSigner {
    /// The signer the plan's `report.sign` names (host paths under the root), or an
    /// ephemeral P-256 key. Every problem is found here, before anything is written.
    pub fn for_plan(plan: &Plan, ports: &SigningPorts<'_>) -> Result<Self, SignError> {
        match &plan.report.sign {
            None => {
                let key = SoftKey::generate(Algorithm::EcdsaP256)?;
                Ok(Self::soft(key, "ephemeral", None))
            }
            Some(key) => {
                // Rule 5, re-checked here: validation guarantees it, but a signing key in a
                // migrated domain would make the evidence depend on the change it records.
                if let SignKey::Pkcs11 { slot, .. } = key
                    && let Some(token) = migrated_slot(plan, slot.get())
                {
                    return Err(SignError::KeyInMigratedSlot {
                        slot: slot.get(),
                        token,
                    });
                }
                Self::for_key(key, ports, "report-signing token")
            }
        }
    }

    /// The signer of `key` (host paths under the root): a key file nobody else can read or
    /// change, or a key on a token whose PIN comes from `key`'s PIN source (`what` names the
    /// token in a PIN prompt).
    pub fn for_key(key: &SignKey, ports: &SigningPorts<'_>, what: &str) -> Result<Self, SignError> {
        let root = ports.root;
        match key {
            SignKey::File(path) => {
                let key = read_key_file(&root.path(path), path)?;
                Ok(Self::soft(
                    key,
                    "key_file",
                    Some(path.display().to_string()),
                ))
            }
            SignKey::Pkcs11 {
                module,
                slot,
                key,
                pin,
            } => {
                let shown = format!("{} slot {slot} {}", module.display(), shown_key(key));
                let module = root.path(module);
                let pin = ports.pins.read(pin, ports.operator, what)?;
                let slot = u64::from(slot.get());
                let pem = ports
                    .keys
                    .public_key_pem(&module, slot, key, &pin)
                    .map_err(SignError::TokenKey)?;
                let public = PublicKey::from_pem(&pem)?;
                Ok(Self {
                    key: KeySource::Pkcs11 {
                        module,
                        slot,
                        key: key.clone(),
                        pin,
                        keys: Arc::clone(&ports.keys),
                    },
                    facts: SigningFacts {
                        method: "pkcs11".to_owned(),
                        key: Some(shown.replace('`', "")),
                        algorithm: public.algorithm().as_str().to_owned(),
                    },
                    public,
                })
            }
        }
    }

    fn soft(key: SoftKey, method: &str, shown: Option<String>) -> Self {
        Self {
            public: key.public(),
            facts: SigningFacts {
                method: method.to_owned(),
                key: shown,
                algorithm: key.algorithm().as_str().to_owned(),
            },
            key: KeySource::Soft(key),
        }
    }

    pub fn facts(&self) -> &SigningFacts {
        &self.facts
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn is_ephemeral(&self) -> bool {
        self.facts.method == "ephemeral"
    }

    /// Signs `message`: DER ECDSA over SHA-256 of it, or raw Ed25519.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            KeySource::Soft(key) => Ok(key.sign(message)),
            KeySource::Pkcs11 {
                module,
                slot,
                key,
                pin,
                keys,
            } => {
                let digest: [u8; 32] = Sha256::digest(message).into();
                keys.sign_ecdsa_p256(module, *slot, key, pin, &digest)
                    .map_err(SignError::TokenSign)
            }
        }
    }
}

/// The token (by name) of `slot` if the plan migrates it.
fn migrated_slot(plan: &Plan, slot: u16) -> Option<String> {
    plan.all_steps().find_map(|step| match &step.kind {
        StepKind::Migrate(m) => plan
            .tokens
            .get(&m.token)
            .filter(|t| t.slot.get() == slot)
            .map(|t| t.id.to_string()),
        _ => None,
    })
}

/// Reads a key file that nobody but its owner can read, and that nobody but root or the
/// operator can change ([`mkplan_engine::trust`]). `shown` is the path as the plan names it (the
/// file itself may sit under a host root, which refusals name: that is what to chmod).
pub fn read_key_file(path: &Path, shown: &Path) -> Result<SoftKey, SignError> {
    let unreadable = |source| SignError::KeyFileUnreadable {
        file: shown.to_owned(),
        source,
    };
    // A key that is not there is said as the plan names it; who may write it, only then.
    std::fs::metadata(path).map_err(unreadable)?;
    mkplan_engine::trust::check(path, mkplan_engine::trust::Trusted::SigningKey)?;
    let text =
        mkplan_plan::input::read_to_string(path, mkplan_plan::input::KEY).map_err(unreadable)?;
    parse_private_pem(&text).map_err(|reason| SignError::KeyFile {
        file: shown.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn both_algorithms_round_trip_through_pem_and_verify() {
        for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let key = SoftKey::generate(algorithm).unwrap();
            let again = parse_private_pem(&key.private_pem().unwrap()).unwrap();
            assert_eq!(again.algorithm(), algorithm);
            let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
            assert_eq!(public.key_id(), key.public().key_id());
            let signature = again.sign(b"report");
            public.verify(b"report", &signature).unwrap();
            assert!(public.verify(b"reporT", &signature).is_err());
        }
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = SoftKey::generate(Algorithm::EcdsaP256).unwrap();
        std::fs::write(&path, key.private_pem().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = read_key_file(&path, Path::new("/etc/k.pem"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("0640") && error.contains(&format!("chmod 600 {}", path.display())),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key_file(&path, Path::new("/etc/k.pem")).is_ok());
    }

    #[test]
    fn other_key_formats_are_named() {
        let error = parse_private_pem("-----BEGIN EC PRIVATE KEY-----\n")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("openssl pkcs8 -topk8"), "{error}");
        assert!(parse_private_pem("hello").is_err());
        assert!(PublicKey::from_pem("hello").is_err());
    }
}

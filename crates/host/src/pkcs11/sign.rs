//! ECDSA P-256 with a key on a token, for report signing (`report.sign.pkcs11`): `CKM_ECDSA`
//! over a SHA-256 digest, the raw `r‖s` turned into a DER `ECDSA-Sig-Value` that
//! `openssl dgst -sha256 -verify` accepts, and the public key as SubjectPublicKeyInfo PEM.

use std::fmt;
use std::path::Path;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use p256::pkcs8::{EncodePublicKey, LineEnding};

use super::error::{Pkcs11Error, Target};
use super::with_user_session;
use mkplan_engine::secret::Pin;

/// DER of the OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1), as `CKA_EC_PARAMS` holds it.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// How a key is named on the token: by `CKA_LABEL` or by `CKA_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Label(String),
    Id(Vec<u8>),
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Label(label) => write!(f, "label `{label}`"),
            KeyRef::Id(id) => write!(f, "id `{}`", hex::encode(id)),
        }
    }
}

impl KeyRef {
    fn attribute(&self) -> Attribute {
        match self {
            KeyRef::Label(label) => Attribute::Label(label.as_bytes().to_vec()),
            KeyRef::Id(id) => Attribute::Id(id.clone()),
        }
    }
}

/// Signs `digest` (a SHA-256 digest) with the EC P-256 private key `key`; returns the DER
/// `ECDSA-Sig-Value`. Finalizes the module on every path.
pub fn sign_ecdsa_p256(
    module: &Path,
    slot: u64,
    key: KeyRef,
    pin: &Pin,
    digest: &[u8; 32],
) -> Result<Vec<u8>, Pkcs11Error> {
    with_user_session(module, slot, pin, |session, target| {
        let handle = find_ec_key(session, target, &key, ObjectClass::PRIVATE_KEY)?;
        require_p256(session, target, &key, handle)?;
        let raw = session
            .sign(&Mechanism::Ecdsa, handle, digest)
            .map_err(|e| target.call("sign", e))?;
        der_signature(&raw).map_err(|reason| not_p256(target, &key, reason))
    })
}

/// The public half of `key` (its `CKO_PUBLIC_KEY` object with the same label or id) as a
/// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_pem(
    module: &Path,
    slot: u64,
    key: KeyRef,
    pin: &Pin,
) -> Result<String, Pkcs11Error> {
    with_user_session(module, slot, pin, |session, target| {
        let handle = find_ec_key(session, target, &key, ObjectClass::PUBLIC_KEY)?;
        require_p256(session, target, &key, handle)?;
        let point = match session.get_attributes(handle, &[AttributeType::EcPoint]) {
            Ok(mut values) => match values.pop() {
                Some(Attribute::EcPoint(point)) => point,
                _ => {
                    return Err(not_p256(target, &key, "the token shows no CKA_EC_POINT"));
                }
            },
            Err(e) => return Err(target.call("read attributes", e)),
        };
        spki_pem(&point).map_err(|reason| not_p256(target, &key, reason))
    })
}

fn find_ec_key(
    session: &Session,
    target: Target<'_>,
    key: &KeyRef,
    class: ObjectClass,
) -> Result<ObjectHandle, Pkcs11Error> {
    let what = if class == ObjectClass::PRIVATE_KEY {
        "EC private key"
    } else {
        "EC public key"
    };
    let template = [
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC),
        key.attribute(),
    ];
    let mut handles = session
        .find_objects(&template)
        .map_err(|e| target.call("find objects", e))?;
    match handles.len() {
        1 => Ok(handles.remove(0)),
        0 => Err(Pkcs11Error::KeyNotFound {
            module: target.module_name(),
            slot: target.slot,
            what,
            key: key.to_string(),
        }),
        count => Err(Pkcs11Error::KeyAmbiguous {
            module: target.module_name(),
            slot: target.slot,
            what,
            key: key.to_string(),
            count,
        }),
    }
}

fn require_p256(
    session: &Session,
    target: Target<'_>,
    key: &KeyRef,
    handle: ObjectHandle,
) -> Result<(), Pkcs11Error> {
    let params = session
        .get_attributes(handle, &[AttributeType::EcParams])
        .map_err(|e| target.call("read attributes", e))?;
    match params.first() {
        Some(Attribute::EcParams(params)) if params == P256_PARAMS => Ok(()),
        Some(Attribute::EcParams(params)) => Err(not_p256(
            target,
            key,
            format!(
                "CKA_EC_PARAMS is {}, not the prime256v1 OID",
                hex::encode(params)
            ),
        )),
        _ => Err(not_p256(target, key, "the token shows no CKA_EC_PARAMS")),
    }
}

fn not_p256(target: Target<'_>, key: &KeyRef, reason: impl fmt::Display) -> Pkcs11Error {
    Pkcs11Error::NotP256 {
        module: target.module_name(),
        slot: target.slot,
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// What the token gave that is not a P-256 signature or public key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShapeError {
    #[error("CKM_ECDSA returned {0} bytes, not 64 (r‖s)")]
    SignatureLength(usize),
    #[error("CKM_ECDSA returned r or s out of range")]
    SignatureRange,
    #[error("CKA_EC_POINT {} is not a P-256 point", hex::encode(.0))]
    NotAPoint(Vec<u8>),
    #[error("cannot encode the public key: {0}")]
    Encode(p256::pkcs8::spki::Error),
}

/// PKCS#11 `CKM_ECDSA` gives `r‖s`, 32 bytes each for P-256; X.509 and OpenSSL want
/// `SEQUENCE { INTEGER r, INTEGER s }`.
pub(crate) fn der_signature(raw: &[u8]) -> Result<Vec<u8>, ShapeError> {
    if raw.len() != 64 {
        return Err(ShapeError::SignatureLength(raw.len()));
    }
    let signature =
        p256::ecdsa::Signature::from_slice(raw).map_err(|_| ShapeError::SignatureRange)?;
    Ok(signature.to_der().as_bytes().to_vec())
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the SEC1 point (PKCS#11 2.40, SoftHSM,
/// openCryptoki); some tokens give the bare point. Both are accepted.
pub(crate) fn spki_pem(ec_point: &[u8]) -> Result<String, ShapeError> {
    let point = match ec_point {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() < 0x80 => rest,
        bare => bare,
    };
    let public = p256::PublicKey::from_sec1_bytes(point)
        .map_err(|_| ShapeError::NotAPoint(ec_point.to_vec()))?;
    public
        .to_public_key_pem(LineEnding::LF)
        .map_err(ShapeError::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    use p256::pkcs8::DecodePublicKey;
    use sha2::{Digest, Sha256};

    fn key() -> SigningKey {
        SigningKey::from_slice(&Sha256::digest(b"mkplan test key")).unwrap()
    }

    #[test]
    fn raw_signatures_become_der_that_verifies() {
        let key = key();
        let digest = Sha256::digest(b"report.json");
        let signature: Signature = key.sign_prehash(&digest).unwrap();
        let der = der_signature(&signature.to_bytes()).unwrap();
        assert_eq!(der[0], 0x30, "a DER SEQUENCE");
        let parsed = Signature::from_der(&der).unwrap();
        key.verifying_key()
            .verify_prehash(&digest, &parsed)
            .unwrap();
    }

    #[test]
    fn raw_signatures_of_the_wrong_length_are_refused() {
        assert!(
            der_signature(&[1; 63])
                .unwrap_err()
                .to_string()
                .contains("63 bytes")
        );
        assert!(
            der_signature(&[0; 64]).is_err(),
            "r = s = 0 is no signature"
        );
    }

    #[test]
    fn ec_points_wrapped_or_bare_give_the_same_pem() {
        let verifying = VerifyingKey::from(&key());
        let bare = verifying.to_sec1_point(false).as_bytes().to_vec();
        let mut wrapped = vec![0x04, bare.len() as u8];
        wrapped.extend_from_slice(&bare);
        let pem = spki_pem(&wrapped).unwrap();
        assert_eq!(pem, spki_pem(&bare).unwrap());
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(VerifyingKey::from_public_key_pem(&pem).unwrap(), verifying);
        assert!(spki_pem(&[0x04, 0x02, 0x01, 0x02]).is_err());
    }

    #[test]
    fn key_refs_print_label_or_hex_id() {
        assert_eq!(KeyRef::Label("sig".into()).to_string(), "label `sig`");
        assert_eq!(KeyRef::Id(vec![0x0a, 0xff]).to_string(), "id `0aff`");
    }
}

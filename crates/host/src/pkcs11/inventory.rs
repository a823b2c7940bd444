//! The key inventory of a token, and proof that each key still works (`probe_keys`): every
//! object listed by class, key type, label, `CKA_ID` and vendor blob fingerprint; secret AES
//! (and DES3) keys encrypt one block, EC and RSA private keys sign.

use std::path::Path;

use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use sha2::{Digest, Sha256};

use super::error::{Pkcs11Error, Target, ckr_name};
use super::with_user_session;
use mkplan_engine::ports::keys::ObjectSink;
use mkplan_engine::record::probe::{ObjectInfo, Usability};
use mkplan_engine::secret::Pin;

/// `CKA_IBM_OPAQUE`: the secure-key blob of an openCryptoki EP11 or CCA token, enciphered
/// under the adapter's master key (`reference/dependencies.md`, vendor attributes).
pub(crate) const CKA_IBM_OPAQUE: AttributeType = AttributeType::VendorDefined(0x8000_0001);

/// What the probe exercises: the SHA-256 of this text (ECDSA signs a digest) or the text
/// itself (RSA hashes it), and one zero block for ciphers.
const PROBE_MESSAGE: &[u8] = b"mkplan probe_keys";

/// DER of `DigestInfo { sha256, NULL }` up to the digest (RFC 8017, section 9.2, note 1).
const SHA256_DIGEST_INFO_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Lists every object on `slot` of `module` after a USER login, and proves each private or
/// secret key usable, giving each object to `out` as it is described. Finalizes the module
/// on every path. Returns the module's name.
pub fn probe(
    module: &Path,
    slot: u64,
    pin: &Pin,
    out: &mut ObjectSink<'_>,
) -> Result<String, Pkcs11Error> {
    with_user_session(module, slot, pin, |session, target| {
        // The handles (8 bytes each) are all the memory a probe keeps per object.
        let handles = session
            .find_objects(&[])
            .map_err(|e| target.call("find objects", e))?;
        for handle in handles {
            out(describe(session, target, handle)?)?;
        }
        Ok(target.module_name())
    })
}

fn describe(
    session: &Session,
    target: Target<'_>,
    handle: ObjectHandle,
) -> Result<ObjectInfo, Pkcs11Error> {
    let read = |types: &[AttributeType]| {
        session
            .get_attributes(handle, types)
            .map_err(|e| target.call("read attributes", e))
    };
    let mut label = String::new();
    let mut id = String::new();
    let mut token = false;
    for attribute in read(&[
        AttributeType::Label,
        AttributeType::Id,
        AttributeType::Token,
    ])? {
        match attribute {
            Attribute::Label(bytes) => label = String::from_utf8_lossy(&bytes).into_owned(),
            Attribute::Id(bytes) => id = hex::encode(bytes),
            Attribute::Token(value) => token = value,
            _ => {}
        }
    }
    // Class and key type alone: cryptoki fails the whole read on a value it cannot name.
    let class = read_one(session, target, handle, AttributeType::Class)?.and_then(|a| match a {
        Attribute::Class(class) => Some(class),
        _ => None,
    });
    let is_key = matches!(
        class,
        Some(ObjectClass::SECRET_KEY | ObjectClass::PRIVATE_KEY | ObjectClass::PUBLIC_KEY)
    );
    let key_type = if is_key {
        read_one(session, target, handle, AttributeType::KeyType)?.and_then(|a| match a {
            Attribute::KeyType(key_type) => Some(key_type),
            _ => None,
        })
    } else {
        None
    };
    let blob = read_blob(session, target, handle)?;
    let usable = match class {
        Some(class) => exercise(session, target, handle, class, key_type),
        None => Usability::NotExercised("an object class cryptoki cannot name".to_owned()),
    };
    Ok(ObjectInfo {
        class: class.map_or_else(|| "unknown".to_owned(), |class| class.to_string()),
        key_type: is_key.then(|| key_type.map_or_else(|| "unknown".to_owned(), |t| t.to_string())),
        label,
        id,
        token,
        blob_len: blob.as_ref().map(|bytes| bytes.len() as u64),
        blob_sha256: blob.map(|bytes| hex::encode(Sha256::digest(&bytes))),
        usable,
    })
}

/// One attribute; `None` when the token does not show it or cryptoki cannot name its value.
fn read_one(
    session: &Session,
    target: Target<'_>,
    handle: ObjectHandle,
    attribute: AttributeType,
) -> Result<Option<Attribute>, Pkcs11Error> {
    match session.get_attributes(handle, &[attribute]) {
        Ok(mut values) => Ok(values.pop()),
        Err(CryptokiError::NotSupported) => Ok(None),
        Err(e) => Err(target.call("read attributes", e)),
    }
}

/// `CKA_IBM_OPAQUE`, sized first: `get_attributes` would drop it silently if unreadable.
fn read_blob(
    session: &Session,
    target: Target<'_>,
    handle: ObjectHandle,
) -> Result<Option<Vec<u8>>, Pkcs11Error> {
    let info = session
        .get_attribute_info(handle, &[CKA_IBM_OPAQUE])
        .map_err(|e| target.call("read attribute info", e))?;
    if !matches!(info.first(), Some(AttributeInfo::Available(_))) {
        return Ok(None);
    }
    Ok(
        read_one(session, target, handle, CKA_IBM_OPAQUE)?.and_then(|a| match a {
            Attribute::VendorDefined((_, bytes)) => Some(bytes),
            _ => None,
        }),
    )
}

/// Uses the key once, as its kind allows; never fails the probe, only marks the key.
fn exercise(
    session: &Session,
    target: Target<'_>,
    handle: ObjectHandle,
    class: ObjectClass,
    key_type: Option<KeyType>,
) -> Usability {
    let not_exercised = |why: &str| Usability::NotExercised(why.to_owned());
    match (class, key_type) {
        (ObjectClass::SECRET_KEY, Some(KeyType::AES)) => {
            if flag(session, target, handle, AttributeType::Encrypt) == Some(false) {
                return not_exercised("not exercised: CKA_ENCRYPT false");
            }
            encrypt_block(
                session,
                handle,
                &[Mechanism::AesEcb, Mechanism::AesCbc([0; 16])],
                16,
            )
        }
        (ObjectClass::SECRET_KEY, Some(KeyType::DES3 | KeyType::DES2)) => {
            if flag(session, target, handle, AttributeType::Encrypt) == Some(false) {
                return not_exercised("not exercised: CKA_ENCRYPT false");
            }
            encrypt_block(
                session,
                handle,
                &[Mechanism::Des3Ecb, Mechanism::Des3Cbc([0; 8])],
                8,
            )
        }
        (ObjectClass::PRIVATE_KEY, Some(KeyType::EC)) => {
            if flag(session, target, handle, AttributeType::Sign) == Some(false) {
                return not_exercised("not exercised: CKA_SIGN false");
            }
            let digest = Sha256::digest(PROBE_MESSAGE);
            sign(session, handle, &[(Mechanism::Ecdsa, digest.as_slice())])
        }
        (ObjectClass::PRIVATE_KEY, Some(KeyType::RSA)) => {
            if flag(session, target, handle, AttributeType::Sign) == Some(false) {
                return not_exercised("not exercised: CKA_SIGN false");
            }
            // openCryptoki 3.8.1's soft token has no CKM_SHA256_RSA_PKCS: the same signature
            // is CKM_RSA_PKCS over the DigestInfo of the SHA-256 digest.
            let mut digest_info = SHA256_DIGEST_INFO_PREFIX.to_vec();
            digest_info.extend_from_slice(&Sha256::digest(PROBE_MESSAGE));
            sign(
                session,
                handle,
                &[
                    (Mechanism::Sha256RsaPkcs, PROBE_MESSAGE),
                    (Mechanism::RsaPkcs, digest_info.as_slice()),
                ],
            )
        }
        (ObjectClass::SECRET_KEY | ObjectClass::PRIVATE_KEY, key_type) => {
            let name = key_type.map_or_else(|| "unknown".to_owned(), |t| t.to_string());
            Usability::NotExercised(format!("no probe for {class} of type {name}"))
        }
        (ObjectClass::PUBLIC_KEY, _) => not_exercised("public key: listed, not exercised"),
        (ObjectClass::CERTIFICATE, _) => not_exercised("certificate: listed, not exercised"),
        (ObjectClass::DATA, _) => not_exercised("data object: listed, not exercised"),
        (other, _) => Usability::NotExercised(format!("{other}: listed, not exercised")),
    }
}

/// A boolean attribute; `None` when the token does not show it.
fn flag(
    session: &Session,
    target: Target<'_>,
    handle: ObjectHandle,
    attribute: AttributeType,
) -> Option<bool> {
    match read_one(session, target, handle, attribute) {
        Ok(Some(Attribute::Encrypt(value) | Attribute::Sign(value))) => Some(value),
        _ => None,
    }
}

/// Encrypts one zero block with the first of `mechanisms` the token supports.
fn encrypt_block(
    session: &Session,
    handle: ObjectHandle,
    mechanisms: &[Mechanism<'_>],
    block: usize,
) -> Usability {
    let plaintext = vec![0u8; block];
    for mechanism in mechanisms {
        match session.encrypt(mechanism, handle, &plaintext) {
            Ok(ciphertext) if ciphertext.len() == block => return Usability::Usable,
            Ok(ciphertext) => {
                return Usability::Unusable(format!(
                    "C_Encrypt returned {} bytes for a {block}-byte block",
                    ciphertext.len()
                ));
            }
            Err(CryptokiError::Pkcs11(RvError::MechanismInvalid, _)) => continue,
            Err(e) => return refused(e),
        }
    }
    let names: Vec<String> = mechanisms
        .iter()
        .map(|m| m.mechanism_type().to_string())
        .collect();
    Usability::NotExercised(format!("the token offers none of {}", names.join(", ")))
}

/// Signs with the first of `attempts` (mechanism, data) whose mechanism the token supports.
fn sign(session: &Session, handle: ObjectHandle, attempts: &[(Mechanism<'_>, &[u8])]) -> Usability {
    for (mechanism, data) in attempts {
        match session.sign(mechanism, handle, data) {
            Ok(signature) if !signature.is_empty() => return Usability::Usable,
            Ok(_) => return Usability::Unusable("C_Sign returned an empty signature".to_owned()),
            Err(CryptokiError::Pkcs11(RvError::MechanismInvalid, _)) => continue,
            Err(e) => return refused(e),
        }
    }
    let names: Vec<String> = attempts
        .iter()
        .map(|(m, _)| m.mechanism_type().to_string())
        .collect();
    Usability::NotExercised(format!("the token offers none of {}", names.join(", ")))
}

fn refused(error: CryptokiError) -> Usability {
    match error {
        CryptokiError::Pkcs11(rv, function) => {
            Usability::Unusable(format!("C_{function:?}: {}", ckr_name(rv)))
        }
        other => Usability::Unusable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usability_serializes_with_state_and_reason() {
        let json = |u: &Usability| serde_json::to_string(u).unwrap();
        assert_eq!(json(&Usability::Usable), r#"{"state":"usable"}"#);
        assert_eq!(
            json(&Usability::Unusable(
                "C_Sign: CKR_KEY_HANDLE_INVALID".into()
            )),
            r#"{"state":"unusable","reason":"C_Sign: CKR_KEY_HANDLE_INVALID"}"#
        );
        assert_eq!(
            json(&Usability::NotExercised(
                "not exercised: CKA_ENCRYPT false".into()
            )),
            r#"{"state":"not_exercised","reason":"not exercised: CKA_ENCRYPT false"}"#
        );
    }

    #[test]
    fn refusals_name_the_call_and_code() {
        let error = CryptokiError::Pkcs11(
            RvError::KeyFunctionNotPermitted,
            cryptoki::context::Function::EncryptInit,
        );
        assert_eq!(
            refused(error),
            Usability::Unusable("C_EncryptInit: CKR_KEY_FUNCTION_NOT_PERMITTED".into())
        );
    }
}

//! A signing key named on the command line (`report cosign --key`): a PEM PKCS#8 key file, or
//! a key on a PKCS#11 token as an RFC 7512 URI, e.g.
//! `pkcs11:slot-id=0;object=alice?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/home/alice/.pin`.
//! The PIN comes from `pin-source` (`file:PATH`, or mkplan's `env:NAME`) or is asked at the
//! terminal; `pin-value` is refused, since a command line is readable by every user.

use std::path::PathBuf;

use mkplan_plan::model::{PinSource, Pkcs11KeyRef, SignKey, Slot};

/// Why a `--key` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyArgError {
    #[error(
        "`pin-value` puts the PIN on the command line, where every user can read it: use `pin-source=file:PATH`, or leave it out to be asked"
    )]
    PinValue,
    #[error("the PKCS#11 URI has no `{0}`")]
    Missing(&'static str),
    #[error("the PKCS#11 URI's `{attribute}` is `{value}`: {why}")]
    Bad {
        attribute: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(
        "the PKCS#11 URI has `{0}`, which mkplan does not take (it takes slot-id, object or id, module-path and pin-source)"
    )]
    Unknown(String),
    #[error("cannot resolve the key file's path: {0}")]
    Path(String),
}

/// `KEY` as a [`SignKey`]: a URI starting with `pkcs11:`, else a file path (made absolute).
pub fn parse(text: &str) -> Result<SignKey, KeyArgError> {
    let Some(uri) = text.strip_prefix("pkcs11:") else {
        let path = std::path::absolute(text).map_err(|e| KeyArgError::Path(e.to_string()))?;
        return Ok(SignKey::File(path));
    };
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let (mut slot, mut key, mut module, mut pin) = (None, None, None, PinSource::Prompt);
    let attributes = path.split(';').chain(query.split('&'));
    for attribute in attributes.filter(|a| !a.is_empty()) {
        let (name, value) = attribute.split_once('=').unwrap_or((attribute, ""));
        let value = decode(value);
        match name {
            "slot-id" => {
                slot = Some(
                    value
                        .parse()
                        .ok()
                        .and_then(Slot::new)
                        .ok_or(KeyArgError::Bad {
                            attribute: "slot-id",
                            value,
                            why: "a slot number 0..1023",
                        })?,
                )
            }
            "object" => key = Some(Pkcs11KeyRef::Label(value)),
            "id" => key = Some(Pkcs11KeyRef::Id(value.into_bytes())),
            "module-path" => module = Some(PathBuf::from(value)),
            "pin-source" => pin = pin_source(value)?,
            "pin-value" => return Err(KeyArgError::PinValue),
            "type" | "token" => {}
            other => return Err(KeyArgError::Unknown(other.to_owned())),
        }
    }
    Ok(SignKey::Pkcs11 {
        module: module.ok_or(KeyArgError::Missing("module-path"))?,
        slot: slot.ok_or(KeyArgError::Missing("slot-id"))?,
        key: key.ok_or(KeyArgError::Missing("object (the key's label) or id"))?,
        pin,
    })
}

fn pin_source(value: String) -> Result<PinSource, KeyArgError> {
    if let Some(path) = value.strip_prefix("file:") {
        // `file:///p` and `file:/p` both name /p.
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.starts_with('/') {
            return Ok(PinSource::File(PathBuf::from(path)));
        }
    }
    if let Some(name) = value.strip_prefix("env:")
        && !name.is_empty()
    {
        return Ok(PinSource::Env(name.to_owned()));
    }
    // Not echoed: whoever gets this wrong may have typed the PIN itself.
    Err(KeyArgError::Bad {
        attribute: "pin-source",
        value: "(not shown)".to_owned(),
        why: "give `file:/absolute/path` (or `env:NAME`)",
    })
}

/// Percent-decoding (RFC 3986); a malformed escape is kept as written.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An approver's signer for `--key KEY` (a PEM file or a PKCS#11 URI), on the approver's own
/// machine: paths and PIN sources are not under the `--root` of a host.
pub fn approver_signer(
    key: &SignKey,
    operator: &dyn mkplan_engine::ports::operator::Operator,
) -> Result<mkplan_report::sign::ReportSigner, crate::error::CliError> {
    let root = mkplan_engine::ports::root::HostRoot::new("/");
    let ports = mkplan_report::sign::SigningPorts {
        root: &root,
        pins: &mkplan_host::pin::PinSources::new(root.clone()),
        keys: std::sync::Arc::new(mkplan_host::signing::Pkcs11Signer),
        operator,
    };
    mkplan_report::sign::ReportSigner::for_key(key, &ports, "approver's signing token")
        .map_err(|e| crate::error::CliError::Precondition(format!("--key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_names_module_slot_key_and_pin_file() {
        let key = parse("pkcs11:slot-id=3;object=al%20ice?module-path=/usr/lib/m.so&pin-source=file:/home/a/.pin").unwrap();
        let SignKey::Pkcs11 {
            module,
            slot,
            key,
            pin,
        } = key
        else {
            panic!()
        };
        assert_eq!((module, slot.get()), (PathBuf::from("/usr/lib/m.so"), 3));
        assert!(matches!(key, Pkcs11KeyRef::Label(l) if l == "al ice"));
        assert_eq!(pin, PinSource::File("/home/a/.pin".into()));
        let SignKey::Pkcs11 { key, pin, .. } =
            parse("pkcs11:slot-id=0;id=%01?module-path=/m").unwrap()
        else {
            panic!()
        };
        assert!(matches!(key, Pkcs11KeyRef::Id(id) if id == [1]));
        assert_eq!(pin, PinSource::Prompt);
    }

    #[test]
    fn a_pin_on_the_command_line_is_refused() {
        assert_eq!(
            parse("pkcs11:slot-id=0;object=a?module-path=/m&pin-value=1234").unwrap_err(),
            KeyArgError::PinValue
        );
        assert!(parse("pkcs11:object=a?module-path=/m").is_err());
        let error = parse("pkcs11:slot-id=0;object=a?module-path=/m&pin-source=98765")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("98765"), "{error}");
        assert!(matches!(parse("k.pem").unwrap(), SignKey::File(p) if p.is_absolute()));
    }
}

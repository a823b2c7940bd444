//! A simulated CCA token: its store (the `ccatok` layout of `sim::store`: `NVTOK.DAT`,
//! `MK_SO`, `MK_USER`, `TOK_OBJ/`), its key objects, each secret or private key sealed under
//! the register of its MK type (opencryptoki-ep11.md 5), and `ccatok.conf` with
//! `EXPECTED_MKVPS`.
//!
//! CCA public keys are clear key tokens, tied to no master key: their objects carry no blob
//! (`pkcscca` never touches them). The reference does not give `ccatok.conf`'s syntax; the
//! simulator writes and reads this form (openCryptoki's sample file, as remembered, not
//! checked against its source):
//!
//! ```text
//! version cca-0
//! EXPECTED_MKVPS {
//!     SYM = "0x0123456789abcdef"
//!     AES = "0x…"
//! }
//! ```

use std::collections::BTreeMap;

use crate::SimError;
use crate::cca::{MkType, Mkvp};
use crate::crypto::{self, BlobKind};
use crate::store::SimObject;

/// Key kinds per MK type, repeated in this order: (kind, class, key type, label stem,
/// payload bytes, has a public half).
const PATTERN: [(BlobKind, &str, &str, &str, usize, bool); 10] = [
    (
        BlobKind::CcaAes,
        "CKO_SECRET_KEY",
        "CKK_AES",
        "aes",
        64,
        false,
    ),
    (
        BlobKind::CcaEcPrivate,
        "CKO_PRIVATE_KEY",
        "CKK_EC",
        "ec",
        300,
        true,
    ),
    (
        BlobKind::CcaDes3,
        "CKO_SECRET_KEY",
        "CKK_DES3",
        "des3",
        64,
        false,
    ),
    (
        BlobKind::CcaRsaAesc,
        "CKO_PRIVATE_KEY",
        "CKK_RSA",
        "rsa-aesc",
        900,
        true,
    ),
    (
        BlobKind::CcaRsaCrt,
        "CKO_PRIVATE_KEY",
        "CKK_RSA",
        "rsa-crt",
        800,
        true,
    ),
    (
        BlobKind::CcaHmac,
        "CKO_SECRET_KEY",
        "CKK_GENERIC_SECRET",
        "hmac",
        64,
        false,
    ),
    (
        BlobKind::CcaAesXts,
        "CKO_SECRET_KEY",
        "CKK_AES_XTS",
        "aes-xts",
        128,
        false,
    ),
    (
        BlobKind::CcaDes2,
        "CKO_SECRET_KEY",
        "CKK_DES2",
        "des2",
        64,
        false,
    ),
    (
        BlobKind::CcaDilithium,
        "CKO_PRIVATE_KEY",
        "CKK_IBM_PQC_DILITHIUM",
        "dilithium",
        1200,
        true,
    ),
    (
        BlobKind::CcaDes,
        "CKO_SECRET_KEY",
        "CKK_DES",
        "des",
        64,
        false,
    ),
];

fn urandom_error(e: std::io::Error) -> SimError {
    SimError::io(std::path::Path::new("/dev/urandom"), e)
}

fn object(
    class: &str,
    key_type: &str,
    label: String,
    id: &[u8],
    blob: Option<Vec<u8>>,
) -> SimObject {
    SimObject {
        mkplan_sim_object: 1,
        class: class.to_owned(),
        key_type: Some(key_type.to_owned()),
        label,
        id: hex::encode(id),
        private: class != "CKO_PUBLIC_KEY",
        blob: blob.map(hex::encode),
        blob_reenc: None,
        blob_old: None,
    }
}

/// The objects of a new CCA token: `keys` secret or private keys of the MK types in
/// `current` (each sealed under that type's current MK), the public half of each key pair
/// (no blob), a certificate and a data object.
pub(crate) fn new_objects(
    keys: usize,
    current: &BTreeMap<MkType, Mkvp>,
) -> Result<Vec<SimObject>, SimError> {
    let usable: Vec<_> = PATTERN
        .iter()
        .filter(|p| p.0.cca_mk().is_some_and(|mk| current.contains_key(&mk)))
        .collect();
    let mut objects = Vec::new();
    for n in 0..keys {
        let Some(&&(kind, class, key_type, stem, len, public)) =
            usable.get(n % usable.len().max(1))
        else {
            break;
        };
        let mk = kind.cca_mk().expect("a CCA kind");
        let id = crypto::random_bytes(8).map_err(urandom_error)?;
        let mut material = crypto::random_bytes(len).map_err(urandom_error)?;
        let blob = crypto::seal(kind, &current[&mk].identity(mk), &material).map_err(urandom_error);
        zeroize::Zeroize::zeroize(&mut material);
        let label = format!("cca-{stem}-{:04}", n + 1);
        objects.push(object(class, key_type, label.clone(), &id, Some(blob?)));
        if public {
            objects.push(object("CKO_PUBLIC_KEY", key_type, label, &id, None));
        }
    }
    let plain = |class: &str, label: &str, id: &str| SimObject {
        mkplan_sim_object: 1,
        class: class.to_owned(),
        key_type: None,
        label: label.to_owned(),
        id: id.to_owned(),
        private: false,
        blob: None,
        blob_reenc: None,
        blob_old: None,
    };
    objects.insert(
        objects.len().min(2),
        plain("CKO_CERTIFICATE", "cca-cert-0001", "c0de0002"),
    );
    objects.push(plain("CKO_DATA", "cca-config", ""));
    Ok(objects)
}

/// `ccatok.conf` for a token, with `EXPECTED_MKVPS` naming `expected` (none: no block).
pub(crate) fn ccatok_conf(token: &str, expected: &BTreeMap<MkType, Mkvp>) -> String {
    let mut text = format!(
        "# ccatok.conf for token `{token}`, written by mkplan-sim (simulated host)\nversion cca-0\n"
    );
    if !expected.is_empty() {
        text.push_str("\nEXPECTED_MKVPS {\n");
        // The CCA token does not use the ASYM MK: its config has no ASYM pattern.
        for (mk, vp) in expected.iter().filter(|(mk, _)| **mk != MkType::Asym) {
            text.push_str(&format!("    {mk} = \"{vp}\"\n"));
        }
        text.push_str("}\n");
    }
    text
}

/// What the CCA token reads from `ccatok.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CcaConfig {
    pub expected_mkvps: BTreeMap<MkType, Mkvp>,
}

/// Reads `ccatok.conf` (the form above; `#` starts a comment). An unknown keyword or a bad
/// pattern is an error, and then the token does not start, as with `ep11tok.conf`.
pub fn parse_ccatok_conf(text: &str) -> Result<CcaConfig, String> {
    let mut config = CcaConfig::default();
    let mut in_block = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        let at = |why: String| Err(format!("line {}: {why}", n + 1));
        if line.is_empty() {
            continue;
        }
        if in_block {
            if line == "}" {
                in_block = false;
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return at(format!("unexpected `{line}` in EXPECTED_MKVPS"));
            };
            // cca_config_parse_exp_mkvps knows SYM, AES and APKA only.
            let Some(mk) = MkType::parse(key.trim()).filter(|mk| *mk != MkType::Asym) else {
                return at(format!("unexpected token '{}'", key.trim()));
            };
            let value = value.trim().trim_matches('"');
            let vp = Mkvp::parse(value).map_err(|why| format!("line {}: {why}", n + 1))?;
            config.expected_mkvps.insert(mk, vp);
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("version") if words.next().is_some_and(|v| v.starts_with("cca-")) => {}
            Some("EXPECTED_MKVPS") => match words.next() {
                Some("{") => in_block = true,
                _ => return at("`EXPECTED_MKVPS` is followed by `{`".into()),
            },
            Some("EXPECTED_MKVPS{") => in_block = true,
            _ => return at(format!("unexpected token `{line}`")),
        }
    }
    if in_block {
        return Err("EXPECTED_MKVPS is not closed with `}`".into());
    }
    Ok(config)
}

/// `text` with `EXPECTED_MKVPS` naming `new` for each of its MK types (added where missing),
/// comments and everything else kept.
pub fn rewrite_expected_mkvps(text: &str, new: &BTreeMap<MkType, Mkvp>) -> Result<String, String> {
    parse_ccatok_conf(text)?;
    if new.contains_key(&MkType::Asym) {
        return Err("the CCA token has no ASYM pattern in EXPECTED_MKVPS".into());
    }
    let mut out = String::new();
    let mut in_block = false;
    let mut written = std::collections::BTreeSet::new();
    let mut had_block = false;
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or_default().trim();
        if in_block && code == "}" {
            for (mk, vp) in new.iter().filter(|(mk, _)| !written.contains(*mk)) {
                out.push_str(&format!("    {mk} = \"{vp}\"\n"));
            }
            in_block = false;
        } else if in_block
            && let Some(mk) = code
                .split_once('=')
                .and_then(|(k, _)| MkType::parse(k.trim()))
        {
            if let Some(vp) = new.get(&mk) {
                out.push_str(&format!("    {mk} = \"{vp}\"\n"));
                written.insert(mk);
                continue;
            }
        } else if code.starts_with("EXPECTED_MKVPS") {
            in_block = true;
            had_block = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !had_block {
        out.push_str("\nEXPECTED_MKVPS {\n");
        for (mk, vp) in new {
            out.push_str(&format!("    {mk} = \"{vp}\"\n"));
        }
        out.push_str("}\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp(text: &str) -> Mkvp {
        Mkvp::parse(text).unwrap()
    }

    #[test]
    fn keys_follow_the_mk_types_of_the_token() {
        let current = BTreeMap::from([
            (MkType::Aes, vp("0x1111111111111111")),
            (MkType::Apka, vp("0x2222222222222222")),
        ]);
        let objects = new_objects(12, &current).unwrap();
        let sealed: Vec<_> = objects.iter().filter_map(|o| o.blob_bytes()).collect();
        assert_eq!(sealed.len(), 12);
        for blob in &sealed {
            let mk = BlobKind::of(blob).and_then(BlobKind::cca_mk).unwrap();
            assert!(crypto::open(blob, &current[&mk].identity(mk)).is_ok());
            let other = if mk == MkType::Aes {
                MkType::Apka
            } else {
                MkType::Aes
            };
            assert!(crypto::open(blob, &current[&mk].identity(other)).is_err());
        }
        assert!(
            objects
                .iter()
                .any(|o| o.class == "CKO_PUBLIC_KEY" && o.blob.is_none())
        );
        assert!(
            !objects
                .iter()
                .any(|o| o.key_type.as_deref() == Some("CKK_DES3"))
        );
    }

    #[test]
    fn the_config_round_trips_and_rewrites() {
        let old = BTreeMap::from([
            (MkType::Aes, vp("0x1111111111111111")),
            (MkType::Sym, vp("0x3333333333333333")),
        ]);
        let text = ccatok_conf("cca", &old);
        assert_eq!(parse_ccatok_conf(&text).unwrap().expected_mkvps, old);
        let new = BTreeMap::from([
            (MkType::Aes, vp("0x2222222222222222")),
            (MkType::Apka, vp("0x4444444444444444")),
        ]);
        let rewritten = rewrite_expected_mkvps(&text, &new).unwrap();
        let parsed = parse_ccatok_conf(&rewritten).unwrap().expected_mkvps;
        assert_eq!(parsed[&MkType::Aes], new[&MkType::Aes]);
        assert_eq!(parsed[&MkType::Apka], new[&MkType::Apka]);
        assert_eq!(parsed[&MkType::Sym], old[&MkType::Sym]);
        assert!(rewritten.starts_with("# ccatok.conf"));
        let none = ccatok_conf("cca", &BTreeMap::new());
        assert!(parse_ccatok_conf(&none).unwrap().expected_mkvps.is_empty());
        assert!(
            parse_ccatok_conf(&rewrite_expected_mkvps(&none, &new).unwrap())
                .unwrap()
                .expected_mkvps
                == new
        );
        assert!(parse_ccatok_conf("EXPECTED_MKVPS {\n DES = \"0x1111111111111111\"\n}\n").is_err());
        assert!(parse_ccatok_conf("APQN_ANY\n").is_err());
    }
}

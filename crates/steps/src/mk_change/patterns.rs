//! The new patterns one `pkcshsm_mk_change reencipher` names (opencryptoki-ep11.md 2.1):
//! `--ep11-wkvp` once for its EP11 tokens and `--cca-<type>-mkvp` once per MK type its CCA
//! tokens declare. The tool takes one pattern per type, so tokens that want different new
//! keys of one type cannot share an operation: that is an error here, never a choice.
//! The CCA token re-enciphers only keys under the SYM, AES and APKA MKs in a concurrent
//! change (openCryptoki `usr/lib/cca_stdll/cca_mkchange.c` maps DES keys to SYM, AES and
//! HMAC keys to AES, RSA/ECC/QSA keys to APKA, and queries no other type): the tool takes
//! `--cca-asym-mkvp`, but no token acts on it, so keys under the ASYM MK would be left
//! under an MK about to be replaced. A token declaring `asym` is refused.

use std::collections::BTreeMap;

use mkplan_plan::model::{CcaMk, Mkvp, Token, Wkvp};

#[derive(Debug, PartialEq)]
pub(crate) struct NewPatterns {
    pub ep11: Option<Wkvp>,
    pub cca: BTreeMap<CcaMk, Mkvp>,
}

impl NewPatterns {
    pub fn of(tokens: &[&Token]) -> Result<Self, String> {
        let mut ep11: Option<(Wkvp, &Token)> = None;
        let mut cca: BTreeMap<CcaMk, (Mkvp, &Token)> = BTreeMap::new();
        for token in tokens {
            if token.is_cca() {
                if token.mks.contains_key(&CcaMk::Asym) {
                    return Err(format!(
                        "token `{}` declares the ASYM master key: the CCA token re-enciphers no key under the ASYM MK in a concurrent change (only SYM, AES and APKA); change it offline with `migrate` (`pkcscca -k asym`)",
                        token.id
                    ));
                }
                for (mk, pair) in &token.mks {
                    if let Some((other, first)) = cca.get(mk)
                        && *other != pair.new
                    {
                        return Err(format!(
                            "tokens `{}` and `{}` want different new {mk} master keys ({other} and {}): one operation names one new MK per type; give each its own `mk_change` operation",
                            first.id, token.id, pair.new
                        ));
                    }
                    cca.entry(*mk).or_insert((pair.new, token));
                }
            } else {
                if let Some((other, first)) = ep11
                    && other != token.wkvp_new
                {
                    return Err(format!(
                        "tokens `{}` and `{}` want different new EP11 WKs ({other} and {}): one operation names one new WK",
                        first.id, token.id, token.wkvp_new
                    ));
                }
                ep11.get_or_insert((token.wkvp_new, token));
            }
        }
        Ok(Self {
            ep11: ep11.map(|(wkvp, _)| wkvp),
            cca: cca.into_iter().map(|(mk, (vp, _))| (mk, vp)).collect(),
        })
    }

    /// The EP11 WKVP as `list` prints it, lower case without `0x`.
    pub fn ep11_hex(&self) -> Option<String> {
        self.ep11.map(|w| bare(&w.to_string()))
    }

    /// The CCA MKVPs as `list` prints them: keyed `SYM`/`ASYM`/`AES`/`APKA`, lower-case hex
    /// without `0x`.
    pub fn cca_hex(&self) -> BTreeMap<String, String> {
        self.cca
            .iter()
            .map(|(mk, vp)| (mk.to_string(), bare(&vp.to_string())))
            .collect()
    }

    /// The tool's pattern options, EP11 first, then the CCA types in `CcaMk` order.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(wkvp) = self.ep11_hex() {
            args.extend(["--ep11-wkvp".to_owned(), wkvp]);
        }
        for (mk, vp) in &self.cca {
            args.extend([format!("--cca-{}-mkvp", mk.key()), bare(&vp.to_string())]);
        }
        args
    }

    /// `WK 0x… and AES MK 0x…`, for the step's summary.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.ep11.iter().map(|w| format!("WK {w}")).collect();
        parts.extend(self.cca.iter().map(|(mk, vp)| format!("{mk} MK {vp}")));
        parts.join(" and ")
    }
}

fn bare(text: &str) -> String {
    text.strip_prefix("0x").unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkplan_plan::model::{MkvpPair, PinSource, Slot, TokenType};

    const WK_NEW: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";

    fn token(id: &str, slot: u64, mks: &[(CcaMk, &str)]) -> Token {
        let wkvp = |t: &str| Wkvp::parse(t).expect("a WKVP").0;
        Token {
            id: serde_json::from_value(serde_json::Value::from(id)).expect("a token id"),
            slot: Slot::new(slot).expect("a slot"),
            store: format!("/var/lib/opencryptoki/{id}").into(),
            config: None,
            apqns: Vec::new(),
            pin: PinSource::Prompt,
            so_pin: None,
            token_type: if mks.is_empty() {
                TokenType::Ep11
            } else {
                TokenType::Cca
            },
            wkvp_current: wkvp("0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5"),
            wkvp_new: wkvp(WK_NEW),
            mks: mks
                .iter()
                .map(|(mk, new)| {
                    let pair = MkvpPair {
                        current: Mkvp::parse("0x1d2c3b4a59687706").expect("an MKVP"),
                        new: Mkvp::parse(new).expect("an MKVP"),
                    };
                    (*mk, pair)
                })
                .collect(),
        }
    }

    #[test]
    fn an_ep11_only_operation_names_only_the_wk() {
        let ep11 = token("ep11", 4, &[]);
        let patterns = NewPatterns::of(&[&ep11]).unwrap();
        assert_eq!(
            patterns.args(),
            ["--ep11-wkvp", "9b7d4e0a11f35c8822d0b6e4a7f1c3d9"]
        );
        assert!(patterns.cca_hex().is_empty());
    }

    #[test]
    fn a_mixed_operation_names_the_wk_and_every_declared_cca_mk_type() {
        let ep11 = token("ep11", 4, &[]);
        let cca = token(
            "cca",
            5,
            &[
                (CcaMk::Apka, "0x3a1f0e9d8c7b6a59"),
                (CcaMk::Aes, "0x8e7f6a5b4c3d2e1f"),
            ],
        );
        let patterns = NewPatterns::of(&[&ep11, &cca]).unwrap();
        assert_eq!(
            patterns.args(),
            [
                "--ep11-wkvp",
                "9b7d4e0a11f35c8822d0b6e4a7f1c3d9",
                "--cca-aes-mkvp",
                "8e7f6a5b4c3d2e1f",
                "--cca-apka-mkvp",
                "3a1f0e9d8c7b6a59",
            ]
        );
        let listed: Vec<(String, String)> = patterns.cca_hex().into_iter().collect();
        assert_eq!(
            listed,
            [
                ("AES".to_owned(), "8e7f6a5b4c3d2e1f".to_owned()),
                ("APKA".to_owned(), "3a1f0e9d8c7b6a59".to_owned()),
            ]
        );
    }

    #[test]
    fn a_cca_only_operation_has_no_ep11_wkvp() {
        let cca = token("cca", 5, &[(CcaMk::Sym, "0x8e7f6a5b4c3d2e1f")]);
        let patterns = NewPatterns::of(&[&cca]).unwrap();
        assert_eq!(patterns.ep11_hex(), None);
        assert_eq!(patterns.args(), ["--cca-sym-mkvp", "8e7f6a5b4c3d2e1f"]);
    }

    #[test]
    fn a_cca_token_declaring_the_asym_mk_is_refused() {
        let cca = token(
            "cca",
            5,
            &[
                (CcaMk::Aes, "0x8e7f6a5b4c3d2e1f"),
                (CcaMk::Asym, "0x0102030405060708"),
            ],
        );
        let err = NewPatterns::of(&[&cca]).unwrap_err();
        assert!(
            err.contains("token `cca` declares the ASYM master key"),
            "{err}"
        );
    }

    #[test]
    fn two_cca_tokens_wanting_different_new_mks_of_one_type_are_refused() {
        let a = token("cca-a", 5, &[(CcaMk::Aes, "0x8e7f6a5b4c3d2e1f")]);
        let b = token("cca-b", 6, &[(CcaMk::Aes, "0x0102030405060708")]);
        let err = NewPatterns::of(&[&a, &b]).unwrap_err();
        assert!(
            err.contains("`cca-a` and `cca-b` want different new AES master keys"),
            "{err}"
        );
        let same = token("cca-c", 7, &[(CcaMk::Aes, "0x8e7f6a5b4c3d2e1f")]);
        assert_eq!(NewPatterns::of(&[&a, &same]).unwrap().cca.len(), 1);
    }
}

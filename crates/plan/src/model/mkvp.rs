//! CCA master keys as a plan names them: the four MK types `pkcscca -k` migrates one at a
//! time, and their 8-byte verification patterns (opencryptoki-ep11.md 5: `pkcshsm_mk_change
//! -s/-S/-A/-p` and `EXPECTED_MKVPS` take 8 bytes; sysfs prints ASYM's as 16, of which the
//! first 8 are compared).

use std::fmt;

/// A CCA master-key type, in the order `pkcshsm_mk_change` lists them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CcaMk {
    Sym,
    Asym,
    Aes,
    Apka,
}

impl CcaMk {
    pub const ALL: [CcaMk; 4] = [CcaMk::Sym, CcaMk::Asym, CcaMk::Aes, CcaMk::Apka];

    /// `sym`, `asym`, `aes`, `apka`: the plan's key and `pkcscca -k`'s argument.
    pub fn key(self) -> &'static str {
        match self {
            CcaMk::Sym => "sym",
            CcaMk::Asym => "asym",
            CcaMk::Aes => "aes",
            CcaMk::Apka => "apka",
        }
    }

    pub fn parse(text: &str) -> Option<CcaMk> {
        CcaMk::ALL.into_iter().find(|mk| mk.key() == text)
    }
}

/// `SYM`, `ASYM`, `AES`, `APKA`, as sysfs and `EXPECTED_MKVPS` spell them.
impl fmt::Display for CcaMk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key().to_ascii_uppercase())
    }
}

/// An 8-byte CCA master-key verification pattern.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mkvp([u8; 8]);

impl Mkvp {
    /// 16 hex digits with an optional `0x`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(format!("`{text}` is not hex (`{bad}` is not a hex digit)"));
        }
        if hex.len() != 16 {
            return Err(format!(
                "`{text}` has {} hex digits; a CCA MKVP has 16 (8 bytes)",
                hex.len()
            ));
        }
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Self(bytes))
    }

    pub fn bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

/// `0x` and 16 lowercase hex digits.
impl fmt::Display for Mkvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mkvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One MK type of a CCA token: the MK its keys are under now and the one the TKE sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MkvpPair {
    pub current: Mkvp,
    pub new: Mkvp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkvps_are_eight_bytes_of_hex() {
        let vp = Mkvp::parse("0x755CB8E7740DAE51").expect("valid");
        assert_eq!(vp.to_string(), "0x755cb8e7740dae51");
        assert!(
            Mkvp::parse("755cb8e7740dae")
                .unwrap_err()
                .contains("14 hex digits")
        );
        assert!(
            Mkvp::parse("0x755cb8e7740dae5g")
                .unwrap_err()
                .contains("`g`")
        );
        assert_eq!(CcaMk::parse("apka"), Some(CcaMk::Apka));
        assert_eq!(CcaMk::Asym.to_string(), "ASYM");
    }
}

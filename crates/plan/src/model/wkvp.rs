//! `Wkvp`: a wrapping-key verification pattern, compared on its first 16 bytes as the
//! kernel, zkey and openCryptoki do (zcrypt-sysfs.md 1.5).

use std::fmt;

/// The 16 bytes of a WKVP that identify a wrapping key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Wkvp([u8; 16]);

/// How the plan wrote a WKVP: 16 bytes, or the full 32 that sysfs prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WkvpWidth {
    Short,
    Full,
}

impl Wkvp {
    /// What a CCA token's (absent) WKVPs read as: no WK step may run on a CCA token
    /// (rule `steps-match-token-type`), so this is never compared with a register.
    pub const UNUSED: Wkvp = Wkvp([0; 16]);

    /// Parses 32 or 64 hex digits with an optional `0x`; of 64, the first 32 count.
    pub fn parse(text: &str) -> Result<(Self, WkvpWidth), String> {
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let bad = hex.chars().find(|c| !c.is_ascii_hexdigit()).unwrap_or('?');
            return Err(format!("`{text}` is not hex (`{bad}` is not a hex digit)"));
        }
        let width = match hex.len() {
            32 => WkvpWidth::Short,
            64 => WkvpWidth::Full,
            n => {
                return Err(format!(
                    "`{text}` has {n} hex digits; a WKVP has 32 (16 bytes), or 64 as sysfs prints it"
                ));
            }
        };
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok((Self(bytes), width))
    }

    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// `0x` and 32 lowercase hex digits.
impl fmt::Display for Wkvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Wkvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wkvp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_short_and_full_forms_in_any_case() {
        let short = "0x00112233445566778899AABBCCDDEEFF";
        let (a, w) = Wkvp::parse(short).unwrap();
        assert_eq!(w, WkvpWidth::Short);
        let full = format!("{}{}", &short[2..].to_lowercase(), "ab".repeat(16));
        let (b, w) = Wkvp::parse(&full).unwrap();
        assert_eq!((a, w), (b, WkvpWidth::Full));
        assert_eq!(a.to_string(), "0x00112233445566778899aabbccddeeff");
    }

    #[test]
    fn refuses_wrong_lengths_and_non_hex() {
        assert!(Wkvp::parse("0x1234").unwrap_err().contains("4 hex digits"));
        assert!(Wkvp::parse(&"g".repeat(32)).unwrap_err().contains("`g`"));
    }
}

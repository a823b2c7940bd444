//! The CCA master-key registers of one APQN as `mkvps` shows them (zcrypt-sysfs.md 1.6,
//! 1.6b): AES, APKA and ASYM, each with NEW, CUR and OLD. SYM (DES) has no line in sysfs, so
//! its state cannot be read there.

use std::fmt;

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

/// A CCA master-key type the kernel prints (in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CcaMkType {
    Aes,
    Apka,
    Asym,
}

impl CcaMkType {
    /// The kernel's order: AES (5.4), APKA (5.10), ASYM (5.19).
    pub const ALL: [CcaMkType; 3] = [CcaMkType::Aes, CcaMkType::Apka, CcaMkType::Asym];

    /// As `mkvps` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes => "AES",
            Self::Apka => "APKA",
            Self::Asym => "ASYM",
        }
    }

    /// Bytes of the pattern the kernel prints: ASYM 16, AES and APKA 8.
    pub fn vp_len(self) -> usize {
        match self {
            Self::Asym => 16,
            Self::Aes | Self::Apka => 8,
        }
    }
}

impl fmt::Display for CcaMkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every register the APQN's `mkvps` shows. A type is `None` when the kernel is too old to
/// print it (APKA before 5.10, ASYM before 5.19): unknown, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcaMasterKeys {
    pub aes: CcaMkRegisters,
    #[serde(default)]
    pub apka: Option<CcaMkRegisters>,
    #[serde(default)]
    pub asym: Option<CcaMkRegisters>,
}

impl CcaMasterKeys {
    /// The registers of one MK type, if the kernel prints them.
    pub fn get(&self, mk: CcaMkType) -> Option<&CcaMkRegisters> {
        match mk {
            CcaMkType::Aes => Some(&self.aes),
            CcaMkType::Apka => self.apka.as_ref(),
            CcaMkType::Asym => self.asym.as_ref(),
        }
    }

    /// Whether any printed register is `- -` (unknown: the queue is offline, or the read was
    /// interrupted).
    pub fn any_unknown(&self) -> bool {
        CcaMkType::ALL
            .iter()
            .filter_map(|mk| self.get(*mk))
            .any(CcaMkRegisters::any_unknown)
    }
}

/// NEW, CUR and OLD of one MK type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcaMkRegisters {
    pub new: CcaRegister<CcaNewState>,
    pub cur: CcaRegister<CcaKeyState>,
    pub old: CcaRegister<CcaKeyState>,
}

impl CcaMkRegisters {
    pub fn any_unknown(&self) -> bool {
        self.new.state == CcaNewState::Unknown
            || self.cur.state == CcaKeyState::Unknown
            || self.old.state == CcaKeyState::Unknown
    }
}

/// One register: its state and, where the kernel copies one (NEW `full`, CUR/OLD `valid`),
/// its verification pattern. The zeros printed in the other states are no pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcaRegister<S> {
    pub state: S,
    pub vp: Option<CcaVp>,
}

/// NEW register states (zcrypt-sysfs.md 1.6). `Unknown` is `- -`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CcaNewState {
    Empty,
    Partial,
    Full,
    Unknown,
}

/// CUR and OLD register states (zcrypt-sysfs.md 1.6). `Empty` is what real cards print for
/// an ASYM MK never loaded (1.6b); `Unknown` is `- -`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CcaKeyState {
    Valid,
    Invalid,
    Empty,
    Unknown,
}

impl CcaNewState {
    /// The kernel's word (`-` for unknown).
    pub fn word(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Partial => "partial",
            Self::Full => "full",
            Self::Unknown => "-",
        }
    }
}

impl CcaKeyState {
    /// The kernel's word (`-` for unknown).
    pub fn word(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Empty => "empty",
            Self::Unknown => "-",
        }
    }
}

/// A master-key verification pattern as sysfs prints it: 8 bytes (AES, APKA) or 16 (ASYM).
/// Written and read as `0x` and lowercase hex.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CcaVp(Vec<u8>);

impl CcaVp {
    /// `None` unless 8 or 16 bytes.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        matches!(bytes.len(), 8 | 16).then_some(Self(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for CcaVp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for CcaVp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for CcaVp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CcaVp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.strip_prefix("0x")
            .and_then(|digits| hex::decode(digits).ok())
            .and_then(CcaVp::new)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "`{text}` is not a CCA verification pattern (`0x` and 16 or 32 hex digits)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_round_trip_through_json() {
        let vp = CcaVp::new(vec![0x75, 0x5c, 0xb8, 0xe7, 0x74, 0x0d, 0xae, 0x51]).unwrap();
        let empty = CcaMkRegisters {
            new: CcaRegister {
                state: CcaNewState::Empty,
                vp: None,
            },
            cur: CcaRegister {
                state: CcaKeyState::Valid,
                vp: Some(vp.clone()),
            },
            old: CcaRegister {
                state: CcaKeyState::Unknown,
                vp: None,
            },
        };
        let keys = CcaMasterKeys {
            aes: empty.clone(),
            apka: Some(empty),
            asym: None,
        };
        let json = serde_json::to_value(&keys).unwrap();
        assert_eq!(json["aes"]["cur"]["vp"], "0x755cb8e7740dae51");
        assert_eq!(json["aes"]["old"]["state"], "unknown");
        assert_eq!(json["asym"], serde_json::Value::Null);
        let back: CcaMasterKeys = serde_json::from_value(json).unwrap();
        assert_eq!(back, keys);
        assert!(keys.any_unknown());
        let bad = serde_json::from_str::<CcaVp>("\"0x755cb8\"").unwrap_err();
        assert!(bad.to_string().contains("16 or 32 hex digits"), "{bad}");
    }
}

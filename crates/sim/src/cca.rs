//! CCA master keys in the simulator (zcrypt-sysfs.md 1.6, opencryptoki-ep11.md 5): the four MK
//! types, their verification patterns, a CCA domain's NEW/CUR/OLD registers per type, and
//! which of them the kernel's `mkvps` shows.
//!
//! openCryptoki names a CCA master key by an 8-byte MKVP (`pkcshsm_mk_change -s/-S/-A/-p`,
//! `EXPECTED_MKVPS`). The kernel prints 8 bytes for AES and APKA and 16 for ASYM; the
//! simulator's ASYM register VP is the 8-byte MKVP followed by 8 bytes derived from it, and
//! everybody compares the first 8 (the same device as the EP11 WKVP's 16 of 32 bytes:
//! simulator-only, the reference does not say how openCryptoki shortens the ASYM VP). SYM has
//! no line in sysfs at all; its registers are only in the simulator's state.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::readfault::ReadFault;
use mkplan_plan::model::Apqn;

/// A CCA master-key type, in the order `pkcshsm_mk_change` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MkType {
    Sym,
    Asym,
    Aes,
    Apka,
}

impl MkType {
    pub const ALL: [MkType; 4] = [MkType::Sym, MkType::Asym, MkType::Aes, MkType::Apka];

    /// `SYM`, `ASYM`, `AES`, `APKA`: as sysfs, `EXPECTED_MKVPS` and `list` spell them.
    pub fn name(self) -> &'static str {
        match self {
            MkType::Sym => "SYM",
            MkType::Asym => "ASYM",
            MkType::Aes => "AES",
            MkType::Apka => "APKA",
        }
    }

    /// Any case of the name (`aes`, `AES`), as `pkcscca -k` and `mkplan-sim --mk` take it.
    pub fn parse(text: &str) -> Option<MkType> {
        MkType::ALL
            .into_iter()
            .find(|mk| mk.name().eq_ignore_ascii_case(text))
    }

    /// Bytes of the VP the kernel prints for this register (ASYM: 16, the others 8).
    pub fn sysfs_vp_len(self) -> usize {
        if self == MkType::Asym { 16 } else { 8 }
    }
}

impl fmt::Display for MkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An 8-byte CCA master-key verification pattern.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mkvp([u8; 8]);

impl Mkvp {
    pub fn new(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// 16 hex digits, with or without `0x`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{text}` is not a CCA MKVP: 16 hex digits (8 bytes), optionally after `0x`"
            ));
        }
        let mut bytes = [0u8; 8];
        hex::decode_to_slice(hex, &mut bytes).expect("checked hex");
        Ok(Self(bytes))
    }

    pub fn bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// The VP the kernel prints for a register of `mk` holding this key.
    pub fn sysfs_vp(&self, mk: MkType) -> Vec<u8> {
        let mut vp = self.0.to_vec();
        if mk == MkType::Asym {
            let mut hasher = Sha256::new();
            hasher.update(b"mkplan-sim asym vp\0");
            hasher.update(self.0);
            vp.extend_from_slice(&hasher.finalize()[..8]);
        }
        vp
    }

    /// The 32-byte identity a blob is sealed with (`sim::crypto`): the first 16 bytes, which
    /// the blob carries, are the register's VP (zero-padded), the rest binds the MK type, so
    /// an AES key never opens under an APKA register with the same pattern.
    pub fn identity(&self, mk: MkType) -> [u8; 32] {
        let mut id = [0u8; 32];
        let vp = self.sysfs_vp(mk);
        id[..vp.len()].copy_from_slice(&vp);
        let mut hasher = Sha256::new();
        hasher.update(b"mkplan-sim cca mk v1\0");
        hasher.update(mk.name());
        hasher.update(self.0);
        id[16..].copy_from_slice(&hasher.finalize()[..16]);
        id
    }
}

/// `0x` and 16 lowercase hex digits.
impl fmt::Display for Mkvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Mkvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mkvp({self})")
    }
}

impl Serialize for Mkvp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Mkvp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Mkvp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The NEW register: empty, partly loaded (some key parts), or full (all parts; the VP is
/// known only then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewState {
    Empty,
    Partial,
    Full,
}

/// The CUR and OLD registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Valid,
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRegister {
    pub state: NewState,
    pub vp: Option<Mkvp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRegister {
    pub state: KeyState,
    pub vp: Option<Mkvp>,
}

impl KeyRegister {
    pub const INVALID: KeyRegister = KeyRegister {
        state: KeyState::Invalid,
        vp: None,
    };

    pub fn valid(vp: Mkvp) -> Self {
        Self {
            state: KeyState::Valid,
            vp: Some(vp),
        }
    }

    /// The pattern of a valid register.
    pub fn valid_vp(&self) -> Option<Mkvp> {
        (self.state == KeyState::Valid).then_some(self.vp).flatten()
    }
}

impl NewRegister {
    pub const EMPTY: NewRegister = NewRegister {
        state: NewState::Empty,
        vp: None,
    };

    /// The pattern of a full register.
    pub fn full_vp(&self) -> Option<Mkvp> {
        (self.state == NewState::Full).then_some(self.vp).flatten()
    }
}

/// One MK type's three registers in a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkRegisters {
    pub new: NewRegister,
    pub cur: KeyRegister,
    pub old: KeyRegister,
}

impl MkRegisters {
    /// A domain where this MK type was never loaded.
    pub const UNLOADED: MkRegisters = MkRegisters {
        new: NewRegister::EMPTY,
        cur: KeyRegister::INVALID,
        old: KeyRegister::INVALID,
    };

    pub fn is_unloaded(&self) -> bool {
        self.new.state == NewState::Empty
            && self.cur.state == KeyState::Invalid
            && self.old.state == KeyState::Invalid
    }
}

/// A CCA APQN (`CEX8C` card): queue flags and the registers of every MK type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CcaQueue {
    pub adapter: u8,
    pub domain: u8,
    /// The token this APQN belongs to.
    pub token: String,
    pub online: bool,
    pub config: bool,
    pub chkstop: bool,
    /// Every MK type; one missing reads as never loaded.
    pub registers: std::collections::BTreeMap<MkType, MkRegisters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_fault: Option<ReadFault>,
}

impl CcaQueue {
    pub fn apqn(&self) -> Apqn {
        Apqn::new(self.adapter, self.domain)
    }

    pub fn mk(&self, mk: MkType) -> MkRegisters {
        self.registers
            .get(&mk)
            .copied()
            .unwrap_or(MkRegisters::UNLOADED)
    }
}

/// Which registers the kernel's CCA `mkvps` has (zcrypt-sysfs.md 1.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CcaSysfsForm {
    /// 5.19 and later: AES, APKA, ASYM (nine lines).
    #[default]
    AesApkaAsym,
    /// 5.10 – 5.18: AES and APKA.
    AesApka,
    /// 5.4 – 5.9: AES only.
    Aes,
}

impl CcaSysfsForm {
    /// The MK types with lines, in the kernel's order.
    pub(crate) fn registers(self) -> &'static [MkType] {
        match self {
            CcaSysfsForm::AesApkaAsym => &[MkType::Aes, MkType::Apka, MkType::Asym],
            CcaSysfsForm::AesApka => &[MkType::Aes, MkType::Apka],
            CcaSysfsForm::Aes => &[MkType::Aes],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkvps_parse_and_bind_their_type() {
        let vp = Mkvp::parse("0x755CB8E7740DAE51").unwrap();
        assert_eq!(vp.to_string(), "0x755cb8e7740dae51");
        assert_eq!(Mkvp::parse("755cb8e7740dae51").unwrap(), vp);
        assert!(Mkvp::parse("0x755cb8e7740dae").is_err());
        assert!(Mkvp::parse("0x755cb8e7740dae5g").is_err());
        assert_eq!(vp.sysfs_vp(MkType::Aes), vp.bytes().to_vec());
        let asym = vp.sysfs_vp(MkType::Asym);
        assert_eq!((asym.len(), &asym[..8]), (16, &vp.bytes()[..]));
        assert_ne!(vp.identity(MkType::Aes), vp.identity(MkType::Apka));
        assert_eq!(&vp.identity(MkType::Aes)[..8], vp.bytes());
        assert_eq!(MkType::parse("apka"), Some(MkType::Apka));
        assert_eq!(MkType::parse("DES"), None);
    }
}

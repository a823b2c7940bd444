//! The validated plan: what the engine may trust without checking again. Only
//! `plan::lower` builds it, and only from a plan that passed the schema and every check.

mod apqn;
mod mkvp;
mod step;
mod wkvp;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use apqn::{Apqn, ApqnError};
pub use mkvp::{CcaMk, Mkvp, MkvpPair};
pub use step::{
    AssertMk, AssertWk, BackupStep, Checkpoint, CommandStep, CurrentWk, EndOperationStep,
    ExpectedTarget, ExpectedWkvpStep, KindName, MigrateStep, NewMk, NewWk, OldMk, PinDelivery,
    ProbeKeysStep, ReencipherStep, RestoreStep, Section, Step, StepKind, TkeAction, Until,
    UntilCheck,
};
pub use wkvp::{Wkvp, WkvpWidth};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub(crate) fn new(name: impl Into<String>) -> Self {
                Self(name.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// The name of a token under `tokens`.
    TokenId
);
id_newtype!(
    /// The name of a service group under `services`.
    ServiceId
);
id_newtype!(
    /// The name of a backup target under `backups`.
    BackupId
);

/// A PKCS#11 slot number, 0..1023.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u16);

impl Slot {
    pub const MAX: u16 = 1023;

    pub fn new(slot: u64) -> Option<Self> {
        u16::try_from(slot)
            .ok()
            .filter(|s| *s <= Self::MAX)
            .map(Self)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub change: Change,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub tokens: BTreeMap<TokenId, Token>,
    pub services: BTreeMap<ServiceId, Service>,
    pub backups: BTreeMap<BackupId, BackupTarget>,
    pub steps: Vec<Step>,
    pub rescue: Vec<Step>,
    pub always: Vec<Step>,
    pub report: Report,
    /// What templates see (vars, sections without PINs, rendered backup targets), for
    /// evaluating `when` at run time with `plan::template::evaluate_condition`.
    pub template_scope: serde_json::Value,
}

impl Plan {
    /// The environment variables the plan reads PINs from. mkplan's children must never
    /// inherit them: a child's environment is readable in `/proc/<pid>/environ`.
    pub fn pin_variables(&self) -> Vec<&str> {
        let tokens = self
            .tokens
            .values()
            .flat_map(|t| std::iter::once(&t.pin).chain(t.so_pin.as_ref()));
        let signing = match &self.report.sign {
            Some(SignKey::Pkcs11 { pin, .. }) => Some(pin),
            _ => None,
        };
        tokens
            .chain(signing)
            .filter_map(|source| match source {
                PinSource::Env(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Every APQN the tokens use, sorted, once each: a `pkcshsm_mk_change` operation's
    /// `--apqns` (the tool requires every APQN a token uses).
    pub fn apqns_of(&self, tokens: &[TokenId]) -> Vec<Apqn> {
        let mut apqns: Vec<Apqn> = tokens
            .iter()
            .filter_map(|t| self.tokens.get(t))
            .flat_map(|t| t.apqns.iter().copied())
            .collect();
        apqns.sort();
        apqns.dedup();
        apqns
    }

    /// The steps of one section.
    pub fn section(&self, section: Section) -> &[Step] {
        match section {
            Section::Steps => &self.steps,
            Section::Rescue => &self.rescue,
            Section::Always => &self.always,
        }
    }

    /// The step at `index` of `section` (as the journal names it), if the plan has one.
    pub fn step_at(&self, section: Section, index: usize) -> Option<&Step> {
        self.section(section).get(index)
    }

    /// Every step with its section, in the order a run can reach them.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .chain(self.rescue.iter())
            .chain(self.always.iter())
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub ticket: String,
    pub summary: String,
    /// Every approver's name, in plan order (keyed or not).
    pub approvers: Vec<String>,
    /// The approvers who have a public key, in plan order.
    pub approver_keys: Vec<ApproverKey>,
    /// `change.asserted_approvals`: whether an approver with a key may approve by name.
    pub asserted_approvals_allowed: bool,
    /// The policy clause that sets the key's cryptoperiod (PCI DSS 3.7.4), if the plan names it.
    pub policy: Option<Policy>,
}

/// An approver's public key, as the plan lists it.
#[derive(Debug, Clone)]
pub struct ApproverKey {
    pub name: String,
    pub key: mkplan_sig::PublicKey,
    /// SHA-256 of the key's DER SubjectPublicKeyInfo, lowercase hex (the DSSE keyid).
    pub key_id: String,
}

impl Change {
    /// The approver called `name` (case-insensitive), if they have a key.
    pub fn keyed_approver(&self, name: &str) -> Option<&ApproverKey> {
        let name = name.trim();
        self.approver_keys
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The approver whose key has `key_id`.
    pub fn approver_with_key(&self, key_id: &str) -> Option<&ApproverKey> {
        self.approver_keys.iter().find(|a| a.key_id == key_id)
    }
}

/// The report's required co-signatures: `required` distinct approvers of `by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosign {
    pub required: u32,
    pub by: Vec<String>,
}

/// `change.policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub reference: String,
    pub cryptoperiod: Option<String>,
}

/// Which openCryptoki token type a token is: how its keys are re-enciphered and in which
/// order (opencryptoki-ep11.md 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Keys re-enciphered with `pkcsep11_migrate` before the new WK is activated.
    Ep11,
    /// Keys re-enciphered with `pkcscca -m keys` from OLD to CURRENT after the new MK is set.
    Cca,
}

/// A token as the plan describes it.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: TokenId,
    pub slot: Slot,
    pub store: PathBuf,
    pub config: Option<PathBuf>,
    pub apqns: Vec<Apqn>,
    pub pin: PinSource,
    /// CCA: where the SO PIN comes from (`pkcscca` needs both PINs); `None` for EP11.
    pub so_pin: Option<PinSource>,
    pub token_type: TokenType,
    /// EP11: the wrapping key's patterns. A CCA token has none (`wkvp` is refused on it):
    /// these are then all zero and never read, since every WK step on a CCA token is a
    /// plan error (rule `steps-match-token-type`).
    pub wkvp_current: Wkvp,
    pub wkvp_new: Wkvp,
    /// CCA: the MK types the token's keys use, with their patterns; empty for EP11.
    pub mks: BTreeMap<CcaMk, MkvpPair>,
}

impl Token {
    pub fn is_cca(&self) -> bool {
        self.token_type == TokenType::Cca
    }
}

/// Where a PIN comes from. The PIN itself is never part of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    Env(String),
    File(PathBuf),
    Prompt,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub id: ServiceId,
    pub control: ServiceControl,
}

#[derive(Debug, Clone)]
pub enum ServiceControl {
    Systemd(Vec<String>),
    Commands {
        stop: Vec<String>,
        start: Vec<String>,
        is_active: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct BackupTarget {
    pub id: BackupId,
    pub dir: PathBuf,
    pub keep: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dir: Option<PathBuf>,
    /// The copy's file mode (at most 0644); `None`: 0600, like the run directory's.
    pub mode: Option<u32>,
    pub sign: Option<SignKey>,
    /// Co-signatures the report needs (`report.cosign`).
    pub cosign: Option<Cosign>,
}

#[derive(Debug, Clone)]
pub enum SignKey {
    File(PathBuf),
    Pkcs11 {
        module: PathBuf,
        slot: Slot,
        key: Pkcs11KeyRef,
        pin: PinSource,
    },
}

#[derive(Debug, Clone)]
pub enum Pkcs11KeyRef {
    Label(String),
    Id(Vec<u8>),
}

/// Parses `30`, `30s`, `500ms`, `5m`, `2h` (the schema's duration forms).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("2d"), None);
        assert_eq!(Slot::new(1024), None);
    }
}

//! What `assert_wk` records of each APQN: sysfs's gates and the EP11 wrapping-key registers,
//! and how they are judged against what a plan expects (fail-closed).

use serde::de::{Deserializer, Error as _};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use mkplan_plan::model::{Apqn, CurrentWk, NewWk, TokenId, Wkvp};

pub mod cca;

pub use cca::{
    CcaKeyState, CcaMasterKeys, CcaMkRegisters, CcaMkType, CcaNewState, CcaRegister, CcaVp,
};

/// What `assert_wk` records (and a checkpoint's `until`, and `migrate`'s preflight): every
/// APQN of a token as it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WkTable {
    /// Always written; a bare list of early journals has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenId>,
    pub apqns: Vec<ApqnStatus>,
}

/// Reads `{token, apqns}` and, as early journals held it, the bare list of APQNs.
impl<'de> Deserialize<'de> for WkTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Table {
                #[serde(default)]
                token: Option<TokenId>,
                apqns: Vec<ApqnStatus>,
            },
            List(Vec<ApqnStatus>),
        }
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Table { token, apqns } => WkTable { token, apqns },
            Wire::List(apqns) => WkTable { token: None, apqns },
        })
    }
}

/// What sysfs says about one APQN and its card. Read back leniently: a flag a journal does
/// not have reads as unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApqnStatus {
    #[serde(
        serialize_with = "serialize_apqn",
        deserialize_with = "deserialize_apqn"
    )]
    pub apqn: Apqn,
    /// The card's `type`, e.g. `CEX8P`.
    #[serde(default)]
    pub card_type: String,
    /// `type` ends in `P` and `ap_functions` has the EP11 bit 0x04000000.
    #[serde(default)]
    pub ep11: bool,
    #[serde(default)]
    pub card_online: bool,
    #[serde(default)]
    pub card_config: bool,
    #[serde(default)]
    pub card_chkstop: bool,
    #[serde(default)]
    pub queue_online: bool,
    #[serde(default)]
    pub queue_config: bool,
    #[serde(default)]
    pub queue_chkstop: bool,
    /// The EP11 wrapping-key registers; both unknown on a card that is not EP11.
    pub cur: WkRegister<CurState>,
    pub new: WkRegister<NewState>,
    /// A CCA coprocessor (`type` ends in `C`, `ap_functions` has 0x10000000): its master-key
    /// registers. `None` on any other card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cca: Option<CcaMasterKeys>,
    /// `mkvps` exactly as read, with the full 32-byte VPs (zcrypt-sysfs.md 1.7 rule 3).
    #[serde(default)]
    pub mkvps_raw: String,
}

impl ApqnStatus {
    /// Whether a register the card shows reads `- -`: the state is unknown (the queue is
    /// offline, or the read was interrupted, zcrypt-sysfs.md 1.6b) and nothing may pass on it.
    pub fn state_unknown(&self) -> bool {
        match &self.cca {
            Some(cca) => cca.any_unknown(),
            None => self.cur.state == CurState::Unknown || self.new.state == NewState::Unknown,
        }
    }
}

/// One wrapping-key register: its state and, where the kernel prints one, the 32-byte VP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WkRegister<S> {
    pub state: S,
    #[serde(serialize_with = "serialize_vp", deserialize_with = "deserialize_vp")]
    pub vp: Option<[u8; 32]>,
}

/// `WK CUR:` states (zcrypt-sysfs.md 1.5). `Unknown` is `- -`: offline, or the query failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurState {
    Valid,
    Invalid,
    Unknown,
}

/// `WK NEW:` states (zcrypt-sysfs.md 1.5). `Unknown` is `- -`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewState {
    Empty,
    Uncommitted,
    Committed,
    Unknown,
}

/// What an `assert_wk` expects of every APQN of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub current: CurrentWk,
    pub new: NewWk,
    pub wkvp_current: Wkvp,
    pub wkvp_new: Wkvp,
}

/// Why the APQN cannot be used at all, whatever its registers hold: the gates of
/// zcrypt-sysfs.md 1.7 rule 1 (deconfigured, check-stopped, offline, not EP11).
pub fn unusable(status: &ApqnStatus) -> Vec<String> {
    let (apqn, s) = (status.apqn, status);
    let card = format!("card {:02x}", apqn.adapter());
    let not_ep11 = format!(
        "{card} is `{}`, not an EP11 coprocessor (the type must end in P and `ap_functions` \
         must have 0x04000000)",
        s.card_type
    );
    let gates = [
        (
            !s.card_config,
            format!("{card} is deconfigured (`config` is 0)"),
        ),
        (
            s.card_chkstop,
            format!("{card} is check-stopped (`chkstop` is 1)"),
        ),
        (!s.card_online, format!("{card} is offline (`online` is 0)")),
        (
            !s.queue_config,
            "the queue is deconfigured (`config` is 0)".into(),
        ),
        (
            s.queue_chkstop,
            "the queue is check-stopped (`chkstop` is 1)".into(),
        ),
        (
            !s.queue_online,
            "the queue is offline (`online` is 0)".into(),
        ),
        (!s.ep11, not_ep11),
    ];
    gates
        .into_iter()
        .filter(|(bad, _)| *bad)
        .map(|(_, what)| format!("{apqn}: {what}"))
        .collect()
}

/// Why `status` does not meet `expect`, one short reason per problem; empty when it does.
/// Gates per zcrypt-sysfs.md 1.7 rule 1 ([`unusable`]); VPs compare on their first 16 bytes
/// (1.5); an unknown register (`- -`) never passes.
pub fn evaluate(status: &ApqnStatus, expect: &Expectation) -> Vec<String> {
    let (apqn, s) = (status.apqn, status);
    let mut reasons = unusable(status);

    let cur_want = match expect.current {
        CurrentWk::Expected => &expect.wkvp_current,
        CurrentWk::New => &expect.wkvp_new,
    };
    if !(s.cur.state == CurState::Valid && vp_matches(s.cur.vp, cur_want)) {
        let actual = shown(s.cur.state.word(), s.cur.vp);
        reasons.push(format!(
            "{apqn}: WK CUR is {actual} but must be valid {cur_want}"
        ));
    }

    let want_new = &expect.wkvp_new;
    let (new_ok, wanted) = match expect.new {
        NewWk::Committed => (
            s.new.state == NewState::Committed && vp_matches(s.new.vp, want_new),
            format!("committed {want_new}"),
        ),
        NewWk::Uncommitted => (
            s.new.state == NewState::Uncommitted && vp_matches(s.new.vp, want_new),
            format!("uncommitted {want_new}"),
        ),
        NewWk::Empty => (s.new.state == NewState::Empty, "empty".into()),
        NewWk::Any => (
            s.new.state != NewState::Unknown,
            "readable (empty, uncommitted or committed)".into(),
        ),
    };
    if !new_ok {
        let actual = shown(s.new.state.word(), s.new.vp);
        reasons.push(format!("{apqn}: WK NEW is {actual} but must be {wanted}"));
    }
    reasons
}

/// [`evaluate`] for every APQN of a token, plus the check zkey leaves out (zcrypt-sysfs.md
/// 3.8): all APQNs hold the same CUR and the same NEW wrapping key. No APQNs never passes.
pub fn evaluate_all(statuses: &[ApqnStatus], expect: &Expectation) -> Vec<String> {
    if statuses.is_empty() {
        return vec!["no APQNs to check: the token's wrapping keys cannot be verified".into()];
    }
    let mut reasons: Vec<String> = statuses.iter().flat_map(|s| evaluate(s, expect)).collect();
    let cur = |s: &ApqnStatus| s.cur.vp;
    let new = |s: &ApqnStatus| s.new.vp;
    for (name, vp_of) in [("CUR", &cur as &dyn Fn(&ApqnStatus) -> _), ("NEW", &new)] {
        let vps: Vec<(Apqn, [u8; 32])> = statuses
            .iter()
            .filter_map(|s| vp_of(s).map(|vp| (s.apqn, vp)))
            .collect();
        if vps.windows(2).any(|w| w[0].1[..16] != w[1].1[..16]) {
            let list: Vec<String> = vps
                .iter()
                .map(|(apqn, vp)| format!("{apqn} has 0x{}", hex::encode(&vp[..16])))
                .collect();
            reasons.push(format!(
                "WK {name} differs across APQNs: {}; every APQN of a token must hold the same \
                 wrapping key",
                list.join(", ")
            ));
        }
    }
    reasons
}

/// zcrypt-sysfs.md 1.5: key blobs carry 16 bytes of WKVP; only those are compared.
fn vp_matches(vp: Option<[u8; 32]>, want: &Wkvp) -> bool {
    vp.is_some_and(|vp| vp[..16] == want.bytes()[..])
}

/// A register for a message: its state word and the full VP as sysfs prints it.
fn shown(word: &str, vp: Option<[u8; 32]>) -> String {
    match (word, vp) {
        ("-", _) => "unknown (`- -`: the queue is offline or the HSM query failed)".into(),
        (word, Some(vp)) => format!("{word} 0x{}", hex::encode(vp)),
        (word, None) => word.into(),
    }
}

impl CurState {
    /// As records write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unknown => "unknown",
        }
    }

    /// The kernel's word for this state (`-` for unknown).
    pub fn word(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unknown => "-",
        }
    }
}

impl NewState {
    /// As records write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Uncommitted => "uncommitted",
            Self::Committed => "committed",
            Self::Unknown => "unknown",
        }
    }

    /// The kernel's word for this state (`-` for unknown).
    pub fn word(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Uncommitted => "uncommitted",
            Self::Committed => "committed",
            Self::Unknown => "-",
        }
    }
}

/// `{"id": "0a.0011", "adapter": 10, "domain": 17}`: both notations, as everywhere in mkplan.
fn serialize_apqn<S: Serializer>(apqn: &Apqn, serializer: S) -> Result<S::Ok, S::Error> {
    let mut s = serializer.serialize_struct("Apqn", 3)?;
    s.serialize_field("id", &apqn.lszcrypt())?;
    s.serialize_field("adapter", &apqn.adapter())?;
    s.serialize_field("domain", &apqn.domain())?;
    s.end()
}

/// `"0x"` and 64 lowercase hex digits, or `null`.
fn serialize_vp<S: Serializer>(vp: &Option<[u8; 32]>, serializer: S) -> Result<S::Ok, S::Error> {
    match vp {
        Some(vp) => serializer.serialize_some(&format!("0x{}", hex::encode(vp))),
        None => serializer.serialize_none(),
    }
}

/// `{"id": "0a.0011", "adapter": 10, "domain": 17}`, as [`serialize_apqn`] writes it.
fn deserialize_apqn<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Apqn, D::Error> {
    #[derive(Deserialize)]
    struct Wire {
        adapter: u8,
        domain: u8,
    }
    let wire = Wire::deserialize(deserializer)?;
    Ok(Apqn::new(wire.adapter, wire.domain))
}

/// `"0x"` and 64 hex digits, or `null`, as [`serialize_vp`] writes it.
fn deserialize_vp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<[u8; 32]>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    let mut vp = [0u8; 32];
    hex::decode_to_slice(digits, &mut vp)
        .map_err(|e| D::Error::custom(format!("`{text}` is not a 32-byte VP: {e}")))?;
    Ok(Some(vp))
}

//! Signed approvals: an approver signs a statement (plan digest, checkpoint, the text shown
//! there, the new WKVPs, an expiry) with their own key (`mkplan approve`); a checkpoint of a
//! plan that lists approver keys accepts it only if the signature verifies with the key the
//! plan lists, and everything it says matches this run. The signature is checked before
//! anything in the payload is trusted (DSSE).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use mkplan_plan::model::{Plan, Step};
use mkplan_sig::{PublicKey, pae, short_id};

pub const APPROVAL_PAYLOAD_TYPE: &str = "application/vnd.mkplan.approval+json";
pub const APPROVAL_TYPE: &str = "https://mkplan.dev/approval/v1";
/// The longest an approval may be valid: it is for one change window.
pub const MAX_VALIDITY_SECONDS: i64 = 30 * 24 * 3600;
/// How far an approver's clock may be ahead of this host's.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// A DSSE envelope with exactly one signature: the approver's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedApproval {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<ApprovalSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSignature {
    pub keyid: String,
    pub sig: String,
}

/// What the approver signed. Canonical form: `serde_json::to_vec` of it (fields in this
/// order, nothing skipped), so a statement has exactly one byte form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStatement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The plan's name for the signing key.
    pub approver: String,
    pub keyid: String,
    pub plan_sha256: String,
    pub plan_name: String,
    pub change_ticket: String,
    /// `steps[1]`.
    pub checkpoint: String,
    pub checkpoint_id: Option<String>,
    /// SHA-256 of the text the checkpoint shows (it depends only on the plan and its digest).
    pub shown_sha256: String,
    /// Every token's new WKVP, in plan order.
    pub tokens: Vec<ApprovedToken>,
    /// RFC 3339, UTC.
    pub issued: String,
    pub expires: String,
    /// 16 random bytes, hex: two approvals are never the same bytes.
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedToken {
    pub token: String,
    pub wkvp_new: String,
}

/// A signed approval that holds: who, with which key, and which statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub approver: String,
    pub key_id: String,
    /// SHA-256 of the payload: the statement's identity (replay is checked on it).
    pub statement_sha256: String,
    pub statement: ApprovalStatement,
}

/// Why a signed approval is refused. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "is not an mkplan approval (it needs payloadType {APPROVAL_PAYLOAD_TYPE}, standard base64 and one signature)"
    )]
    NotAnApproval,
    #[error("is signed with key {key_id}, which is no approver key of this plan ({listed})")]
    UnknownKey { key_id: String, listed: String },
    #[error("does not verify with {name}'s key {key_id}: it was altered after signing")]
    BadSignature { name: String, key_id: String },
    #[error("is not in canonical form (or names another key than signed it): ask for a new one")]
    NotCanonical,
    #[error("names `{named}` but is signed with {name}'s key")]
    WrongName { named: String, name: String },
    #[error(
        "approves plan sha256 {theirs} (`{plan_name}`), not this run's plan {ours}: another plan, or an earlier version of this one"
    )]
    WrongPlan {
        theirs: String,
        plan_name: String,
        ours: String,
    },
    #[error("approves checkpoint {theirs}, not {ours}")]
    WrongCheckpoint { theirs: String, ours: String },
    #[error("was made for another checkpoint text (sha256 {0}): sign it again with this mkplan")]
    WrongText(String),
    #[error("approves new WKVPs {theirs}, the plan names {ours}")]
    WrongWkvp { theirs: String, ours: String },
    #[error("has a time that is not RFC 3339 (`{0}`)")]
    BadTime(String),
    #[error("was issued in the future ({0}): check this host's and the approver's clocks")]
    Future(String),
    #[error(
        "expired at {expires} (issued {issued}); ask {name} for a new one: mkplan approve PLAN {checkpoint} --key …"
    )]
    Expired {
        expires: String,
        issued: String,
        name: String,
        checkpoint: String,
    },
    #[error("is valid from {issued} to {expires}: at most 30 days, after it was issued")]
    Validity { issued: String, expires: String },
}

impl SignedApproval {
    /// The statement it claims, unverified: only to route it to its checkpoint.
    pub fn claimed(&self) -> Option<ApprovalStatement> {
        let payload = STANDARD.decode(&self.payload).ok()?;
        serde_json::from_slice(&payload).ok()
    }

    /// Signs `statement` with `sign` (over the PAE) as the key `key_id`.
    pub fn sign<E>(
        statement: &ApprovalStatement,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Self, E> {
        let payload = serde_json::to_vec(statement).expect("statements serialise");
        let signature = sign(&pae(APPROVAL_PAYLOAD_TYPE, &payload))?;
        Ok(Self {
            payload_type: APPROVAL_PAYLOAD_TYPE.to_owned(),
            payload: STANDARD.encode(&payload),
            signatures: vec![ApprovalSignature {
                keyid: statement.keyid.clone(),
                sig: STANDARD.encode(signature),
            }],
        })
    }
}

/// The statement for `step` of `plan` (digest `plan_sha256`, shown text `shown_sha256`).
/// `signer`: the approver's name and key id; `valid`: issued and expires.
pub fn statement_for(
    plan: &Plan,
    plan_sha256: &str,
    step: &Step,
    shown_sha256: &str,
    (approver, key_id): (&str, &str),
    (issued, expires): (jiff::Timestamp, jiff::Timestamp),
    nonce: &str,
) -> ApprovalStatement {
    ApprovalStatement {
        statement_type: APPROVAL_TYPE.to_owned(),
        approver: approver.to_owned(),
        keyid: key_id.to_owned(),
        plan_sha256: plan_sha256.to_owned(),
        plan_name: plan.name.clone(),
        change_ticket: plan.change.ticket.clone(),
        checkpoint: position(step),
        checkpoint_id: step.id.clone(),
        shown_sha256: shown_sha256.to_owned(),
        tokens: tokens(plan),
        issued: format_time(issued),
        expires: format_time(expires),
        nonce: nonce.to_owned(),
    }
}

fn tokens(plan: &Plan) -> Vec<ApprovedToken> {
    plan.tokens
        .values()
        .map(|t| ApprovedToken {
            token: t.id.to_string(),
            // A CCA token has no WK: the statement binds its new MKVPs instead.
            wkvp_new: match t.is_cca() {
                true => {
                    let each: Vec<String> = t
                        .mks
                        .iter()
                        .map(|(mk, p)| format!("{mk} {}", p.new))
                        .collect();
                    format!("CCA {}", each.join(", "))
                }
                false => t.wkvp_new.to_string(),
            },
        })
        .collect()
}

/// RFC 3339 UTC to the millisecond, always three decimals.
pub fn format_time(time: jiff::Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Checks `given` for `step` of `plan` at `now`, in order: form, key, signature, canonical
/// payload, name, plan, checkpoint, shown text, WKVPs, then the times.
pub fn accept(
    given: &SignedApproval,
    plan: &Plan,
    plan_sha256: &str,
    step: &Step,
    shown_sha256: &str,
    now: jiff::Timestamp,
) -> Result<Accepted, Refusal> {
    let [signature] = given.signatures.as_slice() else {
        return Err(Refusal::NotAnApproval);
    };
    if given.payload_type != APPROVAL_PAYLOAD_TYPE {
        return Err(Refusal::NotAnApproval);
    }
    let payload = STANDARD
        .decode(&given.payload)
        .map_err(|_| Refusal::NotAnApproval)?;
    let sig = STANDARD
        .decode(&signature.sig)
        .map_err(|_| Refusal::NotAnApproval)?;
    let approver = plan
        .change
        .approver_with_key(&signature.keyid)
        .ok_or_else(|| Refusal::UnknownKey {
            key_id: signature.keyid.clone(),
            listed: listed(plan),
        })?;
    verify(&approver.key, &payload, &sig).map_err(|()| Refusal::BadSignature {
        name: approver.name.clone(),
        key_id: short_id(&approver.key_id),
    })?;
    let statement: ApprovalStatement =
        serde_json::from_slice(&payload).map_err(|_| Refusal::NotCanonical)?;
    if serde_json::to_vec(&statement).ok().as_deref() != Some(payload.as_slice())
        || statement.statement_type != APPROVAL_TYPE
        || statement.keyid != signature.keyid
    {
        return Err(Refusal::NotCanonical);
    }
    if statement.approver != approver.name {
        return Err(Refusal::WrongName {
            named: statement.approver,
            name: approver.name.clone(),
        });
    }
    matches_run(&statement, plan, plan_sha256, step, shown_sha256)?;
    times(&statement, now)?;
    Ok(Accepted {
        approver: approver.name.clone(),
        key_id: approver.key_id.clone(),
        statement_sha256: sha256_hex(&payload),
        statement,
    })
}

/// `steps[3]`, as the journal names positions.
fn position(step: &Step) -> String {
    format!("{}[{}]", step.section.key(), step.index)
}

/// `30m`, `12h`, `7d` as seconds, at most 30 days.
pub fn parse_validity(text: &str) -> Result<i64, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * scale)
    {
        Some(s) if s > 0 && s <= MAX_VALIDITY_SECONDS => Ok(s),
        Some(s) if s > 0 => Err(format!(
            "--expires {text} is more than 30 days: an approval is for this change window"
        )),
        _ => Err(format!(
            "--expires {text}: give minutes, hours or days (`30m`, `12h`, `7d`)"
        )),
    }
}

/// [`accept`] now, at a checkpoint.
pub fn accept_now(
    given: &SignedApproval,
    plan: &Plan,
    plan_sha256: &str,
    step: &Step,
    shown_sha256: &str,
) -> Result<Accepted, Refusal> {
    accept(
        given,
        plan,
        plan_sha256,
        step,
        shown_sha256,
        jiff::Timestamp::now(),
    )
}

fn verify(key: &PublicKey, payload: &[u8], sig: &[u8]) -> Result<(), ()> {
    key.verify(&pae(APPROVAL_PAYLOAD_TYPE, payload), sig)
        .map_err(|_| ())
}

fn listed(plan: &Plan) -> String {
    plan.change
        .approver_keys
        .iter()
        .map(|a| format!("{} {}", a.name, short_id(&a.key_id)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn matches_run(
    statement: &ApprovalStatement,
    plan: &Plan,
    plan_sha256: &str,
    step: &Step,
    shown_sha256: &str,
) -> Result<(), Refusal> {
    if statement.plan_sha256 != plan_sha256 {
        return Err(Refusal::WrongPlan {
            theirs: statement.plan_sha256.clone(),
            plan_name: statement.plan_name.clone(),
            ours: plan_sha256.to_owned(),
        });
    }
    let position = position(step);
    if statement.checkpoint != position || statement.checkpoint_id != step.id {
        let show = |id: &Option<String>, at: &str| match id {
            Some(id) => format!("`{id}` ({at})"),
            None => at.to_owned(),
        };
        return Err(Refusal::WrongCheckpoint {
            theirs: show(&statement.checkpoint_id, &statement.checkpoint),
            ours: show(&step.id, &position),
        });
    }
    if statement.shown_sha256 != shown_sha256 {
        return Err(Refusal::WrongText(statement.shown_sha256.clone()));
    }
    let ours = tokens(plan);
    if statement.tokens != ours {
        let show = |t: &[ApprovedToken]| {
            t.iter()
                .map(|t| format!("{} {}", t.token, t.wkvp_new))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Refusal::WrongWkvp {
            theirs: show(&statement.tokens),
            ours: show(&ours),
        });
    }
    Ok(())
}

fn times(statement: &ApprovalStatement, now: jiff::Timestamp) -> Result<(), Refusal> {
    let parse = |text: &str| {
        text.parse::<jiff::Timestamp>()
            .map_err(|_| Refusal::BadTime(text.to_owned()))
    };
    let (issued, expires) = (parse(&statement.issued)?, parse(&statement.expires)?);
    let span = expires.as_second() - issued.as_second();
    if span <= 0 || span > MAX_VALIDITY_SECONDS {
        return Err(Refusal::Validity {
            issued: statement.issued.clone(),
            expires: statement.expires.clone(),
        });
    }
    if issued.as_second() > now.as_second() + CLOCK_SKEW_SECONDS {
        return Err(Refusal::Future(statement.issued.clone()));
    }
    if now >= expires {
        return Err(Refusal::Expired {
            expires: statement.expires.clone(),
            issued: statement.issued.clone(),
            name: statement.approver.clone(),
            checkpoint: statement
                .checkpoint_id
                .clone()
                .unwrap_or_else(|| statement.checkpoint.clone()),
        });
    }
    Ok(())
}

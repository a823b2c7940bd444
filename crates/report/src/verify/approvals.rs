//! The signed approvals a report carries, checked again: each statement's signature with
//! the approver key the (signed) report lists, and that it approves this plan's digest and
//! the checkpoint it is recorded at.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Check, check};
use crate::model::{ApprovalRecord, RunReport};
use mkplan_engine::signed_approval::{APPROVAL_PAYLOAD_TYPE, ApprovalStatement};
use mkplan_sig::{PublicKey, pae};

/// `approvals`, when the report carries a signed approval.
pub(super) fn check_signed(report: &RunReport) -> Option<Check> {
    let signed: Vec<&ApprovalRecord> = report
        .approvals
        .iter()
        .filter(|a| a.signed.is_some())
        .collect();
    if signed.is_empty() {
        return None;
    }
    let problems: Vec<String> = signed
        .iter()
        .filter_map(|a| statement(report, a).err())
        .collect();
    let result = if problems.is_empty() {
        let who: Vec<String> = signed
            .iter()
            .map(|a| {
                format!(
                    "{}: {}",
                    a.checkpoint_id.as_deref().unwrap_or(&a.checkpoint),
                    a.approver
                )
            })
            .collect();
        Ok(format!(
            "{} signed approval(s) verify with the approvers' keys and approve this plan ({})",
            signed.len(),
            who.join(", ")
        ))
    } else {
        Err(problems.join("; "))
    };
    Some(check("approvals", result))
}

fn statement(report: &RunReport, record: &ApprovalRecord) -> Result<(), String> {
    let at = format!("{} by {}", record.checkpoint, record.approver);
    let signed = record.signed.as_ref().ok_or_else(|| at.clone())?;
    let envelope = &signed.envelope;
    let [signature] = envelope.signatures.as_slice() else {
        return Err(format!("{at}: the statement has not exactly one signature"));
    };
    let key = report
        .plan
        .approver_keys
        .iter()
        .find(|k| k.key_id == signature.keyid && k.name == record.approver)
        .and_then(|k| PublicKey::from_pem(&k.public_key_pem).ok())
        .ok_or_else(|| {
            format!(
                "{at}: signed by key {}, which is not {}'s key in this report",
                signature.keyid, record.approver
            )
        })?;
    let payload = STANDARD
        .decode(&envelope.payload)
        .map_err(|e| format!("{at}: the payload is not base64 ({e})"))?;
    let sig = STANDARD
        .decode(&signature.sig)
        .map_err(|e| format!("{at}: the signature is not base64 ({e})"))?;
    if envelope.payload_type != APPROVAL_PAYLOAD_TYPE {
        return Err(format!("{at}: payloadType is `{}`", envelope.payload_type));
    }
    key.verify(&pae(APPROVAL_PAYLOAD_TYPE, &payload), &sig)
        .map_err(|e| format!("{at}: the statement's signature does not verify: {e}"))?;
    let statement: ApprovalStatement = serde_json::from_slice(&payload)
        .map_err(|e| format!("{at}: not an approval statement ({e})"))?;
    if statement.plan_sha256 != report.plan.sha256 || statement.checkpoint != record.checkpoint {
        return Err(format!(
            "{at}: the statement approves {} of plan sha256 {}",
            statement.checkpoint, statement.plan_sha256
        ));
    }
    Ok(())
}

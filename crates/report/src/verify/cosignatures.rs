//! The co-signatures of `report.dsse.json`: every signature after mkplan's is an approver's,
//! checked with the key the signed report lists for its keyid (so `--key`, which anchors the
//! report, anchors the approvers' keys too), and the plan's required co-signers counted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Check, check};
use crate::dsse::{Envelope, EnvelopeSignature, pae};
use crate::model::{ApproverKeyFacts, RunReport};
use mkplan_sig::{PublicKey, short_id};

/// Why a co-signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum CosignatureError {
    #[error(
        "signature {index} is by key {key_id}, which is no approver key of this report ({listed})"
    )]
    Unlisted {
        index: usize,
        key_id: String,
        listed: String,
    },
    #[error(
        "{name}: the report's key for {name} does not read as a public key, or has another id than {key_id}"
    )]
    BadListedKey { name: String, key_id: String },
    #[error("{name}: `sig` is not standard base64 ({source})")]
    NotBase64 {
        name: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{name}: the co-signature over the PAE does not verify: {source}")]
    Signature {
        name: String,
        #[source]
        source: mkplan_sig::SignatureError,
    },
}

/// One check per co-signature (`sig[1]`, …), then `cosigners` when the report has approver
/// keys, co-signatures or a requirement.
pub(super) fn checks(report: &RunReport, envelope: &Envelope) -> Vec<Check> {
    let Ok(payload) = envelope.payload_bytes() else {
        return Vec::new(); // the envelope check, which held, decoded it
    };
    let message = pae(&envelope.payload_type, &payload);
    let mut checks = Vec::new();
    let mut signed: Vec<&str> = Vec::new();
    for (index, signature) in envelope.signatures.iter().enumerate().skip(1) {
        let result = cosignature(report, index, signature, &message);
        if let Ok(approver) = &result {
            signed.push(&approver.name);
        }
        checks.push(check(
            format!("  sig[{index}]"),
            result.map(|a| {
                format!(
                    "{}: approver key {}, {}",
                    a.name,
                    a.key_id,
                    mkplan_sig::Algorithm::from_name(&a.algorithm)
                        .map_or(a.algorithm.as_str(), |alg| alg.describe())
                )
            }),
        ));
    }
    if report.plan.approver_keys.is_empty() && report.cosigning.is_none() && checks.is_empty() {
        return checks;
    }
    checks.insert(0, mkplan_signer(report, envelope));
    checks.push(cosigners(report, &signed));
    checks
}

/// An approver whose co-signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub key_id: String,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: String,
}

/// The approvers whose co-signature in `envelope` verifies, in envelope order; a signature
/// that does not verify is left out (what `report verify` reports as failed).
pub fn verified(report: &RunReport, envelope: &Envelope) -> Vec<Cosigner> {
    let Ok(payload) = envelope.payload_bytes() else {
        return Vec::new();
    };
    let message = pae(&envelope.payload_type, &payload);
    envelope
        .signatures
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(index, signature)| cosignature(report, index, signature, &message).ok())
        .map(|a| Cosigner {
            name: a.name.clone(),
            key_id: a.key_id.clone(),
            algorithm: a.algorithm.clone(),
        })
        .collect()
}

/// `sig[0]`, which the envelope check verified: who it is.
fn mkplan_signer(report: &RunReport, envelope: &Envelope) -> Check {
    let signing = &report.signing;
    let key = signing
        .key
        .as_deref()
        .map_or(String::new(), |k| format!(" {k}"));
    let algorithm = mkplan_sig::Algorithm::from_name(&signing.algorithm)
        .map_or(signing.algorithm.as_str(), |a| a.describe());
    check(
        "  sig[0]",
        Ok::<_, String>(format!(
            "mkplan's report signer ({}{key}), {algorithm}, key id {}",
            signing.method,
            envelope.signatures.first().map_or("", |s| s.keyid.as_str())
        )),
    )
}

fn cosignature<'r>(
    report: &'r RunReport,
    index: usize,
    signature: &EnvelopeSignature,
    message: &[u8],
) -> Result<&'r ApproverKeyFacts, CosignatureError> {
    let keys = &report.plan.approver_keys;
    let approver = keys
        .iter()
        .find(|a| a.key_id == signature.keyid)
        .ok_or_else(|| CosignatureError::Unlisted {
            index,
            key_id: signature.keyid.clone(),
            listed: listed(keys),
        })?;
    let name = approver.name.clone();
    let public = PublicKey::from_pem(&approver.public_key_pem)
        .ok()
        .filter(|k| k.key_id() == approver.key_id)
        .ok_or_else(|| CosignatureError::BadListedKey {
            name: name.clone(),
            key_id: approver.key_id.clone(),
        })?;
    let bytes = STANDARD
        .decode(&signature.sig)
        .map_err(|source| CosignatureError::NotBase64 {
            name: name.clone(),
            source,
        })?;
    public
        .verify(message, &bytes)
        .map_err(|source| CosignatureError::Signature { name, source })?;
    Ok(approver)
}

fn listed(keys: &[ApproverKeyFacts]) -> String {
    if keys.is_empty() {
        return "it lists none".to_owned();
    }
    keys.iter()
        .map(|a| format!("{} {}", a.name, short_id(&a.key_id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the co-signatures the plan requires are there (`signed`: the approvers whose
/// co-signature verified).
fn cosigners(report: &RunReport, signed: &[&str]) -> Check {
    let Some(cosigning) = &report.cosigning else {
        return check(
            "cosigners",
            Ok::<_, String>(format!(
                "the plan requires no co-signatures; {} verified ({})",
                signed.len(),
                if signed.is_empty() {
                    "none".to_owned()
                } else {
                    signed.join(", ")
                }
            )),
        );
    };
    let counted: Vec<&str> = signed
        .iter()
        .copied()
        .filter(|name| cosigning.by.iter().any(|b| b == name))
        .collect();
    let required = cosigning.required as usize;
    let of = format!("report.cosign: {required} of {}", cosigning.by.join(", "));
    if counted.len() >= required {
        return check(
            "cosigners",
            Ok::<_, String>(format!(
                "{} of {required} required co-signatures ({of}): {}",
                counted.len(),
                counted.join(", ")
            )),
        );
    }
    let still: Vec<&str> = cosigning
        .by
        .iter()
        .map(String::as_str)
        .filter(|name| !counted.contains(name))
        .collect();
    let mut missing = check(
        "cosigners",
        Ok::<_, String>(format!(
            "{} of {required} required co-signatures ({of}); signed: {}; still needed: {} more of {} — mkplan report cosign {} --key KEY",
            counted.len(),
            if counted.is_empty() {
                "nobody".to_owned()
            } else {
                counted.join(", ")
            },
            required - counted.len(),
            still.join(", "),
            report.run.id
        )),
    );
    missing.missing = true;
    missing
}

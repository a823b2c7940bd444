//! `report.dsse.json`: an in-toto Statement v1 about `report.json` in a DSSE envelope, so
//! supply-chain tooling and a shell with jq, base64 and openssl can both check it.
//!
//! PAE (pre-authentication encoding, DSSE v1): `"DSSEv1" SP len(type) SP type SP len(body)
//! SP body`, lengths as decimal byte counts. Standard base64 with padding, never URL-safe
//! (`base64 -d` must decode it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::RunReport;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://mkplan.dev/run-report/v1";
/// The subject's name: the report beside the envelope.
pub const SUBJECT: &str = "report.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// base64 of the Statement's exact bytes.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// SHA-256 of the signer's DER SubjectPublicKeyInfo, hex.
    pub keyid: String,
    /// base64 of the signature over the PAE (DER ECDSA, or raw Ed25519).
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub name: String,
    pub digest: SubjectDigest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectDigest {
    pub sha256: String,
}

/// What the statement says about the run, beyond the report's digest: enough to match an
/// envelope with a run without opening the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub report_version: u32,
    pub run_id: String,
    pub outcome: String,
    pub rehearsal: bool,
    pub plan_sha256: String,
    pub journal_head: String,
    pub journal_events: u64,
}

impl Statement {
    pub fn about(report: &RunReport, report_bytes: &[u8]) -> Self {
        Self {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![Subject {
                name: SUBJECT.to_owned(),
                digest: SubjectDigest {
                    sha256: hex::encode(Sha256::digest(report_bytes)),
                },
            }],
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: Predicate::of(report),
        }
    }

    /// The payload bytes: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("statements serialise")
    }
}

impl Predicate {
    pub fn of(report: &RunReport) -> Self {
        Self {
            report_version: report.report_version,
            run_id: report.run.id.clone(),
            outcome: report.run.outcome.clone(),
            rehearsal: report.run.rehearsal,
            plan_sha256: report.plan.sha256.clone(),
            journal_head: report.journal.head.clone(),
            journal_events: report.journal.events,
        }
    }
}

pub use mkplan_sig::pae;

impl Envelope {
    pub fn new(payload: &[u8], keyid: String, signature: &[u8]) -> Self {
        Self {
            payload_type: PAYLOAD_TYPE.to_owned(),
            payload: STANDARD.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid,
                sig: STANDARD.encode(signature),
            }],
        }
    }

    /// The file's exact bytes: compact JSON and a newline. `verify` requires a file to be
    /// exactly this form, so an edit that JSON parsing would forgive is still caught.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("envelopes serialise");
        bytes.push(b'\n');
        bytes
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>, NotBase64> {
        STANDARD.decode(&self.payload).map_err(|source| NotBase64 {
            field: "payload",
            source,
        })
    }
}

pub fn decode_signature(signature: &EnvelopeSignature) -> Result<Vec<u8>, NotBase64> {
    STANDARD.decode(&signature.sig).map_err(|source| NotBase64 {
        field: "signatures[0].sig",
        source,
    })
}

/// A field of the envelope that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("`{field}` is not standard base64: {source}")]
pub struct NotBase64 {
    field: &'static str,
    #[source]
    source: base64::DecodeError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_use_standard_padded_base64() {
        let envelope = Envelope::new(b"\xfb\xff", "k".to_owned(), b"\xff\xfe\xfd\xfc");
        assert_eq!(envelope.payload, "+/8=");
        assert_eq!(envelope.signatures[0].sig, "//79/A==");
        let text = String::from_utf8(envelope.to_bytes()).unwrap();
        assert_eq!(
            text,
            "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"+/8=\",\"signatures\":[{\"keyid\":\"k\",\"sig\":\"//79/A==\"}]}\n"
        );
    }
}

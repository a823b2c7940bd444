//! `mkplan report cosign`: an approver adds their signature to `report.dsse.json`, over the
//! very PAE mkplan signed (the payload is not touched, so every other signature stays valid).
//! Only a report that verifies is co-signed, only with a key the signed report lists as an
//! approver's, and each key once.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::dsse::{Envelope, EnvelopeSignature, pae};
use crate::model::{ReportParseError, RunReport};
use crate::sign::{ReportSigner, SignError};
use crate::verify::{MAX_COSIGNATURES, Verification, verify};
use crate::{REPORT_DSSE, REPORT_JSON, ReportError, write_atomically};
use mkplan_engine::access::Access;
use mkplan_sig::short_id;

/// Held while co-signing, so two approvers on one host cannot lose a signature.
pub const COSIGN_LOCK: &str = "report.lock";

/// Why the report was not co-signed.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error(
        "will not co-sign: the report in `{}` does not verify ({failed}); a co-signature would vouch for it",
        dir.display()
    )]
    NotVerified { dir: PathBuf, failed: String },
    #[error(
        "key {key_id} is not an approver key of this report's plan ({listed}); co-signers are the plan's `change.approvers` with a key"
    )]
    NotAnApprover { key_id: String, listed: String },
    #[error("the envelope already has {0} co-signatures, the most a report takes")]
    Full(usize),
    #[error("cannot lock `{}`: {source}", file.display())]
    Lock {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{REPORT_JSON}: {0}")]
    Report(#[source] ReportParseError),
    #[error("{REPORT_DSSE}: {0}")]
    Envelope(String),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Write(#[from] ReportError),
}

/// What co-signing did.
#[derive(Debug)]
pub struct Cosigned {
    /// The approver the key belongs to.
    pub name: String,
    pub key_id: String,
    /// The key had signed already: nothing was written.
    pub already: bool,
    /// The report verified again afterwards (says what co-signatures are still needed).
    pub verification: Verification,
}

/// Co-signs the report in `dir` with `signer`, once `confirm(approver, report)` agrees.
/// `confirm` returning false leaves everything as it was.
pub fn cosign(
    dir: &Path,
    signer: &ReportSigner,
    confirm: &dyn Fn(&str, &RunReport) -> bool,
) -> Result<Option<Cosigned>, CosignError> {
    let _lock = lock(dir)?;
    let before = verify(dir, None);
    if !before.authentic() {
        let failed: Vec<String> = before
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name.trim(), c.detail))
            .collect();
        return Err(CosignError::NotVerified {
            dir: dir.to_owned(),
            failed: failed.join("; "),
        });
    }
    let bytes =
        crate::verify::read(dir, REPORT_JSON).map_err(|e| CosignError::Envelope(e.to_string()))?;
    let report = RunReport::from_bytes(&bytes).map_err(CosignError::Report)?;
    let key_id = signer.public().key_id();
    let Some(approver) = report
        .plan
        .approver_keys
        .iter()
        .find(|a| a.key_id == key_id)
    else {
        let listed = report
            .plan
            .approver_keys
            .iter()
            .map(|a| format!("{} {}", a.name, short_id(&a.key_id)))
            .collect::<Vec<_>>();
        return Err(CosignError::NotAnApprover {
            key_id,
            listed: if listed.is_empty() {
                "it lists none".to_owned()
            } else {
                listed.join(", ")
            },
        });
    };
    let name = approver.name.clone();
    let envelope_bytes =
        crate::verify::read(dir, REPORT_DSSE).map_err(|e| CosignError::Envelope(e.to_string()))?;
    let mut envelope: Envelope = serde_json::from_slice(&envelope_bytes)
        .map_err(|e| CosignError::Envelope(e.to_string()))?;
    let already = envelope.signatures.iter().any(|s| s.keyid == key_id);
    if !already {
        if envelope.signatures.len() > MAX_COSIGNATURES {
            return Err(CosignError::Full(envelope.signatures.len() - 1));
        }
        if !confirm(&name, &report) {
            return Ok(None);
        }
        let payload = envelope
            .payload_bytes()
            .map_err(|e| CosignError::Envelope(e.to_string()))?;
        let signature = signer.sign(&pae(&envelope.payload_type, &payload))?;
        envelope.signatures.push(EnvelopeSignature {
            keyid: key_id.clone(),
            sig: STANDARD.encode(signature),
        });
        let access = Access::inside(dir).map_err(|source| ReportError::RunDirMode {
            dir: dir.to_owned(),
            source,
        })?;
        write_atomically(&dir.join(REPORT_DSSE), &envelope.to_bytes(), &|file| {
            access.apply(file)
        })?;
    }
    Ok(Some(Cosigned {
        name,
        key_id,
        already,
        verification: verify(dir, None),
    }))
}

fn lock(dir: &Path) -> Result<File, CosignError> {
    let file = dir.join(COSIGN_LOCK);
    let fail = |source| CosignError::Lock {
        file: file.clone(),
        source,
    };
    let handle = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&file)
        .map_err(fail)?;
    handle.lock().map_err(fail)?;
    Ok(handle)
}

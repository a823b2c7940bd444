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
use crate::model::{ApproverKeyFacts, ReportParseError, RunReport};
use crate::sign::{PublicKey, ReportSigner, SignError};
use crate::verify::{MAX_COSIGNATURES, Verification, cosigners_of, verify};
use crate::{REPORT_DSSE, REPORT_HTML, REPORT_JSON, ReportError, SIGNER_PUB, write_atomically};
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
    #[error(
        "the signature does not verify over this report's PAE with any approver key it lists ({listed}): make it over `report.pae` of this very report, as the README shows (`mkplan report cosign --from`)"
    )]
    DetachedDoesNotVerify { listed: String },
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
    #[error("{SIGNER_PUB}: {0}")]
    SignerKey(String),
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

/// Where a co-signature comes from.
pub enum Source<'a> {
    /// Made here, with the approver's key (a file or a PKCS#11 token).
    Key(&'a ReportSigner),
    /// Made elsewhere over the envelope's PAE (`report cosign --from FILE`): the raw
    /// signature bytes (DER ECDSA or raw Ed25519), checked against every approver key.
    Detached(&'a [u8]),
}

/// Co-signs the report in `dir`, once `confirm(approver, report)` agrees (`confirm`
/// returning false leaves everything as it was), then renders `report.html` again so its
/// signature block names every co-signer.
pub fn cosign(
    dir: &Path,
    source: Source<'_>,
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
    let envelope_bytes =
        crate::verify::read(dir, REPORT_DSSE).map_err(|e| CosignError::Envelope(e.to_string()))?;
    let mut envelope: Envelope = serde_json::from_slice(&envelope_bytes)
        .map_err(|e| CosignError::Envelope(e.to_string()))?;
    let payload = envelope
        .payload_bytes()
        .map_err(|e| CosignError::Envelope(e.to_string()))?;
    let message = pae(&envelope.payload_type, &payload);
    let approver = match &source {
        Source::Key(signer) => approver_of(&report, &signer.public().key_id())?,
        Source::Detached(signature) => signed_by(&report, &message, signature)?,
    };
    let (name, key_id) = (approver.name.clone(), approver.key_id.clone());
    let already = envelope.signatures.iter().any(|s| s.keyid == key_id);
    if !already {
        if envelope.signatures.len() > MAX_COSIGNATURES {
            return Err(CosignError::Full(envelope.signatures.len() - 1));
        }
        if !confirm(&name, &report) {
            return Ok(None);
        }
        let signature = match source {
            Source::Key(signer) => signer.sign(&message)?,
            Source::Detached(signature) => signature.to_vec(),
        };
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
    // The page is derived from the signed files and covered by no signature: rendering it
    // again changes no digest. mkplan's key is the one the verification above held.
    let signer_pem =
        crate::verify::read(dir, SIGNER_PUB).map_err(|e| CosignError::SignerKey(e.to_string()))?;
    let mkplan_key = std::str::from_utf8(&signer_pem)
        .ok()
        .and_then(|pem| PublicKey::from_pem(pem).ok())
        .ok_or_else(|| CosignError::SignerKey("not a public key".to_owned()))?;
    let html = crate::html::render(
        &report,
        mkplan_key.algorithm(),
        &mkplan_key.key_id(),
        &cosigners_of(&report, &envelope),
    );
    let access = Access::inside(dir).map_err(|source| ReportError::RunDirMode {
        dir: dir.to_owned(),
        source,
    })?;
    write_atomically(&dir.join(REPORT_HTML), html.as_bytes(), &|file| {
        access.apply(file)
    })?;
    Ok(Some(Cosigned {
        name,
        key_id,
        already,
        verification: verify(dir, None),
    }))
}

/// The approver the signed report lists with `key_id`.
fn approver_of<'r>(
    report: &'r RunReport,
    key_id: &str,
) -> Result<&'r ApproverKeyFacts, CosignError> {
    report
        .plan
        .approver_keys
        .iter()
        .find(|a| a.key_id == key_id)
        .ok_or_else(|| CosignError::NotAnApprover {
            key_id: key_id.to_owned(),
            listed: listed(report),
        })
}

/// The approver whose listed key verifies `signature` over `message` (the PAE).
fn signed_by<'r>(
    report: &'r RunReport,
    message: &[u8],
    signature: &[u8],
) -> Result<&'r ApproverKeyFacts, CosignError> {
    report
        .plan
        .approver_keys
        .iter()
        .find(|a| {
            PublicKey::from_pem(&a.public_key_pem)
                .ok()
                .filter(|k| k.key_id() == a.key_id)
                .is_some_and(|k| k.verify(message, signature).is_ok())
        })
        .ok_or_else(|| CosignError::DetachedDoesNotVerify {
            listed: listed(report),
        })
}

fn listed(report: &RunReport) -> String {
    let listed = report
        .plan
        .approver_keys
        .iter()
        .map(|a| format!("{} {}", a.name, short_id(&a.key_id)))
        .collect::<Vec<_>>();
    if listed.is_empty() {
        "it lists none".to_owned()
    } else {
        listed.join(", ")
    }
}

/// A detached signature file's bytes: base64 text (one line, as `openssl … | base64`
/// writes it) is decoded; anything else is taken as the raw signature.
pub fn detached_signature(file: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = file
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let base64_text = !text.is_empty()
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    match base64_text.then(|| STANDARD.decode(&text).ok()).flatten() {
        Some(decoded) => decoded,
        None => file.to_vec(),
    }
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

/// The co-signatures of the envelope already in `run_dir`, to keep in a rebuilt one whose
/// statement is `statement`: all of them when they sign these very bytes, none when there
/// are none; an error (nothing may be written) when the statement changed under them.
pub(crate) fn kept_cosignatures(
    run_dir: &Path,
    plan: &mkplan_plan::Plan,
    statement: &[u8],
) -> Result<Vec<EnvelopeSignature>, ReportError> {
    let file = run_dir.join(REPORT_DSSE);
    if !file.exists() {
        return Ok(Vec::new());
    }
    let unreadable = |why: String| ReportError::EnvelopeUnreadable {
        file: file.clone(),
        why,
    };
    let bytes = crate::verify::read(run_dir, REPORT_DSSE).map_err(|e| unreadable(e.to_string()))?;
    let envelope: Envelope =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    let cosignatures: Vec<EnvelopeSignature> =
        envelope.signatures.iter().skip(1).cloned().collect();
    if cosignatures.is_empty() {
        return Ok(Vec::new());
    }
    let same = envelope.payload_type == crate::dsse::PAYLOAD_TYPE
        && envelope.payload_bytes().is_ok_and(|p| p == statement);
    if same {
        return Ok(cosignatures);
    }
    let who: Vec<String> = cosignatures
        .iter()
        .map(|s| {
            plan.change
                .approver_keys
                .iter()
                .find(|a| a.key_id == s.keyid)
                .map_or_else(|| format!("key {}", short_id(&s.keyid)), |a| a.name.clone())
        })
        .collect();
    Err(ReportError::CosignaturesWouldBeLost {
        file,
        count: cosignatures.len(),
        who: who.join(", "),
    })
}

/// What [`mirror`] found at the other copy of a report.
#[derive(Debug, PartialEq, Eq)]
pub enum Mirrored {
    /// Its envelope and page now carry the co-signatures.
    Updated,
    /// It already had this envelope.
    Current,
    /// It holds another report.json (rebuilt since, or another run's): left as it was.
    OtherReport,
}

/// Brings the other copy of a co-signed report (the run directory's, or the evidence package
/// under the plan's `report.dir`) up to date with `from`: its envelope and page are replaced
/// only when it holds the very report.json `from` holds, each file keeping the mode it has
/// there (the package's files have the plan's `report.mode`, not the run directory's).
pub fn mirror(from: &Path, to: &Path) -> Result<Mirrored, CosignError> {
    let read = |dir: &Path, name: &str| {
        crate::verify::read(dir, name).map_err(|e| CosignError::Envelope(e.to_string()))
    };
    if read(from, REPORT_JSON)? != read(to, REPORT_JSON)? {
        return Ok(Mirrored::OtherReport);
    }
    let envelope = read(from, REPORT_DSSE)?;
    if read(to, REPORT_DSSE)? == envelope {
        return Ok(Mirrored::Current);
    }
    for (name, bytes) in [
        (REPORT_DSSE, envelope),
        (REPORT_HTML, read(from, REPORT_HTML)?),
    ] {
        let target = to.join(name);
        let mode = std::fs::metadata(&target)
            .map(|m| m.permissions())
            .map_err(|source| ReportError::Write {
                file: target.clone(),
                source,
            })?;
        write_atomically(&target, &bytes, &|file| file.set_permissions(mode.clone()))?;
    }
    Ok(Mirrored::Updated)
}

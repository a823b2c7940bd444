//! `mkplan report verify`: everything an auditor would check by hand, in one command — the
//! signature over `report.json`, the DSSE envelope's agreement with it, the journal's hash
//! chain against the head and event count the report records, the plan digest, and the key
//! lists' digests.
//!
//! Every check runs and is reported, each with the precise reason when it fails; the report
//! verifies only if all hold.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dsse::NotBase64;
use crate::dsse::{
    Envelope, PAYLOAD_TYPE, PREDICATE_TYPE, Predicate, STATEMENT_TYPE, SUBJECT, Statement,
    decode_signature, pae,
};
use crate::model::{KeyFileFacts, ReportParseError, RunReport};
use crate::sign::{NotAPublicKey, PublicKey, SignatureError};
use crate::{REPORT_DSSE, REPORT_JSON, REPORT_SIG, SIGNER_PUB};

mod approvals;
mod cosignatures;

use mkplan_engine::journal::{JournalError, read_verified};
use mkplan_engine::rundir::PLAN_COPY;

pub use cosignatures::{Cosigner, verified as cosigners_of};

/// Why a check does not hold: the precise reason an auditor reads.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read `{name}`: {source}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the public key `{}`: {source}", path.display())]
    KeyUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the public key `{}`: {source}", path.display())]
    NotAKey {
        path: PathBuf,
        #[source]
        source: NotAPublicKey,
    },
    #[error("{REPORT_SIG} does not verify over {REPORT_JSON} with {key}: {source}")]
    Signature {
        key: String,
        #[source]
        source: SignatureError,
    },
    #[error("{REPORT_JSON}: {0}")]
    Report(#[source] ReportParseError),
    #[error("{REPORT_DSSE} is not a DSSE envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("{REPORT_DSSE} is not byte for byte as mkplan writes it: it was edited")]
    EnvelopeEdited,
    #[error("payloadType is `{0}`, not `{PAYLOAD_TYPE}`")]
    PayloadType(String),
    #[error(
        "the envelope has {0} signatures; mkplan's comes first, then at most {MAX_COSIGNATURES} co-signatures"
    )]
    SignatureCount(usize),
    #[error(
        "the envelope's first keyid {envelope} is not the verifying key's id {key} (mkplan's signature comes first)"
    )]
    KeyId { envelope: String, key: String },
    #[error("signatures {first} and {again} are both by key {key_id}: a key signs once")]
    DuplicateKey {
        first: usize,
        again: usize,
        key_id: String,
    },
    #[error(transparent)]
    Base64(#[from] NotBase64),
    #[error("the envelope's signature over the PAE does not verify: {0}")]
    EnvelopeSignature(#[source] SignatureError),
    #[error("the payload is not an in-toto Statement: {0}")]
    NotAStatement(#[source] serde_json::Error),
    #[error(
        "the statement is `{statement_type}` / `{predicate_type}`, not `{STATEMENT_TYPE}` / `{PREDICATE_TYPE}`"
    )]
    StatementType {
        statement_type: String,
        predicate_type: String,
    },
    #[error(
        "the statement's subject is `{name}` sha256 {recorded}, but {REPORT_JSON} has sha256 {digest}"
    )]
    Subject {
        name: String,
        recorded: String,
        digest: String,
    },
    #[error("the statement has {0} subjects; mkplan writes exactly one")]
    SubjectCount(usize),
    #[error(
        "the statement's predicate (run, outcome, plan digest, journal head) differs from {REPORT_JSON}"
    )]
    Predicate,
    #[error(
        "the report names the journal `{0}`, which is not a plain path inside the report's directory"
    )]
    JournalPath(String),
    #[error("the hash chain does not hold: {0}")]
    Chain(#[source] JournalError),
    #[error("`{0}` ends in a torn line (bytes after the last complete event)")]
    TornTail(String),
    #[error(
        "`{path}` has {events} events ending in {head}, but the report records {recorded_events} events ending in {recorded_head}"
    )]
    JournalDiffers {
        path: String,
        events: u64,
        head: String,
        recorded_events: u64,
        recorded_head: String,
    },
    #[error("`{path}` event {seq} belongs to run `{run}`, not `{expected}`")]
    ForeignEvent {
        path: String,
        seq: u64,
        run: String,
        expected: String,
    },
    #[error("{PLAN_COPY} has sha256 {digest}, but the report records {recorded}")]
    PlanDigest { digest: String, recorded: String },
    #[error("the report names the key list `{0}`, which is not a plain file name")]
    KeyListPath(String),
    #[error("key list `{name}` has sha256 {digest}, but the report records {recorded}")]
    KeyListDigest {
        name: String,
        digest: String,
        recorded: String,
    },
    /// A check that needs `report.json`, which did not read.
    #[error("not checked: {REPORT_JSON} is unreadable")]
    ReportUnreadable,
}

/// One check and its result.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    /// Nothing found fails (a check that is `missing` can still be `ok`).
    pub ok: bool,
    /// What it checked holds, but something the plan requires is absent: co-signatures.
    pub missing: bool,
    pub detail: String,
    /// Something to know even when the check holds.
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Verification {
    pub dir: PathBuf,
    pub checks: Vec<Check>,
}

impl Verification {
    /// Everything holds and nothing required is missing.
    pub fn ok(&self) -> bool {
        self.authentic() && !self.incomplete()
    }

    /// Nothing fails to verify (required co-signatures may still be missing).
    pub fn authentic(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Authentic, but co-signatures the plan requires are missing.
    pub fn incomplete(&self) -> bool {
        self.authentic() && self.checks.iter().any(|c| c.missing)
    }

    /// One line per check, notes indented below.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let mark = match (check.ok, check.missing) {
                (false, _) => "FAILED",
                (true, true) => "MISSING",
                (true, false) => "ok    ",
            };
            out.push_str(&format!("{mark:<7} {:<9} {}\n", check.name, check.detail));
            if let Some(note) = &check.note {
                out.push_str(&format!("                  note: {note}\n"));
            }
        }
        if self.ok() {
            out.push_str(&format!("verified: {}\n", self.dir.display()));
        } else if self.incomplete() {
            out.push_str(&format!(
                "INCOMPLETE: {} (authentic; required co-signatures are missing)\n",
                self.dir.display()
            ));
        } else {
            let failed: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.trim())
                .collect();
            out.push_str(&format!(
                "NOT VERIFIED: {} ({} failed)\n",
                self.dir.display(),
                failed.join(", ")
            ));
        }
        out
    }
}

/// A check from what it found, or why it does not hold (an earlier check's reason may be
/// given again, so anything that reads as a reason will do).
pub(crate) fn check(
    name: impl Into<String>,
    result: Result<String, impl std::fmt::Display>,
) -> Check {
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(reason) => (false, reason.to_string()),
    };
    Check {
        name: name.into(),
        ok,
        missing: false,
        detail,
        note: None,
    }
}

pub(crate) fn read(dir: &Path, name: &str) -> Result<Vec<u8>, VerifyError> {
    mkplan_plan::input::read(&dir.join(name), mkplan_plan::input::REPORT).map_err(|source| {
        VerifyError::Read {
            name: name.to_owned(),
            source,
        }
    })
}

/// Verifies the report in `dir`, with `key` or else the `signer.pub.pem` beside it.
pub fn verify(dir: &Path, key: Option<&Path>) -> Verification {
    let mut checks = Vec::new();
    let report_bytes = read(dir, REPORT_JSON);
    let public = load_key(dir, key);

    // 1. The signature over the exact bytes.
    let mut signature = check(
        "signature",
        match (&report_bytes, &public) {
            (Ok(bytes), Ok((public, source))) => read(dir, REPORT_SIG).and_then(|sig| {
                public
                    .verify(bytes, &sig)
                    .map(|()| {
                        format!(
                            "{REPORT_SIG} verifies over {REPORT_JSON} with {source} ({}, key id {})",
                            public.algorithm().describe(),
                            public.key_id()
                        )
                    })
                    .map_err(|e| VerifyError::Signature {
                        key: source.clone(),
                        source: e,
                    })
            })
            .map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        },
    );
    if signature.ok && key.is_none() {
        signature.note = Some(format!(
            "{SIGNER_PUB} lies beside the report, so this proves integrity only against that key: compare its key id with the signer's, or pass --key with the public key you trust"
        ));
    }
    if let (Some(_), Ok((public, _))) = (key, &public)
        && let Ok((beside, _)) = load_key(dir, None)
        && beside.key_id() != public.key_id()
    {
        signature.note = Some(format!(
            "the {SIGNER_PUB} beside the report is another key (id {}): it was replaced",
            beside.key_id()
        ));
    }
    checks.push(signature);

    // 2. The report itself.
    let report = report_bytes.and_then(|b| {
        RunReport::from_bytes(&b)
            .map(|r| (r, b))
            .map_err(VerifyError::Report)
    });
    checks.push(check(
        "report",
        report.as_ref().map(|(r, _)| {
            format!(
                "{REPORT_JSON} is an mkplan run report, version {}: run {}, {}",
                r.report_version, r.run.id, r.run.outcome
            )
        }),
    ));

    // 3. The DSSE envelope, then each co-signature in it.
    let envelope = match (&report, &public) {
        (Ok((report, bytes)), Ok((public, _))) => {
            envelope(dir, report, bytes, public).map_err(|e| e.to_string())
        }
        (Err(_), _) => Err(VerifyError::ReportUnreadable.to_string()),
        (_, Err(e)) => Err(format!("not checked: {e}")),
    };
    match envelope {
        Ok((detail, envelope)) => {
            checks.push(check("envelope", Ok::<_, String>(detail)));
            if let Ok((report, _)) = &report {
                checks.extend(cosignatures::checks(report, &envelope));
            }
        }
        Err(reason) => checks.push(check("envelope", Err(reason))),
    }

    // The signed approvals it carries.
    if let Ok((report, _)) = &report {
        checks.extend(approvals::check_signed(report));
    }

    // 4. The journal's chain against what the report recorded.
    checks.push(check(
        "journal",
        match &report {
            Ok((report, _)) => journal(dir, report),
            Err(_) => Err(VerifyError::ReportUnreadable),
        },
    ));

    // 5. The plan copy against the recorded digest.
    checks.push(check(
        "plan",
        match &report {
            Ok((report, _)) => plan(dir, report),
            Err(_) => Err(VerifyError::ReportUnreadable),
        },
    ));

    // 6. The key inventories' side files against their recorded digests.
    checks.push(check(
        "key lists",
        match &report {
            Ok((report, _)) => key_lists(dir, report),
            Err(_) => Err(VerifyError::ReportUnreadable),
        },
    ));
    Verification {
        dir: dir.to_owned(),
        checks,
    }
}

/// The public key and how to name where it came from.
pub(crate) fn load_key(dir: &Path, key: Option<&Path>) -> Result<(PublicKey, String), VerifyError> {
    let (path, source) = match key {
        Some(path) => (path.to_owned(), format!("--key {}", path.display())),
        None => (
            dir.join(SIGNER_PUB),
            format!("{SIGNER_PUB} beside the report"),
        ),
    };
    let text =
        mkplan_plan::input::read_to_string(&path, mkplan_plan::input::KEY).map_err(|source| {
            VerifyError::KeyUnreadable {
                path: path.clone(),
                source,
            }
        })?;
    let public =
        PublicKey::from_pem(&text).map_err(|source| VerifyError::NotAKey { path, source })?;
    Ok((public, source))
}

/// At most this many co-signatures besides mkplan's (the most a plan can require).
pub const MAX_COSIGNATURES: usize = 16;

fn envelope(
    dir: &Path,
    report: &RunReport,
    report_bytes: &[u8],
    public: &PublicKey,
) -> Result<(String, Envelope), VerifyError> {
    let bytes = read(dir, REPORT_DSSE)?;
    let envelope: Envelope = serde_json::from_slice(&bytes).map_err(VerifyError::NotAnEnvelope)?;
    if envelope.to_bytes() != bytes {
        return Err(VerifyError::EnvelopeEdited);
    }
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType(envelope.payload_type.clone()));
    }
    let count = envelope.signatures.len();
    let Some(signature) = envelope
        .signatures
        .first()
        .filter(|_| count <= MAX_COSIGNATURES + 1)
    else {
        return Err(VerifyError::SignatureCount(count));
    };
    for (again, later) in envelope.signatures.iter().enumerate() {
        if let Some(first) = envelope.signatures[..again]
            .iter()
            .position(|s| s.keyid == later.keyid)
        {
            return Err(VerifyError::DuplicateKey {
                first,
                again,
                key_id: later.keyid.clone(),
            });
        }
    }
    if signature.keyid != public.key_id() {
        return Err(VerifyError::KeyId {
            envelope: signature.keyid.clone(),
            key: public.key_id(),
        });
    }
    let payload = envelope.payload_bytes()?;
    public
        .verify(
            &pae(&envelope.payload_type, &payload),
            &decode_signature(signature)?,
        )
        .map_err(VerifyError::EnvelopeSignature)?;
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(VerifyError::NotAStatement)?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(VerifyError::StatementType {
            statement_type: statement.statement_type,
            predicate_type: statement.predicate_type,
        });
    }
    let digest = hex::encode(Sha256::digest(report_bytes));
    match statement.subject.as_slice() {
        [subject] if subject.name == SUBJECT && subject.digest.sha256 == digest => {}
        [subject] => {
            return Err(VerifyError::Subject {
                name: subject.name.clone(),
                recorded: subject.digest.sha256.clone(),
                digest,
            });
        }
        other => return Err(VerifyError::SubjectCount(other.len())),
    }
    if statement.predicate != Predicate::of(report) {
        return Err(VerifyError::Predicate);
    }
    let signatures = match count {
        1 => "1 signature".to_owned(),
        n => format!(
            "{n} signatures (mkplan's and {} co-signature(s), below)",
            n - 1
        ),
    };
    let detail = format!(
        "{REPORT_DSSE} is signed by the same key and its in-toto statement names {REPORT_JSON} sha256 {digest}; {signatures}"
    );
    Ok((detail, envelope))
}

fn journal(dir: &Path, report: &RunReport) -> Result<String, VerifyError> {
    let relative = Path::new(&report.journal.path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(VerifyError::JournalPath(report.journal.path.clone()));
    }
    let verified = read_verified(&dir.join(relative)).map_err(VerifyError::Chain)?;
    if verified.torn_tail_at.is_some() {
        return Err(VerifyError::TornTail(report.journal.path.clone()));
    }
    let events = verified.entries.len() as u64;
    if events != report.journal.events || verified.head != report.journal.head {
        return Err(VerifyError::JournalDiffers {
            path: report.journal.path.clone(),
            events,
            head: verified.head,
            recorded_events: report.journal.events,
            recorded_head: report.journal.head.clone(),
        });
    }
    if let Some(other) = verified.entries.iter().find(|e| e.run != report.run.id) {
        return Err(VerifyError::ForeignEvent {
            path: report.journal.path.clone(),
            seq: other.seq,
            run: other.run.clone(),
            expected: report.run.id.clone(),
        });
    }
    Ok(format!(
        "the hash chain of {} recomputes: {events} events, head {}",
        report.journal.path, verified.head
    ))
}

fn plan(dir: &Path, report: &RunReport) -> Result<String, VerifyError> {
    let path = dir.join(PLAN_COPY);
    if !path.exists() {
        return Ok(format!(
            "no {PLAN_COPY} beside the report: its digest was not checked"
        ));
    }
    let digest = hex::encode(Sha256::digest(read(dir, PLAN_COPY)?));
    if digest != report.plan.sha256 {
        return Err(VerifyError::PlanDigest {
            digest,
            recorded: report.plan.sha256.clone(),
        });
    }
    Ok(format!("{PLAN_COPY} has the recorded sha256 {digest}"))
}

/// Each inventory's side file (streamed: it grows with the keys) against its recorded digest.
fn key_lists(dir: &Path, report: &RunReport) -> Result<String, VerifyError> {
    let files: Vec<&KeyFileFacts> = report
        .tokens
        .iter()
        .flat_map(|t| [&t.inventory_before, &t.inventory_after])
        .filter_map(|inventory| inventory.as_ref()?.key_file.as_ref())
        .collect();
    if files.is_empty() {
        return Ok("the report names no key list".to_owned());
    }
    let (mut checked, mut absent) = (0, 0);
    for file in files {
        let plain = Path::new(&file.name)
            .file_name()
            .is_some_and(|n| n == file.name.as_str());
        if !plain {
            return Err(VerifyError::KeyListPath(file.name.clone()));
        }
        let digest = match File::open(dir.join(&file.name)) {
            Ok(mut f) => {
                let mut hasher = Sha256::new();
                let mut buf = vec![0; 64 * 1024];
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf).map_err(|source| {
                        VerifyError::Read {
                            name: file.name.clone(),
                            source,
                        }
                    })?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                hex::encode(hasher.finalize())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                absent += 1;
                continue;
            }
            Err(source) => {
                return Err(VerifyError::Read {
                    name: file.name.clone(),
                    source,
                });
            }
        };
        if digest != file.sha256 {
            return Err(VerifyError::KeyListDigest {
                name: file.name.clone(),
                digest,
                recorded: file.sha256.clone(),
            });
        }
        checked += 1;
    }
    Ok(match absent {
        0 => format!("{checked} key list(s) have their recorded sha256"),
        n => format!(
            "{checked} key list(s) have their recorded sha256; {n} not beside the report: not checked"
        ),
    })
}

//! `mkplan report verify`: everything an auditor would check by hand, in one command — the
//! signature over `report.json`, the DSSE envelope's agreement with it, the journal's hash
//! chain against the head and event count the report records, and the plan digest.
//!
//! Every check runs and is reported, each with the precise reason when it fails; the report
//! verifies only if all hold.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dsse::{
    Envelope, PAYLOAD_TYPE, PREDICATE_TYPE, Predicate, STATEMENT_TYPE, SUBJECT, Statement,
    decode_signature, pae,
};
use crate::model::RunReport;
use crate::sign::PublicKey;
use crate::{REPORT_DSSE, REPORT_JSON, REPORT_SIG, SIGNER_PUB};
use mkplan_engine::journal::read_verified;
use mkplan_engine::rundir::PLAN_COPY;

/// One check and its result.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
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
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// One line per check, notes indented below.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let mark = if check.ok { "ok    " } else { "FAILED" };
            out.push_str(&format!("{mark}  {:<9} {}\n", check.name, check.detail));
            if let Some(note) = &check.note {
                out.push_str(&format!("                  note: {note}\n"));
            }
        }
        if self.ok() {
            out.push_str(&format!("verified: {}\n", self.dir.display()));
        } else {
            let failed: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name)
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

pub(crate) fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
            note: None,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
            note: None,
        },
    }
}

pub(crate) fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    mkplan_plan::input::read(&dir.join(name), mkplan_plan::input::REPORT)
        .map_err(|e| format!("cannot read `{name}`: {e}"))
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
                    .map_err(|e| format!("{REPORT_SIG} does not verify over {REPORT_JSON} with {source}: {e}"))
            }),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
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
            .map_err(|e| format!("{REPORT_JSON}: {e}"))
    });
    checks.push(check(
        "report",
        report.as_ref().map_err(Clone::clone).map(|(r, _)| {
            format!(
                "{REPORT_JSON} is an mkplan run report, version {}: run {}, {}",
                r.report_version, r.run.id, r.run.outcome
            )
        }),
    ));

    // 3. The DSSE envelope.
    checks.push(check(
        "envelope",
        match (&report, &public) {
            (Ok((report, bytes)), Ok((public, _))) => envelope(dir, report, bytes, public),
            (Err(_), _) => Err(format!("not checked: {REPORT_JSON} is unreadable")),
            (_, Err(e)) => Err(format!("not checked: {e}")),
        },
    ));

    // 4. The journal's chain against what the report recorded.
    checks.push(check(
        "journal",
        match &report {
            Ok((report, _)) => journal(dir, report),
            Err(_) => Err(format!("not checked: {REPORT_JSON} is unreadable")),
        },
    ));

    // 5. The plan copy against the recorded digest.
    checks.push(check(
        "plan",
        match &report {
            Ok((report, _)) => plan(dir, report),
            Err(_) => Err(format!("not checked: {REPORT_JSON} is unreadable")),
        },
    ));
    Verification {
        dir: dir.to_owned(),
        checks,
    }
}

/// The public key and how to name where it came from.
pub(crate) fn load_key(dir: &Path, key: Option<&Path>) -> Result<(PublicKey, String), String> {
    let (path, source) = match key {
        Some(path) => (path.to_owned(), format!("--key {}", path.display())),
        None => (
            dir.join(SIGNER_PUB),
            format!("{SIGNER_PUB} beside the report"),
        ),
    };
    let text = mkplan_plan::input::read_to_string(&path, mkplan_plan::input::KEY)
        .map_err(|e| format!("cannot read the public key `{}`: {e}", path.display()))?;
    let public = PublicKey::from_pem(&text)
        .map_err(|e| format!("the public key `{}`: {e}", path.display()))?;
    Ok((public, source))
}

fn envelope(
    dir: &Path,
    report: &RunReport,
    report_bytes: &[u8],
    public: &PublicKey,
) -> Result<String, String> {
    let bytes = read(dir, REPORT_DSSE)?;
    let envelope: Envelope = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{REPORT_DSSE} is not a DSSE envelope: {e}"))?;
    if envelope.to_bytes() != bytes {
        return Err(format!(
            "{REPORT_DSSE} is not byte for byte as mkplan writes it: it was edited"
        ));
    }
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "payloadType is `{}`, not `{PAYLOAD_TYPE}`",
            envelope.payload_type
        ));
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(format!(
            "the envelope has {} signatures; mkplan writes exactly one",
            envelope.signatures.len()
        ));
    };
    if signature.keyid != public.key_id() {
        return Err(format!(
            "the envelope's keyid {} is not the verifying key's id {}",
            signature.keyid,
            public.key_id()
        ));
    }
    let payload = envelope.payload_bytes()?;
    public
        .verify(
            &pae(&envelope.payload_type, &payload),
            &decode_signature(signature)?,
        )
        .map_err(|e| format!("the envelope's signature over the PAE does not verify: {e}"))?;
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("the payload is not an in-toto Statement: {e}"))?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(format!(
            "the statement is `{}` / `{}`, not `{STATEMENT_TYPE}` / `{PREDICATE_TYPE}`",
            statement.statement_type, statement.predicate_type
        ));
    }
    let digest = hex::encode(Sha256::digest(report_bytes));
    match statement.subject.as_slice() {
        [subject] if subject.name == SUBJECT && subject.digest.sha256 == digest => {}
        [subject] => {
            return Err(format!(
                "the statement's subject is `{}` sha256 {}, but {REPORT_JSON} has sha256 {digest}",
                subject.name, subject.digest.sha256
            ));
        }
        other => {
            return Err(format!(
                "the statement has {} subjects; mkplan writes exactly one",
                other.len()
            ));
        }
    }
    if statement.predicate != Predicate::of(report) {
        return Err(format!(
            "the statement's predicate (run, outcome, plan digest, journal head) differs from {REPORT_JSON}"
        ));
    }
    Ok(format!(
        "{REPORT_DSSE} is signed by the same key and its in-toto statement names {REPORT_JSON} sha256 {digest}"
    ))
}

fn journal(dir: &Path, report: &RunReport) -> Result<String, String> {
    let relative = Path::new(&report.journal.path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "the report names the journal `{}`, which is not a plain path inside the report's directory",
            report.journal.path
        ));
    }
    let verified = read_verified(&dir.join(relative))
        .map_err(|e| format!("the hash chain does not hold: {e}"))?;
    if verified.torn_tail_at.is_some() {
        return Err(format!(
            "`{}` ends in a torn line (bytes after the last complete event)",
            report.journal.path
        ));
    }
    let events = verified.entries.len() as u64;
    if events != report.journal.events || verified.head != report.journal.head {
        return Err(format!(
            "`{}` has {events} events ending in {}, but the report records {} events ending in {}",
            report.journal.path, verified.head, report.journal.events, report.journal.head
        ));
    }
    if let Some(other) = verified.entries.iter().find(|e| e.run != report.run.id) {
        return Err(format!(
            "`{}` event {} belongs to run `{}`, not `{}`",
            report.journal.path, other.seq, other.run, report.run.id
        ));
    }
    Ok(format!(
        "the hash chain of {} recomputes: {events} events, head {}",
        report.journal.path, verified.head
    ))
}

fn plan(dir: &Path, report: &RunReport) -> Result<String, String> {
    let path = dir.join(PLAN_COPY);
    if !path.exists() {
        return Ok(format!(
            "no {PLAN_COPY} beside the report: its digest was not checked"
        ));
    }
    let digest = hex::encode(Sha256::digest(read(dir, PLAN_COPY)?));
    if digest != report.plan.sha256 {
        return Err(format!(
            "{PLAN_COPY} has sha256 {digest}, but the report records {}",
            report.plan.sha256
        ));
    }
    Ok(format!("{PLAN_COPY} has the recorded sha256 {digest}"))
}

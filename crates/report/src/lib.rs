//! The signed run report: audit evidence an auditor can check without mkplan.
//!
//! [`generate`] turns a finished run's verified journal and its plan into the artefacts of
//! the run directory (and of the plan's `report.dir`, when it names one):
//!
//! | file | what |
//! |---|---|
//! | `report.json` | the [`model::RunReport`], deterministic bytes |
//! | `report.json.sig` | ECDSA P-256/SHA-256 DER (or raw Ed25519) over `report.json` |
//! | `report.dsse.json` | DSSE envelope of an in-toto Statement v1 about `report.json` |
//! | `signer.pub.pem` | the public key, SubjectPublicKeyInfo PEM |
//! | `report.html` | a self-contained, printable rendering |
//!
//! [`verify::verify`] checks all of it, with the journal's chain and the plan digest.

mod audit;
pub mod build;
mod concurrent;
pub mod cosign;
mod downtime;
pub mod dsse;
mod end_state;
pub mod fleet;
pub mod html;
pub mod model;
pub mod model_concurrent;
pub mod preflight;
pub mod sign;
pub mod terminal;
#[cfg(test)]
mod tests;
mod timeline;
mod tokens;
pub mod verify;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::build::{Machine, build};
use crate::dsse::{Envelope, PAYLOAD_TYPE, Statement, pae};
use crate::sign::{ReportSigner, SignError, SigningPorts};
use mkplan_engine::access::Access;
use mkplan_engine::journal::{JournalError, read_verified};
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::rundir::{JOURNAL, PLAN_COPY, PLAN_DIGEST};
use mkplan_plan::Plan;

pub const REPORT_JSON: &str = "report.json";
pub const REPORT_SIG: &str = "report.json.sig";
pub const REPORT_DSSE: &str = "report.dsse.json";
pub const REPORT_HTML: &str = "report.html";
pub const SIGNER_PUB: &str = "signer.pub.pem";

/// Why no report was written (or not all of it). Each names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot read the mode of `{}`: {source}", dir.display())]
    RunDirMode {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the report directory `{}`: {source}", dir.display())]
    CreateReportDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set the mode of `{}`: {source}", dir.display())]
    SetMode {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create `{}`: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read `{}`: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{}` carries {count} co-signature(s) ({who}) over the report as it stands, and the rebuilt report differs from it: writing it would drop them, so nothing was written. To rebuild anyway: move `{REPORT_DSSE}` aside (keep it: it is what they signed), run `mkplan report generate RUN --force` again, and ask the approvers to co-sign the new report (`mkplan report cosign RUN --key KEY`)",
        file.display()
    )]
    CosignaturesWouldBeLost {
        file: PathBuf,
        count: usize,
        who: String,
    },
    #[error(
        "cannot read `{}` to keep the co-signatures it may carry ({why}): nothing was written; move it aside to rebuild the report without them",
        file.display()
    )]
    EnvelopeUnreadable { file: PathBuf, why: String },
    #[error("cannot sync `{}`: {source}", dir.display())]
    Sync {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The run directory, holding the artefacts.
    pub dir: PathBuf,
    /// The copy under the plan's `report.dir`, if it names one.
    pub copy: Option<PathBuf>,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: sign::Algorithm,
    pub ephemeral: bool,
    /// The run was a rehearsal (which always signs with an ephemeral key).
    pub rehearsal: bool,
    pub outcome: String,
    pub warnings: usize,
}

/// Builds, signs and writes the report of the run in `run_dir`. Key files and `report.dir`
/// are host paths, resolved under the root. Nothing is written if the signer cannot be
/// prepared (a key file readable by others, a token that refuses the PIN, …).
pub fn generate(
    plan: &Plan,
    run_dir: &Path,
    ports: &SigningPorts<'_>,
) -> Result<Generated, ReportError> {
    let signer = ReportSigner::for_plan(plan, ports)?;
    generate_with(plan, run_dir, ports.root, &signer)
}

/// As [`generate`], with a signer prepared (and proven) before the run started.
pub fn generate_with(
    plan: &Plan,
    run_dir: &Path,
    root: &HostRoot,
    signer: &ReportSigner,
) -> Result<Generated, ReportError> {
    let journal = read_verified(&run_dir.join(JOURNAL))?;
    let report = build(run_dir, plan, &journal, &Machine::current(), signer.facts());
    let bytes = report.to_bytes();
    let signature = signer.sign(&bytes)?;
    let statement = Statement::about(&report, &bytes).to_bytes();
    let envelope_signature = signer.sign(&pae(PAYLOAD_TYPE, &statement))?;
    // `--force` over a co-signed report: the co-signatures stay if they still sign this
    // statement, else nothing is written.
    let kept = cosign::kept_cosignatures(run_dir, plan, &statement)?;
    let mut envelope = Envelope::new(&statement, signer.public().key_id(), &envelope_signature);
    envelope.signatures.extend(kept);
    let algorithm = signer.public().algorithm();
    let cosigners = verify::cosigners_of(&report, &envelope);
    let html = html::render(&report, algorithm, &signer.public().key_id(), &cosigners);
    let artefacts: [(&str, Vec<u8>); 5] = [
        (SIGNER_PUB, signer.public().to_pem().into_bytes()),
        (REPORT_SIG, signature),
        (REPORT_DSSE, envelope.to_bytes()),
        (REPORT_HTML, html.into_bytes()),
        // Last: a report.json without its signature beside it would look finished.
        (REPORT_JSON, bytes),
    ];
    // As private as the run directory (the report holds the key inventory).
    let access = Access::inside(run_dir).map_err(|source| ReportError::RunDirMode {
        dir: run_dir.to_owned(),
        source,
    })?;
    for (name, content) in &artefacts {
        write_atomically(&run_dir.join(name), content, &|file| access.apply(file))?;
    }
    let copy = match &plan.report.dir {
        Some(dir) => Some(copy_package(
            run_dir,
            &root.path(dir).join(&report.run.id),
            &artefacts,
            plan.report.mode.unwrap_or(0o600),
        )?),
        None => None,
    };
    Ok(Generated {
        dir: run_dir.to_owned(),
        copy,
        algorithm,
        ephemeral: signer.is_ephemeral(),
        rehearsal: report.run.rehearsal,
        outcome: report.run.outcome.clone(),
        warnings: report.warnings.len(),
    })
}

/// The evidence package in `report.dir`: the artefacts with the journal and the plan copy,
/// so `mkplan report verify DIR` checks it on its own. Its files get `mode` (the plan's
/// `report.mode`), the directories mkplan creates for it the matching directory mode.
fn copy_package(
    run_dir: &Path,
    target: &Path,
    artefacts: &[(&str, Vec<u8>)],
    mode: u32,
) -> Result<PathBuf, ReportError> {
    // Who may read a file may list its directory: r → r-x.
    let dir_mode = 0o700 | (mode & 0o044) | ((mode & 0o044) >> 2);
    let parent = target.parent().unwrap_or(target);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(parent)
        .map_err(|source| ReportError::CreateReportDir {
            dir: parent.to_owned(),
            source,
        })?;
    match fs::DirBuilder::new().mode(dir_mode).create(target) {
        Ok(()) => {
            fs::set_permissions(target, fs::Permissions::from_mode(dir_mode)).map_err(|source| {
                ReportError::SetMode {
                    dir: target.to_owned(),
                    source,
                }
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(ReportError::CreateDir {
                dir: target.to_owned(),
                source,
            });
        }
    }
    let apply = |file: &fs::File| file.set_permissions(fs::Permissions::from_mode(mode));
    for name in [JOURNAL, PLAN_COPY, PLAN_DIGEST] {
        let from = run_dir.join(name);
        if from.exists() {
            let bytes =
                mkplan_plan::input::read(&from, mkplan_plan::input::JOURNAL).map_err(|source| {
                    ReportError::Read {
                        file: from.clone(),
                        source,
                    }
                })?;
            write_atomically(&target.join(name), &bytes, &apply)?;
        }
    }
    for (name, content) in artefacts {
        write_atomically(&target.join(name), content, &apply)?;
    }
    Ok(target.to_owned())
}

/// Writes through a temporary file in the same directory, fsyncs it, gives it its mode
/// (`apply`) and renames it over `path`, so a reader never sees half a file.
pub(crate) fn write_atomically(
    path: &Path,
    bytes: &[u8],
    apply: &dyn Fn(&fs::File) -> std::io::Result<()>,
) -> Result<(), ReportError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |source| ReportError::Write {
        file: path.to_owned(),
        source,
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    temp.write_all(bytes).map_err(fail)?;
    apply(temp.as_file()).map_err(fail)?;
    temp.as_file().sync_all().map_err(fail)?;
    temp.persist(path).map_err(|e| fail(e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ReportError::Sync {
            dir: dir.to_owned(),
            source,
        })
}

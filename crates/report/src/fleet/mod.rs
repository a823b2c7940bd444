//! `mkplan report fleet`: many hosts' signed run reports (as the Ansible role fetches them,
//! one directory per host) verified one by one and gathered into one signed fleet report:
//!
//! | file | what |
//! |---|---|
//! | `fleet.json` | the [`model::FleetReport`], deterministic bytes |
//! | `fleet.json.sig` | ECDSA P-256/SHA-256 DER (or raw Ed25519) over `fleet.json` |
//! | `fleet.dsse.json` | DSSE envelope of an in-toto Statement v1 about `fleet.json` and every host's `report.json` |
//! | `signer.pub.pem` | the public key |
//! | `fleet.html` | a printable rendering |
//!
//! A host whose report does not verify is listed as such, never dropped; a host named with
//! `--host` that has no report is listed as having none. [`verify::verify`] checks it all.

mod collect;
pub mod html;
pub mod model;
mod statement;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::dsse::{Envelope, PAYLOAD_TYPE, pae};
use crate::fleet::collect::{NO_REPORT, NOT_VERIFIED, VERIFIED};
use crate::fleet::model::{FLEET_REPORT_VERSION, FleetHost, FleetReport, FleetSummary};
use crate::fleet::statement::FleetStatement;
use crate::sign::{Algorithm, SignError, SoftKey, read_key_file};
use crate::{ReportError, SIGNER_PUB, write_atomically};
use mkplan_engine::access::{Access, create_private_dirs};

pub const FLEET_JSON: &str = "fleet.json";
pub const FLEET_SIG: &str = "fleet.json.sig";
pub const FLEET_DSSE: &str = "fleet.dsse.json";
pub const FLEET_HTML: &str = "fleet.html";

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "two report directories are both named `{name}` (`{first}` and `{second}`): a host's reports go in a directory named after it"
    )]
    DuplicateHost {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("`{0}` has no directory name to call its host by")]
    Unnamed(PathBuf),
    #[error("the fleet-report signing key: {0}")]
    Key(#[from] SignError),
    #[error("cannot create the output directory `{path}`: {source}")]
    OutDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] ReportError),
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct Written {
    pub dir: PathBuf,
    pub report: FleetReport,
    pub algorithm: Algorithm,
    pub key_id: String,
    pub ephemeral: bool,
}

/// Verifies every host report in `dirs` (each directory named after its host), adds each of
/// `expected` that has none, and writes the signed fleet report into `out`, signed with the
/// key file `key` (PEM PKCS#8) or else an ephemeral P-256 key.
pub fn generate(
    dirs: &[PathBuf],
    expected: &[String],
    out: &Path,
    key: Option<&Path>,
) -> Result<Written, FleetError> {
    let key_pair = match key {
        Some(path) => read_key_file(path, path)?,
        None => SoftKey::generate(Algorithm::EcdsaP256)?,
    };
    let report = collect(dirs, expected)?;
    let bytes = report.to_bytes();
    let public = key_pair.public();
    let statement = FleetStatement::about(&report, &bytes).to_bytes();
    let envelope = Envelope::new(
        &statement,
        public.key_id(),
        &key_pair.sign(&pae(PAYLOAD_TYPE, &statement)),
    );
    let page = html::render(&report, public.algorithm(), &public.key_id(), key.is_none());
    let artefacts: [(&str, Vec<u8>); 5] = [
        (SIGNER_PUB, public.to_pem().into_bytes()),
        (FLEET_SIG, key_pair.sign(&bytes)),
        (FLEET_DSSE, envelope.to_bytes()),
        (FLEET_HTML, page.into_bytes()),
        // Last: a fleet.json without its signature beside it would look finished.
        (FLEET_JSON, bytes),
    ];
    create_private_dirs(out).map_err(|source| FleetError::OutDir {
        path: out.to_owned(),
        source,
    })?;
    // As private as the directory it is written to (the reports hold key inventories).
    let access = Access::inside(out).map_err(|source| FleetError::OutDir {
        path: out.to_owned(),
        source,
    })?;
    for (name, content) in &artefacts {
        write_atomically(&out.join(name), content, &|file| access.apply(file))?;
    }
    Ok(Written {
        dir: out.to_owned(),
        report,
        algorithm: public.algorithm(),
        key_id: public.key_id(),
        ephemeral: key.is_none(),
    })
}

/// The fleet report of the host directories, without signing it.
pub fn collect(dirs: &[PathBuf], expected: &[String]) -> Result<FleetReport, FleetError> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut hosts = Vec::new();
    for dir in dirs {
        let name = std::path::absolute(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| FleetError::Unnamed(dir.clone()))?;
        if let Some(first) = seen.insert(name.clone(), dir.clone()) {
            return Err(FleetError::DuplicateHost {
                name,
                first,
                second: dir.clone(),
            });
        }
        hosts.push(collect::host(&name, dir));
    }
    for name in expected {
        if !seen.contains_key(name) {
            seen.insert(name.clone(), PathBuf::new());
            hosts.push(collect::missing(name));
        }
    }
    Ok(FleetReport {
        fleet_report_version: FLEET_REPORT_VERSION,
        mkplan_version: env!("CARGO_PKG_VERSION").to_owned(),
        summary: summary(&hosts),
        warnings: warnings(&hosts),
        hosts,
    })
}

fn summary(hosts: &[FleetHost]) -> FleetSummary {
    let count = |status: &str| hosts.iter().filter(|h| h.status == status).count() as u64;
    let verified: Vec<_> = hosts
        .iter()
        .filter(|h| h.status == VERIFIED)
        .filter_map(|h| h.run.as_ref().map(|r| (h, r)))
        .collect();
    let mut outcomes = BTreeMap::new();
    for (_, run) in &verified {
        *outcomes.entry(run.outcome.clone()).or_insert(0) += 1;
    }
    let distinct = |f: &dyn Fn(&model::HostRun) -> String| -> Vec<String> {
        verified
            .iter()
            .map(|(_, r)| f(r))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    FleetSummary {
        hosts: hosts.len() as u64,
        verified: count(VERIFIED),
        not_verified: count(NOT_VERIFIED),
        no_report: count(NO_REPORT),
        complete: !hosts.is_empty()
            && hosts.iter().all(|h| {
                h.status == VERIFIED && h.run.as_ref().is_some_and(|r| r.outcome == "succeeded")
            }),
        change_tickets: distinct(&|r| r.change_ticket.clone()),
        plan_sha256: distinct(&|r| r.plan_sha256.clone()),
        total_downtime_ms: verified.iter().filter_map(|(_, r)| r.downtime_ms).sum(),
        downtime_unknown: verified
            .iter()
            .filter(|(_, r)| r.downtime_ms.is_none())
            .map(|(h, _)| h.name.clone())
            .collect(),
        outcomes,
    }
}

/// The first things an auditor should read: every host that is not a verified success.
fn warnings(hosts: &[FleetHost]) -> Vec<String> {
    let mut out = Vec::new();
    for host in hosts {
        let failed: Vec<&str> = host
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        match (host.status.as_str(), &host.run) {
            (NO_REPORT, _) => out.push(format!(
                "{}: no report ({})",
                host.name,
                host.checks.first().map_or("", |c| c.detail.as_str())
            )),
            (NOT_VERIFIED, _) => out.push(format!(
                "{}: its report DOES NOT VERIFY ({} failed): nothing it says can be relied on",
                host.name,
                failed.join(", ")
            )),
            (_, Some(run)) if run.outcome != "succeeded" => out.push(format!(
                "{}: run {} {}: {}",
                host.name, run.run_id, run.outcome, run.outcome_detail
            )),
            _ => {}
        }
        match &host.run {
            Some(run) if run.rehearsal => out.push(format!(
                "{}: a rehearsal on a simulated host, not a change",
                host.name
            )),
            // `--root`: a test or simulated host, which the run's report does not mark.
            Some(run) if run.root != "/" => out.push(format!(
                "{}: its run acted on the host root `{}`, not on `/`",
                host.name, run.root
            )),
            _ => {}
        }
    }
    let tickets: BTreeSet<&str> = hosts
        .iter()
        .filter_map(|h| h.run.as_ref().map(|r| r.change_ticket.as_str()))
        .collect();
    if tickets.len() > 1 {
        out.push(format!(
            "the reports belong to {} different changes: {}",
            tickets.len(),
            tickets.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

/// Whether `dir` holds a fleet report (rather than a run report).
pub fn is_fleet_dir(dir: &Path) -> bool {
    dir.join(FLEET_JSON).is_file() && !dir.join(crate::REPORT_JSON).exists()
}

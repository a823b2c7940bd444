//! The in-toto Statement a fleet report's DSSE envelope carries: `fleet.json` and every
//! host's `report.json` as subjects, so the one signature also names each host report.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dsse::{STATEMENT_TYPE, Subject, SubjectDigest};
use crate::fleet::FLEET_JSON;
use crate::fleet::model::FleetReport;

pub const FLEET_PREDICATE_TYPE: &str = "https://mkplan.dev/fleet-report/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetStatement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// `fleet.json` first, then `<host>/report.json` for every host with a report.
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: FleetPredicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetPredicate {
    pub fleet_report_version: u32,
    pub hosts: u64,
    pub verified: u64,
    pub not_verified: u64,
    pub no_report: u64,
    pub complete: bool,
}

impl FleetStatement {
    pub fn about(report: &FleetReport, bytes: &[u8]) -> Self {
        let mut subject = vec![Subject {
            name: FLEET_JSON.to_owned(),
            digest: SubjectDigest {
                sha256: hex::encode(Sha256::digest(bytes)),
            },
        }];
        subject.extend(report.hosts.iter().filter_map(|host| {
            host.report_sha256.as_ref().map(|sha256| Subject {
                name: format!("{}/report.json", host.name),
                digest: SubjectDigest {
                    sha256: sha256.clone(),
                },
            })
        }));
        Self {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject,
            predicate_type: FLEET_PREDICATE_TYPE.to_owned(),
            predicate: FleetPredicate {
                fleet_report_version: report.fleet_report_version,
                hosts: report.summary.hosts,
                verified: report.summary.verified,
                not_verified: report.summary.not_verified,
                no_report: report.summary.no_report,
                complete: report.summary.complete,
            },
        }
    }

    /// The payload bytes: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("statements serialise")
    }
}

//! The fleet report (`fleet.json`): many hosts' signed run reports, each verified, in one
//! record. Built only from the host reports and their verification: no clock is read, so the
//! same reports give the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The fleet report format version; a reader refuses any other.
pub const FLEET_REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetReport {
    /// Always 1 for this format.
    pub fleet_report_version: u32,
    /// The mkplan version that wrote the fleet report.
    pub mkplan_version: String,
    pub summary: FleetSummary,
    /// Every host, in the order given (reports first, then hosts named with `--host` that
    /// had no report). A host whose report does not verify is here too, said so.
    pub hosts: Vec<FleetHost>,
    /// What an auditor should know first; empty when there is nothing to say.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSummary {
    pub hosts: u64,
    /// Hosts whose report verified (signature, envelope, journal chain, plan digest).
    pub verified: u64,
    /// Hosts with a report that does not verify.
    pub not_verified: u64,
    /// Hosts with no report: not run, or nothing fetched.
    pub no_report: u64,
    /// Verified hosts per run outcome (`succeeded`, `rescued`, …).
    pub outcomes: BTreeMap<String, u64>,
    /// Whether every host has a verified report of a succeeded run.
    pub complete: bool,
    /// The change tickets of the verified reports (one, for a consistent fleet).
    pub change_tickets: Vec<String>,
    /// The plan digests of the verified reports (one per distinct templated plan).
    pub plan_sha256: Vec<String>,
    /// Application downtime summed over the verified hosts, in milliseconds.
    pub total_downtime_ms: u64,
    /// Hosts whose downtime is unknown (something stopped was not started again).
    pub downtime_unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetHost {
    /// The host's name: its report directory's name (the inventory hostname, as the
    /// Ansible role fetches it), or a `--host` name.
    pub name: String,
    /// The report directory, absolute; `null` when no report was given.
    pub dir: Option<String>,
    /// `verified`, `not_verified` or `no_report`.
    pub status: String,
    /// Each check of `mkplan report verify` on the host's report.
    pub checks: Vec<CheckRecord>,
    /// SHA-256 of the host's `report.json` as read.
    pub report_sha256: Option<String>,
    /// The key id (SHA-256 of the SubjectPublicKeyInfo) of the `signer.pub.pem` beside it.
    pub signer_key_id: Option<String>,
    /// What the report says; `null` when there is none, or it cannot be read.
    pub run: Option<HostRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRecord {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRun {
    pub run_id: String,
    pub outcome: String,
    pub outcome_detail: String,
    pub rehearsal: bool,
    /// The host that wrote the report, and the host root the run acted on.
    pub hostname: String,
    pub root: String,
    pub operator: String,
    pub started: String,
    pub ended: Option<String>,
    pub plan_name: String,
    pub plan_sha256: String,
    pub change_ticket: String,
    pub journal_head: String,
    pub journal_events: u64,
    /// Application downtime on this host; `null` when not known.
    pub downtime_ms: Option<u64>,
    /// Units stopped and not started again by the run.
    pub units_left_stopped: Vec<String>,
    /// The step whose failure (or denied checkpoint) sent the run to rescue.
    pub failure: Option<String>,
    pub tokens: Vec<HostToken>,
    pub approvals: Vec<HostApproval>,
    /// The host report's own warnings.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostToken {
    pub token: String,
    pub slot: u16,
    pub wkvp_current: String,
    pub wkvp_new: String,
    /// Which inventory the key counts come from: `after` (the change) or `before` (the
    /// last one the run took); `null` when the run probed no key.
    pub inventory: Option<String>,
    pub keys: Option<u64>,
    pub keys_usable: Option<u64>,
    /// Keys re-enciphered (blob changed between the inventories).
    pub reenciphered: Option<u64>,
    /// The migration's status, when the run migrated this token.
    pub migration: Option<String>,
    /// What a rescue's restore did: `restored`, `unchanged`, `nothing`.
    pub restore: Option<String>,
    /// Which reading the APQN states come from: `after` (activation) or `before`.
    pub apqns_read: Option<String>,
    pub apqns: Vec<HostApqn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostApqn {
    pub apqn: String,
    pub cur_state: String,
    pub cur_wkvp: Option<String>,
    pub new_state: String,
    pub new_wkvp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostApproval {
    pub checkpoint: String,
    pub approver: String,
    pub method: String,
    pub time: String,
}

impl FleetReport {
    /// The exact bytes of `fleet.json`: pretty JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("fleet reports serialise");
        bytes.push(b'\n');
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        match value
            .get("fleet_report_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(FLEET_REPORT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "fleet report version {v} (this mkplan reads {FLEET_REPORT_VERSION})"
                ));
            }
            None => {
                return Err("no `fleet_report_version`: not an mkplan fleet report".to_owned());
            }
        }
        serde_json::from_value(value).map_err(|e| format!("not an mkplan fleet report: {e}"))
    }
}

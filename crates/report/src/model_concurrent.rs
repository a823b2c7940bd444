//! The report's part for a concurrent master-key change (`pkcshsm_mk_change`): the
//! operation, each phase with its time and the WK state it left, the parks, and the time
//! between the phases. Only reports of plans with `mk_change` steps have it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `pkcshsm_mk_change` operation of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrentChange {
    /// The operation ID the tool printed (from the journal); `null` when none was created.
    pub operation: Option<String>,
    /// `printed` (seen by this run), `journaled` (kept before a stop), `adopted` (found by
    /// `list` after an interruption the operator decided).
    pub operation_source: Option<String>,
    pub tokens: Vec<String>,
    pub apqns: Vec<String>,
    /// The new EP11 WKVP, hex without `0x`; empty when the operation has no EP11 token.
    pub new_wkvp: String,
    /// The new CCA MKVPs by MK type (`AES`, `APKA`, `SYM`), hex without `0x`; absent when
    /// the operation has no CCA token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub new_cca_mkvps: BTreeMap<String, String>,
    /// `finalized`, `cancelled`, `nothing to cancel`, `re-enciphered (not ended)`, `not created`.
    pub outcome: String,
    /// Application downtime of the change: 0 when the run stopped no service.
    pub downtime_ms: Option<u64>,
    /// Each phase in run order.
    pub phases: Vec<PhaseFacts>,
    /// Every park of the run, in order.
    pub parks: Vec<ParkFacts>,
    /// From the end of the reencipher to the end of the finalize (or cancel).
    pub reencipher_to_end_ms: Option<u64>,
    /// The same, in words (`3 days 0 h 2 min`).
    pub reencipher_to_end: Option<String>,
    /// A rehearsal's clock moved forward: the days between phases were simulated.
    pub simulated_clock: Option<String>,
}

/// One phase: the reencipher, the activation checkpoint, EXPECTED_WKVP, finalize or cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseFacts {
    /// `reencipher`, `activation`, `expected_wkvp`, `expected_mkvps`, `finalize`, `cancel`.
    pub phase: String,
    /// `steps[3]` and the like.
    pub step: String,
    pub name: String,
    /// `succeeded`, `failed`, `not reached`, `parked`.
    pub status: String,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_ms: Option<u64>,
    /// Tool runs (finalize and cancel retry from ERROR).
    pub attempts: u32,
    /// Every APQN as this phase read it: `0a.0011: current valid 0x…, new committed 0x…`
    /// (EP11), `0c.0011: AES CUR valid 0x…, NEW full 0x…; APKA …` (CCA).
    pub wk_state: Vec<String>,
}

/// One park at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParkFacts {
    pub step: String,
    pub parked_at: String,
    pub resumed_at: Option<String>,
    pub resumed_by: Option<String>,
    pub parked_ms: Option<u64>,
    pub waiting_for: Vec<String>,
}

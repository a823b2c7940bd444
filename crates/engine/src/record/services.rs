//! What `stop` and `start` record of each unit, in order, and the `/proc` scan after a stop.
//! A failed stop or start records the units it got through.

use serde::{Deserialize, Serialize};

use crate::record::users::ScanSummary;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOutput {
    pub units: Vec<UnitStopped>,
    /// Who used a token after the stop (a step that failed half-way has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStopped {
    pub unit: String,
    /// It was running, so this run stopped it (and `start` starts it again).
    #[serde(default)]
    pub was_active: bool,
    #[serde(default)]
    pub stopped_at: Option<String>,
    /// Its stop command failed: it counts as stopped all the same.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stop_failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutput {
    pub units: Vec<UnitStarted>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStarted {
    pub unit: String,
    #[serde(default)]
    pub already_running: bool,
    #[serde(default)]
    pub started_at: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

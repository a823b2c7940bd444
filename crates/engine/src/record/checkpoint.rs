//! What a `checkpoint` records: the SHA-256 of what the approvers were shown, when the last
//! approval came, and (with `until`) the APQNs as they then were: an EP11 token's WK
//! registers (`until: {assert_wk}`) or a CCA token's MK registers (`until: {assert_mk}`).

use serde::{Deserialize, Serialize};

use crate::record::mk::MkTable;
use crate::record::wk::WkTable;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointOutput {
    pub shown_sha256: String,
    pub approved_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<WkTable>,
    /// `until: {assert_mk}`: the CCA token's APQNs as they were when it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_mk: Option<MkTable>,
    /// A parking checkpoint resumed: what changed on the host since it parked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub since_park: Vec<String>,
}

//! What the concurrent master-key change (`pkcshsm_mk_change`, opencryptoki-ep11.md 2)
//! records: the operation the tool created and carries between phases, each run of the tool,
//! and the milestones journaled while it runs (the operation ID the moment it is printed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::wk::WkTable;
use mkplan_plan::model::TokenId;

/// An operation ID as the tool prints it (ref 2.3 step 9): six letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OperationId(String);

impl OperationId {
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 6 && text.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OperationId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| format!("`{text}` is not an operation ID"))
    }
}

impl From<OperationId> for String {
    fn from(id: OperationId) -> String {
        id.0
    }
}

impl std::fmt::Display for OperationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operation's state, as `pkcshsm_mk_change list` words it (ref 2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    Initial,
    Reenciphering,
    Reenciphered,
    Finalizing,
    Canceling,
    Error,
    /// A wording this mkplan does not know: never guessed at.
    Unknown(String),
}

impl OpState {
    /// From the first line of `State:` in `list`'s output.
    pub fn from_list(text: &str) -> Self {
        let text = text.trim();
        let known = [
            ("Initial", OpState::Initial),
            (
                "Re-enciphering of key objects ongoing",
                OpState::Reenciphering,
            ),
            ("Key objects have been re-enciphered", OpState::Reenciphered),
            ("Finalizing or canceling has errored", OpState::Error),
            ("Finalizing", OpState::Finalizing),
            ("Canceling", OpState::Canceling),
        ];
        known
            .into_iter()
            .find(|(prefix, _)| text.starts_with(prefix))
            .map_or_else(|| OpState::Unknown(text.to_owned()), |(_, state)| state)
    }

    /// Whether finalize or cancel accept it (ref 2.4 step 1).
    pub fn may_end(&self) -> bool {
        matches!(self, OpState::Reenciphered | OpState::Error)
    }
}

impl std::fmt::Display for OpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpState::Unknown(text) => write!(f, "unknown ({text})"),
            other => f.write_str(match other {
                OpState::Initial => "initial",
                OpState::Reenciphering => "re-enciphering",
                OpState::Reenciphered => "re-enciphered",
                OpState::Finalizing => "finalizing",
                OpState::Canceling => "canceling",
                _ => "error",
            }),
        }
    }
}

/// One operation as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkOperation {
    pub id: OperationId,
    pub state: OpState,
    /// lszcrypt notation, lower case.
    pub apqns: Vec<String>,
    /// The new EP11 WKVP, lower-case hex without `0x`.
    pub new_wkvp: Option<String>,
    /// The new CCA MKVPs by MK type as `list` names it (`SYM`, `ASYM`, `AES`, `APKA`),
    /// lower-case hex without `0x`; empty for an EP11-only operation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub new_cca_mkvps: BTreeMap<String, String>,
    pub slots: Vec<u16>,
}

/// Where a finalize or cancel got its operation ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationSource {
    /// Printed by this run's reencipher.
    Printed,
    /// Journaled as a milestone before mkplan was stopped.
    Journaled,
    /// Found by `list` after an interrupted reencipher the operator accepted: the one
    /// operation on exactly these APQNs with this new WK (the tool refuses intersecting
    /// operations, so there can be no other).
    Adopted,
}

/// How far a tool run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolPhase {
    /// Before its work: prompts, queries. Nothing changed yet.
    Dialog,
    /// It said it works (`Re-enciphering, please wait...` and the like).
    Working,
}

/// The `Continue [y/N]?` prompt for slots without a token (ref 2.3 step 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueAnswer {
    pub slots: Vec<u16>,
    pub answered_yes: bool,
    /// Per slot, why it cannot (or may) be affected.
    pub why: Vec<String>,
}

/// One run of `pkcshsm_mk_change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRun {
    pub argv: Vec<String>,
    pub started_at: String,
    pub duration_ms: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub phase_reached: ToolPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_prompt: Option<ContinueAnswer>,
    /// The slots the tool said are affected, in its order.
    #[serde(default)]
    pub affected: Vec<u16>,
    #[serde(default)]
    pub pins_sent_for: Vec<u16>,
    /// The success line (`Completed.` with the ID line, or `successfully …`) came.
    pub completion_line: bool,
    /// `pkcshsm_mk_change: …` lines.
    #[serde(default)]
    pub diagnostics: Vec<String>,
    /// Every line (nothing secret is ever printed by the tool).
    #[serde(default)]
    pub output: Vec<String>,
}

/// What `mk_change: {reencipher}` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReencipherOutput {
    pub tokens: Vec<TokenId>,
    pub slots: Vec<u16>,
    pub apqns: Vec<String>,
    /// The new EP11 WKVP; empty when the operation has no EP11 token.
    pub new_wkvp: String,
    /// The new CCA MKVPs by MK type (`AES` …), as `MkOperation::new_cca_mkvps`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub new_cca_mkvps: BTreeMap<String, String>,
    /// Every APQN of every token right before the tool started.
    #[serde(default)]
    pub apqns_before: Vec<WkTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRun>,
    /// The operation the tool created (also on a failure after it was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<OperationSource>,
    /// `list --id` right after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_after: Option<MkOperation>,
}

/// How a finalize or cancel ended the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndAction {
    Finalized,
    Cancelled,
    /// There was no operation to cancel (the reencipher never created one, or the tool
    /// cancelled it by itself).
    NothingToCancel,
    /// The operation was already gone with the WK state it should leave (a finalize or
    /// cancel that completed before mkplan was stopped).
    AlreadyDone,
}

/// What a finalize or cancel records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOutput {
    pub tokens: Vec<TokenId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<EndAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_before: Option<OpState>,
    #[serde(default)]
    pub attempts: Vec<ToolRun>,
    /// Every APQN of every token after the last attempt.
    #[serde(default)]
    pub apqns_after: Vec<WkTable>,
}

/// What `mk_change: {finalize}` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FinalizeOutput(pub EndOutput);

/// What `mk_change: {cancel}` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CancelOutput(pub EndOutput);

/// Journaled while a step runs, before its outcome (`step_milestone`): what a later phase
/// or `resume` must know even if mkplan dies right after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "milestone", rename_all = "snake_case")]
pub enum Milestone {
    /// The tool said it works: from here the step may have changed the tokens.
    ToolWorking,
    /// The tool printed the ID of the operation it created.
    OperationCreated { id: OperationId },
}

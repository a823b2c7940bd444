//! Approvals given ahead of time: `--approve CHECKPOINT=NAME` (repeatable) and
//! `--approvals FILE`. A checkpoint is named by its `id`, its exact `name`, or its position
//! (`steps[3]`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::events::ApprovalMethod;
use crate::engine::events::StepRef;
use crate::plan::model::{Plan, Step, StepKind};

#[derive(Debug, Clone, Default)]
pub struct ApprovalInputs {
    given: Vec<Given>,
}

#[derive(Debug, Clone)]
struct Given {
    checkpoint: String,
    approver: String,
    method: ApprovalMethod,
}

/// The approvals file: `approvals: [{checkpoint: tke-commit, approver: alice}, …]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsFile {
    approvals: Vec<FileEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    checkpoint: String,
    approver: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalInputError {
    #[error("`--approve {0}` is not CHECKPOINT=NAME")]
    Malformed(String),
    #[error("cannot read the approvals file `{path}`: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("an approval names `{0}`, which is no checkpoint of this plan")]
    UnknownCheckpoint(String),
    #[error(transparent)]
    Untrusted(#[from] crate::trust::TrustError),
}

impl ApprovalInputs {
    pub fn add_flag(&mut self, text: &str) -> Result<(), ApprovalInputError> {
        let (checkpoint, approver) = text
            .split_once('=')
            .filter(|(c, a)| !c.trim().is_empty() && !a.trim().is_empty())
            .ok_or_else(|| ApprovalInputError::Malformed(text.to_owned()))?;
        self.given.push(Given {
            checkpoint: checkpoint.trim().to_owned(),
            approver: approver.trim().to_owned(),
            method: ApprovalMethod::Flag,
        });
        Ok(())
    }

    pub fn add_file(&mut self, path: &Path) -> Result<(), ApprovalInputError> {
        let error = |reason: String| ApprovalInputError::File {
            path: path.to_owned(),
            reason,
        };
        // Whoever can write it could approve a checkpoint: checked before it is read.
        crate::trust::check(path, crate::trust::Trusted::Approvals)?;
        let text = crate::input::read_to_string(path, crate::input::APPROVALS)
            .map_err(|e| error(e.to_string()))?;
        let file: ApprovalsFile =
            serde_saphyr::from_str(&text).map_err(|e| error(e.to_string()))?;
        for entry in file.approvals {
            self.given.push(Given {
                checkpoint: entry.checkpoint,
                approver: entry.approver,
                method: ApprovalMethod::File,
            });
        }
        Ok(())
    }

    /// Every approval must name a checkpoint of the plan; a typo must not silently leave a
    /// checkpoint unapproved (which would only surface as a denial mid-run).
    pub fn check_names(&self, plan: &Plan) -> Result<(), ApprovalInputError> {
        for given in &self.given {
            let known = plan
                .all_steps()
                .any(|s| matches!(s.kind, StepKind::Checkpoint(_)) && names(s, &given.checkpoint));
            if !known {
                return Err(ApprovalInputError::UnknownCheckpoint(
                    given.checkpoint.clone(),
                ));
            }
        }
        Ok(())
    }

    /// The approvals given for `step`, in order.
    pub fn for_step(&self, step: &Step) -> Vec<(String, ApprovalMethod)> {
        self.given
            .iter()
            .filter(|g| names(step, &g.checkpoint))
            .map(|g| (g.approver.clone(), g.method))
            .collect()
    }
}

fn names(step: &Step, key: &str) -> bool {
    step.id.as_deref() == Some(key) || step.name == key || StepRef::of(step).position() == key
}

/// How to name `step` in `--approve`: its id, or its position.
pub fn flag_key(step: &Step) -> String {
    step.id
        .clone()
        .unwrap_or_else(|| StepRef::of(step).position())
}

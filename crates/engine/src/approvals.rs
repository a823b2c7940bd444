//! Approvals given ahead of time: `--approve CHECKPOINT=NAME` (repeatable) and
//! `--approvals FILE`. A checkpoint is named by its `id`, its exact `name`, or its position
//! (`steps[3]`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::events::ApprovalMethod;
use crate::events::StepRef;
use mkplan_plan::model::{Plan, Step, StepKind};
use mkplan_plan::suggest::did_you_mean;

#[derive(Debug, Clone, Default)]
pub struct ApprovalInputs {
    given: Vec<Given>,
    /// The approvals files read (the preflight says who may write them).
    files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
struct Given {
    checkpoint: String,
    approver: String,
    method: ApprovalMethod,
    /// Where it was given, for messages: `--approve a=b`, `FILE, approvals[2]`.
    given_by: String,
    /// `--deny`: the person denies the checkpoint instead.
    deny: bool,
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
    #[error("{given_by} names `{name}`, which is no checkpoint of this plan{}", unknown_hint(.suggestion.as_deref(), .not_a_checkpoint.as_deref(), .checkpoints))]
    UnknownCheckpoint {
        name: String,
        given_by: String,
        /// The checkpoint's id, name or position it is likely a typo of.
        suggestion: Option<String>,
        /// The kind of the step it names, when that step is not a checkpoint.
        not_a_checkpoint: Option<String>,
        /// The plan's checkpoints as `--approve` names them.
        checkpoints: Vec<String>,
    },
    #[error(transparent)]
    Untrusted(#[from] crate::trust::TrustError),
}

fn unknown_hint(
    suggestion: Option<&str>,
    not_a_checkpoint: Option<&str>,
    checkpoints: &[String],
) -> String {
    let mut hint = String::new();
    if let Some(kind) = not_a_checkpoint {
        hint.push_str(&format!(" (it is a `{kind}` step)"));
    }
    hint.push_str("\n  hint: ");
    if let Some(suggestion) = suggestion {
        hint.push_str(&format!("did you mean `{suggestion}`? "));
    }
    if checkpoints.is_empty() {
        hint.push_str("this plan has no checkpoint to approve");
    } else {
        hint.push_str(&format!(
            "this plan's checkpoints: {}; name one by its id, its name or its position (`steps[N]`)",
            checkpoints.join(", ")
        ));
    }
    hint
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
            given_by: format!("`--approve {text}`"),
            deny: false,
        });
        Ok(())
    }

    /// `--deny CHECKPOINT=NAME`: that person denies the checkpoint (abandons a parked run).
    pub fn add_deny(&mut self, text: &str) -> Result<(), ApprovalInputError> {
        self.add_flag(text)?;
        if let Some(given) = self.given.last_mut() {
            given.deny = true;
            given.given_by = format!("`--deny {text}`");
        }
        Ok(())
    }

    /// Who denied `step` (`--deny`), if someone did.
    pub fn denial_for(&self, step: &Step) -> Option<String> {
        self.given
            .iter()
            .find(|g| g.deny && names(step, &g.checkpoint))
            .map(|g| g.approver.clone())
    }

    pub fn add_file(&mut self, path: &Path) -> Result<(), ApprovalInputError> {
        let error = |reason: String| ApprovalInputError::File {
            path: path.to_owned(),
            reason,
        };
        // Whoever can write it could approve a checkpoint: checked before it is read.
        crate::trust::check(path, crate::trust::Trusted::Approvals)?;
        let text = mkplan_plan::input::read_to_string(path, mkplan_plan::input::APPROVALS)
            .map_err(|e| error(e.to_string()))?;
        let file: ApprovalsFile =
            serde_saphyr::from_str(&text).map_err(|e| error(e.to_string()))?;
        for (i, entry) in file.approvals.into_iter().enumerate() {
            self.given.push(Given {
                checkpoint: entry.checkpoint,
                approver: entry.approver,
                method: ApprovalMethod::File,
                given_by: format!("`approvals[{i}]` of `{}`", path.display()),
                deny: false,
            });
        }
        self.files.push(path.to_owned());
        Ok(())
    }

    /// The approvals files the approvals were read from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every approval must name a checkpoint of the plan; a typo must not silently leave a
    /// checkpoint unapproved (which would only surface as a denial mid-run).
    pub fn check_names(&self, plan: &Plan) -> Result<(), ApprovalInputError> {
        let is_checkpoint = |s: &&Step| matches!(s.kind, StepKind::Checkpoint(_));
        for given in &self.given {
            let key = given.checkpoint.as_str();
            if plan
                .all_steps()
                .filter(is_checkpoint)
                .any(|s| names(s, key))
            {
                continue;
            }
            let checkpoints: Vec<&Step> = plan.all_steps().filter(is_checkpoint).collect();
            let spellings: Vec<String> = checkpoints.iter().flat_map(|s| spellings(s)).collect();
            return Err(ApprovalInputError::UnknownCheckpoint {
                name: key.to_owned(),
                given_by: given.given_by.clone(),
                suggestion: did_you_mean(key, spellings.iter().map(String::as_str))
                    .map(str::to_owned),
                not_a_checkpoint: plan
                    .all_steps()
                    .find(|s| names(s, key))
                    .map(|s| s.kind_name().as_str().to_owned()),
                checkpoints: checkpoints
                    .iter()
                    .map(|s| format!("`{}` ({})", flag_key(s), s.name))
                    .collect(),
            });
        }
        Ok(())
    }

    /// The approvals given for `step`, in order.
    pub fn for_step(&self, step: &Step) -> Vec<(String, ApprovalMethod)> {
        self.given
            .iter()
            .filter(|g| !g.deny && names(step, &g.checkpoint))
            .map(|g| (g.approver.clone(), g.method))
            .collect()
    }
}

fn names(step: &Step, key: &str) -> bool {
    spellings(step).iter().any(|s| s == key)
}

/// Every way `--approve` may name `step`: its id, its exact name, its position.
fn spellings(step: &Step) -> Vec<String> {
    let mut out: Vec<String> = step.id.iter().cloned().collect();
    out.push(step.name.clone());
    out.push(StepRef::of(step).position());
    out
}

/// How to name `step` in `--approve`: its id, or its position.
pub fn flag_key(step: &Step) -> String {
    step.id
        .clone()
        .unwrap_or_else(|| StepRef::of(step).position())
}

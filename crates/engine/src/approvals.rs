//! Approvals given ahead of time: `--approve CHECKPOINT=NAME` (repeatable) and
//! `--approvals FILE`. A checkpoint is named by its `id`, its exact `name`, or its position
//! (`steps[3]`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::events::ApprovalMethod;
use crate::events::StepRef;
use crate::signed_approval::{Refusal, SignedApproval, accept};
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
    /// A signed approval (`mkplan approve`); `approver` and `checkpoint` are what it claims
    /// until the checkpoint verifies it.
    signed: Option<SignedApproval>,
}

/// The approvals file: `approvals: [{checkpoint: tke-commit, approver: alice}, …]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsFile {
    approvals: Vec<FileEntry>,
}

/// `{checkpoint, approver}` (an asserted name), or `{signed: ENVELOPE}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    #[serde(default)]
    checkpoint: Option<String>,
    #[serde(default)]
    approver: Option<String>,
    #[serde(default)]
    signed: Option<SignedApproval>,
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
    #[error(
        "{given_by} is neither `{{checkpoint, approver}}` nor `{{signed: …}}` (what `mkplan approve` writes)"
    )]
    EntryForm { given_by: String },
    #[error("{given_by} {refusal}")]
    Signed {
        given_by: String,
        refusal: Box<Refusal>,
    },
    #[error(
        "{given_by}: `{approver}`'s approval is an asserted name; this plan lists a key for {approver} and requires signed approvals (change.asserted_approvals: refuse): {approver} signs with `mkplan approve PLAN {checkpoint} --key KEY`"
    )]
    AssertedRefused {
        given_by: String,
        approver: String,
        checkpoint: String,
    },
    #[error(
        "{given_by} was already used by run {run} at {checkpoint} on {time}; each signed approval counts once: ask {approver} for a new one"
    )]
    Replayed {
        given_by: String,
        approver: String,
        run: String,
        checkpoint: String,
        time: String,
    },
    #[error(
        "cannot prove the signed approvals were not used before: run {run} of {state_dir} cannot be read ({reason}); a signed approval counts once, so mkplan does not accept one it cannot check: repair or move that run aside, then run again"
    )]
    ReplayUnproven {
        state_dir: String,
        run: String,
        reason: String,
    },
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
            signed: None,
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
            let given_by = format!("`approvals[{i}]` of `{}`", path.display());
            let (checkpoint, approver, signed) = match entry {
                FileEntry {
                    checkpoint: Some(checkpoint),
                    approver: Some(approver),
                    signed: None,
                } => (checkpoint, approver, None),
                FileEntry {
                    checkpoint: None,
                    approver: None,
                    signed: Some(signed),
                } => {
                    let Some(claimed) = signed.claimed() else {
                        return Err(ApprovalInputError::Signed {
                            given_by,
                            refusal: Box::new(Refusal::NotAnApproval),
                        });
                    };
                    (claimed.checkpoint, claimed.approver, Some(signed))
                }
                _ => return Err(ApprovalInputError::EntryForm { given_by }),
            };
            self.given.push(Given {
                checkpoint,
                approver,
                method: ApprovalMethod::File,
                given_by,
                deny: false,
                signed,
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

    /// The asserted-name approvals given for `step`, in order.
    pub fn for_step(&self, step: &Step) -> Vec<(String, ApprovalMethod)> {
        self.given
            .iter()
            .filter(|g| !g.deny && g.signed.is_none() && names(step, &g.checkpoint))
            .map(|g| (g.approver.clone(), g.method))
            .collect()
    }

    /// The signed approvals given for `step`, in order, each with where it was given.
    pub fn signed_for_step(&self, step: &Step) -> Vec<(SignedApproval, ApprovalMethod, String)> {
        self.given
            .iter()
            .filter(|g| names(step, &g.checkpoint))
            .filter_map(|g| Some((g.signed.clone()?, g.method, g.given_by.clone())))
            .collect()
    }

    /// Before anything acts: every signed approval verifies for its checkpoint (signature,
    /// plan, checkpoint, text, WKVPs, times at `now`), and no asserted name is given for an
    /// approver with a key unless the plan allows it. `shown_sha256` gives a checkpoint's
    /// shown text digest.
    pub fn check_signed(
        &self,
        plan: &Plan,
        plan_sha256: &str,
        shown_sha256: &dyn Fn(&Step) -> String,
        now: jiff::Timestamp,
    ) -> Result<(), ApprovalInputError> {
        let is_checkpoint = |s: &&Step| matches!(s.kind, StepKind::Checkpoint(_));
        for given in &self.given {
            let Some(step) = plan
                .all_steps()
                .filter(is_checkpoint)
                .find(|s| names(s, &given.checkpoint))
            else {
                continue; // check_names says so
            };
            match &given.signed {
                Some(signed) => {
                    accept(signed, plan, plan_sha256, step, &shown_sha256(step), now).map_err(
                        |refusal| ApprovalInputError::Signed {
                            given_by: given.given_by.clone(),
                            refusal: Box::new(refusal),
                        },
                    )?;
                }
                None if asserted_refused(plan, &given.approver) => {
                    return Err(ApprovalInputError::AssertedRefused {
                        given_by: given.given_by.clone(),
                        approver: given.approver.clone(),
                        checkpoint: flag_key(step),
                    });
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl ApprovalInputs {
    /// No signed approval was used by another run of `state` (its journals record every
    /// use): a statement counts once. `this_run` (a resumed run) may use its own again.
    pub fn check_replay(
        &self,
        state: &crate::rundir::StateDir,
        this_run: Option<&str>,
    ) -> Result<(), ApprovalInputError> {
        let signed: Vec<(String, &Given)> = self
            .given
            .iter()
            .filter_map(|g| Some((statement_sha256(g.signed.as_ref()?), g)))
            .collect();
        if signed.is_empty() {
            return Ok(());
        }
        // Fail closed: a run whose journal cannot be read could hide an earlier use.
        let unproven = |run: &str, reason: String| ApprovalInputError::ReplayUnproven {
            state_dir: state.dir().display().to_string(),
            run: run.to_owned(),
            reason,
        };
        let runs = state
            .list_runs()
            .map_err(|e| unproven("-", e.to_string()))?;
        for run in runs {
            if Some(run.id.as_str()) == this_run {
                continue;
            }
            let journal = crate::journal::read_verified(&run.journal())
                .map_err(|e| unproven(&run.id, e.to_string()))?;
            for entry in &journal.entries {
                let crate::events::EventKind::CheckpointApproved {
                    step,
                    approver,
                    signed: Some(used),
                    ..
                } = &entry.event
                else {
                    continue;
                };
                let used = statement_sha256(used);
                if let Some((_, given)) = signed.iter().find(|(sha, _)| *sha == used) {
                    return Err(ApprovalInputError::Replayed {
                        given_by: given.given_by.clone(),
                        approver: approver.clone(),
                        run: run.id.clone(),
                        checkpoint: step.position(),
                        time: entry.time.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// SHA-256 of a signed approval's payload as given (base64 text hashed when it does not
/// decode, which then matches only the same text).
fn statement_sha256(signed: &SignedApproval) -> String {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(&signed.payload) {
        Ok(payload) => crate::digest::sha256_hex(&payload),
        Err(_) => crate::digest::sha256_hex(signed.payload.as_bytes()),
    }
}

/// Whether an asserted-name approval by `approver` is refused: they have a key, and the
/// plan does not allow names for them (`change.asserted_approvals: warn`).
pub fn asserted_refused(plan: &Plan, approver: &str) -> bool {
    plan.change.keyed_approver(approver).is_some() && !plan.change.asserted_approvals_allowed
}

/// The checkpoint of `plan` that `key` names (id, exact name or position).
pub fn find_checkpoint<'p>(plan: &'p Plan, key: &str) -> Option<&'p Step> {
    plan.all_steps()
        .find(|s| matches!(s.kind, StepKind::Checkpoint(_)) && names(s, key))
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

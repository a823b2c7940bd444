//! The approval and identity options `run` and `resume` share.

use std::path::PathBuf;

use crate::error::CliError;
use mkplan_engine::approvals::ApprovalInputs;
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::rundir::StateDir;
use mkplan_plan::Plan;
use mkplan_plan::model::Step;
use mkplan_steps::shown_sha256;

/// Approval and identity options shared by `run` and `resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApprovalArgs {
    /// Approve a checkpoint ahead of time: CHECKPOINT=NAME (repeatable).
    #[arg(long = "approve", value_name = "CHECKPOINT=NAME")]
    pub approve: Vec<String>,
    /// Deny a checkpoint: CHECKPOINT=NAME (abandons a parked concurrent change before any
    /// APQN is activated; the plan's rescue cancels the operation).
    #[arg(long = "deny", value_name = "CHECKPOINT=NAME")]
    pub deny: Vec<String>,
    /// A file of approvals: `approvals: [{checkpoint: ID, approver: NAME}, …]`, or what
    /// `mkplan approve` writes (`{signed: …}` entries); repeatable.
    #[arg(long = "approvals", value_name = "FILE")]
    pub approvals_file: Vec<PathBuf>,
    /// Never prompt: a missing approval is an immediate deny.
    #[arg(long)]
    pub non_interactive: bool,
    /// Who is running mkplan (default: $SUDO_USER, $USER).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
}

impl ApprovalArgs {
    /// The approvals given, checked against the plan's checkpoints and approvers: signed
    /// ones verified for their checkpoints of the plan (`plan_text`'s digest) and never used
    /// by another run of `state` than `this_run`; asserted names of approvers with a key
    /// refused unless the plan allows them.
    pub fn inputs(
        &self,
        plan: &Plan,
        plan_text: &str,
        state: &StateDir,
        this_run: Option<&str>,
    ) -> Result<ApprovalInputs, CliError> {
        let invalid = |e: &dyn std::fmt::Display| CliError::Invalid(e.to_string());
        let mut inputs = ApprovalInputs::default();
        for flag in &self.approve {
            inputs.add_flag(flag).map_err(|e| invalid(&e))?;
        }
        for flag in &self.deny {
            inputs.add_deny(flag).map_err(|e| invalid(&e))?;
        }
        for file in &self.approvals_file {
            inputs.add_file(file).map_err(|e| invalid(&e))?;
        }
        inputs.check_names(plan).map_err(|e| invalid(&e))?;
        let digest = sha256_hex(plan_text.as_bytes());
        let shown = |step: &Step| shown_sha256(plan, &digest, step).unwrap_or_default();
        inputs
            .check_signed(plan, &digest, &shown, jiff::Timestamp::now())
            .map_err(|e| invalid(&e))?;
        inputs
            .check_replay(state, this_run)
            .map_err(|e| invalid(&e))?;
        Ok(inputs)
    }
}

//! The approval and identity options `run` and `resume` share.

use std::path::PathBuf;

use crate::error::CliError;
use mkplan_engine::approvals::ApprovalInputs;
use mkplan_plan::Plan;

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
    /// A file of approvals: `approvals: [{checkpoint: ID, approver: NAME}, …]`.
    #[arg(long = "approvals", value_name = "FILE")]
    pub approvals_file: Option<PathBuf>,
    /// Never prompt: a missing approval is an immediate deny.
    #[arg(long)]
    pub non_interactive: bool,
    /// Who is running mkplan (default: $SUDO_USER, $USER).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
}

impl ApprovalArgs {
    /// The approvals given, checked against the plan's checkpoints and approvers.
    pub fn inputs(&self, plan: &Plan) -> Result<ApprovalInputs, CliError> {
        let invalid = |e: &dyn std::fmt::Display| CliError::Invalid(e.to_string());
        let mut inputs = ApprovalInputs::default();
        for flag in &self.approve {
            inputs.add_flag(flag).map_err(|e| invalid(&e))?;
        }
        for flag in &self.deny {
            inputs.add_deny(flag).map_err(|e| invalid(&e))?;
        }
        if let Some(file) = &self.approvals_file {
            inputs.add_file(file).map_err(|e| invalid(&e))?;
        }
        inputs.check_names(plan).map_err(|e| invalid(&e))?;
        Ok(inputs)
    }
}

//! Validated steps: one variant per step kind, with references already resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::plan::model::{Apqn, BackupId, ServiceId, TokenId};

/// Which list of the plan a step belongs to (journaled as `steps`, `rescue`, `always`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Steps,
    Rescue,
    Always,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Steps => "steps",
            Section::Rescue => "rescue",
            Section::Always => "always",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub section: Section,
    /// Position in its section, from 0.
    pub index: usize,
    pub id: Option<String>,
    /// The rendered name.
    pub name: String,
    /// The `when` expression, checked to compile and to use only known names.
    pub when: Option<String>,
    pub tags: Vec<String>,
    pub timeout: Option<Duration>,
    pub kind: StepKind,
}

impl Step {
    /// The step's JSON pointer in the plan, e.g. `/steps/3`, for diagnostics.
    pub fn pointer(&self) -> String {
        format!("/{}/{}", self.section.key(), self.index)
    }

    /// The step kind's key as written in the plan.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    AssertWk(AssertWk),
    Checkpoint(Checkpoint),
    Stop(ServiceId),
    Start(ServiceId),
    Backup {
        token: TokenId,
        to: BackupId,
    },
    Restore {
        token: TokenId,
        from: BackupId,
    },
    Migrate(MigrateStep),
    SetExpectedWkvp {
        token: TokenId,
    },
    ProbeKeys {
        token: TokenId,
        module: Option<PathBuf>,
    },
    Command(CommandStep),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::AssertWk(_) => "assert_wk",
            StepKind::Checkpoint(_) => "checkpoint",
            StepKind::Stop(_) => "stop",
            StepKind::Start(_) => "start",
            StepKind::Backup { .. } => "backup",
            StepKind::Restore { .. } => "restore",
            StepKind::Migrate(_) => "migrate",
            StepKind::SetExpectedWkvp { .. } => "set_expected_wkvp",
            StepKind::ProbeKeys { .. } => "probe_keys",
            StepKind::Command(_) => "command",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentWk {
    Expected,
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewWk {
    Committed,
    Uncommitted,
    Empty,
    Any,
}

#[derive(Debug, Clone)]
pub struct AssertWk {
    pub token: TokenId,
    pub current: CurrentWk,
    pub new: NewWk,
}

impl AssertWk {
    /// Does this check establish that the new WK is committed and not yet active?
    pub fn proves_new_committed(&self) -> bool {
        self.current == CurrentWk::Expected && self.new == NewWk::Committed
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TkeAction {
    Commit,
    Activate,
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The rendered text shown to the approvers.
    pub say: String,
    pub tke: Option<TkeAction>,
    pub approvals: u32,
    /// Who may approve; empty means anyone.
    pub approvers: Vec<String>,
    pub timeout: Option<Duration>,
    pub until: Option<Until>,
}

#[derive(Debug, Clone)]
pub struct Until {
    pub check: AssertWk,
    pub retries: u32,
    pub delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinDelivery {
    Prompt,
    Env,
}

#[derive(Debug, Clone)]
pub struct MigrateStep {
    pub token: TokenId,
    /// The APQN the tool re-enciphers through (the token's first unless named).
    pub apqn: Apqn,
    pub tool: Option<PathBuf>,
    pub pin_delivery: PinDelivery,
}

#[derive(Debug, Clone)]
pub struct CommandStep {
    /// Rendered argv; with `shell`, one script for `/bin/sh -c`.
    pub argv: Vec<String>,
    pub shell: bool,
    pub env: BTreeMap<String, String>,
    pub ok_codes: Vec<u8>,
    pub read_only: bool,
}

//! Validated steps: one variant per step kind, with references already resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::{Apqn, BackupId, CcaMk, ServiceId, TokenId};

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

    /// The step kind, as the plan and the journal name it.
    pub fn kind_name(&self) -> KindName {
        self.kind.name()
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    AssertWk(AssertWk),
    Checkpoint(Checkpoint),
    Stop(ServiceId),
    Start(ServiceId),
    Backup(BackupStep),
    Restore(RestoreStep),
    Migrate(MigrateStep),
    SetExpectedWkvp(ExpectedWkvpStep),
    /// CCA: `EXPECTED_MKVPS` in `ccatok.conf` (the same arguments).
    SetExpectedMkvps(ExpectedWkvpStep),
    AssertMk(AssertMk),
    ProbeKeys(ProbeKeysStep),
    Command(CommandStep),
    MkReencipher(ReencipherStep),
    MkFinalize(EndOperationStep),
    MkCancel(EndOperationStep),
}

impl StepKind {
    pub fn name(&self) -> KindName {
        match self {
            StepKind::AssertWk(_) => KindName::AssertWk,
            StepKind::Checkpoint(_) => KindName::Checkpoint,
            StepKind::Stop(_) => KindName::Stop,
            StepKind::Start(_) => KindName::Start,
            StepKind::Backup(_) => KindName::Backup,
            StepKind::Restore(_) => KindName::Restore,
            StepKind::Migrate(_) => KindName::Migrate,
            StepKind::SetExpectedWkvp(_) => KindName::SetExpectedWkvp,
            StepKind::SetExpectedMkvps(_) => KindName::SetExpectedMkvps,
            StepKind::AssertMk(_) => KindName::AssertMk,
            StepKind::ProbeKeys(_) => KindName::ProbeKeys,
            StepKind::Command(_) => KindName::Command,
            StepKind::MkReencipher(_) => KindName::MkReencipher,
            StepKind::MkFinalize(_) => KindName::MkFinalize,
            StepKind::MkCancel(_) => KindName::MkCancel,
        }
    }
}

/// A step kind by name: the plan's key for it, and what the journal records (`kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    AssertWk,
    Checkpoint,
    Stop,
    Start,
    Backup,
    Restore,
    Migrate,
    SetExpectedWkvp,
    SetExpectedMkvps,
    AssertMk,
    ProbeKeys,
    Command,
    #[serde(rename = "mk_change.reencipher")]
    MkReencipher,
    #[serde(rename = "mk_change.finalize")]
    MkFinalize,
    #[serde(rename = "mk_change.cancel")]
    MkCancel,
}

impl KindName {
    pub fn as_str(self) -> &'static str {
        match self {
            KindName::AssertWk => "assert_wk",
            KindName::Checkpoint => "checkpoint",
            KindName::Stop => "stop",
            KindName::Start => "start",
            KindName::Backup => "backup",
            KindName::Restore => "restore",
            KindName::Migrate => "migrate",
            KindName::SetExpectedWkvp => "set_expected_wkvp",
            KindName::SetExpectedMkvps => "set_expected_mkvps",
            KindName::AssertMk => "assert_mk",
            KindName::ProbeKeys => "probe_keys",
            KindName::Command => "command",
            KindName::MkReencipher => "mk_change.reencipher",
            KindName::MkFinalize => "mk_change.finalize",
            KindName::MkCancel => "mk_change.cancel",
        }
    }

    /// The kind's keys in the plan, as a JSON pointer below the step (`mk_change/finalize`).
    pub fn key_path(self) -> String {
        self.as_str().replace('.', "/")
    }
}

impl std::fmt::Display for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// `backup`: archive a token's store to a backup target.
#[derive(Debug, Clone)]
pub struct BackupStep {
    pub token: TokenId,
    pub to: BackupId,
}

/// `restore`: put a token's store back from this run's backup in a target.
#[derive(Debug, Clone)]
pub struct RestoreStep {
    pub token: TokenId,
    pub from: BackupId,
}

/// `set_expected_wkvp`: point a token's `EXPECTED_WKVP` at the new WK (or back at the
/// current one).
#[derive(Debug, Clone)]
pub struct ExpectedWkvpStep {
    pub token: TokenId,
    pub to: ExpectedTarget,
}

/// Which of the plan's WKVPs `set_expected_wkvp` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedTarget {
    New,
    Current,
}

/// `mk_change: {reencipher}`: one `pkcshsm_mk_change` operation over the tokens (in slot
/// order) and every APQN they use.
#[derive(Debug, Clone)]
pub struct ReencipherStep {
    pub tokens: Vec<TokenId>,
    pub tool: Option<PathBuf>,
}

/// `mk_change: {finalize}` or `{cancel}` of the operation of this plan's reencipher step `of`.
#[derive(Debug, Clone)]
pub struct EndOperationStep {
    /// The reencipher step's `id`.
    pub of: String,
    /// Its index in `steps`.
    pub of_index: usize,
    /// Its tokens.
    pub tokens: Vec<TokenId>,
    /// Attempts after one that left the operation in ERROR.
    pub retries: u32,
    pub delay: Duration,
}

/// `probe_keys`: list a token's objects and prove its keys work.
#[derive(Debug, Clone)]
pub struct ProbeKeysStep {
    pub token: TokenId,
    /// openCryptoki's PKCS#11 library, if not in a usual place.
    pub module: Option<PathBuf>,
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

/// `assert_mk`: a CCA token's MK registers on every APQN, per MK type sysfs shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertMk {
    pub token: TokenId,
    pub current: CurrentWk,
    pub new: NewMk,
    pub old: OldMk,
}

impl AssertMk {
    /// Does this check establish that every declared new MK is fully loaded in NEW and the
    /// current one still in CUR (what a concurrent reencipher needs)?
    pub fn proves_new_loaded(&self) -> bool {
        self.current == CurrentWk::Expected && self.new == NewMk::Full
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewMk {
    Full,
    Empty,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldMk {
    Expected,
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
    /// Stop the run (exit 6) while `until` does not hold; `resume` continues it.
    pub park: bool,
}

#[derive(Debug, Clone)]
pub struct Until {
    pub check: UntilCheck,
    pub retries: u32,
    pub delay: Duration,
}

/// What a checkpoint's `until` reads: an EP11 token's WK registers or a CCA token's MK
/// registers, each with the same fail-closed guard as its step kind.
#[derive(Debug, Clone)]
pub enum UntilCheck {
    Wk(AssertWk),
    Mk(AssertMk),
}

impl UntilCheck {
    pub fn token(&self) -> &TokenId {
        match self {
            UntilCheck::Wk(a) => &a.token,
            UntilCheck::Mk(a) => &a.token,
        }
    }

    pub fn current(&self) -> CurrentWk {
        match self {
            UntilCheck::Wk(a) => a.current,
            UntilCheck::Mk(a) => a.current,
        }
    }

    /// Does this check establish that the new WK/MK is loaded (EP11: committed; CCA: NEW
    /// full) and not yet current?
    pub fn proves_new_committed(&self) -> bool {
        match self {
            UntilCheck::Wk(a) => a.proves_new_committed(),
            UntilCheck::Mk(a) => a.proves_new_loaded(),
        }
    }

    /// Does this check establish that the activation is complete: the new key current and
    /// the NEW register empty (what finalize needs, ref 2.4)?
    pub fn proves_activated(&self) -> bool {
        match self {
            UntilCheck::Wk(a) => a.current == CurrentWk::New,
            UntilCheck::Mk(a) => a.current == CurrentWk::New && a.new == NewMk::Empty,
        }
    }

    /// The step kind whose guard this check is (`assert_wk` or `assert_mk`).
    pub fn kind(&self) -> KindName {
        match self {
            UntilCheck::Wk(_) => KindName::AssertWk,
            UntilCheck::Mk(_) => KindName::AssertMk,
        }
    }
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
    /// CCA: the MK types `pkcscca -m keys -k` migrates, one run each, in this order
    /// (default: every type the token declares, in `CcaMk` order). Empty for EP11.
    pub mks: Vec<CcaMk>,
    /// Whether the plan named `mks` (rule `mk-types-declared` checks them).
    pub mks_named: bool,
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

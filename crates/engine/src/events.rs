//! The engine's event stream. The executor only emits these; the journal, the terminal,
//! JSON logs and the recap consume them. Events with a journal kind are the run's durable
//! truth; progress events are for people only and never journaled.

use serde::{Deserialize, Serialize};

use crate::record::StepData;
use crate::record::mk_change::Milestone;
use crate::record::origin::Origin;
use mkplan_plan::model::{KindName, Section, Step};

/// Which step an event is about: section, position, and what it was called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    pub section: Section,
    pub index: usize,
    pub name: String,
    pub kind: KindName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl StepRef {
    pub fn of(step: &Step) -> Self {
        Self {
            section: step.section,
            index: step.index,
            name: step.name.clone(),
            kind: step.kind_name(),
            id: step.id.clone(),
        }
    }

    /// `steps[3]`, as people and the journal name positions.
    pub fn position(&self) -> String {
        format!("{}[{}]", self.section.key(), self.index)
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// A step failed and the rescue steps did not all succeed (or there were none).
    Failed,
    /// A step failed and every rescue step succeeded.
    Rescued,
    /// A checkpoint was denied.
    Aborted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Rescued => "rescued",
            Outcome::Aborted => "aborted",
        }
    }
}

/// What happened. The serialized form (`kind` + `data`) is the journal's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        plan_name: String,
        plan_path: String,
        plan_sha256: String,
        change_ticket: String,
        mkplan_version: String,
        host_root: String,
        operator: String,
        pid: u32,
        /// A rehearsal on a simulated host: nothing real was changed.
        #[serde(default)]
        rehearsal: bool,
        /// The session it was started from; absent in journals of older mkplan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Resumed {
        operator: String,
        pid: u32,
        /// The session it was resumed from; absent in journals of older mkplan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
        /// A rehearsal's clock, moved forward to simulate the days between phases.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        simulated_clock: Option<String>,
    },
    StepStarted {
        step: StepRef,
        /// Changes the system: an interruption here leaves the step uncertain.
        mutating: bool,
    },
    StepSucceeded {
        step: StepRef,
        summary: String,
        duration_ms: u64,
        #[serde(default)]
        data: StepData,
    },
    StepFailed {
        step: StepRef,
        error: String,
        duration_ms: u64,
        #[serde(default)]
        data: StepData,
    },
    StepSkipped {
        step: StepRef,
        reason: String,
    },
    /// A `stop` step is about to stop this running unit: journaled first, so a run killed
    /// half-way through the group still knows to start it again.
    UnitStopping {
        step: StepRef,
        unit: String,
    },
    CheckpointShown {
        step: StepRef,
        /// SHA-256 of exactly the text shown to the approvers.
        shown_sha256: String,
        text: String,
    },
    CheckpointApproved {
        step: StepRef,
        approver: String,
        method: ApprovalMethod,
        shown_sha256: String,
        /// The approver's signed statement (`mkplan approve`), verified at the checkpoint;
        /// absent for an asserted name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed: Option<crate::signed_approval::SignedApproval>,
    },
    CheckpointRefused {
        step: StepRef,
        approver: String,
        method: ApprovalMethod,
        reason: String,
    },
    CheckpointDenied {
        step: StepRef,
        reason: String,
    },
    Decision {
        step: StepRef,
        decision: DecisionKind,
        decided_by: String,
    },
    /// Something a running step must not lose if mkplan dies before its outcome (the
    /// operation ID `pkcshsm_mk_change` printed).
    StepMilestone {
        step: StepRef,
        milestone: Milestone,
    },
    /// A checkpoint with `park: true` found its work not done yet: the run stops here, to
    /// be continued by `mkplan resume` (the step is run again then).
    CheckpointParked {
        step: StepRef,
        /// What it waits for, one line each.
        waiting_for: Vec<String>,
        /// What the checkpoint read: every APQN of its tokens, the operations.
        #[serde(default)]
        data: StepData,
    },
    /// A step failed where no rescue can undo the change (a new WK is already active): the
    /// run stops here and `mkplan resume` runs the step again.
    RunHalted {
        step: StepRef,
        reason: String,
    },
    RescueStarted {
        after: StepRef,
    },
    AlwaysStarted,
    /// After `always`, whatever the outcome: every token's APQNs and keys as the run leaves
    /// them (`record::end_state::EndStateRecord`); `summary` is its one line for people.
    EndState {
        summary: String,
        data: StepData,
    },
    Interrupted {
        reason: String,
    },
    RunFinished {
        outcome: Outcome,
    },
    /// Not journaled: progress of a long step.
    Progress {
        step: StepRef,
        done: u64,
        total: Option<u64>,
        message: String,
    },
    /// Not journaled: something people should know while a step runs.
    Notice {
        step: Option<StepRef>,
        message: String,
    },
}

impl EventKind {
    /// Whether this event belongs in the journal.
    pub fn is_durable(&self) -> bool {
        !matches!(self, EventKind::Progress { .. } | EventKind::Notice { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted { .. } => "run_started",
            EventKind::Resumed { .. } => "resumed",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::StepSucceeded { .. } => "step_succeeded",
            EventKind::StepFailed { .. } => "step_failed",
            EventKind::StepSkipped { .. } => "step_skipped",
            EventKind::UnitStopping { .. } => "unit_stopping",
            EventKind::CheckpointShown { .. } => "checkpoint_shown",
            EventKind::CheckpointApproved { .. } => "checkpoint_approved",
            EventKind::CheckpointRefused { .. } => "checkpoint_refused",
            EventKind::CheckpointDenied { .. } => "checkpoint_denied",
            EventKind::Decision { .. } => "decision",
            EventKind::StepMilestone { .. } => "step_milestone",
            EventKind::CheckpointParked { .. } => "checkpoint_parked",
            EventKind::RunHalted { .. } => "run_halted",
            EventKind::RescueStarted { .. } => "rescue_started",
            EventKind::AlwaysStarted => "always_started",
            EventKind::EndState { .. } => "end_state",
            EventKind::Interrupted { .. } => "interrupted",
            EventKind::RunFinished { .. } => "run_finished",
            EventKind::Progress { .. } => "progress",
            EventKind::Notice { .. } => "notice",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMethod {
    Tty,
    Flag,
    File,
    /// The simulated operator of `mkplan rehearse`: no person approved anything.
    Rehearsal,
}

impl ApprovalMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMethod::Tty => "tty",
            ApprovalMethod::Flag => "flag",
            ApprovalMethod::File => "file",
            ApprovalMethod::Rehearsal => "rehearsal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Run the uncertain step again.
    Retry,
    /// Take the uncertain step as having succeeded.
    Accept,
}

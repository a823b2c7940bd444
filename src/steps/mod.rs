//! Step kinds: one file each. A step has a read-only `check` for the dry run and a `run`
//! that may change the system; only the executor in run mode calls `run`. This file is the
//! registry: the one `match` that maps a step kind to its implementation.

pub mod assert_wk;
pub mod backup;
mod checkpoint;
mod command;
pub mod context;
mod expected_wkvp;
pub mod guards;
pub mod migrate;
pub mod probe_keys;
pub mod restore;
mod start;
mod stop;
mod units;

use serde_json::Value;

pub use context::{CheckContext, RunContext};

use crate::engine::ports::host::{BackupCheck, HostView};
use crate::plan::model::{Step, StepKind};
use crate::steps::guards::backup::this_runs_backup;

/// What a successful step reports: a one-line summary and data for the journal and report.
#[derive(Debug, Clone)]
pub struct StepSuccess {
    pub summary: String,
    pub data: Value,
}

impl StepSuccess {
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            data: Value::Null,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
}

/// Why a step did not succeed.
#[derive(Debug, Clone)]
pub enum StepError {
    /// The step failed; the run goes to `rescue`.
    Failed { message: String, data: Value },
    /// A checkpoint was denied; the run is aborted (rescue, then always).
    Denied { reason: String },
    /// A stop was requested while the step waited for a person (a prompt): it did nothing,
    /// and the run stops here to be resumed, without rescue.
    Interrupted,
}

impl StepError {
    pub fn failed(message: impl Into<String>) -> Self {
        StepError::Failed {
            message: message.into(),
            data: Value::Null,
        }
    }

    pub fn failed_with(message: impl Into<String>, data: Value) -> Self {
        StepError::Failed {
            message: message.into(),
            data,
        }
    }
}

pub type StepResult = Result<StepSuccess, StepError>;

/// The dry run's verdict on one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckReport {
    /// Its preconditions hold (or will, given the earlier steps); what it read.
    WillRun(String),
    /// It would be skipped, and why.
    WouldSkip(String),
    /// It cannot be simulated without changing things, and why.
    CannotSimulate(String),
    /// A precondition does not hold: the run would fail here.
    Blocked(String),
}

/// What an interruption in the middle of a step leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// Running it again is safe (it is read-only, or idempotent).
    Rerun,
    /// It may have changed the system half-way: an operator decides (retry or accept).
    Decide,
}

/// How an interrupted step of this kind is handled on resume.
pub fn interruption(step: &Step) -> Interruption {
    match &step.kind {
        StepKind::Migrate(_) | StepKind::Restore { .. } => Interruption::Decide,
        StepKind::Command(c) if !c.read_only => Interruption::Decide,
        // Stopping, starting, backing up to a temporary name and rewriting a config file
        // atomically can all be repeated; checks and checkpoints change nothing.
        _ => Interruption::Rerun,
    }
}

pub fn run(step: &Step, cx: &mut RunContext<'_>) -> StepResult {
    match &step.kind {
        StepKind::AssertWk(a) => assert_wk::run(a, cx),
        StepKind::Checkpoint(c) => checkpoint::run(c, cx),
        StepKind::Stop(s) => stop::stop(s, cx),
        StepKind::Start(s) => start::start(s, cx),
        StepKind::Backup { token, to } => backup::backup(token, to, cx),
        StepKind::Restore { token, from } => restore::restore(token, from, cx),
        StepKind::Migrate(m) => migrate::run(m, cx),
        StepKind::SetExpectedWkvp { token } => expected_wkvp::run(token, cx),
        StepKind::ProbeKeys { token, module } => probe_keys::run(token, module.as_ref(), cx),
        StepKind::Command(c) => command::run(c, cx),
    }
}

pub fn check(step: &Step, cx: &CheckContext<'_>) -> CheckReport {
    match &step.kind {
        StepKind::AssertWk(a) => assert_wk::check(a, cx),
        StepKind::Checkpoint(c) => checkpoint::check(c, cx),
        StepKind::Stop(s) => stop::check_stop(s, cx),
        StepKind::Start(s) => start::check_start(s, cx),
        StepKind::Backup { token, to } => backup::check_backup(token, to, cx),
        StepKind::Restore { token, .. } => restore::check_restore(token, cx),
        StepKind::Migrate(m) => migrate::check(m, cx),
        StepKind::SetExpectedWkvp { token } => expected_wkvp::check(token, cx),
        StepKind::ProbeKeys { token, module } => probe_keys::check(token, module.as_ref(), cx),
        StepKind::Command(c) => command::check(c, cx),
    }
}

/// Why `--accept-step` must not take the uncertain `step` as done, if the store shows it is
/// not: a migration is complete only if every key object changed from the backup, a restore
/// only if the store is identical to the backup.
pub fn refuse_accept(
    plan: &crate::plan::Plan,
    host: &dyn HostView,
    state: &crate::engine::state::RunState,
    step: &crate::engine::events::StepRef,
) -> Result<(), String> {
    match plan_step(plan, step).map(|s| &s.kind) {
        Some(StepKind::Migrate(m)) => {
            match migrate::store_changes(host, &plan.tokens[&m.token], state) {
                Some((changed, objects)) if changed == objects && objects > 0 => Ok(()),
                Some((changed, objects)) => Err(format!(
                    "only {changed} of {objects} key object files differ from the backup, so the migration did not complete"
                )),
                None => Err("the store cannot be compared with this run's backup".to_owned()),
            }
        }
        Some(StepKind::Restore { token, from }) => {
            let token = &plan.tokens[token];
            let backup = this_runs_backup(state, &token.id, Some(from))
                .ok_or("this run has no verified backup to compare the store with")?;
            let store = host.root().path(&token.store);
            let comparison = host
                .compare_with_backup(&store, &backup, BackupCheck::ManifestOnly)
                .map_err(|e| e.to_string())?;
            match comparison.difference {
                None => Ok(()),
                Some(e) => Err(format!(
                    "the store is not the backup ({e}), so the restore did not complete"
                )),
            }
        }
        _ => Ok(()),
    }
}

fn plan_step<'p>(
    plan: &'p crate::plan::Plan,
    step: &crate::engine::events::StepRef,
) -> Option<&'p Step> {
    let section = match step.section {
        crate::engine::events::SectionName::Steps => &plan.steps,
        crate::engine::events::SectionName::Rescue => &plan.rescue,
        crate::engine::events::SectionName::Always => &plan.always,
    };
    section.get(step.index)
}

/// What is known about a step that an interruption left uncertain, to help the operator
/// decide between retrying it and accepting it.
pub fn describe_uncertain(
    plan: &crate::plan::Plan,
    host: &dyn HostView,
    state: &crate::engine::state::RunState,
    step: &crate::engine::events::StepRef,
) -> Vec<String> {
    let attempts = state
        .record(step.section, step.index)
        .map_or(0, |r| r.attempts);
    let mut lines = vec![format!(
        "it was started {attempts} time(s); no outcome was recorded"
    )];
    match plan_step(plan, step).map(|s| &s.kind) {
        Some(StepKind::Migrate(m)) => lines.extend(migrate::describe_uncertain(
            host,
            &plan.tokens[&m.token],
            state,
        )),
        Some(StepKind::Restore { .. }) => {
            lines.push(match refuse_accept(plan, host, state, step) {
                Ok(()) => "compared with the backup: the store is identical to it".to_owned(),
                Err(e) => format!("compared with the backup: {e}"),
            });
            lines.push("--retry-step restores the verified backup again; --accept-step takes the restore as complete (refused unless the store is identical to the backup)".to_owned());
        }
        _ => {}
    }
    lines
}

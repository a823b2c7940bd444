//! The registry: the one `match` that maps a step kind to the file that implements it.

use crate::engine::step::{
    CheckContext, CheckReport, Interruption, RunContext, StepResult, Steps, UncertainContext,
};
use crate::plan::model::{BackupStep, ExpectedWkvpStep, ProbeKeysStep, RestoreStep};
use crate::plan::model::{Step, StepKind};
use crate::steps::{
    assert_wk, backup, checkpoint, command, expected_wkvp, migrate, probe_keys, restore, start,
    stop,
};

/// Every step kind mkplan knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl Steps for Registry {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> CheckReport {
        match &step.kind {
            StepKind::AssertWk(a) => assert_wk::check(a, cx),
            StepKind::Checkpoint(c) => checkpoint::check(c, cx),
            StepKind::Stop(s) => stop::check_stop(s, cx),
            StepKind::Start(s) => start::check_start(s, cx),
            StepKind::Backup(BackupStep { token, to }) => backup::check_backup(token, to, cx),
            StepKind::Restore(RestoreStep { token, .. }) => restore::check_restore(token, cx),
            StepKind::Migrate(m) => migrate::check(m, cx),
            StepKind::SetExpectedWkvp(ExpectedWkvpStep { token }) => {
                expected_wkvp::check(token, cx)
            }
            StepKind::ProbeKeys(ProbeKeysStep { token, module }) => {
                probe_keys::check(token, module.as_ref(), cx)
            }
            StepKind::Command(c) => command::check(c, cx),
        }
    }

    fn run(&self, step: &Step, cx: &mut RunContext<'_>) -> StepResult {
        match &step.kind {
            StepKind::AssertWk(a) => assert_wk::run(a, cx),
            StepKind::Checkpoint(c) => checkpoint::run(c, cx),
            StepKind::Stop(s) => stop::stop(s, cx),
            StepKind::Start(s) => start::start(s, cx),
            StepKind::Backup(BackupStep { token, to }) => backup::backup(token, to, cx),
            StepKind::Restore(RestoreStep { token, from }) => restore::restore(token, from, cx),
            StepKind::Migrate(m) => migrate::run(m, cx),
            StepKind::SetExpectedWkvp(ExpectedWkvpStep { token }) => expected_wkvp::run(token, cx),
            StepKind::ProbeKeys(ProbeKeysStep { token, module }) => {
                probe_keys::run(token, module.as_ref(), cx)
            }
            StepKind::Command(c) => command::run(c, cx),
        }
    }

    fn interruption(&self, step: &Step) -> Interruption {
        match &step.kind {
            StepKind::Migrate(_) | StepKind::Restore(_) => Interruption::Decide,
            StepKind::Command(c) if !c.read_only => Interruption::Decide,
            // Stopping, starting, backing up to a temporary name and rewriting a config file
            // atomically can all be repeated; checks and checkpoints change nothing.
            _ => Interruption::Rerun,
        }
    }

    fn describe_uncertain(&self, step: &Step, cx: &UncertainContext<'_>) -> Vec<String> {
        match &step.kind {
            StepKind::Migrate(m) => migrate::describe_uncertain(m, cx),
            StepKind::Restore(RestoreStep { token, from }) => {
                restore::describe_uncertain(token, from, cx)
            }
            _ => Vec::new(),
        }
    }

    fn refuse_accept(&self, step: &Step, cx: &UncertainContext<'_>) -> Result<(), String> {
        match &step.kind {
            StepKind::Migrate(m) => migrate::refuse_accept(m, cx),
            StepKind::Restore(RestoreStep { token, from }) => {
                restore::refuse_accept(token, from, cx)
            }
            _ => Ok(()),
        }
    }
}

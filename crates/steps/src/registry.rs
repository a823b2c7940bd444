//! The registry: the one `match` that maps a step kind to the file that implements it
//! ([`dispatch`]). Each method of the engine's step contract is a small visitor over it.

use crate::assert_mk::AssertMkKind;
use crate::assert_wk::AssertWkKind;
use crate::backup::BackupKind;
use crate::checkpoint::CheckpointKind;
use crate::command::CommandKind;
use crate::expected_mkvps::ExpectedMkvpsKind;
use crate::expected_wkvp::ExpectedWkvpKind;
use crate::kind::Kind;
use crate::migrate::MigrateKind;
use crate::mk_change::{CancelKind, FinalizeKind, ReencipherKind};
use crate::probe_keys::ProbeKeysKind;
use crate::restore::RestoreKind;
use crate::start::StartKind;
use crate::stop::StopKind;
use mkplan_engine::ports::host::HostView;
use mkplan_engine::state::RunState;
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, StepResult, Steps,
    UncertainContext,
};
use mkplan_plan::model::{Plan, Step, StepKind};

/// Every step kind mkplan knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

/// Something done with a step's kind and its arguments.
trait Visit {
    type Out;
    fn visit<K: Kind>(self, args: &K::Args) -> Self::Out;
}

/// The one place a step kind is matched: a new kind is one more line here.
fn dispatch<V: Visit>(step: &Step, visit: V) -> V::Out {
    match &step.kind {
        StepKind::AssertWk(args) => visit.visit::<AssertWkKind>(args),
        StepKind::Checkpoint(args) => visit.visit::<CheckpointKind>(args),
        StepKind::Stop(args) => visit.visit::<StopKind>(args),
        StepKind::Start(args) => visit.visit::<StartKind>(args),
        StepKind::Backup(args) => visit.visit::<BackupKind>(args),
        StepKind::Restore(args) => visit.visit::<RestoreKind>(args),
        StepKind::Migrate(args) => visit.visit::<MigrateKind>(args),
        StepKind::SetExpectedWkvp(args) => visit.visit::<ExpectedWkvpKind>(args),
        StepKind::SetExpectedMkvps(args) => visit.visit::<ExpectedMkvpsKind>(args),
        StepKind::AssertMk(args) => visit.visit::<AssertMkKind>(args),
        StepKind::ProbeKeys(args) => visit.visit::<ProbeKeysKind>(args),
        StepKind::Command(args) => visit.visit::<CommandKind>(args),
        StepKind::MkReencipher(args) => visit.visit::<ReencipherKind>(args),
        StepKind::MkFinalize(args) => visit.visit::<FinalizeKind>(args),
        StepKind::MkCancel(args) => visit.visit::<CancelKind>(args),
    }
}

struct Check<'c, 'a>(&'c CheckContext<'a>);

impl Visit for Check<'_, '_> {
    type Out = CheckReport;
    fn visit<K: Kind>(self, args: &K::Args) -> CheckReport {
        K::check(args, self.0)
    }
}

struct Run<'c, 'a>(&'c mut RunContext<'a>);

impl Visit for Run<'_, '_> {
    type Out = StepResult;
    fn visit<K: Kind>(self, args: &K::Args) -> StepResult {
        K::run(args, self.0).map(Into::into).map_err(Into::into)
    }
}

struct InterruptionOf;

impl Visit for InterruptionOf {
    type Out = Interruption;
    fn visit<K: Kind>(self, args: &K::Args) -> Interruption {
        K::interruption(args)
    }
}

struct DescribeUncertain<'c, 'a>(&'c UncertainContext<'a>);

impl Visit for DescribeUncertain<'_, '_> {
    type Out = Vec<String>;
    fn visit<K: Kind>(self, args: &K::Args) -> Vec<String> {
        K::describe_uncertain(args, self.0)
    }
}

struct RefuseAccept<'c, 'a>(&'c UncertainContext<'a>);

impl Visit for RefuseAccept<'_, '_> {
    type Out = Result<(), AcceptRefused>;
    fn visit<K: Kind>(self, args: &K::Args) -> Result<(), AcceptRefused> {
        K::refuse_accept(args, self.0)
    }
}

impl Steps for Registry {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> CheckReport {
        dispatch(step, Check(cx))
    }

    fn run(&self, step: &Step, cx: &mut RunContext<'_>) -> StepResult {
        dispatch(step, Run(cx))
    }

    fn interruption(&self, step: &Step) -> Interruption {
        dispatch(step, InterruptionOf)
    }

    fn describe_uncertain(&self, step: &Step, cx: &UncertainContext<'_>) -> Vec<String> {
        dispatch(step, DescribeUncertain(cx))
    }

    fn refuse_accept(&self, step: &Step, cx: &UncertainContext<'_>) -> Result<(), AcceptRefused> {
        dispatch(step, RefuseAccept(cx))
    }

    fn refuse_resume(&self, plan: &Plan, state: &RunState, host: &dyn HostView) -> Vec<String> {
        crate::guards::resume::refusals(plan, state, host)
    }

    fn halt_reason(&self, plan: &Plan, state: &RunState, host: &dyn HostView) -> Option<String> {
        crate::guards::mk_change::halt_reason(plan, state, host)
    }
}

//! The inventory before a migration need not be taken while the services are stopped: the
//! keys work with the applications running, and every second inside the window is downtime.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, in_main, kind_pointer, warning};

pub struct ProbeOutsideWindow;

impl Rule for ProbeOutsideWindow {
    fn id(&self) -> &'static str {
        "probe-outside-window"
    }

    fn why(&self) -> &'static str {
        "the downtime window is counted in minutes: a `probe_keys` before the migration that nothing before it in the window needs can run before the first `stop`"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let Some(first_stop) = plan
            .steps
            .iter()
            .position(|s| in_main(s) && matches!(s.kind, StepKind::Stop(_)))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, step) in plan.steps.iter().enumerate().skip(first_stop + 1) {
            let StepKind::ProbeKeys(probe) = &step.kind else {
                continue;
            };
            // Only what neither changes the store nor waits for people sits between.
            let needless = plan.steps[first_stop..i].iter().all(|s| {
                matches!(
                    s.kind,
                    StepKind::Stop(_)
                        | StepKind::AssertWk(_)
                        | StepKind::ProbeKeys(_)
                        | StepKind::Backup(_)
                )
            });
            let migrated_after = plan.steps[i..]
                .iter()
                .any(|s| matches!(&s.kind, StepKind::Migrate(m) if m.token == probe.token));
            if needless && migrated_after {
                out.push(
                    warning(self, format!("`{}` probes token `{}` inside the downtime window, where nothing before it needs it", step.name, probe.token))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint(format!("move it before `{}`: the keys work with the applications running, and the window is shorter by the probe's time (a key created between the probe and the stop is then not in the inventory before)", plan.steps[first_stop].name)),
                );
            }
        }
        out
    }
}

//! A parking checkpoint waits on a machine check, only in `steps`, and nothing is stopped
//! or unusable while the run is parked.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, Section, Step, StepKind};
use crate::rules::{Rule, activates, error, kind_pointer, migrations};

pub struct ParkSafely;

fn parks(step: &Step) -> bool {
    matches!(&step.kind, StepKind::Checkpoint(c) if c.park)
}

impl Rule for ParkSafely {
    fn id(&self) -> &'static str {
        "park-safely"
    }

    fn why(&self) -> &'static str {
        "a parked run may wait for days: nothing may be stopped or unusable while it does"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for step in plan.all_steps().filter(|s| parks(s)) {
            if let StepKind::Checkpoint(c) = &step.kind
                && c.until.is_none()
            {
                out.push(
                    error(self, format!("`{}` parks without `until`", step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note("`resume` goes on only when `until` holds; without it nothing proves the TKE work is done")
                        .with_hint("add `until: { assert_wk: { token: …, current: new, new: empty } }` (EP11) or `until: { assert_mk: { token: …, current: new, new: empty } }` (CCA)"),
                );
            }
            if step.section != Section::Steps {
                out.push(
                    error(
                        self,
                        format!("`{}` parks in `{}`", step.name, step.section.key()),
                    )
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_note("rescue and always put the host back; they must not wait for days")
                    .with_hint("park only in `steps`"),
                );
            }
        }
        for (p, step) in plan.steps.iter().enumerate().filter(|(_, s)| parks(s)) {
            for (s, stop) in plan.steps[..p].iter().enumerate() {
                let StepKind::Stop(group) = &stop.kind else {
                    continue;
                };
                let started_before = plan.steps[s + 1..p]
                    .iter()
                    .any(|x| matches!(&x.kind, StepKind::Start(g) if g == group));
                if !started_before {
                    out.push(
                        error(self, format!("`{group}` stays stopped while the run is parked at `{}`, possibly for days", step.name))
                            .with_pointer(kind_pointer(step))
                            .at_key()
                            .with_hint(format!("start `{group}` before the parking checkpoint, or do not park")),
                    );
                }
            }
            for (m, _, token) in migrations(plan).filter(|(m, ..)| *m < p) {
                let activated_before = plan.steps[m + 1..p].iter().any(|s| activates(s, token));
                if !activated_before {
                    out.push(
                        error(self, format!("`{}` parks after `migrate` of token `{token}` and before its activation: its keys do not work until then", step.name))
                            .with_pointer(kind_pointer(step))
                            .at_key()
                            .with_hint("use the concurrent path (`mk_change`) to wait for the activation"),
                    );
                }
            }
        }
        out
    }
}

//! Services stopped for an EP11 migration start again only after activation, and activation
//! is verified before they do. (A CCA migration comes after the set: rule
//! `migrate-order-by-type`.)

use crate::diagnostic::Diagnostic;
use crate::model::{CurrentWk, Plan, StepKind};
use crate::rules::{Rule, error, is_activation, is_cca, kind_pointer, warning};

pub struct StartAfterActivation;

impl Rule for StartAfterActivation {
    fn id(&self) -> &'static str {
        "start-after-activation"
    }

    fn why(&self) -> &'static str {
        "the seed's steps 5 and 6: activate the new WK, then restart the applications; before activation their re-enciphered keys do not work"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let StepKind::Start(service) = &step.kind else {
                continue;
            };
            let Some(stop) = plan.steps[..i]
                .iter()
                .rposition(|s| matches!(&s.kind, StepKind::Stop(x) if x == service))
            else {
                continue;
            };
            let Some(migrate) = plan.steps[stop..i]
                .iter()
                .rposition(|s| matches!(&s.kind, StepKind::Migrate(m) if !is_cca(plan, &m.token)))
                .map(|m| m + stop)
            else {
                continue;
            };
            let activation = plan.steps[migrate..i]
                .iter()
                .rposition(is_activation)
                .map(|a| a + migrate);
            let Some(activation) = activation else {
                out.push(
                    error(self, format!("`{}` starts `{service}` after a migration but before the new WK is activated", step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint("move the `start` step after the activation checkpoint"),
                );
                continue;
            };
            let verified = match &plan.steps[activation].kind {
                StepKind::Checkpoint(c) => c
                    .until
                    .as_ref()
                    .is_some_and(|u| u.check.current() == CurrentWk::New),
                _ => false,
            } || plan.steps[activation..i]
                .iter()
                .any(|s| matches!(&s.kind, StepKind::AssertWk(a) if a.current == CurrentWk::New));
            if !verified {
                out.push(
                    warning(self, format!("`{}` starts `{service}` without verifying the activation", step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint("give the activation checkpoint `until: { assert_wk: { token: …, current: new, new: empty } }`"),
                );
            }
        }
        out
    }
}

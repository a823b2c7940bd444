//! `migrate` of a token needs an earlier `assert_wk` that its new WK is committed.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, error, kind_pointer, migrations};

pub struct CommittedBeforeMigrate;

impl Rule for CommittedBeforeMigrate {
    fn id(&self) -> &'static str {
        "committed-before-migrate"
    }

    fn why(&self) -> &'static str {
        "the seed's step 1: the same new master key must be committed on every APQN first; pkcsep11_migrate checks only one"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        migrations(plan)
            .filter(|(i, _, token)| {
                !plan.steps[..*i].iter().any(|s| match &s.kind {
                    StepKind::AssertWk(a) => &a.token == *token && a.proves_new_committed(),
                    StepKind::Checkpoint(c) => c.until.as_ref().is_some_and(|u| {
                        u.check.token() == *token && u.check.proves_new_committed()
                    }),
                    _ => false,
                })
            })
            .map(|(_, step, token)| {
                error(self, format!("`{}` migrates token `{token}` without first asserting that its new WK is committed", step.name))
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_hint(format!(
                        "add before it: `assert_wk: {{ token: {token}, current: expected, new: committed }}`"
                    ))
            })
            .collect()
    }
}

//! `migrate` needs an earlier `stop` step.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, all_migrations, error, kind_pointer};

pub struct StopBeforeMigrate;

impl Rule for StopBeforeMigrate {
    fn id(&self) -> &'static str {
        "stop-before-migrate"
    }

    fn why(&self) -> &'static str {
        "the seed's step 2: stop all processes using the EP11 token, or they create and change key objects during re-encryption"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        all_migrations(plan)
            .filter(|(i, _, _)| {
                !plan.steps[..*i]
                    .iter()
                    .any(|s| matches!(s.kind, StepKind::Stop(_)))
            })
            .map(|(_, step, token)| {
                error(self, format!("`{}` migrates token `{token}` without stopping any services first", step.name))
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_hint("add a `stop: <service group>` step before it (the live check also proves no process still uses the token)")
            })
            .collect()
    }
}

//! No `restore` of a token where it can run after its activation: in the main steps after
//! the activation checkpoint, or in `always` (which runs after a successful activation too).

use crate::diagnostic::Diagnostic;
use crate::model::RestoreStep;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, activates, all_migrations, error, is_cca, kind_pointer};

pub struct NoRestoreAfterActivation;

impl Rule for NoRestoreAfterActivation {
    fn id(&self) -> &'static str {
        "no-restore-after-activation"
    }

    fn why(&self) -> &'static str {
        "after activation the old WK is gone (EP11 has no OLD register): blobs restored from the backup can never be used again. A CCA token may be restored after its new MK is set, but only while the OLD register still holds the previous MK (one set since the backup): `pkcscca` can then re-encipher the restored keys from OLD again; a second set pushes the previous MK out of OLD and the restored keys are lost"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let StepKind::Restore(RestoreStep { token, .. }) = &step.kind else {
                continue;
            };
            let sets = plan.steps[..i]
                .iter()
                .filter(|s| activates(s, token))
                .count();
            if sets > 1 || (sets == 1 && !is_cca(plan, token)) {
                out.push(
                    error(self, format!("`{}` restores token `{token}` after its new WK was activated", step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint("after activation, fix forward: re-run the migration from the verified state instead of restoring"),
                );
            }
        }
        for step in &plan.always {
            let StepKind::Restore(RestoreStep { token, .. }) = &step.kind else {
                continue;
            };
            if all_migrations(plan).any(|(_, _, migrated)| migrated == token) {
                out.push(
                    error(self, format!("`always` restores token `{token}`, but `always` also runs after the new WK is activated"))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note("after a successful run this would put back keys that no APQN can use any more")
                        .with_hint("put the restore in `rescue`, which runs only when a step fails"),
                );
            }
        }
        out
    }
}

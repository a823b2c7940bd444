//! `rescue` restores every migrated token (a warning when it does not).

use crate::diagnostic::Diagnostic;
use crate::model::{BackupStep, RestoreStep};
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, all_migrations, kind_pointer, warning};

pub struct RescueRestores;

impl Rule for RescueRestores {
    fn id(&self) -> &'static str {
        "rescue-restores"
    }

    fn why(&self) -> &'static str {
        "the seed: the program stops if the re-encryption of a token object fails; in this case, restore the back-up"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (_, step, token) in all_migrations(plan) {
            let restore = plan.rescue.iter().find_map(|s| match &s.kind {
                StepKind::Restore(RestoreStep { token: t, from }) if t == token => Some(from),
                _ => None,
            });
            let Some(from) = restore else {
                out.push(
                    warning(
                        self,
                        format!("token `{token}` is migrated but `rescue` does not restore it"),
                    )
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_hint(format!(
                        "add to `rescue`: `restore: {{ token: {token}, from: <backup target> }}`"
                    )),
                );
                continue;
            };
            let backed_up_to: Vec<_> = plan
                .steps
                .iter()
                .filter_map(|s| match &s.kind {
                    StepKind::Backup(BackupStep { token: t, to }) if t == token => Some(to),
                    _ => None,
                })
                .collect();
            if !backed_up_to.is_empty() && !backed_up_to.contains(&from) {
                out.push(
                    warning(self, format!("`rescue` restores token `{token}` from `{from}`, but the plan backs it up to `{}`", backed_up_to[0]))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint("restore from the target the backup step writes to"),
                );
            }
        }
        out
    }
}

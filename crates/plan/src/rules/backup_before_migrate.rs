//! `migrate` of a token needs an earlier `backup` of that token.

use crate::diagnostic::Diagnostic;
use crate::model::BackupStep;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, all_migrations, error, kind_pointer};

pub struct BackupBeforeMigrate;

impl Rule for BackupBeforeMigrate {
    fn id(&self) -> &'static str {
        "backup-before-migrate"
    }

    fn why(&self) -> &'static str {
        "the seed's steps 3 and 4: if a failure occurs, restore the backed-up token repository; pkcsep11_migrate stops half-way on a bad key"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (i, step, token) in all_migrations(plan) {
            let last_backup = plan.steps[..i].iter().rposition(
                |s| matches!(&s.kind, StepKind::Backup(BackupStep { token: t, .. }) if t == token),
            );
            match last_backup {
                None => out.push(
                    error(self, format!("`{}` migrates token `{token}` without backing it up first", step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint(format!("add before it: `backup: {{ token: {token}, to: <backup target> }}`")),
                ),
                Some(b) if !plan.steps[..b].iter().any(|s| matches!(s.kind, StepKind::Stop(_))) => out.push(
                    error(self, format!("the backup of token `{token}` is taken before any service is stopped"))
                        .with_pointer(kind_pointer(&plan.steps[b]))
                        .at_key()
                        .with_note("services still running can change the store after the backup; a restore would lose those changes")
                        .with_hint("move the `backup` step after the `stop` step"),
                ),
                Some(_) => {}
            }
        }
        out
    }
}

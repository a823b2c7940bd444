//! A token is re-enciphered one way only: never by both `migrate` and `mk_change`, never by
//! two operations, and never restored from a backup under a live operation.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, all_migrations, error, kind_pointer, operations};

pub struct OnePathPerToken;

impl Rule for OnePathPerToken {
    fn id(&self) -> &'static str {
        "one-path-per-token"
    }

    fn why(&self) -> &'static str {
        "the offline migrate rewrites CKA_IBM_OPAQUE in place; the concurrent path keeps it and adds CKA_IBM_OPAQUE_REENC under an operation the tool tracks; mixing them, or restoring files under a live operation, leaves blobs that neither finalize nor cancel can reconcile"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let ops: Vec<_> = operations(plan).collect();
        for (n, (i, step, op)) in ops.iter().enumerate() {
            let id = step.id.as_deref().unwrap_or("reencipher");
            for token in &op.tokens {
                for (m, migrate, _) in all_migrations(plan).filter(|(_, _, t)| *t == token) {
                    out.push(
                        error(self, format!("token `{token}` is re-enciphered by `migrate` (steps[{m}]) and by `mk_change reencipher` (steps[{i}])"))
                            .with_pointer(kind_pointer(migrate))
                            .at_key()
                            .with_hint("choose one path per token: the offline `migrate` or the concurrent `mk_change`"),
                    );
                }
                for (j, other, _) in ops[n + 1..]
                    .iter()
                    .filter(|(_, _, o)| o.tokens.contains(token))
                {
                    out.push(
                        error(self, format!("token `{token}` is re-enciphered by two operations (steps[{i}] and steps[{j}])"))
                            .with_pointer(kind_pointer(other))
                            .at_key()
                            .with_hint("re-encipher each token once; one operation may hold several tokens"),
                    );
                }
                for restore in plan
                    .all_steps()
                    .filter(|s| matches!(&s.kind, StepKind::Restore(r) if &r.token == token))
                {
                    out.push(
                        error(self, format!("`{}` restores token `{token}`, which the concurrent path changes", restore.name))
                            .with_pointer(kind_pointer(restore))
                            .at_key()
                            .with_hint(format!("undo the concurrent path with `mk_change: {{ cancel: {{ of: {id} }} }}`")),
                    );
                }
            }
        }
        out
    }
}

//! Every concurrent operation is cancelled by `rescue` (a warning when it is not), once.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, error, kind_pointer, operations, warning};

pub struct ConcurrentRescueCancels;

impl Rule for ConcurrentRescueCancels {
    fn id(&self) -> &'static str {
        "concurrent-rescue-cancels"
    }

    fn why(&self) -> &'static str {
        "the man page: before activation, `cancel` undoes the operation"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (i, step, _) in operations(plan) {
            let id = step.id.as_deref().unwrap_or("reencipher");
            let cancels: Vec<_> = plan
                .rescue
                .iter()
                .filter(|s| matches!(&s.kind, StepKind::MkCancel(e) if e.of_index == i))
                .collect();
            if cancels.is_empty() {
                out.push(
                    warning(self, format!("operation `{id}` has no `mk_change: {{ cancel: {{ of: {id} }} }}` in `rescue`"))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note("a failure or denial before activation would leave it re-enciphered with nobody to cancel it, and the token stays in single-APQN mode"),
                );
            }
            for again in cancels.iter().skip(1) {
                out.push(
                    error(
                        self,
                        format!("`{}` cancels operation `{id}` a second time", again.name),
                    )
                    .with_pointer(kind_pointer(again))
                    .at_key()
                    .with_hint("keep one cancel; it retries by itself (`retries`)"),
                );
            }
        }
        out
    }
}

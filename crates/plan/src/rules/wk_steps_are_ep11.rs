//! The wrapping-key steps (`assert_wk`, `set_expected_wkvp`, a checkpoint's `until`, the
//! concurrent `mk_change` operation) read or write an EP11 token's WK; a CCA token has none.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, Step, StepKind, TokenId};
use crate::rules::{Rule, error, is_cca, kind_pointer};

pub struct WkStepsAreEp11;

impl Rule for WkStepsAreEp11 {
    fn id(&self) -> &'static str {
        "wk-steps-not-for-cca"
    }

    fn why(&self) -> &'static str {
        "a CCA token has master keys per type (SYM, ASYM, AES, APKA) with NEW/CUR/OLD registers, not an EP11 wrapping key: a WK check or EXPECTED_WKVP edit on it would check or write nothing real"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for step in plan.all_steps() {
            for token in wk_tokens(step) {
                if is_cca(plan, token) {
                    out.push(
                        error(self, format!("`{}` is a wrapping-key step, but token `{token}` is a CCA token", step.name))
                            .with_pointer(kind_pointer(step))
                            .at_key()
                            .with_note("the concurrent path and the MK checks for CCA tokens are not supported by this version of mkplan")
                            .with_hint("for a CCA token: a `checkpoint: { tke: activate }` without `until`, then `migrate`"),
                    );
                }
            }
        }
        out
    }
}

/// The tokens whose WK a step reads or writes.
fn wk_tokens(step: &Step) -> Vec<&TokenId> {
    match &step.kind {
        StepKind::AssertWk(a) => vec![&a.token],
        StepKind::SetExpectedWkvp(e) => vec![&e.token],
        StepKind::Checkpoint(c) => c.until.iter().map(|u| &u.check.token).collect(),
        StepKind::MkReencipher(r) => r.tokens.iter().collect(),
        _ => Vec::new(),
    }
}

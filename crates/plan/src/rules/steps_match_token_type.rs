//! The wrapping-key steps (`assert_wk`, `set_expected_wkvp`, a checkpoint's `until`, the
//! concurrent `mk_change` operation) read or write an EP11 token's WK, which a CCA token
//! does not have; `set_expected_mkvps` writes a CCA token's `ccatok.conf`.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, Step, StepKind, TokenId};
use crate::rules::{Rule, error, is_cca, kind_pointer};

pub struct StepsMatchTokenType;

impl Rule for StepsMatchTokenType {
    fn id(&self) -> &'static str {
        "steps-match-token-type"
    }

    fn why(&self) -> &'static str {
        "a CCA token has master keys per type (SYM, ASYM, AES, APKA) with NEW/CUR/OLD registers, not an EP11 wrapping key: a WK check or EXPECTED_WKVP edit on it would check or write nothing real, and an EP11 token has no EXPECTED_MKVPS"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for step in plan.all_steps() {
            let cca_only = match &step.kind {
                StepKind::SetExpectedMkvps(e) => Some(&e.token),
                StepKind::AssertMk(a) => Some(&a.token),
                _ => None,
            };
            if let Some(token) = cca_only.filter(|t| !is_cca(plan, t)) {
                out.push(
                    error(
                        self,
                        format!(
                            "`{}` is a CCA master-key step, but token `{token}` is an EP11 token",
                            step.name
                        ),
                    )
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_hint("for an EP11 token use `assert_wk` / `set_expected_wkvp`"),
                );
            }
            for token in wk_tokens(step) {
                if is_cca(plan, token) {
                    out.push(
                        error(self, format!("`{}` is a wrapping-key step, but token `{token}` is a CCA token", step.name))
                            .with_pointer(kind_pointer(step))
                            .at_key()
                            .with_note("the concurrent path is not supported for CCA tokens by this version of mkplan; `migrate` and `set_expected_mkvps` check a CCA token's MK registers themselves")
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

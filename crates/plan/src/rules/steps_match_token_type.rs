//! The wrapping-key steps (`assert_wk`, `set_expected_wkvp`, a checkpoint's `until:
//! {assert_wk}`) read or write an EP11 token's WK, which a CCA token does not have; the
//! master-key steps (`assert_mk`, `set_expected_mkvps`, `until: {assert_mk}`) read or write
//! a CCA token's. The concurrent `mk_change` takes both kinds of token.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, Step, StepKind, TokenId, UntilCheck};
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
                StepKind::Checkpoint(c) => c.until.as_ref().and_then(|u| match &u.check {
                    UntilCheck::Mk(a) => Some(&a.token),
                    UntilCheck::Wk(_) => None,
                }),
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
                    .with_hint("for an EP11 token use `assert_wk` / `set_expected_wkvp` (and `until: { assert_wk: … }`)"),
                );
            }
            for token in wk_tokens(step) {
                if is_cca(plan, token) {
                    out.push(
                        error(self, format!("`{}` is a wrapping-key step, but token `{token}` is a CCA token", step.name))
                            .with_pointer(kind_pointer(step))
                            .at_key()
                            .with_hint(format!("for a CCA token use `assert_mk: {{ token: {token}, … }}` / `set_expected_mkvps` (and `until: {{ assert_mk: … }}`)")),
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
        StepKind::Checkpoint(c) => c
            .until
            .iter()
            .filter_map(|u| match &u.check {
                UntilCheck::Wk(a) => Some(&a.token),
                UntilCheck::Mk(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

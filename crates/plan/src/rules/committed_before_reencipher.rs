//! `mk_change: {reencipher}` needs, for every token of the operation, an earlier check that
//! its new WK is committed on every APQN (EP11), or that each new MK is fully loaded in NEW
//! with the current one still in CUR (CCA).

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind, TokenId};
use crate::rules::{Rule, error, is_cca, kind_pointer, operations, register_check};

pub struct CommittedBeforeReencipher;

/// Does a step before `index` prove that `token`'s new WK is committed (and not active)?
pub(crate) fn proves_committed_before(plan: &Plan, index: usize, token: &TokenId) -> bool {
    plan.steps[..index].iter().any(|s| match &s.kind {
        StepKind::AssertWk(a) => &a.token == token && a.proves_new_committed(),
        StepKind::AssertMk(a) => &a.token == token && a.proves_new_loaded(),
        StepKind::Checkpoint(c) => c
            .until
            .as_ref()
            .is_some_and(|u| u.check.token() == token && u.check.proves_new_committed()),
        _ => false,
    })
}

impl Rule for CommittedBeforeReencipher {
    fn id(&self) -> &'static str {
        "committed-before-reencipher"
    }

    fn why(&self) -> &'static str {
        "pkcshsm_mk_change step 1: the new WK (EP11: committed) or MKs (CCA: NEW full) must be loaded on every APQN first; the tool checks each token's APQNs against the patterns it is given, but only mkplan compares every APQN with the plan's new patterns before a PIN is typed"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (i, step, op) in operations(plan) {
            for token in op
                .tokens
                .iter()
                .filter(|t| !proves_committed_before(plan, i, t))
            {
                out.push(
                    error(self, format!("`{}` re-enciphers token `{token}` without first asserting that its new {} on every APQN", step.name, match is_cca(plan, token) { true => "MKs are fully loaded", false => "WK is committed" }))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint(format!(
                            "add before it: `{}`",
                            register_check(plan, token, "current: expected, new: committed", "current: expected, new: full")
                        )),
                );
            }
        }
        out
    }
}

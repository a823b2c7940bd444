//! `mk_change: {cancel}` only in `rescue`, reachable only before the activation: nothing
//! points EXPECTED_WKVP at the new WK before its activation, and a rescue that undoes
//! EXPECTED_WKVP does so before the cancel.

use crate::diagnostic::Diagnostic;
use crate::model::{ExpectedTarget, Plan, Section, Step};
use crate::rules::{
    Rule, activates, ends, error, expected_names, is_cca, kind_pointer, operations, sets_expected,
};

/// `WK` for an EP11 token, `MKs` for a CCA one.
fn key(plan: &Plan, token: &crate::model::TokenId) -> &'static str {
    match is_cca(plan, token) {
        true => "MKs",
        false => "WK",
    }
}

pub struct CancelBeforeActivation;

impl Rule for CancelBeforeActivation {
    fn id(&self) -> &'static str {
        "cancel-before-activation"
    }

    fn why(&self) -> &'static str {
        "the man page: cancel is only possible while no APQN has the new WK (CCA: MK) activated, and EXPECTED_WKVP (CCA: EXPECTED_MKVPS) must still name the current one"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (step, _) in ends(plan, false) {
            let why = match step.section {
                Section::Rescue => continue,
                Section::Steps => "it would undo the change the plan is making",
                Section::Always => "`always` runs after a successful finalize too",
            };
            out.push(
                error(
                    self,
                    format!("`{}` cancels in `{}`: {why}", step.name, step.section.key()),
                )
                .with_pointer(kind_pointer(step))
                .at_key()
                .with_hint("move the cancel to `rescue`"),
            );
        }
        for (i, _, op) in operations(plan) {
            for token in &op.tokens {
                let (keyword, _) = expected_names(plan, token);
                let activation = plan.steps[i + 1..]
                    .iter()
                    .position(|s| activates(s, token))
                    .map_or(plan.steps.len(), |a| i + 1 + a);
                for (j, step) in plan.steps.iter().enumerate() {
                    // A CCA token's early EXPECTED_MKVPS is rule `migrate-order-by-type`'s,
                    // in every plan: said once.
                    if j < activation
                        && !is_cca(plan, token)
                        && sets_expected(step, token, ExpectedTarget::New)
                    {
                        out.push(
                            error(self, format!("`{}` points {keyword} of token `{token}` at the new WK before it is activated", step.name))
                                .with_pointer(kind_pointer(step))
                                .at_key()
                                .with_note("until the activation, new processes cannot start the token with it, and the tool refuses cancel")
                                .with_hint("move it after the activation checkpoint, right before the finalize"),
                        );
                    }
                    if j > activation && sets_expected(step, token, ExpectedTarget::Current) {
                        out.push(
                            error(self, format!("`{}` points {keyword} of token `{token}` back at the old {key} after the activation", step.name, key = key(plan, token)))
                                .with_pointer(kind_pointer(step))
                                .at_key()
                                .with_note(format!("the old {key} is gone from CUR once the new one is active: the token would not start", key = key(plan, token)))
                                .with_hint("remove it; `to: current` belongs in `rescue`, before the cancel"),
                        );
                    }
                }
                restore_after_cancel(self, plan, token, &mut out);
            }
        }
        out
    }
}

/// In `rescue`, a `set_expected_wkvp` `to: current` of `token` after a cancel of it.
fn restore_after_cancel(
    rule: &CancelBeforeActivation,
    plan: &Plan,
    token: &crate::model::TokenId,
    out: &mut Vec<Diagnostic>,
) {
    let cancels = |s: &Step| matches!(&s.kind, crate::model::StepKind::MkCancel(e) if e.tokens.contains(token));
    let Some(first_cancel) = plan.rescue.iter().position(cancels) else {
        return;
    };
    for step in &plan.rescue[first_cancel + 1..] {
        if sets_expected(step, token, ExpectedTarget::Current) {
            out.push(
                error(rule, format!("`{}` restores {} of token `{token}` after the cancel: the tool needs the current value for the cancel", step.name, expected_names(plan, token).0))
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_hint("move it before the cancel"),
            );
        }
    }
}

//! The activation checkpoint of a token comes after its `migrate`, only in the main steps,
//! and a migrated token has one.

use crate::diagnostic::Diagnostic;
use crate::model::Plan;
use crate::model::StepKind;
use crate::rules::{
    Rule, activates, error, in_main, is_activation, is_cca, kind_pointer, register_check, rewrites,
};

pub struct ActivateAfterMigrate;

impl Rule for ActivateAfterMigrate {
    fn id(&self) -> &'static str {
        "activate-after-migrate"
    }

    fn why(&self) -> &'static str {
        "the seed's step 4: do not continue with step 5 (activate) unless step 4 (migrate) was successful, otherwise you lose your encrypted data"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for step in plan.all_steps().filter(|s| is_activation(s) && !in_main(s)) {
            out.push(
                error(
                    self,
                    format!(
                        "the activation checkpoint `{}` is in `{}`",
                        step.name,
                        step.section.key()
                    ),
                )
                .with_pointer(kind_pointer(step))
                .at_key()
                .with_note("rescue and always run after a failure, possibly a failed migration")
                .with_hint("activate only in `steps`, right after the successful `migrate`"),
            );
        }
        for (i, step) in plan
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| is_activation(s))
        {
            let migrated_before = rewrites(plan)
                .into_iter()
                .any(|(m, _, token)| m < i && activates(step, token));
            // A CCA token's set comes before its migration (rule `migrate-order-by-type`):
            // only a checkpoint that activates an EP11 token needs a migration before it.
            let activates_ep11 = plan
                .tokens
                .keys()
                .any(|t| !is_cca(plan, t) && activates(step, t));
            if activates_ep11 && !migrated_before {
                out.push(
                    error(self, format!("the activation checkpoint `{}` comes before any migration of its token", step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint("move it after the `migrate` step of the token it activates"),
                );
            }
        }
        for (m, step, token) in rewrites(plan) {
            if !plan.steps[m + 1..].iter().any(|s| activates(s, token)) {
                let key = match is_cca(plan, token) {
                    true => "MKs (the set)",
                    false => "WK",
                };
                let message = match step.kind {
                    StepKind::MkReencipher(_) => format!(
                        "token `{token}` is re-enciphered at steps[{m}] but no later checkpoint activates its new {key}"
                    ),
                    _ => format!(
                        "token `{token}` is migrated but no later checkpoint activates its new WK"
                    ),
                };
                out.push(
                    error(self, message)
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note("re-enciphered keys work only once the new WK (CCA: MKs) is activated on the TKE")
                        .with_hint(format!("add after it: `checkpoint: {{ tke: activate, say: …, until: {{ {} }} }}`", register_check(plan, token, "current: new, new: empty", "current: new, new: empty"))),
                );
            }
        }
        out
    }
}

//! The offline migration's place relative to the activation checkpoint depends on the token
//! type (opencryptoki-ep11.md 5): an EP11 token is migrated before its new WK is activated,
//! a CCA token after its new MK is loaded and set.

use crate::diagnostic::Diagnostic;
use crate::model::{ExpectedTarget, Plan, StepKind};
use crate::rules::{Rule, activates, all_migrations, error, is_cca, kind_pointer};

pub struct MigrateOrder;

impl Rule for MigrateOrder {
    fn id(&self) -> &'static str {
        "migrate-order-by-type"
    }

    fn why(&self) -> &'static str {
        "the order is reversed between token types: pkcsep11_migrate re-enciphers EP11 keys to the committed NEW WK before activation (after it the old WK is gone), while pkcscca -m keys re-enciphers CCA keys from the OLD register to the CURRENT one, so the new MK must be loaded and set first"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (i, step, token) in all_migrations(plan) {
            let set_before = plan.steps[..i].iter().find(|s| activates(s, token));
            match (is_cca(plan, token), set_before) {
                (true, None) => out.push(
                    error(
                        self,
                        format!(
                            "`{}` migrates CCA token `{token}` before its new master key is set",
                            step.name
                        ),
                    )
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_note("before the set, the keys' MK is still CURRENT and OLD does not hold it: pkcscca has nothing to re-encipher from")
                    .with_hint("move it after the `checkpoint: { tke: activate }` that sets the new MK"),
                ),
                (true, Some(set))
                    if plan.tokens[token].config.is_some()
                        && !plan.steps[..i].iter().skip_while(|s| s.index != set.index).any(|s| {
                            matches!(&s.kind, StepKind::SetExpectedMkvps(e) if &e.token == token && e.to == ExpectedTarget::New)
                        }) =>
                {
                    out.push(
                        error(
                            self,
                            format!(
                                "`{}` migrates CCA token `{token}` without first pointing its EXPECTED_MKVPS at the new MKs",
                                step.name
                            ),
                        )
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note("after the set, openCryptoki does not start a token whose EXPECTED_MKVPS names the previous MK: pkcscca could not open a session")
                        .with_hint(format!("add `set_expected_mkvps: {{ token: {token} }}` between the set and this step")),
                    )
                }
                (false, Some(activation)) => out.push(
                    error(
                        self,
                        format!(
                            "`{}` migrates EP11 token `{token}` after `{}` activated its new WK",
                            step.name, activation.name
                        ),
                    )
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_note("EP11 has no OLD register: once the new WK is current, keys under the old one cannot be re-enciphered")
                    .with_hint("migrate the EP11 token before the activation checkpoint"),
                ),
                _ => {}
            }
        }
        for (i, step) in plan.steps.iter().enumerate() {
            if let StepKind::SetExpectedMkvps(e) = &step.kind
                && e.to == ExpectedTarget::New
                && !plan.steps[..i].iter().any(|s| activates(s, &e.token))
            {
                out.push(
                    error(self, format!("`{}` points EXPECTED_MKVPS of token `{}` at the new MKs before they are set", step.name, e.token))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note("the token does not start while EXPECTED_MKVPS names an MK that is not current")
                        .with_hint("move it after the `checkpoint: { tke: activate }` that sets the new MKs, before the `migrate` (offline) or the `mk_change: { finalize }` (concurrent)"),
                );
            }
        }
        out
    }
}

//! The offline migration's place relative to the activation checkpoint depends on the token
//! type (opencryptoki-ep11.md 5): an EP11 token is migrated before its new WK is activated,
//! a CCA token after its new MK is loaded and set.

use crate::diagnostic::Diagnostic;
use crate::model::Plan;
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
        out
    }
}

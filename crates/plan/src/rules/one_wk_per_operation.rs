//! The tokens of one operation share their WKs, and each names its `config`.

use crate::diagnostic::Diagnostic;
use crate::model::Plan;
use crate::rules::{Rule, error, kind_pointer, operations};

pub struct OneWkPerOperation;

impl Rule for OneWkPerOperation {
    fn id(&self) -> &'static str {
        "one-wk-per-operation"
    }

    fn why(&self) -> &'static str {
        "the tool takes one --ep11-wkvp per operation and queries every token against its current WK; mkplan needs each config to check APQN_ALLOWLIST and EXPECTED_WKVP"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (_, step, op) in operations(plan) {
            let tokens: Vec<_> = op
                .tokens
                .iter()
                .filter_map(|t| plan.tokens.get(t))
                .collect();
            if let Some(first) = tokens.first() {
                for other in &tokens[1..] {
                    if other.wkvp_new != first.wkvp_new || other.wkvp_current != first.wkvp_current
                    {
                        out.push(
                            error(self, format!("`{}` puts tokens `{}` (new {}) and `{}` (new {}) in one operation, with different WKs", step.name, first.id, first.wkvp_new, other.id, other.wkvp_new))
                                .with_pointer(kind_pointer(step))
                                .at_key()
                                .with_hint("one `mk_change: {reencipher}` per new WK"),
                        );
                    }
                }
            }
            for token in tokens.iter().filter(|t| t.config.is_none()) {
                out.push(
                    error(self, format!("token `{}` of `{}` names no `config`", token.id, step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_hint(format!("add `config: /etc/opencryptoki/ep11tok.conf` (the file opencryptoki.conf names for slot {}) to token `{}`", token.slot, token.id)),
                );
            }
        }
        out
    }
}

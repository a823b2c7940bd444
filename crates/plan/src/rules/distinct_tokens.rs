//! A token's APQNs are unique, and no two tokens share a slot or a store.

use std::collections::HashMap;

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, TokenId};
use crate::rules::{Rule, error};

pub struct DistinctTokens;

impl Rule for DistinctTokens {
    fn id(&self) -> &'static str {
        "distinct-tokens"
    }

    fn why(&self) -> &'static str {
        "an APQN is listed once per token, and a slot or store belongs to one token: a duplicate would be checked, migrated, backed up or restored twice over"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut slots: HashMap<u16, &TokenId> = HashMap::new();
        for token in plan.tokens.values() {
            let base = format!("/tokens/{}", token.id);
            for (i, apqn) in token.apqns.iter().enumerate() {
                if let Some(first) = token.apqns[..i].iter().position(|a| a == apqn) {
                    out.push(
                        error(
                            self,
                            format!("APQN {apqn} is listed twice for token `{}`", token.id),
                        )
                        .with_pointer(format!("{base}/apqns/{i}"))
                        .with_note(format!("first listed as `apqns[{first}]`"))
                        .with_hint("different notations can name the same APQN; remove one"),
                    );
                }
            }
            if let Some(other) = slots.insert(token.slot.get(), &token.id) {
                out.push(
                    error(
                        self,
                        format!(
                            "tokens `{other}` and `{}` both use slot {}",
                            token.id, token.slot
                        ),
                    )
                    .with_pointer(format!("{base}/slot"))
                    .with_hint("each token has its own slot in `opencryptoki.conf`; write that token's slot number"),
                );
            }
            for other in plan.tokens.values().filter(|o| o.id < token.id) {
                if token.store.starts_with(&other.store) || other.store.starts_with(&token.store) {
                    out.push(
                        error(
                            self,
                            format!(
                                "tokens `{}` and `{}` share a store (`{}` and `{}`)",
                                other.id,
                                token.id,
                                other.store.display(),
                                token.store.display()
                            ),
                        )
                        .with_pointer(format!("{base}/store"))
                        .with_hint("each token has its own store, `/var/lib/opencryptoki/<tokname>` (`tokname` in `opencryptoki.conf`); write that token's store"),
                    );
                }
            }
        }
        out
    }
}

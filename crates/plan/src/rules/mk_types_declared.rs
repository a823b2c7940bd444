//! A CCA `migrate` names only MK types its token declares under `mks`; `mks` on the
//! `migrate` of an EP11 token means nothing.

use crate::diagnostic::Diagnostic;
use crate::model::{CcaMk, Plan, StepKind};
use crate::rules::{Rule, error, kind_pointer};

pub struct MkTypesDeclared;

impl Rule for MkTypesDeclared {
    fn id(&self) -> &'static str {
        "mk-types-declared"
    }

    fn why(&self) -> &'static str {
        "the token's `mks` say which CCA master keys its keys are under and which new patterns the TKE sets; migrating a type the token does not declare re-enciphers under a master key nobody checked"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for step in plan.all_steps() {
            let StepKind::Migrate(m) = &step.kind else {
                continue;
            };
            let Some(token) = plan.tokens.get(&m.token) else {
                continue;
            };
            if !m.mks_named {
                continue;
            }
            if !token.is_cca() {
                out.push(
                    error(
                        self,
                        format!(
                            "`{}` names CCA master-key types, but token `{}` is EP11",
                            step.name, m.token
                        ),
                    )
                    .with_pointer(format!("{}/mks", kind_pointer(step)))
                    .at_key()
                    .with_hint(
                        "leave `mks` out: pkcsep11_migrate re-enciphers under the one wrapping key",
                    ),
                );
                continue;
            }
            let undeclared: Vec<CcaMk> = m
                .mks
                .iter()
                .copied()
                .filter(|mk| !token.mks.contains_key(mk))
                .collect();
            if !undeclared.is_empty() {
                let names = |mks: &mut dyn Iterator<Item = CcaMk>| {
                    mks.map(|mk| format!("`{}`", mk.key()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                out.push(
                    error(
                        self,
                        format!(
                            "`{}` migrates MK type(s) {} that token `{}` does not declare",
                            step.name,
                            names(&mut undeclared.iter().copied()),
                            m.token
                        ),
                    )
                    .with_pointer(format!("{}/mks", kind_pointer(step)))
                    .with_note(format!(
                        "token `{}` declares {}",
                        m.token,
                        names(&mut token.mks.keys().copied())
                    ))
                    .with_hint(
                        "add the type with its patterns under the token's `mks`, or drop it here",
                    ),
                );
            }
        }
        out
    }
}

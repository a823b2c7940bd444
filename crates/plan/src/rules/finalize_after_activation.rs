//! `mk_change: {finalize}` only in `steps`, once per operation, after a parking activation
//! checkpoint of every token of the operation whose `until` proves the activation done
//! (EP11: the new WK current; CCA: the new MKs current and NEW empty), and after
//! `set_expected_wkvp` / `set_expected_mkvps` of every token that has a config.

use crate::diagnostic::Diagnostic;
use crate::model::{ExpectedTarget, Plan, Section, StepKind, TkeAction, TokenId};
use crate::rules::{
    Rule, ends, error, expected_names, is_cca, kind_pointer, operations, register_check,
    sets_expected,
};

pub struct FinalizeAfterActivation;

/// The first activation checkpoint of `token` in `steps[from..to]` whose `until` proves the
/// activation done: its index and whether it parks.
fn activation_between(
    plan: &Plan,
    token: &TokenId,
    from: usize,
    to: usize,
) -> Option<(usize, bool)> {
    plan.steps[from..to]
        .iter()
        .enumerate()
        .find_map(|(i, s)| match &s.kind {
            StepKind::Checkpoint(c)
                if c.tke == Some(TkeAction::Activate)
                    && c.until.as_ref().is_some_and(|u| {
                        u.check.token() == token && u.check.proves_activated()
                    }) =>
            {
                Some((from + i, c.park))
            }
            _ => None,
        })
}

impl Rule for FinalizeAfterActivation {
    fn id(&self) -> &'static str {
        "finalize-after-activation"
    }

    fn why(&self) -> &'static str {
        "pkcshsm_mk_change steps 5-7: finalize only after the new WK (CCA: each new MK, with the NEW register empty again) is current on every APQN, with EXPECTED_WKVP (CCA: EXPECTED_MKVPS) already naming it (`Expected WKVP in config file ... does not specify the new WKVP`)"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (step, _) in ends(plan, true).filter(|(s, _)| s.section != Section::Steps) {
            out.push(
                error(
                    self,
                    format!("`{}` finalizes in `{}`", step.name, step.section.key()),
                )
                .with_pointer(kind_pointer(step))
                .at_key()
                .with_note("rescue and always run after a failure, possibly before the activation")
                .with_hint("finalize only in `steps`, after the activation checkpoint"),
            );
        }
        for (i, reencipher, op) in operations(plan) {
            let id = reencipher.id.as_deref().unwrap_or_default();
            let finalizes: Vec<(usize, &crate::model::Step)> = plan
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(&s.kind, StepKind::MkFinalize(e) if e.of_index == i))
                .collect();
            let Some(&(f, finalize)) = finalizes.first() else {
                out.push(
                    error(self, format!("operation `{id}` of `{}` is never finalized", reencipher.name))
                        .with_pointer(kind_pointer(reencipher))
                        .at_key()
                        .with_note("until finalize, every token of the operation uses one APQN only and keeps two blobs of every key")
                        .with_hint(format!("add after the activation checkpoint: `mk_change: {{ finalize: {{ of: {id} }} }}`")),
                );
                continue;
            };
            for (_, again) in &finalizes[1..] {
                out.push(
                    error(
                        self,
                        format!("`{}` finalizes operation `{id}` a second time", again.name),
                    )
                    .with_pointer(kind_pointer(again))
                    .at_key()
                    .with_hint("keep one finalize; it retries by itself (`retries`)"),
                );
            }
            for token in &op.tokens {
                let Some((a, parks)) = activation_between(plan, token, i + 1, f) else {
                    out.push(
                        error(self, format!("`{}` finalizes operation `{id}` before an activation checkpoint proves the new {} of token `{token}` current on every APQN", finalize.name, match is_cca(plan, token) { true => "MKs (NEW empty)", false => "WK" }))
                            .with_pointer(kind_pointer(finalize))
                            .at_key()
                            .with_hint(format!("add between them: `checkpoint: {{ tke: activate, park: true, say: …, until: {{ {} }} }}`", register_check(plan, token, "current: new, new: empty", "current: new, new: empty"))),
                    );
                    continue;
                };
                let activation = &plan.steps[a];
                if !parks {
                    out.push(
                        error(self, format!("the activation checkpoint `{}` of a concurrent operation must park (`park: true`)", activation.name))
                            .with_pointer(kind_pointer(activation))
                            .at_key()
                            .with_note("a checkpoint that fails while the activation is incomplete would send the run to a cancel the tool refuses once any APQN is activated")
                            .with_hint("add `park: true`: the run then waits, exit 6, until `mkplan resume` finds the new WK active"),
                    );
                }
                let has_config = plan.tokens.get(token).is_some_and(|t| t.config.is_some());
                let (keyword, kind) = expected_names(plan, token);
                if has_config
                    && !plan.steps[a + 1..f]
                        .iter()
                        .any(|s| sets_expected(s, token, ExpectedTarget::New))
                {
                    out.push(
                        error(self, format!("`{}` finalizes before `{kind}` of token `{token}`", finalize.name))
                            .with_pointer(kind_pointer(finalize))
                            .at_key()
                            .with_note(format!("the tool refuses finalize while {keyword} does not name the new key"))
                            .with_hint(format!("add `{kind}: {{ token: {token} }}` between the activation checkpoint and the finalize")),
                    );
                }
            }
        }
        out
    }
}

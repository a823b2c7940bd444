//! The static half of the design's safety rules: what a plan alone can show. Each rule is
//! one file implementing [`Rule`], listed once in [`RULES`]. The live half is re-checked by
//! the steps right before they act.

mod activate_after_migrate;
mod backup_before_migrate;
mod committed_before_migrate;
mod distinct_tokens;
mod no_restore_after_activation;
mod probe_outside_window;
mod rescue_restores;
mod sign_key_not_migrated;
mod start_after_activation;
mod stop_before_migrate;

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, Section, Step, StepKind, TkeAction, TokenId};

pub trait Rule: Sync {
    /// A short kebab-case name, shown as `rule/<id>` in every diagnostic.
    fn id(&self) -> &'static str;
    /// Why the rule exists, in one line from the procedure.
    fn why(&self) -> &'static str;
    fn check(&self, plan: &Plan) -> Vec<Diagnostic>;
}

pub static RULES: &[&dyn Rule] = &[
    &distinct_tokens::DistinctTokens,
    &committed_before_migrate::CommittedBeforeMigrate,
    &stop_before_migrate::StopBeforeMigrate,
    &backup_before_migrate::BackupBeforeMigrate,
    &activate_after_migrate::ActivateAfterMigrate,
    &no_restore_after_activation::NoRestoreAfterActivation,
    &start_after_activation::StartAfterActivation,
    &rescue_restores::RescueRestores,
    &sign_key_not_migrated::SignKeyNotMigrated,
    &probe_outside_window::ProbeOutsideWindow,
];

/// Runs every rule; each diagnostic carries the rule's id and why it exists.
pub fn check(plan: &Plan) -> Vec<Diagnostic> {
    RULES
        .iter()
        .flat_map(|rule| {
            rule.check(plan)
                .into_iter()
                .map(move |d| d.with_note(format!("rule `{}`: {}", rule.id(), rule.why())))
        })
        .collect()
}

pub(crate) fn error(rule: &dyn Rule, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(format!("rule/{}", rule.id()), message)
}

pub(crate) fn warning(rule: &dyn Rule, message: impl Into<String>) -> Diagnostic {
    Diagnostic::warning(format!("rule/{}", rule.id()), message)
}

/// The pointer of a step's kind key, where rule diagnostics point.
pub(crate) fn kind_pointer(step: &Step) -> String {
    format!("{}/{}", step.pointer(), step.kind_name())
}

/// The main steps that migrate `token`, with their positions.
pub(crate) fn migrations(plan: &Plan) -> impl Iterator<Item = (usize, &Step, &TokenId)> {
    plan.steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.kind {
            StepKind::Migrate(m) => Some((i, s, &m.token)),
            _ => None,
        })
}

/// Is this an activation checkpoint that concerns `token`? One whose `until` names a
/// token concerns that token only; one without `until` concerns every token.
pub(crate) fn activates(step: &Step, token: &TokenId) -> bool {
    match &step.kind {
        StepKind::Checkpoint(c) if c.tke == Some(TkeAction::Activate) => {
            c.until.as_ref().is_none_or(|u| &u.check.token == token)
        }
        _ => false,
    }
}

pub(crate) fn is_activation(step: &Step) -> bool {
    matches!(&step.kind, StepKind::Checkpoint(c) if c.tke == Some(TkeAction::Activate))
}

pub(crate) fn in_main(step: &Step) -> bool {
    step.section == Section::Steps
}

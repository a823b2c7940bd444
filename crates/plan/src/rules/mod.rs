//! The static half of the design's safety rules: what a plan alone can show. Each rule is
//! one file implementing [`Rule`], listed once in [`RULES`]. The live half is re-checked by
//! the steps right before they act.

mod activate_after_migrate;
mod backup_before_migrate;
mod cancel_before_activation;
mod committed_before_migrate;
mod committed_before_reencipher;
mod concurrent_rescue;
mod distinct_tokens;
mod finalize_after_activation;
mod migrate_order;
mod mk_types_declared;
mod no_restore_after_activation;
mod no_stop_for_concurrent;
mod one_path_per_token;
mod one_wk_per_operation;
mod park_safely;
mod probe_outside_window;
mod rescue_restores;
mod sign_key_not_migrated;
mod start_after_activation;
mod steps_match_token_type;
mod stop_before_migrate;

use crate::diagnostic::Diagnostic;
use crate::model::{
    EndOperationStep, ExpectedTarget, Plan, ReencipherStep, Section, Step, StepKind, TkeAction,
    TokenId,
};

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
    &committed_before_reencipher::CommittedBeforeReencipher,
    &finalize_after_activation::FinalizeAfterActivation,
    &cancel_before_activation::CancelBeforeActivation,
    &no_stop_for_concurrent::NoStopForConcurrent,
    &one_path_per_token::OnePathPerToken,
    &concurrent_rescue::ConcurrentRescueCancels,
    &park_safely::ParkSafely,
    &one_wk_per_operation::OneWkPerOperation,
    &probe_outside_window::ProbeOutsideWindow,
    &migrate_order::MigrateOrder,
    &mk_types_declared::MkTypesDeclared,
    &steps_match_token_type::StepsMatchTokenType,
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
    format!("{}/{}", step.pointer(), step.kind_name().key_path())
}

/// The main steps that start a concurrent operation (`mk_change: {reencipher}`), with their
/// positions.
pub(crate) fn operations(plan: &Plan) -> impl Iterator<Item = (usize, &Step, &ReencipherStep)> {
    plan.steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.kind {
            StepKind::MkReencipher(r) => Some((i, s, r)),
            _ => None,
        })
}

/// Every step that re-enciphers a token, offline (`migrate`) or concurrent (a reencipher,
/// once per token), with its position in `steps`.
pub(crate) fn rewrites(plan: &Plan) -> Vec<(usize, &Step, &TokenId)> {
    let mut out: Vec<_> = migrations(plan).collect();
    for (i, step, op) in operations(plan) {
        out.extend(op.tokens.iter().map(|t| (i, step, t)));
    }
    out.sort_by_key(|(i, ..)| *i);
    out
}

/// The finalize (`finalize: true`) or cancel steps of any section, with the operation
/// they end.
pub(crate) fn ends(
    plan: &Plan,
    finalize: bool,
) -> impl Iterator<Item = (&Step, &EndOperationStep)> {
    plan.all_steps()
        .filter_map(move |s| match (&s.kind, finalize) {
            (StepKind::MkFinalize(e), true) | (StepKind::MkCancel(e), false) => Some((s, e)),
            _ => None,
        })
}

/// Is this `set_expected_wkvp` (EP11) or `set_expected_mkvps` (CCA) of `token` to `to`?
pub(crate) fn sets_expected(step: &Step, token: &TokenId, to: ExpectedTarget) -> bool {
    matches!(&step.kind, StepKind::SetExpectedWkvp(e) | StepKind::SetExpectedMkvps(e) if &e.token == token && e.to == to)
}

/// The config keyword naming `token`'s expected key and the step that writes it:
/// (`EXPECTED_WKVP`, `set_expected_wkvp`) for EP11, (`EXPECTED_MKVPS`, `set_expected_mkvps`)
/// for CCA.
pub(crate) fn expected_names(plan: &Plan, token: &TokenId) -> (&'static str, &'static str) {
    match is_cca(plan, token) {
        true => ("EXPECTED_MKVPS", "set_expected_mkvps"),
        false => ("EXPECTED_WKVP", "set_expected_wkvp"),
    }
}

/// How a plan proves a state of `token`'s registers, for hints: `assert_wk: { token: T,
/// <ep11> }` for EP11, `assert_mk: { token: T, <cca> }` for CCA.
pub(crate) fn register_check(plan: &Plan, token: &TokenId, ep11: &str, cca: &str) -> String {
    match is_cca(plan, token) {
        true => format!("assert_mk: {{ token: {token}, {cca} }}"),
        false => format!("assert_wk: {{ token: {token}, {ep11} }}"),
    }
}

/// The main steps that migrate an EP11 token (before activation, with
/// `pkcsep11_migrate`), with their positions.
pub(crate) fn migrations(plan: &Plan) -> impl Iterator<Item = (usize, &Step, &TokenId)> {
    all_migrations(plan).filter(|(_, _, token)| !is_cca(plan, token))
}

/// The main steps that migrate any token, offline, with their positions.
pub(crate) fn all_migrations(plan: &Plan) -> impl Iterator<Item = (usize, &Step, &TokenId)> {
    plan.steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.kind {
            StepKind::Migrate(m) => Some((i, s, &m.token)),
            _ => None,
        })
}

pub(crate) fn is_cca(plan: &Plan, token: &TokenId) -> bool {
    plan.tokens.get(token).is_some_and(|t| t.is_cca())
}

/// Is this an activation checkpoint that concerns `token`? One whose `until` names a
/// token concerns that token only; one without `until` concerns every token.
pub(crate) fn activates(step: &Step, token: &TokenId) -> bool {
    match &step.kind {
        StepKind::Checkpoint(c) if c.tke == Some(TkeAction::Activate) => {
            c.until.as_ref().is_none_or(|u| u.check.token() == token)
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

//! Whether a run may resume on the host (design rule 8): no migration tool runs against a
//! token a step of the plan backs up, migrates or restores (a tool a killed mkplan left
//! behind is found in /proc, not in the journal), and nothing uses a store a step left
//! half-changed.

use crate::guards::tools::refuse_while_tools_run;
use crate::guards::users::{describe_users, token_users};
use mkplan_engine::ports::host::HostView;
use mkplan_engine::state::RunState;
use mkplan_plan::model::{BackupStep, Plan, RestoreStep, StepKind, TokenId};

/// Every refusal, tools first; empty when the run may resume.
pub fn refusals(plan: &Plan, state: &RunState, host: &dyn HostView) -> Vec<String> {
    tools_running(plan, host)
        .or_else(|| users_of_an_uncertain_store(plan, host, state))
        .unwrap_or_default()
}

/// The refusals of design rule 8 for every token a step of the plan backs up, migrates or
/// restores; `None` when no migration tool runs against any of them.
fn tools_running(plan: &Plan, host: &dyn HostView) -> Option<Vec<String>> {
    let mut tokens: Vec<&TokenId> = plan
        .all_steps()
        .filter_map(|s| match &s.kind {
            StepKind::Backup(BackupStep { token, .. })
            | StepKind::Restore(RestoreStep { token, .. }) => Some(token),
            StepKind::Migrate(m) => Some(&m.token),
            _ => None,
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    let refusals: Vec<String> = tokens
        .into_iter()
        .filter_map(|id| refuse_while_tools_run(host, plan, &plan.tokens[id], "resume").err())
        .map(|refusal| refusal.to_string())
        .collect();
    (!refusals.is_empty()).then_some(refusals)
}

/// A migration or restore interrupted half-way is retried (or accepted) only while nothing
/// maps the token: a process that does would see the store change under it, and the retry's
/// restore would be refused half-way through the resumed run instead of now.
fn users_of_an_uncertain_store(
    plan: &Plan,
    host: &dyn HostView,
    state: &RunState,
) -> Option<Vec<String>> {
    let record = state.uncertain()?;
    let token = match &plan.step_at(record.step.section, record.step.index)?.kind {
        StepKind::Migrate(m) => &m.token,
        StepKind::Restore(RestoreStep { token, .. }) => token,
        _ => return None,
    };
    let users = token_users(host, plan).users;
    let first = users.first()?;
    Some(vec![format!(
        "refusing to resume: {} `{}` left token `{token}` half-changed, and {} process(es) use a token now: {}; hint: stop them (`kill {}`) or wait for them to end, then resume",
        record.step.position(),
        record.step.name,
        users.len(),
        describe_users(&users),
        first.pid
    )])
}

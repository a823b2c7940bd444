//! Live guards that several steps share, each answering from the host and the whole
//! journal, never from one attempt alone: is a migration tool rewriting a token right now
//! (design rule 8), may this run have re-enciphered a token, and is the old WK gone
//! (design rule 4).

use crate::engine::record::wk::CurState;
use crate::engine::state::{RunState, StepStatus};
use crate::host::procscan::{self, RunningTool};
use crate::plan::model::{Plan, StepKind, Token, TokenId};
use crate::steps::assert_wk::read_all;
use crate::steps::context::Host;

/// Every process that runs a migration tool against `token` (whoever started it: a tool
/// left over from a killed mkplan counts like one started by hand).
pub fn running_tools(host: &Host, plan: &Plan, token: &Token) -> Vec<RunningTool> {
    let own_tools: Vec<String> = plan
        .all_steps()
        .filter_map(|s| match &s.kind {
            StepKind::Migrate(m) => m.tool.as_ref(),
            _ => None,
        })
        .filter_map(|tool| Some(tool.file_name()?.to_string_lossy().into_owned()))
        .collect();
    procscan::running_tools(
        &host.proc_dir,
        &host.root,
        token.slot.get(),
        &token.store,
        &own_tools,
    )
}

/// The refusal of design rule 8 for `action` (e.g. "restore token `ep11`"), if a migration
/// tool runs against the token: every such process with its pid and argv, and how to wait
/// for it or stop it.
pub fn refuse_while_tools_run(
    host: &Host,
    plan: &Plan,
    token: &Token,
    action: &str,
) -> Result<(), String> {
    let tools = running_tools(host, plan, token);
    let Some(first) = tools.first() else {
        return Ok(());
    };
    let listed: Vec<String> = tools.iter().map(RunningTool::describe).collect();
    Err(format!(
        "refusing to {action}: a migration tool is rewriting token `{}` (slot {}) right now: {}; hint: {}",
        token.id,
        token.slot,
        listed.join("; "),
        first.hint()
    ))
}

/// The token a step of this plan migrates, by its journal position.
fn migrated_token<'p>(
    plan: &'p Plan,
    record: &crate::engine::state::StepRecord,
) -> Option<&'p TokenId> {
    let section = match record.step.section {
        crate::engine::events::SectionName::Steps => &plan.steps,
        crate::engine::events::SectionName::Rescue => &plan.rescue,
        crate::engine::events::SectionName::Always => &plan.always,
    };
    match &section.get(record.step.index)?.kind {
        StepKind::Migrate(m) => Some(&m.token),
        _ => None,
    }
}

/// Did any attempt of any `migrate` of `token` in this run (possibly) start the tool? Every
/// attempt counts: one interrupted without an outcome may have, one refused before the tool
/// started did not. Only the journal is asked; callers that can, compare the store too.
pub fn migration_may_have_started(plan: &Plan, state: &RunState, token: &TokenId) -> bool {
    state
        .started_of_kind("migrate")
        .filter(|r| migrated_token(plan, r).is_none_or(|t| t == token))
        .flat_map(|r| r.earlier.iter().chain(std::iter::once(&r.status)))
        .any(|status| match status {
            StepStatus::Started { .. } => true,
            StepStatus::Succeeded { data, .. } | StepStatus::Failed { data, .. } => {
                data["tool_started"] != false
            }
            StepStatus::Skipped { .. } => false,
        })
}

/// The refusal of design rule 4, if the new WK is current on any APQN (or the state cannot
/// be read, in which case nobody can say the old WK still exists).
pub fn refuse_if_activated(host: &Host, token: &Token) -> Result<(), String> {
    let (statuses, problems) = read_all(host, token);
    if !problems.is_empty() {
        return Err(format!(
            "cannot confirm that the old WK is still current ({}); a restore could make every key unusable, so it is refused",
            problems.join("; ")
        ));
    }
    let activated: Vec<String> = statuses
        .iter()
        .filter(|s| {
            s.cur.state == CurState::Valid
                && s.cur
                    .vp
                    .is_some_and(|vp| vp[..16] == token.wkvp_new.bytes()[..])
        })
        .map(|s| s.apqn.to_string())
        .collect();
    if activated.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refusing to restore token `{}`: the new WK is already current on {} — the old WK is gone (EP11 has no OLD register), so the backed-up blobs could never be used again. Fix forward instead: finish the migration (activate the new WK on every APQN) and re-run `assert_wk` with `current: new`",
            token.id,
            activated.join(", ")
        ))
    }
}

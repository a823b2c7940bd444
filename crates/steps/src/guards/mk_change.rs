//! The concurrent change's live facts, shared by its three kinds, the parking checkpoint
//! and the executor's halt question: which operation a run's reencipher created (from the
//! journal only), what `pkcshsm_mk_change list` says of it, and whether the new WK is
//! already current anywhere (the point after which only forward is possible).

use std::time::{Duration, Instant};

use crate::guards::mk::shown_type;
use crate::guards::wk::read_all;
use mkplan_engine::ports::host::{HostView, ReadOnlyCommand};
use mkplan_engine::record::Record;
use mkplan_engine::record::mk_change::{
    CancelOutput, FinalizeOutput, Milestone, MkOperation, OperationId, OperationSource,
    ReencipherOutput,
};
use mkplan_engine::record::wk::{ApqnStatus, CcaKeyState};
use mkplan_engine::state::RunState;
use mkplan_plan::model::{Plan, Section, StepKind, Token, TokenId};

/// How long `list` may take (it waits for the tool's lock).
const LIST_LIMIT: Duration = Duration::from_secs(60);

/// The tool as a plan's reencipher names it (its `tool:`, else the bare name).
pub fn tool_name(plan: &Plan, of_index: usize) -> String {
    match plan.steps.get(of_index).map(|s| &s.kind) {
        Some(StepKind::MkReencipher(r)) => r
            .tool
            .as_ref()
            .map_or_else(|| TOOL.to_owned(), |t| t.display().to_string()),
        _ => TOOL.to_owned(),
    }
}

pub const TOOL: &str = "pkcshsm_mk_change";

/// The operation this run's reencipher at `steps[of_index]` created: from its record
/// (success or failure), else from the milestone journaled the moment the ID was printed.
pub fn operation_of(state: &RunState, of_index: usize) -> Option<(OperationId, OperationSource)> {
    let record = state.record(Section::Steps, of_index);
    let recorded = record
        .and_then(|r| r.status.output())
        .and_then(ReencipherOutput::of)
        .and_then(|o| {
            Some((
                o.operation.clone()?,
                o.source.unwrap_or(OperationSource::Printed),
            ))
        });
    recorded.or_else(|| {
        state
            .milestones_of(Section::Steps, of_index)
            .find_map(|m| match m {
                Milestone::OperationCreated { id } => {
                    Some((id.clone(), OperationSource::Journaled))
                }
                Milestone::ToolWorking => None,
            })
    })
}

/// Whether a finalize or cancel of this run ended the operation of `steps[of_index]`.
fn ended(state: &RunState, of_index: usize, plan: &Plan) -> bool {
    plan.all_steps().any(|s| {
        let of = match &s.kind {
            StepKind::MkFinalize(e) | StepKind::MkCancel(e) => e.of_index,
            _ => return false,
        };
        let output = state
            .record(s.section, s.index)
            .filter(|r| matches!(r.status, mkplan_engine::state::StepStatus::Succeeded { .. }))
            .and_then(|r| r.status.output());
        let action = output.and_then(|o| {
            FinalizeOutput::of(o)
                .map(|f| f.0.action)
                .or_else(|| CancelOutput::of(o).map(|c| c.0.action))
        });
        of == of_index && action.flatten().is_some()
    })
}

/// The operations this run created and has not ended: (reencipher index, ID, tokens).
pub fn live_operations(plan: &Plan, state: &RunState) -> Vec<(usize, OperationId, Vec<TokenId>)> {
    plan.steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.kind {
            StepKind::MkReencipher(r) => Some((i, r)),
            _ => None,
        })
        .filter(|(i, _)| !ended(state, *i, plan))
        .filter_map(|(i, r)| Some((i, operation_of(state, i)?.0, r.tokens.clone())))
        .collect()
}

/// `pkcshsm_mk_change list [--id ID]`: the operations it shows (none when `ID` is not
/// found), or why it could not be read.
pub fn list(
    host: &dyn HostView,
    plan: &Plan,
    tool: &str,
    id: Option<&OperationId>,
) -> Result<Vec<MkOperation>, String> {
    let command =
        ReadOnlyCommand::mk_change_list(tool, id.map(OperationId::as_str), &plan.pin_variables());
    let finished = host
        .run_read_only(&command, Some(Instant::now() + LIST_LIMIT))
        .map_err(|e| format!("cannot run `{tool} list`: {e}"))?;
    let stderr = finished.stderr.text.trim();
    match finished.exit_code {
        Some(0) => crate::guards::mk_list::parse(&finished.stdout.text),
        Some(1) if id.is_some() && stderr.contains("not found") => Ok(Vec::new()),
        _ => Err(format!(
            "`{tool} list` failed ({}): {stderr}",
            finished
                .exit_code
                .map_or_else(|| "no exit code".to_owned(), |c| format!("exit {c}"))
        )),
    }
}

/// The APQNs of `tokens` whose current WK is the plan's new one — for a CCA token, whose
/// CUR register of any declared MK type holds its new pattern (any read problem, or a
/// register that reads `- -`, is returned as such: it cannot be told).
pub fn activated(
    host: &dyn HostView,
    plan: &Plan,
    tokens: &[TokenId],
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for token in tokens.iter().filter_map(|t| plan.tokens.get(t)) {
        let (statuses, problems) = read_all(host, token);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        if token.is_cca() {
            out.extend(cca_set(token, &statuses)?);
            continue;
        }
        out.extend(
            statuses
                .iter()
                .filter(|s| {
                    s.cur
                        .vp
                        .is_some_and(|vp| vp[..16] == token.wkvp_new.bytes()[..])
                })
                .map(|s| s.apqn.lszcrypt()),
        );
    }
    Ok(out)
}

/// Why a failed main step must halt the run instead of going to `rescue`: a live
/// operation of this run whose new WK is current somewhere can only go forward (the tool
/// refuses cancel), and an unreadable register cannot prove otherwise.
pub fn halt_reason(plan: &Plan, state: &RunState, host: &dyn HostView) -> Option<String> {
    for (_, id, tokens) in live_operations(plan, state) {
        match activated(host, plan, &tokens) {
            Ok(apqns) if apqns.is_empty() => {}
            Ok(apqns) => {
                let key = new_key_words(plan, &tokens);
                return Some(format!(
                    "the new {key} is current on {}, so operation {id} can no longer be cancelled (pkcshsm_mk_change refuses once any APQN is activated): only forward is possible — activate (CCA: set) the new {key} on every APQN, fix what failed, then `mkplan resume` runs the step again",
                    apqns.join(", ")
                ));
            }
            Err(problem) => {
                return Some(format!(
                    "cannot tell whether the new {} is active ({problem}), so rescue cannot cancel operation {id} safely; fix the reading, then `mkplan resume` runs the step again",
                    new_key_words(plan, &tokens)
                ));
            }
        }
    }
    None
}

/// `WK`, `MK` or `WK or MK`: the new keys of an operation's tokens, in words.
fn new_key_words(plan: &Plan, tokens: &[TokenId]) -> &'static str {
    let cca = tokens
        .iter()
        .filter_map(|t| plan.tokens.get(t))
        .filter(|t| t.is_cca())
        .count();
    match cca {
        0 => "WK",
        n if n == tokens.len() => "MK",
        _ => "WK or MK",
    }
}

/// The APQNs of a CCA token where any declared MK type sysfs shows has its new MK in CUR:
/// from there the tool refuses cancel. SYM has no line in sysfs and is not judged here.
fn cca_set(token: &Token, statuses: &[ApqnStatus]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for status in statuses {
        let Some(cca) = &status.cca else {
            return Err(format!(
                "APQN {}: card type `{}` shows no CCA master keys",
                status.apqn, status.card_type
            ));
        };
        let mut set = false;
        for (mk, pair) in &token.mks {
            let Some(kind) = shown_type(*mk) else {
                continue;
            };
            let Some(registers) = cca.get(kind) else {
                return Err(format!(
                    "APQN {}: sysfs does not show the {kind} master key",
                    status.apqn
                ));
            };
            if registers.cur.state == CcaKeyState::Unknown {
                return Err(format!(
                    "APQN {}: the {kind} CUR register reads `- -` (unknown)",
                    status.apqn
                ));
            }
            set |= registers.cur.state == CcaKeyState::Valid
                && registers
                    .cur
                    .vp
                    .as_ref()
                    .is_some_and(|v| v.bytes().get(..8) == Some(&pair.new.bytes()[..]));
        }
        if set {
            out.push(status.apqn.lszcrypt());
        }
    }
    Ok(out)
}

//! `mk_change: {finalize}` and `{cancel}`: `pkcshsm_mk_change finalize|cancel --id ID` of
//! the operation this run's reencipher created (its ID from the journal only). Finalize
//! needs the new WK current on every APQN and EXPECTED_WKVP naming it (CCA: each new MK in
//! CUR with NEW empty, and EXPECTED_MKVPS naming the new ones); cancel needs no APQN
//! activated (CCA: set) and EXPECTED_WKVP (CCA: EXPECTED_MKVPS) still naming the current
//! key (ref 2.4). An attempt that leaves
//! the operation in ERROR is retried (`retries`, `delay`); success only when the exit code,
//! the tool's line, `list` (operation gone) and every APQN agree.

use std::collections::BTreeMap;
use std::time::Instant;

use super::cca;
use super::reencipher::ours;
use super::{expected_wkvps, run_tool, tokens_of, tool_path, tool_said};
use crate::guards::mk_change::{activated, list, operation_of, tool_name};
use crate::guards::wk::read_all;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::mk_change::{
    CancelOutput, EndAction, EndOutput, FinalizeOutput, Milestone, MkOperation, OpState,
    OperationId, OperationSource,
};
use mkplan_engine::record::wk::WkTable;
use mkplan_engine::state::{RunState, StepStatus};
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, TokenPin, UncertainContext,
};
use mkplan_plan::model::{EndOperationStep, ExpectedTarget, Plan, Section, StepKind, Token};

#[derive(Clone, Copy, PartialEq)]
enum End {
    Finalize,
    Cancel,
}

impl End {
    fn verb(self) -> &'static str {
        match self {
            End::Finalize => "finalize",
            End::Cancel => "cancel",
        }
    }
}

pub(crate) struct FinalizeKind;
pub(crate) struct CancelKind;

impl Kind for FinalizeKind {
    type Args = EndOperationStep;
    type Output = FinalizeOutput;

    fn interruption(_: &EndOperationStep) -> Interruption {
        Interruption::Decide
    }
    fn check(step: &EndOperationStep, cx: &CheckContext<'_>) -> CheckReport {
        check(End::Finalize, step, cx)
    }
    fn run(step: &EndOperationStep, cx: &mut RunContext<'_>) -> KindResult<FinalizeOutput> {
        run(End::Finalize, step, cx).map_output(FinalizeOutput)
    }
    fn describe_uncertain(step: &EndOperationStep, cx: &UncertainContext<'_>) -> Vec<String> {
        describe_uncertain(End::Finalize, step, cx)
    }
    fn refuse_accept(
        step: &EndOperationStep,
        cx: &UncertainContext<'_>,
    ) -> Result<(), AcceptRefused> {
        refuse_accept(End::Finalize, step, cx)
    }
}

impl Kind for CancelKind {
    type Args = EndOperationStep;
    type Output = CancelOutput;

    fn interruption(_: &EndOperationStep) -> Interruption {
        Interruption::Decide
    }
    fn check(step: &EndOperationStep, cx: &CheckContext<'_>) -> CheckReport {
        check(End::Cancel, step, cx)
    }
    fn run(step: &EndOperationStep, cx: &mut RunContext<'_>) -> KindResult<CancelOutput> {
        run(End::Cancel, step, cx).map_output(CancelOutput)
    }
    fn describe_uncertain(step: &EndOperationStep, cx: &UncertainContext<'_>) -> Vec<String> {
        describe_uncertain(End::Cancel, step, cx)
    }
    fn refuse_accept(
        step: &EndOperationStep,
        cx: &UncertainContext<'_>,
    ) -> Result<(), AcceptRefused> {
        refuse_accept(End::Cancel, step, cx)
    }
}

/// A result of the shared code, wrapped in the kind's own record.
trait MapOutput<O> {
    fn map_output(self, wrap: fn(EndOutput) -> O) -> KindResult<O>;
}

impl<O> MapOutput<O> for KindResult<EndOutput> {
    fn map_output(self, wrap: fn(EndOutput) -> O) -> KindResult<O> {
        match self {
            Ok(done) => Ok(Done {
                summary: done.summary,
                output: done.output.map(wrap),
            }),
            Err(Failed::Step { message, output }) => Err(Failed::Step {
                message,
                output: output.map(|o| Box::new(wrap(*o))),
            }),
            Err(Failed::Halt { message, output }) => Err(Failed::Halt {
                message,
                output: output.map(|o| Box::new(wrap(*o))),
            }),
            Err(Failed::Park {
                waiting_for,
                output,
            }) => Err(Failed::Park {
                waiting_for,
                output,
            }),
            Err(Failed::Denied(reason)) => Err(Failed::Denied(reason)),
            Err(Failed::Interrupted) => Err(Failed::Interrupted),
        }
    }
}

/// The operation of the reencipher at `steps[of]`: journaled by this run, or — after a
/// reencipher whose tool this run saw working but whose ID it did not journal (mkplan was
/// stopped before the ID line), or that the operator accepted — the one `list` shows on
/// exactly its APQNs with its new WK (the tool refuses intersecting operations, so there is
/// no other).
pub(crate) fn operation(
    host: &dyn HostView,
    plan: &Plan,
    state: &RunState,
    of: usize,
) -> Result<Option<(OperationId, OperationSource)>, String> {
    if let Some(found) = operation_of(state, of) {
        return Ok(Some(found));
    }
    let accepted = state
        .record(Section::Steps, of)
        .is_some_and(|r| matches!(r.status, StepStatus::Succeeded { .. }))
        || state
            .milestones_of(Section::Steps, of)
            .any(|m| *m == Milestone::ToolWorking);
    match plan.steps.get(of).map(|s| &s.kind) {
        Some(StepKind::MkReencipher(r)) if accepted => {
            Ok(ours(host, plan, r)?.map(|op| (op.id, OperationSource::Adopted)))
        }
        _ => Ok(None),
    }
}

fn tables(host: &dyn HostView, tokens: &[&Token]) -> Vec<WkTable> {
    tokens
        .iter()
        .map(|t| WkTable {
            token: Some(t.id.clone()),
            apqns: read_all(host, t).0,
        })
        .collect()
}

/// Whether every APQN of `tokens` has the WK (CCA: MKs) an ended operation leaves: the new
/// one after finalize (CCA: with NEW empty), the current one after cancel.
fn wk_as_ended(
    end: End,
    host: &dyn HostView,
    plan: &Plan,
    step: &EndOperationStep,
) -> Result<bool, String> {
    if end == End::Cancel {
        return Ok(activated(host, plan, &step.tokens)?.is_empty());
    }
    Ok(not_yet_set(host, plan, &step.tokens)?.is_empty())
}

/// What keeps finalize from starting, per token: EP11 APQNs whose current WK is not the new
/// one yet; CCA APQNs whose CUR is not each new MK or whose NEW is not empty.
fn not_yet_set(
    host: &dyn HostView,
    plan: &Plan,
    tokens: &[mkplan_plan::model::TokenId],
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for token in tokens_of(plan, tokens) {
        if token.is_cca() {
            if let Err(why) = cca::registers(host, token, cca::Registers::Set) {
                out.push(why);
            }
            continue;
        }
        let on_new = activated(host, plan, std::slice::from_ref(&token.id))?;
        out.extend(
            token
                .apqns
                .iter()
                .map(|a| a.lszcrypt())
                .filter(|a| !on_new.contains(a))
                .map(|a| format!("token `{}`: the new WK is not current on {a}", token.id)),
        );
    }
    Ok(out)
}

fn run(end: End, step: &EndOperationStep, cx: &mut RunContext<'_>) -> KindResult<EndOutput> {
    let plan = cx.plan;
    let tokens = tokens_of(plan, &step.tokens);
    let mut output = EndOutput {
        tokens: step.tokens.clone(),
        operation: None,
        action: None,
        state_before: None,
        attempts: Vec::new(),
        apqns_after: Vec::new(),
    };
    let tool_named = tool_name(plan, step.of_index);
    let found = operation(cx.host, plan, cx.state, step.of_index)
        .map_err(|e| Failed::with(e, output.clone()))?;
    let Some((id, _)) = found else {
        return match end {
            End::Cancel => {
                output.action = Some(EndAction::NothingToCancel);
                Ok(Done::new(format!(
                    "nothing to cancel: `{}` created no operation",
                    step.of
                ))
                .with(output))
            }
            End::Finalize => Err(Failed::with(
                format!(
                    "`{}` created no operation this run knows of; nothing to finalize",
                    step.of
                ),
                output,
            )),
        };
    };
    output.operation = Some(id.clone());
    let listed =
        list(cx.host, plan, &tool_named, Some(&id)).map_err(|e| Failed::with(e, output.clone()))?;
    let Some(op) = listed.into_iter().next() else {
        return gone(end, step, cx, &id, output);
    };
    output.state_before = Some(op.state.clone());
    if !op.state.may_end() {
        return Err(Failed::with(stuck(&op), output));
    }
    if let Err(e) = guard(end, step, cx, &tokens) {
        return Err(Failed::with(e, output));
    }
    let tool = tool_path(
        cx.host,
        plan.steps.get(step.of_index).and_then(|s| match &s.kind {
            StepKind::MkReencipher(r) => r.tool.as_deref(),
            _ => None,
        }),
    )
    .map_err(|e| Failed::with(e, output.clone()))?;
    let mut read = Vec::new();
    for token in tokens.iter().filter(|t| op.slots.contains(&t.slot.get())) {
        match cx.token_pin(token) {
            Ok(pin) => read.push((token.slot.get(), pin)),
            Err(_) if cx.cancel.requested() => return Err(Failed::Interrupted),
            Err(e) => return Err(Failed::with(e.to_string(), output)),
        }
    }
    attempts(end, step, cx, &tool, &id, &read, output)
}

/// Finalize or cancel, retried while an attempt leaves the operation in ERROR.
fn attempts(
    end: End,
    step: &EndOperationStep,
    cx: &mut RunContext<'_>,
    tool: &std::path::Path,
    id: &OperationId,
    read: &[(u16, TokenPin<'_>)],
    mut output: EndOutput,
) -> KindResult<EndOutput> {
    let plan = cx.plan;
    let tool_named = tool_name(plan, step.of_index);
    let args = vec![end.verb().to_owned(), "--id".to_owned(), id.to_string()];
    loop {
        let pins: BTreeMap<u16, &mkplan_engine::secret::Pin> =
            read.iter().map(|(slot, pin)| (*slot, &**pin)).collect();
        let (run, observed) = run_tool(cx, tool, args.clone(), pins, |_| {})
            .map_err(|e| Failed::with(e, output.clone()))?;
        let said = tool_said(&run);
        let ok_line = observed.ended.as_ref() == Some(id);
        let ok_exit = run.exit_code == Some(0);
        output.attempts.push(run);
        let after = list(cx.host, plan, &tool_named, Some(id))
            .map_err(|e| Failed::with(e, output.clone()))?;
        output.apqns_after = tables(cx.host, &tokens_of(plan, &step.tokens));
        match after.first() {
            None if ok_exit && ok_line => {
                let wk_ok = wk_as_ended(end, cx.host, plan, step).unwrap_or(false);
                if !wk_ok {
                    return Err(Failed::with(
                        format!(
                            "operation {id} is gone, but the APQNs do not show the WK it should leave"
                        ),
                        output,
                    ));
                }
                output.action = Some(match end {
                    End::Finalize => EndAction::Finalized,
                    End::Cancel => EndAction::Cancelled,
                });
                let summary = match end {
                    End::Finalize => format!(
                        "operation {id} finalized: every key's new blob is current; the token is back in multi-APQN mode"
                    ),
                    End::Cancel => format!(
                        "operation {id} cancelled: the blobs under the new {key} are gone; every key stays under the current {key}",
                        key = keys_of(plan, &step.tokens)
                    ),
                };
                return Ok(Done::new(summary).with(output));
            }
            Some(op)
                if op.state == OpState::Error && (output.attempts.len() as u32) <= step.retries =>
            {
                cx.notice(format!(
                    "{} of operation {id} failed ({said}); the operation is in ERROR, from which {} may be tried again: attempt {} of {} in {:?}",
                    end.verb(),
                    end.verb(),
                    output.attempts.len() + 1,
                    step.retries + 1,
                    step.delay
                ));
                let wake = Instant::now() + step.delay;
                while Instant::now() < wake {
                    if cx.cancel.requested() {
                        return Err(Failed::with(
                            format!("stopped while waiting to retry; operation {id} is in ERROR"),
                            output,
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50).min(step.delay));
                }
            }
            Some(op) => {
                let message = format!(
                    "{} of operation {id} failed after {} attempt(s) ({said}); the operation is {}: {}",
                    end.verb(),
                    output.attempts.len(),
                    op.state,
                    match end {
                        End::Finalize =>
                            "resume runs finalize again once the cause is fixed (see the syslog); cancel is no longer possible",
                        End::Cancel =>
                            "resume runs cancel again once the cause is fixed (see the syslog); do NOT activate the new WK",
                    }
                );
                // From ERROR only another finalize or cancel helps: nothing in rescue can.
                return Err(Failed::Halt {
                    message,
                    output: Some(Box::new(output)),
                });
            }
            None => {
                return Err(Failed::with(
                    format!(
                        "{} of operation {id}: the operation is gone but the tool did not say it succeeded ({said})",
                        end.verb()
                    ),
                    output,
                ));
            }
        }
    }
}

/// The operation is no longer listed before this attempt: done before (mkplan stopped
/// after the tool's work), or ended outside this run.
fn gone(
    end: End,
    step: &EndOperationStep,
    cx: &mut RunContext<'_>,
    id: &OperationId,
    mut output: EndOutput,
) -> KindResult<EndOutput> {
    output.apqns_after = tables(cx.host, &tokens_of(cx.plan, &step.tokens));
    match (end, wk_as_ended(end, cx.host, cx.plan, step)) {
        (End::Finalize, Ok(true)) => {
            output.action = Some(EndAction::AlreadyDone);
            Ok(Done::new(format!("operation {id} is already finalized (its files are gone and every APQN has the new WK)")).with(output))
        }
        (End::Cancel, Ok(true)) => {
            output.action = Some(EndAction::NothingToCancel);
            Ok(Done::new(format!("operation {id} no longer exists (cancelled by the tool itself or before); every APQN still has the current WK")).with(output))
        }
        (_, Ok(false)) => Err(Failed::with(
            format!(
                "operation {id} no longer exists, but the APQNs do not show the WK a {} leaves: it was ended outside this run; check every key (`probe_keys`) before anything else",
                end.verb()
            ),
            output,
        )),
        (_, Err(e)) => Err(Failed::with(
            format!("operation {id} no longer exists and the WK registers cannot be read: {e}"),
            output,
        )),
    }
}

/// `WK`, `MKs` or `WK or MKs`: the keys of an operation's tokens, in words.
fn keys_of(plan: &Plan, tokens: &[mkplan_plan::model::TokenId]) -> &'static str {
    let tokens = tokens_of(plan, tokens);
    match (
        tokens.iter().any(|t| t.is_cca()),
        tokens.iter().any(|t| !t.is_cca()),
    ) {
        (true, false) => "MKs",
        (true, true) => "WK or MKs",
        _ => "WK",
    }
}

fn stuck(op: &MkOperation) -> String {
    format!(
        "operation {} is {} but no finalize or cancel can start from that state: the tool was stopped during its work, which the man page forbids. Every key still works under the current WK. Do NOT activate the new WK; keep this run, collect `pkcshsm_mk_change list --id {}` and the syslog, and ask IBM support",
        op.id, op.state, op.id
    )
}

/// The WK and EXPECTED_WKVP state the tool needs (ref 2.4 step 2), checked before a PIN is
/// typed.
fn guard(
    end: End,
    step: &EndOperationStep,
    cx: &RunContext<'_>,
    tokens: &[&Token],
) -> Result<(), String> {
    match end {
        End::Finalize => {
            let missing = not_yet_set(cx.host, cx.plan, &step.tokens)?;
            if !missing.is_empty() {
                return Err(format!(
                    "{}: finalize only after the activation (CCA: the set, NEW empty again) on every APQN",
                    missing.join("; ")
                ));
            }
        }
        End::Cancel => {
            let on_new = activated(cx.host, cx.plan, &step.tokens)?;
            if !on_new.is_empty() {
                return Err(format!(
                    "cancel is impossible: the new WK (CCA: a new MK) is already current on {} (the old one is gone from there); only forward: activate or set it on every APQN and finalize",
                    on_new.join(", ")
                ));
            }
            // The tool's cancel query wants each CCA token's current MK still in CUR.
            for token in tokens.iter().filter(|t| t.is_cca()) {
                cca::registers(cx.host, token, cca::Registers::Unset).map_err(|e| {
                    format!("cancel needs the current MKs still in CUR on every APQN: {e}")
                })?;
            }
        }
    }
    cca::expected_mkvps_name(
        cx.host,
        tokens,
        match end {
            End::Finalize => ExpectedTarget::New,
            End::Cancel => ExpectedTarget::Current,
        },
        |token| match end {
            End::Finalize => format!(
                "run `set_expected_mkvps: {{ token: {token} }}` first (the plan's step before the finalize)"
            ),
            End::Cancel => {
                format!("run `set_expected_mkvps: {{ token: {token}, to: current }}` first")
            }
        },
    )?;
    for (token, config, value) in expected_wkvps(cx.host, tokens)? {
        let t = &cx.plan.tokens[&token];
        let (want, hint) = match end {
            End::Finalize => (
                t.wkvp_new,
                format!(
                    "run `set_expected_wkvp: {{ token: {token} }}` first (the plan's step before the finalize)"
                ),
            ),
            End::Cancel => (
                t.wkvp_current,
                format!("run `set_expected_wkvp: {{ token: {token}, to: current }}` first"),
            ),
        };
        if let Some(value) = value.filter(|v| *v != want) {
            return Err(format!(
                "`{}` sets EXPECTED_WKVP {value} for token `{token}`, but {} needs {want} there (the tool refuses otherwise); {hint}, or write `EXPECTED_WKVP \"{}\"` into it",
                config.display(),
                end.verb(),
                &want.to_string()[2..]
            ));
        }
    }
    Ok(())
}

fn check(end: End, step: &EndOperationStep, cx: &CheckContext<'_>) -> CheckReport {
    let named = cx
        .plan
        .steps
        .get(step.of_index)
        .and_then(|s| match &s.kind {
            StepKind::MkReencipher(r) => r.tool.as_deref(),
            _ => None,
        });
    match tool_path(cx.host, named) {
        Ok(tool) => CheckReport::CannotSimulate(format!(
            "would run `{} {} --id <the operation `{}` creates>` after checking the operation's state, every APQN and EXPECTED_WKVP (CCA: EXPECTED_MKVPS)",
            tool.display(),
            end.verb(),
            step.of
        )),
        Err(e) => CheckReport::Blocked(e),
    }
}

fn describe_uncertain(end: End, step: &EndOperationStep, cx: &UncertainContext<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    match operation(cx.host, cx.plan, cx.state, step.of_index) {
        Ok(Some((id, _))) => match list(
            cx.host,
            cx.plan,
            &tool_name(cx.plan, step.of_index),
            Some(&id),
        ) {
            Ok(ops) if ops.is_empty() => lines.push(format!(
                "operation {id} no longer exists; the APQNs {} the WK a {} leaves",
                if wk_as_ended(end, cx.host, cx.plan, step).unwrap_or(false) {
                    "show"
                } else {
                    "do NOT show"
                },
                end.verb()
            )),
            Ok(ops) => lines.push(format!("operation {id} is {}", ops[0].state)),
            Err(e) => lines.push(format!("operation {id} cannot be read: {e}")),
        },
        Ok(None) => lines.push("this run knows no operation".to_owned()),
        Err(e) => lines.push(format!("the operations cannot be read: {e}")),
    }
    lines.push(format!("--accept-step takes the {} as done (refused unless the operation is gone and every APQN shows it); --retry-step runs it again (a completed one is then recognised)", end.verb()));
    lines
}

fn refuse_accept(
    end: End,
    step: &EndOperationStep,
    cx: &UncertainContext<'_>,
) -> Result<(), AcceptRefused> {
    let done = match operation(cx.host, cx.plan, cx.state, step.of_index) {
        Ok(Some((id, _))) => {
            list(
                cx.host,
                cx.plan,
                &tool_name(cx.plan, step.of_index),
                Some(&id),
            )
            .is_ok_and(|ops| ops.is_empty())
                && wk_as_ended(end, cx.host, cx.plan, step).unwrap_or(false)
        }
        _ => false,
    };
    if done {
        return Ok(());
    }
    Err(AcceptRefused::new(NotEnded(format!(
        "the {} did not complete (the operation still exists, or the APQNs do not show its WK); retry the step instead",
        end.verb()
    ))))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotEnded(String);

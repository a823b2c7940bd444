//! `mk_change: {reencipher}`: `pkcshsm_mk_change reencipher --apqns … --ep11-wkvp …` (and
//! `--cca-<type>-mkvp …` per MK type of its CCA tokens, `patterns`) over every token of the
//! operation, after the live checks of ref 2.3 that mkplan can make first; success only when
//! the exit code, `Completed.`, the printed ID and `list --id` (re-enciphered, these APQNs,
//! these new patterns, these slots) all agree. An operation may cover EP11 and CCA tokens
//! together: each is checked with its own registers and config file (`cca`).

use std::collections::BTreeMap;

use super::cca;
use super::patterns::NewPatterns;
use super::{
    absent_verdicts, apqn_list, expected_wkvps, run_tool, tokens_of, tool_path, tool_said,
};
use crate::guards::mk_change::{list, operation_of, tool_name};
use crate::guards::wk::read_and_evaluate;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::mk_change::{MkOperation, OpState, OperationSource, ReencipherOutput};
use mkplan_engine::record::wk::WkTable;
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, TokenPin, UncertainContext,
};
use mkplan_plan::model::{AssertWk, CurrentWk, ExpectedTarget, NewWk, Plan, ReencipherStep};

pub(crate) struct ReencipherKind;

impl Kind for ReencipherKind {
    type Args = ReencipherStep;
    type Output = ReencipherOutput;

    /// The tool may have created an operation: an operator decides, with what `list` shows.
    fn interruption(_: &ReencipherStep) -> Interruption {
        Interruption::Decide
    }

    fn check(step: &ReencipherStep, cx: &CheckContext<'_>) -> CheckReport {
        match tool_path(cx.host, step.tool.as_deref())
            .and_then(|tool| Ok((tool, args(cx.plan, step)?)))
        {
            Ok((tool, args)) => CheckReport::CannotSimulate(format!(
                "would run `{} {}` after re-checking pkcsslotd, the new WK committed (CCA: each new MK fully loaded) on every APQN, EXPECTED_WKVP (CCA: EXPECTED_MKVPS) and that no other operation uses the APQNs",
                tool.display(),
                args.join(" ")
            )),
            Err(e) => CheckReport::Blocked(e),
        }
    }

    fn run(step: &ReencipherStep, cx: &mut RunContext<'_>) -> KindResult<ReencipherOutput> {
        run(step, cx)
    }

    fn describe_uncertain(step: &ReencipherStep, cx: &UncertainContext<'_>) -> Vec<String> {
        let index = index_of(cx.plan, step);
        let mut lines = Vec::new();
        if let Some((id, _)) = index.and_then(|i| operation_of(cx.state, i)) {
            lines.push(format!(
                "the tool printed operation {id} before mkplan stopped (journaled)"
            ));
        }
        match ours(cx.host, cx.plan, step) {
            Ok(Some(op)) => lines.push(format!(
                "`pkcshsm_mk_change list` shows operation {} on {} in state {}",
                op.id,
                op.apqns.join(", "),
                op.state
            )),
            Ok(None) => lines.push(format!(
                "`pkcshsm_mk_change list` shows no operation on {}: nothing was re-enciphered (or the tool cancelled by itself)",
                apqn_list(&cx.plan.apqns_of(&step.tokens))
            )),
            Err(e) => lines.push(format!("the operations cannot be read: {e}")),
        }
        lines.push("--accept-step takes the operation (refused unless it is re-enciphered); --retry-step runs the tool again (refused while an operation exists)".to_owned());
        lines
    }

    fn refuse_accept(
        step: &ReencipherStep,
        cx: &UncertainContext<'_>,
    ) -> Result<(), AcceptRefused> {
        let reason = match ours(cx.host, cx.plan, step) {
            Ok(Some(op)) if op.state == OpState::Reenciphered => return Ok(()),
            Ok(Some(op)) => format!(
                "operation {} is {}, not re-enciphered: neither finalize nor cancel would accept it",
                op.id, op.state
            ),
            Ok(None) => {
                "no operation covers the APQNs: nothing was re-enciphered; retry the step instead"
                    .to_owned()
            }
            Err(e) => format!("the operations cannot be read: {e}"),
        };
        Err(AcceptRefused::new(NotReenciphered(reason)))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotReenciphered(String);

/// The step's index in `steps`.
pub(crate) fn index_of(plan: &Plan, step: &ReencipherStep) -> Option<usize> {
    plan.steps.iter().position(
        |s| matches!(&s.kind, mkplan_plan::model::StepKind::MkReencipher(r) if std::ptr::eq(r, step)),
    )
}

/// The tool's arguments, from the model (never from text).
fn args(plan: &Plan, step: &ReencipherStep) -> Result<Vec<String>, String> {
    Ok(tool_args(plan, step, &patterns(plan, step)?))
}

fn tool_args(plan: &Plan, step: &ReencipherStep, new: &NewPatterns) -> Vec<String> {
    let mut args = vec![
        "reencipher".to_owned(),
        "--apqns".to_owned(),
        apqn_list(&plan.apqns_of(&step.tokens)),
    ];
    args.extend(new.args());
    args
}

fn patterns(plan: &Plan, step: &ReencipherStep) -> Result<NewPatterns, String> {
    NewPatterns::of(&tokens_of(plan, &step.tokens))
}

/// `list` shows exactly the new patterns this step names.
fn names_ours(op: &MkOperation, patterns: &NewPatterns) -> bool {
    op.new_wkvp == patterns.ep11_hex() && op.new_cca_mkvps == patterns.cca_hex()
}

/// The operation `list` shows on exactly this step's APQNs with its new WK, if any (the
/// tool refuses intersecting operations, so there is at most one).
pub(crate) fn ours(
    host: &dyn HostView,
    plan: &Plan,
    step: &ReencipherStep,
) -> Result<Option<MkOperation>, String> {
    let apqns: Vec<String> = plan
        .apqns_of(&step.tokens)
        .iter()
        .map(|a| a.lszcrypt())
        .collect();
    let new = patterns(plan, step)?;
    let index = index_of(plan, step).unwrap_or(usize::MAX);
    Ok(list(host, plan, &tool_name(plan, index), None)?
        .into_iter()
        .find(|op| op.apqns == apqns && names_ours(op, &new)))
}

fn run(step: &ReencipherStep, cx: &mut RunContext<'_>) -> KindResult<ReencipherOutput> {
    let plan = cx.plan;
    let tokens = tokens_of(plan, &step.tokens);
    let apqns = plan.apqns_of(&step.tokens);
    let new = patterns(plan, step);
    let mut output = ReencipherOutput {
        tokens: step.tokens.clone(),
        slots: tokens.iter().map(|t| t.slot.get()).collect(),
        apqns: apqns.iter().map(|a| a.lszcrypt()).collect(),
        new_wkvp: new
            .as_ref()
            .ok()
            .and_then(NewPatterns::ep11_hex)
            .unwrap_or_default(),
        new_cca_mkvps: new.as_ref().map(NewPatterns::cca_hex).unwrap_or_default(),
        apqns_before: Vec::new(),
        tool: None,
        operation: None,
        source: None,
        listed_after: None,
    };
    let new = match new {
        Ok(new) => new,
        Err(e) => return Err(Failed::with(e, output)),
    };
    let tool = match tool_path(cx.host, step.tool.as_deref()) {
        Ok(tool) => tool,
        Err(e) => return Err(Failed::with(e, output)),
    };
    if let Err(e) = preflight(cx, step, &mut output) {
        return Err(Failed::with(
            format!("refused before the tool started: {e}"),
            output,
        ));
    }
    let mut read = Vec::new();
    for token in &tokens {
        match cx.token_pin(token) {
            Ok(pin) => read.push((token.slot.get(), pin)),
            Err(_) if cx.cancel.requested() => return Err(Failed::Interrupted),
            Err(e) => return Err(Failed::with(e.to_string(), output)),
        }
    }
    let pins: BTreeMap<u16, &mkplan_engine::secret::Pin> = read
        .iter()
        .map(|(slot, pin): &(u16, TokenPin<'_>)| (*slot, &**pin))
        .collect();
    let verdicts = absent_verdicts(cx.host, &apqns, !new.cca.is_empty());
    let expected: Vec<u16> = output.slots.clone();
    let (tool_run, observed) =
        match run_tool(cx, &tool, tool_args(plan, step, &new), pins, |dialog| {
            dialog.absent_verdicts = verdicts;
            dialog.expected_affected = Some(expected);
        }) {
            Ok(ran) => ran,
            Err(e) => return Err(Failed::with(e, output)),
        };
    output.operation = observed.created.clone();
    output.source = observed.created.as_ref().map(|_| OperationSource::Printed);
    let said = tool_said(&tool_run);
    let continue_no = tool_run
        .continue_prompt
        .as_ref()
        .filter(|c| !c.answered_yes)
        .map(|c| c.why.join("; "));
    let affected_differs = tool_run.affected != output.slots && !tool_run.affected.is_empty();
    output.tool = Some(tool_run);
    if let Some(why) = continue_no {
        return Err(Failed::with(
            format!(
                "slots without a token that the change may affect, so mkplan answered N to `Continue [y/N]?` and nothing was re-enciphered ({why}); make those tokens present, or configure them out of the operation's APQNs"
            ),
            output,
        ));
    }
    if affected_differs {
        return Err(Failed::with(
            format!(
                "the tool named slots {:?} as affected, but the operation's tokens are in slots {:?}; mkplan gave it no PIN and nothing was re-enciphered",
                output
                    .tool
                    .as_ref()
                    .map(|t| t.affected.clone())
                    .unwrap_or_default(),
                output.slots
            ),
            output,
        ));
    }
    let Some(id) = observed.created.clone() else {
        return Err(Failed::with(
            format!(
                "`pkcshsm_mk_change reencipher` created no operation ({said}); every key is as it was, under its current key"
            ),
            output,
        ));
    };
    let ok_exit = output.tool.as_ref().is_some_and(|t| t.exit_code == Some(0));
    let listed = list(
        cx.host,
        plan,
        &tool_name(plan, index_of(plan, step).unwrap_or(usize::MAX)),
        Some(&id),
    );
    let listed = match listed {
        Ok(ops) => ops.into_iter().next(),
        Err(e) => {
            return Err(Failed::with(
                format!("operation {id} was created but `list` cannot read it: {e}"),
                output,
            ));
        }
    };
    output.listed_after = listed.clone();
    match listed {
        Some(op)
            if ok_exit
                && observed.completed
                && op.state == OpState::Reenciphered
                && op.apqns == output.apqns
                && names_ours(&op, &new)
                && op.slots == output.slots =>
        {
            Ok(Done::new(format!(
                "operation {id} created: every key of {} has a blob under the new {} beside its current one; the applications kept running",
                step.tokens.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
                new.describe()
            ))
            .with(output))
        }
        other => Err(Failed::with(
            format!(
                "operation {id} does not show what mkplan asked for ({said}; list: {}); the plan's rescue cancels it",
                other.map_or_else(|| "not found".to_owned(), |op| format!("{} on {} for slots {:?}", op.state, op.apqns.join(", "), op.slots))
            ),
            output,
        )),
    }
}

/// What mkplan checks before any PIN is typed: pkcsslotd, the new WK committed on every
/// APQN (CCA: each declared new MK full in NEW, the current one in CUR), EXPECTED_WKVP
/// (CCA: EXPECTED_MKVPS) still the current key, and no other operation on the APQNs.
fn preflight(
    cx: &mut RunContext<'_>,
    step: &ReencipherStep,
    output: &mut ReencipherOutput,
) -> Result<(), String> {
    let plan = cx.plan;
    cx.host.slot_daemon().map_err(|e| {
        format!("pkcsslotd must run (the tool reaches the applications through it): {e}")
    })?;
    let tokens = tokens_of(plan, &step.tokens);
    for token in tokens.iter().filter(|t| t.is_cca()) {
        let table = cca::registers(cx.host, token, cca::Registers::Loaded)
            .map_err(|e| format!("the new MKs must be fully loaded in NEW, with the current ones still in CUR, on every APQN: {e}"))?;
        output.apqns_before.push(WkTable {
            token: table.token,
            apqns: table.apqns,
        });
    }
    cca::expected_mkvps_name(cx.host, &tokens, ExpectedTarget::Current, |token| {
        format!(
            "until the set it must name the current MKs (the cancel needs them); run `set_expected_mkvps: {{ token: {token}, to: current }}` or correct the file"
        )
    })?;
    for token in tokens.iter().filter(|t| !t.is_cca()) {
        let committed = AssertWk {
            token: token.id.clone(),
            current: CurrentWk::Expected,
            new: NewWk::Committed,
        };
        let table = read_and_evaluate(cx.host, plan, &committed).map_err(|e| e.to_string())?;
        output.apqns_before.push(table);
    }
    for (token, config, value) in expected_wkvps(cx.host, &tokens_of(plan, &step.tokens))? {
        let current = plan.tokens[&token].wkvp_current;
        if value.is_some_and(|v| v != current) {
            return Err(format!(
                "`{}` already sets EXPECTED_WKVP {} for token `{token}`, not the current WK {current}: until the activation it must name the current WK (the cancel needs it)",
                config.display(),
                value.map(|v| v.to_string()).unwrap_or_default()
            ));
        }
    }
    let index = index_of(plan, step).unwrap_or(usize::MAX);
    let ops = list(cx.host, plan, &tool_name(plan, index), None)?;
    if let Some(op) = ops
        .iter()
        .find(|op| op.apqns.iter().any(|a| output.apqns.contains(a)))
    {
        return Err(format!(
            "operation {} ({}) already uses {}: the tool refuses intersecting operations; finish or cancel it first",
            op.id,
            op.state,
            op.apqns.join(", ")
        ));
    }
    Ok(())
}

//! A checkpoint with `park: true`: on each arrival, the run's concurrent operations are
//! checked still re-enciphered (`pkcshsm_mk_change list`), what changed on the host since
//! the last park is said, and the `until` check is read once; if it does not hold, the run
//! parks (exit 6) instead of waiting or denying. Approvals come after (they attest work done).

use crate::guards::GuardError;
use crate::guards::mk_change::{activated, list, live_operations, tool_name};
use crate::guards::until::{awaited, evaluate};
use crate::guards::wk::read_all;
use crate::kind::Failed;
use mkplan_engine::record::checkpoint::CheckpointOutput;
use mkplan_engine::record::mk_change::OpState;
use mkplan_engine::record::wk::{ApqnStatus, CcaMkType, CcaVp, WkTable};
use mkplan_engine::record::{StepData, StepOutput};
use mkplan_engine::state::Park;
use mkplan_engine::step::RunContext;
use mkplan_plan::model::{Checkpoint, KindName, Token};

/// What an arrival found before the approvals.
pub(super) struct Arrival {
    /// The simulated TKE operator's approvers, when it acted on this arrival.
    pub acted: Option<Vec<String>>,
    /// What changed since the last park here.
    pub since_park: Vec<String>,
}

/// Checks the operations, says what changed, lets a simulated TKE act (never on the first
/// arrival: a rehearsal parks for real), and reads `until` once.
pub(super) fn arrive(
    checkpoint: &Checkpoint,
    cx: &mut RunContext<'_>,
) -> Result<Arrival, Failed<CheckpointOutput>> {
    let Some(until) = &checkpoint.until else {
        return Err(Failed::step(
            "a parking checkpoint needs `until` (rule park-safely)",
        ));
    };
    let token = &cx.plan.tokens[until.check.token()];
    if let Some(by) = cx.approvals.denial_for(cx.step) {
        return Err(denied(cx, token, &by));
    }
    operations_still_reenciphered(cx, token)?;
    let step = cx.step_ref();
    let previous = cx
        .state
        .parks
        .iter()
        .rev()
        .find(|p| p.step == step)
        .cloned();
    let now = table(cx, token);
    let since_park = previous
        .as_ref()
        .map(|park| changes(park, &now))
        .unwrap_or_default();
    for line in &since_park {
        cx.notice(format!("since the park: {line}"));
    }
    let acted = match (cx.tke, &previous) {
        (Some(actor), Some(_)) => Some(
            actor
                .act(cx.plan, cx.step, checkpoint)
                .map_err(|e| Failed::step(format!("the simulated TKE operator failed: {e}")))?,
        ),
        _ => None,
    };
    match evaluate(cx.host, cx.plan, &until.check) {
        Ok(_) => Ok(Arrival { acted, since_park }),
        Err(problem) => {
            let mut waiting_for = vec![awaited(&until.check, token)];
            match problem {
                GuardError::WkDiffers(lines) | GuardError::WkUnknown(lines) => {
                    waiting_for.extend(lines)
                }
                other => waiting_for.push(other.to_string()),
            }
            Err(Failed::Park {
                waiting_for,
                output: StepOutput::from(table(cx, token)),
            })
        }
    }
}

/// `--deny` at a parking checkpoint: the run is abandoned (rescue cancels the operation) only
/// while no APQN has the new WK; after that the tool refuses cancel, so the run stays parked
/// and says the only way is forward.
fn denied(cx: &RunContext<'_>, token: &Token, by: &str) -> Failed<CheckpointOutput> {
    let key = match token.is_cca() {
        true => "MK",
        false => "WK",
    };
    match activated(cx.host, cx.plan, std::slice::from_ref(&token.id)) {
        Ok(apqns) if apqns.is_empty() => Failed::Denied(format!(
            "denied by {by} while parked: the new {key} will not be activated; the plan's rescue cancels the operation"
        )),
        Ok(apqns) => Failed::Park {
            waiting_for: vec![format!(
                "cannot abandon (denied by {by}): {} already has the new {key} as current, and pkcshsm_mk_change refuses to cancel once any APQN is activated; the only way is forward: activate the new {key} on every APQN of token `{}`, then resume with `--approve`",
                apqns.join(", "),
                token.id
            )],
            output: StepOutput::from(table(cx, token)),
        },
        Err(problem) => Failed::Park {
            waiting_for: vec![format!(
                "cannot abandon (denied by {by}): whether the new WK is active cannot be read ({problem})"
            )],
            output: StepOutput::from(table(cx, token)),
        },
    }
}

/// Approvals missing at a parking checkpoint park the run too (never deny it).
pub(super) fn awaiting_approvals(
    have: usize,
    need: usize,
    flag: &str,
    cx: &RunContext<'_>,
    token: Option<&Token>,
) -> Failed<CheckpointOutput> {
    let output = token.map_or(StepOutput::None, |t| StepOutput::from(table(cx, t)));
    Failed::Park {
        waiting_for: vec![format!(
            "approvals: {have} of {need}; the activation is done, approve it on resume with `--approve {flag}=NAME`"
        )],
        output,
    }
}

fn table(cx: &RunContext<'_>, token: &Token) -> WkTable {
    WkTable {
        token: Some(token.id.clone()),
        apqns: read_all(cx.host, token).0,
    }
}

/// The run's live operations on the token must still be re-enciphered: one cancelled or
/// finalized outside this run, or stuck, fails the step (rescue, or a halt once activated).
fn operations_still_reenciphered(
    cx: &RunContext<'_>,
    token: &Token,
) -> Result<(), Failed<CheckpointOutput>> {
    for (index, id, tokens) in live_operations(cx.plan, cx.state) {
        if !tokens.contains(&token.id) {
            continue;
        }
        let tool = tool_name(cx.plan, index);
        let ops = list(cx.host, cx.plan, &tool, Some(&id)).map_err(|e| {
            Failed::step(format!(
                "operation {id} cannot be read ({e}); is pkcsslotd running?"
            ))
        })?;
        match ops.first() {
            Some(op) if op.state == OpState::Reenciphered => {}
            Some(op) => {
                return Err(Failed::step(format!(
                    "operation {id} is {}, not re-enciphered: do NOT activate the new WK",
                    op.state
                )));
            }
            None => {
                return Err(Failed::step(format!(
                    "operation {id} no longer exists: it was cancelled or finalized outside this run; do NOT activate the new WK until every key of token `{}` is proven under it",
                    token.id
                )));
            }
        }
    }
    Ok(())
}

/// The current and new registers in words: the WK's on an EP11 card, each MK type's on a
/// CCA one.
fn words(status: &ApqnStatus) -> (String, String) {
    if let Some(cca) = &status.cca {
        let registers = CcaMkType::ALL
            .iter()
            .filter_map(|mk| Some((mk, cca.get(*mk)?)));
        let (mut cur, mut new) = (Vec::new(), Vec::new());
        for (mk, r) in registers {
            let vp = |vp: &Option<CcaVp>| vp.as_ref().map_or_else(String::new, |v| format!(" {v}"));
            cur.push(format!("{mk} {}{}", r.cur.state.word(), vp(&r.cur.vp)));
            new.push(format!("{mk} {}{}", r.new.state.word(), vp(&r.new.vp)));
        }
        return (cur.join(", "), new.join(", "));
    }
    let vp = |vp: Option<[u8; 32]>| {
        vp.map_or_else(|| "none".to_owned(), |v| format!("0x{}", hex_of(&v[..16])))
    };
    (
        format!("{:?} {}", status.cur.state, vp(status.cur.vp)).to_lowercase(),
        format!("{:?} {}", status.new.state, vp(status.new.vp)).to_lowercase(),
    )
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line per APQN whose registers differ from the park's, and the park's age.
fn changes(park: &Park, now: &WkTable) -> Vec<String> {
    let before = match StepData::decode(&park.data, KindName::AssertWk) {
        StepOutput::AssertWk(table) => table.apqns,
        _ => Vec::new(),
    };
    let mut lines = vec![format!(
        "parked at {} (waiting for: {})",
        park.at,
        park.waiting_for.first().cloned().unwrap_or_default()
    )];
    for status in &now.apqns {
        let (cur, new) = words(status);
        match before.iter().find(|b| b.apqn == status.apqn) {
            Some(old) if words(old) == (cur.clone(), new.clone()) => {
                lines.push(format!(
                    "{}: unchanged (current {cur})",
                    status.apqn.lszcrypt()
                ));
            }
            Some(old) => {
                let (old_cur, old_new) = words(old);
                lines.push(format!(
                    "{}: current {old_cur} → {cur}; new {old_new} → {new}",
                    status.apqn.lszcrypt()
                ));
            }
            None => lines.push(format!(
                "{}: current {cur}; new {new}",
                status.apqn.lszcrypt()
            )),
        }
    }
    lines
}

//! `checkpoint`: stop for people. Shows exactly what is being approved (plan, change, plan
//! digest, the text, the new WKVP), collects N distinct allowed approvers from flags, an
//! approvals file or the terminal, and fails closed: no terminal and no approval is an
//! immediate "deny", a timeout is a "deny", a mistyped confirmation is a "no".

use std::collections::BTreeSet;
use std::time::Instant;

use crate::guards::GuardError;
use crate::guards::until::{UntilRead, evaluate, mk_list};
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::approvals::{asserted_refused, flag_key};
use mkplan_engine::clock::now_rfc3339;
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::events::{ApprovalMethod, EventKind};
use mkplan_engine::ports::operator::Answer;
use mkplan_engine::record::checkpoint::CheckpointOutput;
use mkplan_engine::signed_approval::{SignedApproval, accept_now};
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::{Checkpoint, Plan, Step, TkeAction, Token};

mod park;

/// `checkpoint`.
pub(crate) struct CheckpointKind;

impl Kind for CheckpointKind {
    type Args = Checkpoint;
    type Output = CheckpointOutput;

    fn check(checkpoint: &Checkpoint, cx: &CheckContext<'_>) -> CheckReport {
        check(checkpoint, cx)
    }

    fn run(checkpoint: &Checkpoint, cx: &mut RunContext<'_>) -> KindResult<CheckpointOutput> {
        run(checkpoint, cx)
    }
}

/// How often an unknown name may be typed before the checkpoint is denied.
const NAME_ATTEMPTS: u32 = 3;

/// The tokens a TKE checkpoint concerns: its `until` token, else every token of the plan.
fn tokens<'p>(plan: &'p Plan, checkpoint: &Checkpoint) -> Vec<&'p Token> {
    match &checkpoint.until {
        Some(until) => plan.tokens.get(until.check.token()).into_iter().collect(),
        None => plan.tokens.values().collect(),
    }
}

/// Exactly what the approvers see; its SHA-256 is recorded with every approval.
pub fn shown_text(plan: &Plan, plan_sha256: &str, step: &Step, checkpoint: &Checkpoint) -> String {
    let mut text = format!(
        "CHECKPOINT {} `{}`\nplan: {} (sha256 {plan_sha256})\nchange: {} — {}\n",
        mkplan_engine::events::StepRef::of(step).position(),
        step.name,
        plan.name,
        plan.change.ticket,
        plan.change.summary,
    );
    if let Some(tke) = &checkpoint.tke {
        let tokens = tokens(plan, checkpoint);
        // CCA has no commit: the plan's `commit` is the load of NEW, `activate` the set.
        let all_cca = tokens.iter().all(|t| t.is_cca());
        let action = match (tke, all_cca) {
            (TkeAction::Commit, false) => {
                "commit the new wrapping key (do not activate)".to_owned()
            }
            (TkeAction::Commit, true) => {
                "load every key part of the new master keys (NEW full; do not set)".to_owned()
            }
            (TkeAction::Activate, false) => {
                "activate the new wrapping key (Set, immediate)".to_owned()
            }
            (TkeAction::Activate, true) => {
                "set the new master keys (NEW → CURRENT, CURRENT → OLD)".to_owned()
            }
            (TkeAction::Other(text), _) => text.clone(),
        };
        text.push_str(&format!("TKE: {action}\n"));
        for token in tokens {
            let new = match token.is_cca() {
                true => format!("new MKs {}", mk_list(token)),
                false => format!("new WKVP {}", token.wkvp_new),
            };
            text.push_str(&format!(
                "token `{}` (slot {}): {new} on {}\n",
                token.id,
                token.slot,
                token
                    .apqns
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    text.push_str(&format!("\n{}\n\n", checkpoint.say.trim_end()));
    let who = if checkpoint.approvers.is_empty() {
        "anyone".to_owned()
    } else {
        checkpoint.approvers.join(", ")
    };
    text.push_str(&format!(
        "needs {} approval{} from distinct people: {who}\n",
        checkpoint.approvals,
        if checkpoint.approvals == 1 { "" } else { "s" }
    ));
    text
}

/// The text checkpoint `step` shows; `None` if `step` is no checkpoint.
pub fn shown_text_of(plan: &Plan, plan_sha256: &str, step: &Step) -> Option<String> {
    match &step.kind {
        mkplan_plan::model::StepKind::Checkpoint(checkpoint) => {
            Some(shown_text(plan, plan_sha256, step, checkpoint))
        }
        _ => None,
    }
}

/// SHA-256 of the text checkpoint `step` shows (what a signed approval binds); `None` if
/// `step` is no checkpoint.
pub fn shown_sha256(plan: &Plan, plan_sha256: &str, step: &Step) -> Option<String> {
    match &step.kind {
        mkplan_plan::model::StepKind::Checkpoint(checkpoint) => Some(sha256_hex(
            shown_text(plan, plan_sha256, step, checkpoint).as_bytes(),
        )),
        _ => None,
    }
}

/// What an approver types to confirm: the last 4 hex digits of the new WKVP (one token),
/// else the checkpoint's name on the command line.
fn confirmation(plan: &Plan, step: &Step, checkpoint: &Checkpoint) -> (String, String) {
    let tokens = tokens(plan, checkpoint);
    if checkpoint.tke.is_some() && tokens.len() == 1 {
        let token = tokens[0];
        let (pattern, what) = match token.mks.iter().next() {
            Some((mk, pair)) if token.is_cca() => (pair.new.to_string(), format!("{mk} MKVP")),
            _ => (token.wkvp_new.to_string(), "WKVP".to_owned()),
        };
        let last = pattern[pattern.len() - 4..].to_owned();
        return (
            last,
            format!("the last 4 hex digits of the new {what} of `{}`", token.id),
        );
    }
    let key = flag_key(step);
    (key.clone(), format!("`{key}`"))
}

fn normalise(name: &str) -> String {
    name.trim().to_lowercase()
}

fn run(checkpoint: &Checkpoint, cx: &mut RunContext<'_>) -> KindResult<CheckpointOutput> {
    // A parking checkpoint reads its `until` first: it parks while the work is not done.
    let mut arrival = match checkpoint.park {
        true => Some(park::arrive(checkpoint, cx)?),
        false => None,
    };
    let step_ref = cx.step_ref();
    let text = shown_text(cx.plan, &cx.run.plan_sha256, cx.step, checkpoint);
    let shown = sha256_hex(text.as_bytes());
    cx.emit(EventKind::CheckpointShown {
        step: step_ref.clone(),
        shown_sha256: shown.clone(),
        text: text.clone(),
    })
    .map_err(|e| Failed::step(e.to_string()))?;
    // Shown once: at a terminal by the operator (the log line there leaves the text out),
    // elsewhere only in the log.
    cx.operator.say(&text);

    let deadline = match (checkpoint.timeout, cx.deadline) {
        (Some(t), Some(d)) => Some(d.min(Instant::now() + t)),
        (Some(t), None) => Some(Instant::now() + t),
        (None, d) => d,
    };
    let allowed: BTreeSet<String> = checkpoint.approvers.iter().map(|a| normalise(a)).collect();
    let key = (step_ref.section, step_ref.index);
    // Approvals already journaled (before an interruption) are not asked again.
    let mut approved: BTreeSet<String> = cx
        .state
        .approvals
        .get(&key)
        .map(|list| list.iter().map(|a| normalise(&a.approver)).collect())
        .unwrap_or_default();
    let needed = checkpoint.approvals as usize;

    let record = |cx: &mut RunContext<'_>,
                  approver: &str,
                  method: ApprovalMethod,
                  signed: Option<SignedApproval>,
                  approved: &mut BTreeSet<String>|
     -> Result<(), Failed<CheckpointOutput>> {
        let who = normalise(approver);
        let refused = if signed.is_none()
            && method != ApprovalMethod::Rehearsal
            && asserted_refused(cx.plan, approver)
        {
            Some(format!(
                "`{approver}`'s approval is an asserted name; this plan lists a key for {approver} and requires signed approvals (change.asserted_approvals: refuse): {approver} signs with `mkplan approve PLAN {} --key KEY`",
                flag_key(cx.step)
            ))
        } else if !allowed.is_empty() && !allowed.contains(&who) {
            Some(format!(
                "`{approver}` is not an allowed approver ({})",
                checkpoint.approvers.join(", ")
            ))
        } else if approved.contains(&who) {
            Some(format!(
                "`{approver}` has already approved: dual control needs distinct people"
            ))
        } else {
            None
        };
        let event = match &refused {
            Some(reason) => EventKind::CheckpointRefused {
                step: cx.step_ref(),
                approver: approver.to_owned(),
                method,
                reason: reason.clone(),
            },
            None => {
                approved.insert(who);
                EventKind::CheckpointApproved {
                    step: cx.step_ref(),
                    approver: approver.to_owned(),
                    method,
                    shown_sha256: shown.clone(),
                    signed,
                }
            }
        };
        cx.emit(event).map_err(|e| Failed::step(e.to_string()))
    };

    let acted = arrival.as_mut().and_then(|a| a.acted.take());
    let approvers = match (acted, cx.tke) {
        _ if approved.len() >= needed => None,
        (Some(approvers), _) => Some(approvers),
        // At a parking checkpoint the simulated TKE acts only on a later arrival.
        (None, Some(actor)) if !checkpoint.park => Some(
            actor
                .act(cx.plan, cx.step, checkpoint)
                .map_err(|e| Failed::step(format!("the simulated TKE operator failed: {e}")))?,
        ),
        (None, _) => None,
    };
    if let Some(approvers) = approvers {
        for approver in approvers {
            if approved.len() >= needed {
                break;
            }
            record(
                cx,
                &approver,
                ApprovalMethod::Rehearsal,
                None,
                &mut approved,
            )?;
        }
    }
    for (signed, method, given_by) in cx.approvals.signed_for_step(cx.step) {
        if approved.len() >= needed {
            break;
        }
        match accept_now(&signed, cx.plan, &cx.run.plan_sha256, cx.step, &shown) {
            Ok(accepted) => record(cx, &accepted.approver, method, Some(signed), &mut approved)?,
            Err(refusal) => cx
                .emit(EventKind::CheckpointRefused {
                    step: cx.step_ref(),
                    approver: signed.claimed().map(|c| c.approver).unwrap_or_default(),
                    method,
                    reason: format!("the signed approval {given_by} {refusal}"),
                })
                .map_err(|e| Failed::step(e.to_string()))?,
        }
    }
    for (approver, method) in cx.approvals.for_step(cx.step) {
        if approved.len() >= needed {
            break;
        }
        record(cx, &approver, method, None, &mut approved)?;
    }

    if approved.len() < needed && cx.operator.interactive() {
        let (expected, what) = confirmation(cx.plan, cx.step, checkpoint);
        let mut attempts = 0;
        while approved.len() < needed {
            let prompt = format!("approver {} of {needed}, your name: ", approved.len() + 1);
            let name = match cx.operator.ask(&prompt, deadline) {
                Answer::Text(name) if !name.is_empty() => name,
                Answer::Text(_) => continue,
                Answer::TimedOut => {
                    return Err(deny("the checkpoint timed out (a timeout is a deny)"));
                }
                Answer::Closed => {
                    return Err(deny(&format!(
                        "the terminal's input closed at the prompt (end of file) after {} of {needed} approvals",
                        approved.len()
                    )));
                }
                Answer::Interrupted => return Err(Failed::Interrupted),
            };
            let who = normalise(&name);
            if (!allowed.is_empty() && !allowed.contains(&who))
                || approved.contains(&who)
                || asserted_refused(cx.plan, &name)
            {
                record(cx, &name, ApprovalMethod::Tty, None, &mut approved)?;
                attempts += 1;
                if attempts >= NAME_ATTEMPTS {
                    return Err(deny("too many refused approver names"));
                }
                continue;
            }
            match cx
                .operator
                .ask(&format!("{name}, type {what} to approve: "), deadline)
            {
                Answer::Text(typed) if typed.eq_ignore_ascii_case(&expected) => {
                    record(cx, &name, ApprovalMethod::Tty, None, &mut approved)?;
                }
                Answer::TimedOut => {
                    return Err(deny("the checkpoint timed out (a timeout is a deny)"));
                }
                Answer::Interrupted => return Err(Failed::Interrupted),
                _ => {
                    return Err(deny(&format!(
                        "{name} did not confirm (a mistyped confirmation is a no)"
                    )));
                }
            }
        }
    }

    if approved.len() < needed && checkpoint.park {
        let token = tokens(cx.plan, checkpoint).into_iter().next();
        return Err(park::awaiting_approvals(
            approved.len(),
            needed,
            &shell_word(&flag_key(cx.step)),
            cx,
            token,
        ));
    }
    if approved.len() < needed {
        return Err(Failed::Denied(format!(
            "{} of {needed} approvals; without a terminal nobody is asked (hint: `--approve {}=NAME`, or an approvals file)",
            approved.len(),
            shell_word(&flag_key(cx.step))
        )));
    }

    let mut summary = format!(
        "approved by {}",
        approved.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let mut output = CheckpointOutput {
        shown_sha256: shown,
        approved_at: now_rfc3339(),
        until: None,
        until_mk: None,
        since_park: arrival.map(|a| a.since_park).unwrap_or_default(),
    };
    if let Some(until) = &checkpoint.until {
        match poll_until(until, cx)? {
            UntilRead::Wk(table) => {
                output.until = Some(table);
                summary.push_str("; the wrapping-key state holds");
            }
            UntilRead::Mk(table) => {
                output.until_mk = Some(table);
                summary.push_str("; the master-key state holds");
            }
        }
    }
    Ok(Done::new(summary).with(output))
}

fn deny(reason: &str) -> Failed<CheckpointOutput> {
    Failed::Denied(reason.to_owned())
}

fn poll_until(
    until: &mkplan_plan::model::Until,
    cx: &mut RunContext<'_>,
) -> Result<UntilRead, Failed<CheckpointOutput>> {
    let mut attempt = 0;
    loop {
        match evaluate(cx.host, cx.plan, &until.check) {
            Ok(read) => return Ok(read),
            Err(problems) if attempt >= until.retries => {
                return Err(Failed::step(format!(
                    "after approval, the {} state still does not hold ({} checks): {problems}",
                    register_words(&until.check),
                    attempt + 1
                )));
            }
            Err(problems) => {
                cx.notice(format!(
                    "not yet ({problems}); checking again in {:?}",
                    until.delay
                ));
            }
        }
        attempt += 1;
        let wake = Instant::now() + until.delay;
        while Instant::now() < wake {
            if cx.cancel.requested() {
                // Waiting changed nothing: stop here, and `resume` checks again.
                return Err(Failed::Interrupted);
            }
            std::thread::sleep(std::time::Duration::from_millis(50).min(until.delay));
        }
    }
}

/// `wrapping-key` (EP11) or `master-key` (CCA).
fn register_words(check: &mkplan_plan::model::UntilCheck) -> &'static str {
    match check {
        mkplan_plan::model::UntilCheck::Wk(_) => "wrapping-key",
        mkplan_plan::model::UntilCheck::Mk(_) => "master-key",
    }
}

fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn check(checkpoint: &Checkpoint, cx: &CheckContext<'_>) -> CheckReport {
    let who = if checkpoint.approvers.is_empty() {
        "anyone".to_owned()
    } else {
        checkpoint.approvers.join(", ")
    };
    let mut text = format!(
        "will ask for {} approval(s) from {who}",
        checkpoint.approvals
    );
    if let Some(tke) = &checkpoint.tke {
        let all_cca = tokens(cx.plan, checkpoint).iter().all(|t| t.is_cca());
        text.push_str(&format!(
            "; the TKE operator will {}",
            match (tke, all_cca) {
                (TkeAction::Commit, false) => "commit the new WK".to_owned(),
                (TkeAction::Commit, true) => "load the new MKs (NEW full)".to_owned(),
                (TkeAction::Activate, false) => "activate the new WK".to_owned(),
                (TkeAction::Activate, true) => "set the new MKs".to_owned(),
                (TkeAction::Other(t), _) => t.clone(),
            }
        ));
    }
    if let Some(until) = &checkpoint.until {
        match evaluate(cx.host, cx.plan, &until.check) {
            Ok(_) => text.push_str("; its `until` check already holds"),
            // Unreadable, offline or `- -`: no TKE action makes the check hold.
            Err(problems @ GuardError::WkUnknown(_)) => {
                return CheckReport::Blocked(format!(
                    "{text}; but its `until` check cannot be judged now, and no TKE action changes that: {problems}"
                ));
            }
            Err(problems) => text.push_str(&format!("; its `until` check does not hold yet, as expected before the TKE action ({problems})")),
        }
    }
    CheckReport::WillRun(text)
}

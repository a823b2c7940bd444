//! Building the [`RunReport`] from the verified journal, the plan and the run's key-list side
//! files (digest-checked against the journal), and nothing else: no
//! clock, no live host state (the machine's name and kernel come in as [`Machine`]). So the
//! same run data always gives the same report.

use std::path::Path;

use crate::model::{
    ApprovalRecord, ApproverKeyFacts, Cosigning, DecisionRecord, FailureFacts, HostFacts,
    JournalFacts, OriginFacts, PlanFacts, PolicyFacts, REPORT_VERSION, RefusedApproval, Resumption,
    RunReport, RunSummary, SignedApprovalFacts, SigningFacts, StepRecord,
};
use crate::timeline::{Timeline, millis_between, one_line};
use crate::{downtime, end_state, tokens};
use mkplan_engine::clock;
use mkplan_engine::events::{EventKind, StepRef};
use mkplan_engine::journal::{Entry, JOURNAL_VERSION, Verified};
use mkplan_engine::record::StepOutput;
use mkplan_engine::rundir::JOURNAL;
use mkplan_engine::state::{Phase, RunState, StepStatus};
use mkplan_plan::model::Plan;

/// The machine the report is written on (`uname -n`, `uname -r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub hostname: String,
    pub kernel_release: String,
}

impl Machine {
    /// From `/proc/sys/kernel` (the same strings `uname` returns); `unknown` if unreadable.
    pub fn current() -> Self {
        let read = |name: &str| {
            mkplan_plan::input::read_to_string(
                std::path::Path::new(&format!("/proc/sys/kernel/{name}")),
                mkplan_plan::input::SMALL,
            )
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned())
        };
        Self {
            hostname: read("hostname"),
            kernel_release: read("osrelease"),
        }
    }
}

/// Builds the report of the run whose verified journal is `journal`.
pub fn build(
    run_dir: &Path,
    plan: &Plan,
    journal: &Verified,
    machine: &Machine,
    signing: &SigningFacts,
) -> RunReport {
    // Journals of older mkplan hold `…:41.32Z`; the report shows every time in one width.
    let normalized = Verified {
        entries: journal
            .entries
            .iter()
            .map(|e| Entry {
                time: clock::normalize_or_keep(&e.time),
                ..e.clone()
            })
            .collect(),
        head: journal.head.clone(),
        torn_tail_at: journal.torn_tail_at,
    };
    let journal = &normalized;
    let state = RunState::replay(&journal.entries);
    let timeline = Timeline::of(journal);
    let mut warnings = Vec::new();
    let (mkplan_version, run, host_root, plan_facts) = run_facts(plan, journal, &state);
    if run.rehearsal {
        warnings.push(
            "REHEARSAL: this run acted on a simulated host; nothing real was changed".to_owned(),
        );
    }
    if signing.method == "ephemeral" {
        let why = if run.rehearsal {
            "a rehearsal never signs with the plan's `report.sign` key"
        } else {
            "the plan names no `report.sign` key"
        };
        warnings.push(format!("signed with an ephemeral key ({why}): the signature proves only that report.json matches signer.pub.pem beside it, not who produced it"));
    }
    if !matches!(state.phase, Phase::Finished(_)) {
        warnings.push(format!(
            "the run did not finish ({}): this report shows it as far as the journal goes",
            state.state_name()
        ));
    }
    if journal.torn_tail_at.is_some() {
        warnings.push("the journal's last line was torn (a crash while writing it); it is not part of this report".to_owned());
    }
    for decision in &run.decisions {
        warnings.push(format!(
            "{} was interrupted half-way; {} decided to {} it",
            decision.step, decision.decided_by, decision.decision
        ));
    }
    for outcome in &timeline.outcomes {
        if let StepOutput::Unreadable(why) = &outcome.output {
            warnings.push(format!(
                "the record of {} `{}` (journal seq {}) could not be read ({why}): what it did is missing from this report; read it in the journal",
                outcome.step.position(),
                outcome.step.name,
                outcome.seq
            ));
        }
    }
    let downtime = downtime::downtime(plan, &timeline, &mut warnings);
    let concurrent = crate::concurrent::concurrent(
        plan,
        journal,
        &timeline,
        &state,
        !downtime.units.is_empty(),
        &mut warnings,
    );
    let run_end = end_state::run_end(journal, &mut warnings);
    let tokens = plan
        .tokens
        .values()
        .map(|token| {
            tokens::token_report(
                run_dir,
                plan,
                token,
                &timeline,
                run_end.as_ref(),
                &mut warnings,
            )
        })
        .collect();
    let (approvals, refused_approvals) = approvals(journal);
    warnings.extend(asserted_names(plan, &approvals));
    let steps = steps(plan, &state, &timeline);
    RunReport {
        report_version: REPORT_VERSION,
        mkplan_version,
        run,
        host: HostFacts {
            hostname: machine.hostname.clone(),
            kernel_release: machine.kernel_release.clone(),
            root: host_root,
        },
        plan: plan_facts,
        signing: signing.clone(),
        downtime,
        concurrent,
        tokens,
        approvals,
        refused_approvals,
        steps,
        journal: JournalFacts {
            path: JOURNAL.to_owned(),
            version: JOURNAL_VERSION,
            events: journal.entries.len() as u64,
            head: journal.head.clone(),
        },
        events: crate::audit::events(plan, journal),
        warnings,
        cosigning: plan.report.cosign.as_ref().map(|c| Cosigning {
            required: c.required,
            by: c.by.clone(),
        }),
    }
}

fn run_facts(
    plan: &Plan,
    journal: &Verified,
    state: &RunState,
) -> (String, RunSummary, String, PlanFacts) {
    let mut version = String::new();
    let mut root = String::new();
    let mut rehearsal = false;
    let mut operator = String::new();
    let mut origin = None;
    let mut plan_path = String::new();
    let mut ended = None;
    let mut resumed = Vec::new();
    let mut decisions = Vec::new();
    for entry in &journal.entries {
        match &entry.event {
            EventKind::RunStarted {
                mkplan_version,
                host_root,
                rehearsal: r,
                operator: o,
                plan_path: p,
                origin: from,
                ..
            } => {
                origin = from.as_ref().map(OriginFacts::of);
                version.clone_from(mkplan_version);
                root.clone_from(host_root);
                rehearsal = *r;
                operator.clone_from(o);
                plan_path.clone_from(p);
            }
            EventKind::Resumed {
                operator, origin, ..
            } => resumed.push(Resumption {
                time: entry.time.clone(),
                operator: operator.clone(),
                origin: origin.as_ref().map(OriginFacts::of),
            }),
            EventKind::Decision {
                step,
                decision,
                decided_by,
            } => decisions.push(DecisionRecord {
                step: step.position(),
                decision: serde_json::to_value(decision)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                decided_by: decided_by.clone(),
                time: entry.time.clone(),
            }),
            EventKind::RunFinished { .. } => ended = Some(entry.time.clone()),
            _ => {}
        }
    }
    let started = journal
        .entries
        .first()
        .map(|e| e.time.clone())
        .unwrap_or_default();
    let failure = state.failure.as_ref().map(|(step, denied)| FailureFacts {
        step: step.position(),
        name: step.name.clone(),
        denied: *denied,
        reason: match state.record(step.section, step.index).map(|r| &r.status) {
            Some(StepStatus::Failed { error, .. }) => one_line(error),
            _ => String::new(),
        },
    });
    let (outcome, outcome_detail) = match state.phase {
        Phase::Finished(outcome) => (
            outcome.as_str().to_owned(),
            mkplan_engine::outcome::describe(plan, state),
        ),
        _ => (state.state_name().to_owned(), String::new()),
    };
    let run = RunSummary {
        id: state.run_id.clone(),
        rehearsal,
        operator,
        origin,
        duration_ms: ended.as_deref().and_then(|e| millis_between(&started, e)),
        started,
        ended,
        outcome,
        outcome_detail,
        failure,
        resumed,
        decisions,
    };
    let plan_facts = PlanFacts {
        path: plan_path,
        sha256: state.plan_sha256.clone(),
        name: plan.name.clone(),
        change_ticket: plan.change.ticket.clone(),
        change_summary: plan.change.summary.clone(),
        approvers: plan.change.approvers.clone(),
        policy: plan.change.policy.as_ref().map(|p| PolicyFacts {
            reference: p.reference.clone(),
            cryptoperiod: p.cryptoperiod.clone(),
        }),
        approver_keys: plan
            .change
            .approver_keys
            .iter()
            .map(|a| ApproverKeyFacts {
                name: a.name.clone(),
                key_id: a.key_id.clone(),
                algorithm: a.key.algorithm().as_str().to_owned(),
                public_key_pem: a.key.to_pem(),
            })
            .collect(),
    };
    (version, run, root, plan_facts)
}

/// An asserted name accepted for an approver with a key (the plan allows it with
/// `change.asserted_approvals: warn`): anyone who runs mkplan can type a name.
fn asserted_names<'a>(
    plan: &'a Plan,
    approvals: &'a [ApprovalRecord],
) -> impl Iterator<Item = String> + 'a {
    approvals
        .iter()
        .filter(|a| a.signed.is_none() && a.method != "rehearsal")
        .filter(|a| plan.change.keyed_approver(&a.approver).is_some())
        .map(|a| {
            format!(
                "checkpoint `{}`: {}'s approval is an asserted name (given by {}), not signed: anyone who runs mkplan can type it; the plan allows it (change.asserted_approvals: warn)",
                a.checkpoint_id.as_deref().unwrap_or(&a.checkpoint),
                a.approver,
                a.method
            )
        })
}

fn approvals(journal: &Verified) -> (Vec<ApprovalRecord>, Vec<RefusedApproval>) {
    let mut given = Vec::new();
    let mut refused = Vec::new();
    for entry in &journal.entries {
        match &entry.event {
            EventKind::CheckpointApproved {
                step,
                approver,
                method,
                shown_sha256,
                signed,
            } => given.push(ApprovalRecord {
                checkpoint: step.position(),
                checkpoint_name: step.name.clone(),
                checkpoint_id: step.id.clone(),
                approver: approver.clone(),
                method: method.as_str().to_owned(),
                time: entry.time.clone(),
                shown_sha256: shown_sha256.clone(),
                signed: signed.as_ref().map(SignedApprovalFacts::of),
            }),
            EventKind::CheckpointRefused {
                step,
                approver,
                method,
                reason,
            } => refused.push(RefusedApproval {
                checkpoint: step.position(),
                approver: approver.clone(),
                method: method.as_str().to_owned(),
                time: entry.time.clone(),
                reason: reason.clone(),
            }),
            _ => {}
        }
    }
    (given, refused)
}

fn steps(plan: &Plan, state: &RunState, timeline: &Timeline<'_>) -> Vec<StepRecord> {
    plan.all_steps()
        .map(|step| {
            let position = StepRef::of(step).position();
            let section = step.section;
            let record = state.record(section, step.index);
            let (status, summary) = match record.map(|r| &r.status) {
                Some(StepStatus::Succeeded { summary, .. }) => ("succeeded", one_line(summary)),
                Some(StepStatus::Failed { error, .. }) => ("failed", one_line(error)),
                Some(StepStatus::Skipped { reason }) => ("skipped", one_line(reason)),
                Some(StepStatus::Started { .. }) => {
                    ("uncertain", "started, no outcome recorded".to_owned())
                }
                None => ("not_reached", String::new()),
            };
            StepRecord {
                position,
                id: step.id.clone(),
                name: step.name.clone(),
                kind: step.kind_name().as_str().to_owned(),
                status: status.to_owned(),
                started: timeline.last_start(section, step.index).map(str::to_owned),
                duration_ms: record.and_then(|r| r.duration_ms),
                attempts: record.map_or(0, |r| r.attempts),
                summary,
            }
        })
        .collect()
}

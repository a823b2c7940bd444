//! The report's event list: each journal event with the fields PCI DSS 10.2.2 asks of an
//! audit log entry. User and origin come from the session that wrote the event (the start,
//! or the latest resume before it); the resources from the plan step the event is about
//! (the plan is the one the journal's digest names).

use crate::model::{AuditEvent, AuditResult, OriginFacts};
use mkplan_engine::events::{EventKind, Outcome, StepRef};
use mkplan_engine::journal::Verified;
use mkplan_engine::record::Record;
use mkplan_engine::record::backup::BackupOutput;
use mkplan_plan::model::{Plan, ServiceControl, ServiceId, StepKind, TkeAction, TokenId};

/// Every event of the journal, in order.
pub(crate) fn events(plan: &Plan, journal: &Verified) -> Vec<AuditEvent> {
    let mut operator = String::new();
    let mut origin: Option<OriginFacts> = None;
    let mut out = Vec::with_capacity(journal.entries.len());
    for entry in &journal.entries {
        // A session's events carry its user and origin, from its own first event on.
        match &entry.event {
            EventKind::RunStarted {
                operator: o,
                origin: from,
                ..
            }
            | EventKind::Resumed {
                operator: o,
                origin: from,
                ..
            } => {
                operator.clone_from(o);
                origin = from.as_ref().map(OriginFacts::of);
            }
            _ => {}
        }
        let event = &entry.event;
        let step = step_of(event);
        out.push(AuditEvent {
            seq: entry.seq,
            time: entry.time.clone(),
            event: event.name().to_owned(),
            step: step.map(|s| format!("{} {}: {}", s.position(), s.kind, s.name)),
            user: user(event).unwrap_or(&operator).to_owned(),
            result: result(event),
            origin: origin.clone(),
            resources: resources(plan, event),
        });
    }
    out
}

fn step_of(event: &EventKind) -> Option<&StepRef> {
    match event {
        EventKind::StepStarted { step, .. }
        | EventKind::StepSucceeded { step, .. }
        | EventKind::StepFailed { step, .. }
        | EventKind::StepSkipped { step, .. }
        | EventKind::UnitStopping { step, .. }
        | EventKind::CheckpointShown { step, .. }
        | EventKind::CheckpointApproved { step, .. }
        | EventKind::CheckpointRefused { step, .. }
        | EventKind::CheckpointDenied { step, .. }
        | EventKind::Decision { step, .. }
        | EventKind::StepMilestone { step, .. }
        | EventKind::CheckpointParked { step, .. }
        | EventKind::RunHalted { step, .. }
        | EventKind::RescueStarted { after: step } => Some(step),
        EventKind::RunStarted { .. }
        | EventKind::Resumed { .. }
        | EventKind::AlwaysStarted
        | EventKind::EndState { .. }
        | EventKind::Interrupted { .. }
        | EventKind::RunFinished { .. }
        | EventKind::Progress { .. }
        | EventKind::Notice { .. } => None,
    }
}

/// The person an event names, when it is not the session's operator.
fn user(event: &EventKind) -> Option<&str> {
    match event {
        EventKind::CheckpointApproved { approver, .. }
        | EventKind::CheckpointRefused { approver, .. } => Some(approver),
        EventKind::Decision { decided_by, .. } => Some(decided_by),
        _ => None,
    }
}

fn result(event: &EventKind) -> AuditResult {
    match event {
        EventKind::RunStarted { .. }
        | EventKind::Resumed { .. }
        | EventKind::StepSucceeded { .. }
        | EventKind::CheckpointShown { .. }
        | EventKind::CheckpointApproved { .. }
        | EventKind::Decision { .. }
        | EventKind::StepMilestone { .. }
        | EventKind::EndState { .. } => AuditResult::Success,
        EventKind::StepFailed { .. }
        | EventKind::CheckpointRefused { .. }
        | EventKind::CheckpointDenied { .. }
        | EventKind::RunHalted { .. }
        | EventKind::Interrupted { .. } => AuditResult::Failure,
        EventKind::RunFinished { outcome } => match outcome {
            Outcome::Succeeded => AuditResult::Success,
            Outcome::Failed | Outcome::Rescued | Outcome::Aborted => AuditResult::Failure,
        },
        EventKind::StepStarted { .. }
        | EventKind::StepSkipped { .. }
        | EventKind::UnitStopping { .. }
        | EventKind::CheckpointParked { .. }
        | EventKind::RescueStarted { .. }
        | EventKind::AlwaysStarted
        | EventKind::Progress { .. }
        | EventKind::Notice { .. } => AuditResult::None,
    }
}

fn resources(plan: &Plan, event: &EventKind) -> Vec<String> {
    match event {
        EventKind::RunStarted { plan_path, .. } => vec![format!("plan {plan_path}")],
        EventKind::EndState { .. } => plan.tokens.keys().flat_map(|t| token(plan, t)).collect(),
        EventKind::UnitStopping { unit, .. } => vec![format!("unit {unit}")],
        EventKind::RescueStarted { .. } => Vec::new(),
        _ => {
            let mut out: Vec<String> = step_of(event)
                .and_then(|s| plan.step_at(s.section, s.index))
                .map(|s| step_resources(plan, &s.kind))
                .unwrap_or_default();
            out.extend(written(event));
            out
        }
    }
}

/// The files a step's record says it wrote: the backup's archive and manifest.
fn written(event: &EventKind) -> Vec<String> {
    let EventKind::StepSucceeded { step, data, .. } = event else {
        return Vec::new();
    };
    let output = data.decode(step.kind);
    match BackupOutput::of(&output) {
        Some(backup) => vec![
            format!("file {}", backup.record.archive.display()),
            format!("file {}", backup.record.manifest.display()),
        ],
        None => Vec::new(),
    }
}

/// What a step acts on or reads, as its plan arguments name it.
fn step_resources(plan: &Plan, kind: &StepKind) -> Vec<String> {
    let tokens = |ids: &[TokenId]| ids.iter().flat_map(|t| token(plan, t)).collect();
    match kind {
        StepKind::AssertWk(a) => token(plan, &a.token),
        StepKind::AssertMk(a) => token(plan, &a.token),
        StepKind::Checkpoint(c) => {
            let mut out: Vec<String> = c
                .tke
                .iter()
                .map(|tke| match tke {
                    TkeAction::Commit => "TKE: commit".to_owned(),
                    TkeAction::Activate => "TKE: activate".to_owned(),
                    TkeAction::Other(what) => format!("TKE: {what}"),
                })
                .collect();
            if let Some(until) = &c.until {
                out.extend(token(plan, until.check.token()));
            }
            out
        }
        StepKind::Stop(service) | StepKind::Start(service) => vec![service_line(plan, service)],
        StepKind::Backup(b) => {
            let mut out = token(plan, &b.token);
            out.push(backup_line(plan, &b.to));
            out
        }
        StepKind::Restore(r) => {
            let mut out = token(plan, &r.token);
            out.push(backup_line(plan, &r.from));
            out
        }
        StepKind::Migrate(m) => {
            let mut out = token_line(plan, &m.token);
            out.push(format!("APQN {}", m.apqn.lszcrypt()));
            out
        }
        StepKind::SetExpectedWkvp(e) | StepKind::SetExpectedMkvps(e) => {
            let mut out = token_line(plan, &e.token);
            if let Some(config) = plan.tokens.get(&e.token).and_then(|t| t.config.as_ref()) {
                out.push(format!("file {}", config.display()));
            }
            out
        }
        StepKind::ProbeKeys(p) => token_line(plan, &p.token),
        StepKind::Command(c) => c
            .argv
            .first()
            .map(|program| format!("command {program}"))
            .into_iter()
            .collect(),
        StepKind::MkReencipher(r) => tokens(&r.tokens),
        StepKind::MkFinalize(e) | StepKind::MkCancel(e) => tokens(&e.tokens),
    }
}

/// The token and its APQNs.
fn token(plan: &Plan, id: &TokenId) -> Vec<String> {
    let mut out = token_line(plan, id);
    if let Some(token) = plan.tokens.get(id) {
        let apqns: Vec<String> = token.apqns.iter().map(|a| a.lszcrypt()).collect();
        out.push(format!("APQNs {}", apqns.join(", ")));
    }
    out
}

fn token_line(plan: &Plan, id: &TokenId) -> Vec<String> {
    vec![match plan.tokens.get(id) {
        Some(token) => format!(
            "token {id} (slot {}, {})",
            token.slot,
            token.store.display()
        ),
        None => format!("token {id}"),
    }]
}

fn service_line(plan: &Plan, id: &ServiceId) -> String {
    match plan.services.get(id).map(|s| &s.control) {
        Some(ServiceControl::Systemd(units)) => format!("service {id}: {}", units.join(", ")),
        Some(ServiceControl::Commands { .. }) => format!("service {id} (commands)"),
        None => format!("service {id}"),
    }
}

fn backup_line(plan: &Plan, id: &mkplan_plan::model::BackupId) -> String {
    match plan.backups.get(id) {
        Some(target) => format!("backup {id}: {}", target.dir.display()),
        None => format!("backup {id}"),
    }
}

//! `stop` and `start`: service groups by systemd unit or by the plan's own commands. After
//! stopping, /proc proves no process (other than mkplan's own children) still uses a token
//! (opencryptoki-ep11.md 4). `start` starts in reverse stop order; in `always` it starts only
//! what this run stopped, known from the journal.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::engine::clock::now_rfc3339;
use crate::engine::events::{EventKind, SectionName};
use crate::engine::state::{RunState, StepStatus};
use crate::host::process::{self, OnCancel};
use crate::host::{procscan, tools};
use crate::plan::model::{
    AssertWk, CurrentWk, NewWk, Plan, Section, Service, ServiceControl, ServiceId, StepKind,
};
use crate::steps::assert_wk::read_and_evaluate;
use crate::steps::context::Host;
use crate::steps::guards::{migration_may_have_started, refuse_while_tools_run};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

/// How long stopping or starting a group may take when the step sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

/// One thing that is stopped and started: a systemd unit, or a command-driven service.
struct Unit<'p> {
    name: String,
    control: &'p ServiceControl,
}

fn units(service: &Service) -> Vec<Unit<'_>> {
    match &service.control {
        ServiceControl::Systemd(list) => list
            .iter()
            .map(|u| Unit {
                name: u.clone(),
                control: &service.control,
            })
            .collect(),
        ServiceControl::Commands { .. } => vec![Unit {
            name: service.id.to_string(),
            control: &service.control,
        }],
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Stop,
    Start,
    IsActive,
}

fn command(host: &Host, plan: &Plan, unit: &Unit<'_>, verb: Verb) -> Result<Command, String> {
    let argv: Vec<String> = match unit.control {
        ServiceControl::Systemd(_) => {
            let verb = match verb {
                Verb::Stop => "stop",
                Verb::Start => "start",
                Verb::IsActive => "is-active",
            };
            let mut argv = vec!["systemctl".to_owned(), verb.to_owned()];
            if matches!(verb, "is-active") {
                argv.push("--quiet".to_owned());
            }
            argv.push(unit.name.clone());
            argv
        }
        ServiceControl::Commands {
            stop,
            start,
            is_active,
        } => match verb {
            Verb::Stop => stop.clone(),
            Verb::Start => start.clone(),
            Verb::IsActive => is_active.clone(),
        },
    };
    let program = tools::resolve(&host.root, &argv[0])?;
    let mut command = Command::new(program);
    command.args(&argv[1..]);
    // Services started from here must not inherit a PIN (or keep it for their lifetime).
    for name in plan.pin_variables() {
        command.env_remove(name);
    }
    Ok(command)
}

fn execute(
    host: &Host,
    plan: &Plan,
    unit: &Unit<'_>,
    verb: Verb,
    deadline: Instant,
    cx_cancel: &crate::engine::cancel::Cancel,
) -> Result<i32, String> {
    let finished = process::run(
        command(host, plan, unit, verb)?,
        Some(deadline),
        cx_cancel,
        OnCancel::Wait,
        &mut || {},
    )
    .map_err(|e| {
        format!(
            "cannot run the {} command of `{}`: {e}",
            verb_name(verb),
            unit.name
        )
    })?;
    if finished.timed_out {
        return Err(format!(
            "the {} command of `{}` did not finish in time",
            verb_name(verb),
            unit.name
        ));
    }
    Ok(finished.exit_code.unwrap_or(-1))
}

fn verb_name(verb: Verb) -> &'static str {
    match verb {
        Verb::Stop => "stop",
        Verb::Start => "start",
        Verb::IsActive => "is-active",
    }
}

fn is_active(
    host: &Host,
    plan: &Plan,
    unit: &Unit<'_>,
    deadline: Instant,
    cancel: &crate::engine::cancel::Cancel,
) -> Result<bool, String> {
    execute(host, plan, unit, Verb::IsActive, deadline, cancel).map(|code| code == 0)
}

/// Runs `verb`, then polls is-active until the unit is in the wanted state.
fn change(
    host: &Host,
    plan: &Plan,
    unit: &Unit<'_>,
    verb: Verb,
    deadline: Instant,
    cancel: &crate::engine::cancel::Cancel,
) -> Result<(), String> {
    let code = execute(host, plan, unit, verb, deadline, cancel)?;
    if code != 0 {
        return Err(format!(
            "the {} command of `{}` exited {code}",
            verb_name(verb),
            unit.name
        ));
    }
    let want_active = matches!(verb, Verb::Start);
    loop {
        if is_active(host, plan, unit, deadline, cancel)? == want_active {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "`{}` is still {} when the step's time ran out",
                unit.name,
                if want_active { "not active" } else { "active" }
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Every process (other than mkplan and its children) that uses any of the plan's tokens.
pub fn token_users(
    host: &Host,
    plan: &Plan,
) -> (Vec<crate::engine::record::users::TokenUser>, usize, usize) {
    let own = procscan::own_family(&host.proc_dir);
    let mut users: Vec<crate::engine::record::users::TokenUser> = Vec::new();
    let (mut scanned, mut unreadable) = (0, 0);
    for token in plan.tokens.values() {
        let shm = crate::engine::ports::root::token_shm_path(&host.root, &token.store);
        let result = procscan::scan(&host.proc_dir, &shm, &own);
        scanned = scanned.max(result.scanned);
        unreadable = unreadable.max(result.unreadable);
        for user in result.users {
            if !users.iter().any(|u| u.pid == user.pid) {
                users.push(user);
            }
        }
    }
    (users, scanned, unreadable)
}

pub fn describe_users(users: &[crate::engine::record::users::TokenUser]) -> String {
    users
        .iter()
        .map(|u| {
            format!(
                "pid {} `{}`{} maps `{}`",
                u.pid,
                u.command,
                u.unit
                    .as_deref()
                    .map(|n| format!(" (unit {n})"))
                    .unwrap_or_default(),
                u.matched
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn stop(id: &ServiceId, cx: &mut RunContext<'_>) -> StepResult {
    let service = &cx.plan.services[id];
    let deadline = cx
        .deadline
        .unwrap_or_else(|| Instant::now() + DEFAULT_TIMEOUT);
    let mut records = Vec::new();
    let all = units(service);
    for (i, unit) in all.iter().enumerate() {
        let was_active = is_active(cx.host, cx.plan, unit, deadline, cx.cancel)
            .map_err(|e| StepError::failed_with(e, json!({ "units": records })))?;
        if was_active {
            // Journaled before it acts: `start` must know even if this run dies half-way.
            let step = cx.step_ref();
            cx.emit(EventKind::UnitStopping {
                step,
                unit: unit.name.clone(),
            })
            .map_err(|e| StepError::failed_with(e.to_string(), json!({ "units": records })))?;
        }
        if was_active
            && let Err(e) = change(cx.host, cx.plan, unit, Verb::Stop, deadline, cx.cancel)
        {
            // Record it as stopped anyway: `always` must try to start it again.
            records.push(json!({ "unit": unit.name, "was_active": true, "stopped_at": now_rfc3339(), "stop_failed": true }));
            return Err(StepError::failed_with(e, json!({ "units": records })));
        }
        records.push(
            json!({ "unit": unit.name, "was_active": was_active, "stopped_at": now_rfc3339() }),
        );
        cx.progress(i as u64 + 1, Some(all.len() as u64), unit.name.clone());
        if i + 1 < all.len() {
            crate::engine::crash_hooks::kill_point("stop:unit");
        }
    }
    let (users, scanned, unreadable) = token_users(cx.host, cx.plan);
    let data = json!({
        "units": records,
        "scan": { "scanned": scanned, "unreadable": unreadable, "users": users },
    });
    if !users.is_empty() {
        let listed = describe_users(&users);
        if let Some(later) = later_stop(cx) {
            // Another group is stopped before anything touches the tokens; the proof is
            // owed after that one (and `migrate` re-checks right before the tool starts).
            return Ok(StepSuccess::new(format!(
                "stopped `{id}`; {} process(es) still use a token until `{later}` runs: {listed}",
                users.len()
            ))
            .with_data(data));
        }
        return Err(StepError::failed_with(
            format!(
                "after stopping `{id}`, {} process(es) still use a token: {listed}",
                users.len()
            ),
            data,
        ));
    }
    let stopped = records.iter().filter(|r| r["was_active"] == true).count();
    Ok(StepSuccess::new(format!(
        "stopped {stopped} of {} unit(s) of `{id}`; no process uses a token ({scanned} processes scanned, {unreadable} unreadable)",
        records.len()
    ))
    .with_data(data))
}

/// The name of a later `stop` in the same section that runs before the next step that
/// touches a token store (backup, migrate, restore), if there is one.
fn later_stop(cx: &RunContext<'_>) -> Option<String> {
    let section = match cx.step.section {
        Section::Steps => &cx.plan.steps,
        Section::Rescue => &cx.plan.rescue,
        Section::Always => &cx.plan.always,
    };
    section[cx.step.index + 1..]
        .iter()
        .take_while(|s| {
            !matches!(
                s.kind,
                StepKind::Backup { .. } | StepKind::Migrate(_) | StepKind::Restore { .. }
            )
        })
        .find(|s| matches!(s.kind, StepKind::Stop(_)))
        .map(|s| s.name.clone())
}

/// The stop step of `id` at this journal position, if that is what it is.
fn stops(plan: &Plan, section: SectionName, index: usize, id: &ServiceId) -> bool {
    let section = match section {
        SectionName::Steps => &plan.steps,
        SectionName::Rescue => &plan.rescue,
        SectionName::Always => &plan.always,
    };
    matches!(section.get(index).map(|s| &s.kind), Some(StepKind::Stop(stopped)) if stopped == id)
}

/// The units of `id` this run stopped (and that were running), in stop order: those its
/// `stop` steps recorded, and those any attempt announced before it was cut short.
fn stopped_by_run(plan: &Plan, state: &RunState, id: &ServiceId) -> Option<Vec<String>> {
    let mut found = false;
    let mut names = Vec::new();
    for ((section, index), unit) in &state.units_stopping {
        if stops(plan, *section, *index, id) && !names.contains(unit) {
            names.push(unit.clone());
        }
    }
    for record in state.started_of_kind("stop") {
        if !stops(plan, record.step.section, record.step.index, id) {
            continue;
        }
        found = true;
        let data = match &record.status {
            StepStatus::Succeeded { data, .. } | StepStatus::Failed { data, .. } => data,
            _ => &Value::Null,
        };
        for unit in data["units"].as_array().into_iter().flatten() {
            if unit["was_active"] == true
                && let Some(name) = unit["unit"].as_str()
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
        }
    }
    found.then_some(names)
}

/// Design rule 3, live: a token this run may have re-enciphered must either have been
/// restored, or show the new WK as current on every APQN, before applications start; else
/// they would come up against keys that cannot work.
fn refuse_unverified_start(cx: &RunContext<'_>) -> Result<(), StepError> {
    for token in cx.plan.tokens.values() {
        // Rule 8: never start applications under a tool that rewrites the token.
        refuse_while_tools_run(cx.host, cx.plan, token, "start services")
            .map_err(StepError::failed)?;
        if !migration_may_have_started(cx.plan, cx.state, &token.id) {
            continue;
        }
        // A restore step that put the backup back, or found the store identical to it.
        let restored = cx.state.succeeded_of_kind("restore").any(|(_, d)| {
            d["token"] == token.id.as_str()
                && (d["action"] == crate::steps::restore::RESTORED
                    || d["action"] == crate::steps::restore::UNCHANGED)
        });
        if restored {
            continue;
        }
        let active = AssertWk {
            token: token.id.clone(),
            current: CurrentWk::New,
            new: NewWk::Any,
        };
        if let Err(problems) = read_and_evaluate(cx.host, cx.plan, &active) {
            return Err(StepError::failed(format!(
                "not starting services: token `{}` was re-enciphered in this run, but the new WK is not current on every APQN ({problems}) and the store was not restored, so applications would start against keys that do not work; finish the activation on the TKE, then start the services",
                token.id
            )));
        }
    }
    Ok(())
}

pub fn start(id: &ServiceId, cx: &mut RunContext<'_>) -> StepResult {
    refuse_unverified_start(cx)?;
    let service = &cx.plan.services[id];
    let deadline = cx
        .deadline
        .unwrap_or_else(|| Instant::now() + DEFAULT_TIMEOUT);
    let mut to_start: Vec<Unit<'_>> = match stopped_by_run(cx.plan, cx.state, id) {
        Some(names) => units(service)
            .into_iter()
            .filter(|u| names.contains(&u.name))
            .collect(),
        None if cx.step.section == Section::Always => Vec::new(),
        None => units(service),
    };
    to_start.reverse();
    if to_start.is_empty() {
        return Ok(StepSuccess::new(format!(
            "nothing to start: this run stopped no unit of `{id}`"
        )));
    }
    let mut records = Vec::new();
    let total = to_start.len();
    for (i, unit) in to_start.iter().enumerate() {
        let running = is_active(cx.host, cx.plan, unit, deadline, cx.cancel)
            .map_err(|e| StepError::failed_with(e, json!({ "units": records })))?;
        if !running {
            change(cx.host, cx.plan, unit, Verb::Start, deadline, cx.cancel)
                .map_err(|e| StepError::failed_with(e, json!({ "units": records })))?;
        }
        records.push(
            json!({ "unit": unit.name, "already_running": running, "started_at": now_rfc3339() }),
        );
        cx.progress(i as u64 + 1, Some(total as u64), unit.name.clone());
        if i + 1 < total {
            crate::engine::crash_hooks::kill_point("start:unit");
        }
    }
    Ok(
        StepSuccess::new(format!("{total} unit(s) of `{id}` are active"))
            .with_data(json!({ "units": records })),
    )
}

pub fn check_stop(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
    let service = &cx.plan.services[id];
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let cancel = crate::engine::cancel::Cancel::new();
    let mut states = Vec::new();
    for unit in units(service) {
        match is_active(cx.host, cx.plan, &unit, deadline, &cancel) {
            Ok(active) => states.push(format!(
                "`{}` ({})",
                unit.name,
                if active { "active now" } else { "inactive now" }
            )),
            Err(e) => return CheckReport::Blocked(e),
        }
    }
    let (users, _, unreadable) = token_users(cx.host, cx.plan);
    CheckReport::WillRun(format!(
        "would stop {}; then prove no process uses a token (now {} do{}{})",
        states.join(", "),
        users.len(),
        if users.is_empty() {
            String::new()
        } else {
            format!(": {}", describe_users(&users))
        },
        if unreadable > 0 {
            format!("; {unreadable} processes unreadable")
        } else {
            String::new()
        }
    ))
}

pub fn check_start(id: &ServiceId, cx: &CheckContext<'_>) -> CheckReport {
    let stopped_earlier = cx
        .earlier
        .iter()
        .any(|s| matches!(&s.kind, StepKind::Stop(x) if x == id));
    let names: Vec<String> = units(&cx.plan.services[id])
        .into_iter()
        .map(|u| format!("`{}`", u.name))
        .collect();
    if cx.step.section == Section::Always || stopped_earlier {
        CheckReport::WillRun(format!(
            "would start again what the run stopped of {}",
            names.join(", ")
        ))
    } else {
        CheckReport::WillRun(format!("would start {}", names.join(", ")))
    }
}

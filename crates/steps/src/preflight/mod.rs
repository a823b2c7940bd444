//! What the step kinds need of the host before a run starts (design rule 9): an AP bus and
//! every APQN the steps read, present and online; each token's `ep11tok.conf`; the programs
//! the steps run; pkcsslotd; the PINs (`pins`). What can only hold later (a WK state a TKE
//! checkpoint brings about) is named with the step that checks it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::migrate;
use mkplan_engine::events::StepRef;
use mkplan_engine::ports::host::HostView;
use mkplan_engine::preflight::Preflight;
use mkplan_plan::model::{Apqn, Plan, ServiceControl, Step, StepKind, Token, TokenId, UntilCheck};
use mkplan_plan::model::{ExpectedWkvpStep, RestoreStep};

mod pins;

pub use pins::pins;

/// The host's side: adapters, configs, programs, and pkcsslotd when a step needs it.
/// Returns whether pkcsslotd runs (or is not needed): the PINs are tried only then.
pub fn host(p: &mut Preflight, plan: &Plan, host: &dyn HostView) -> bool {
    adapters(p, plan, host);
    configs(p, plan, host);
    programs(p, plan, host);
    !needs_slotd(plan) || daemon(p, host)
}

/// The tokens whose adapters a step reads: `assert_wk`, a checkpoint's `until`, `migrate`,
/// `restore`, `set_expected_wkvp`.
fn hardware_tokens(plan: &Plan) -> Vec<&Token> {
    let mut ids: Vec<&TokenId> = Vec::new();
    for step in plan.all_steps() {
        match &step.kind {
            StepKind::AssertWk(a) => ids.push(&a.token),
            StepKind::AssertMk(a) => ids.push(&a.token),
            // A checkpoint reads the adapters only through its `until`; its TKE action is
            // a person's (a rehearsal's simulated TKE is not part of the host).
            StepKind::Checkpoint(c) => ids.extend(c.until.as_ref().map(|u| u.check.token())),
            StepKind::Migrate(m) => ids.push(&m.token),
            StepKind::Restore(RestoreStep { token, .. })
            | StepKind::SetExpectedWkvp(ExpectedWkvpStep { token, .. })
            | StepKind::SetExpectedMkvps(ExpectedWkvpStep { token, .. }) => ids.push(token),
            StepKind::MkReencipher(r) => ids.extend(r.tokens.iter()),
            _ => {}
        }
    }
    ids.sort();
    ids.dedup();
    ids.into_iter().map(|id| &plan.tokens[id]).collect()
}

/// The AP bus, then every APQN of those tokens once: present, online, EP11.
fn adapters(p: &mut Preflight, plan: &Plan, host: &dyn HostView) {
    let tokens = hardware_tokens(plan);
    if tokens.is_empty() {
        return;
    }
    if !host.ap_bus_present() {
        p.problem(
            "host",
            "this is not an IBM Z host with the zcrypt driver: there is no AP bus (`/sys/bus/ap` does not exist), so no Crypto Express adapter can be reached; run mkplan on the LPAR that owns the token's APQNs",
        );
        p.unreadable.extend(tokens.iter().map(|t| t.id.clone()));
        return;
    }
    p.hold("host", "AP bus present (`/sys/bus/ap`)");
    let mut bad: BTreeSet<Apqn> = BTreeSet::new();
    let mut seen: BTreeSet<Apqn> = BTreeSet::new();
    let apqns = tokens
        .iter()
        .flat_map(|t| t.apqns.iter().map(move |a| (*a, t.is_cca())));
    for (apqn, cca) in apqns {
        if !seen.insert(apqn) {
            continue;
        }
        let what = format!("APQN {}", apqn.lszcrypt());
        match host.read_apqn(apqn) {
            Err(e) => {
                bad.insert(apqn);
                p.problem(what, e.to_string());
            }
            Ok(s) => {
                let problem = if !(s.card_config && s.queue_config) {
                    Some("is not configured (see `lszcrypt -V`; `chzcrypt --config-on`)")
                } else if !(s.card_online && s.queue_online) {
                    Some("is offline (see `lszcrypt -V`; `chzcrypt -e`)")
                } else if s.card_chkstop || s.queue_chkstop {
                    Some("is check-stopped")
                } else if cca && s.cca.is_none() {
                    Some("is not a CCA coprocessor, but the plan's token using it is a CCA token")
                } else if !cca && !s.ep11 {
                    Some("is not an EP11 coprocessor")
                } else {
                    None
                };
                let kind = if cca { "CCA" } else { "EP11" };
                match problem {
                    Some(why) => {
                        bad.insert(apqn);
                        p.problem(what, format!("{apqn} ({} card) {why}", s.card_type));
                    }
                    None => p.hold(what, format!("{} {kind} coprocessor, online", s.card_type)),
                }
            }
        }
    }
    for token in tokens {
        if token.apqns.iter().any(|a| bad.contains(a)) {
            p.unreadable.insert(token.id.clone());
        }
    }
}

/// Every token's `ep11tok.conf` that the steps read, readable and parseable.
fn configs(p: &mut Preflight, plan: &Plan, host: &dyn HostView) {
    for token in hardware_tokens(plan) {
        // A CCA token's `ccatok.conf` is read by the steps that need it, not here.
        let Some(config) = token.config.as_ref().filter(|_| !token.is_cca()) else {
            continue;
        };
        let what = format!("config of `{}`", token.id);
        let shown = config.display();
        match host.read_config(&host.root().path(config)) {
            Err(e) => {
                p.problem(what, format!("cannot read `{shown}`: {e}"));
                p.unreadable.insert(token.id.clone());
            }
            Ok(text) => match mkplan_plan::ep11conf::parse(&text) {
                Err(e) => {
                    p.problem(what, format!("`{shown}`: {e}"));
                    p.unreadable.insert(token.id.clone());
                }
                Ok(_) => p.hold(what, format!("`{shown}` reads and parses")),
            },
        }
    }
}

/// Every program a step runs: found on the system path under the root, and runnable.
fn programs(p: &mut Preflight, plan: &Plan, host: &dyn HostView) {
    let mut wanted: Vec<(String, Result<PathBuf, String>)> = Vec::new();
    let mut services = BTreeSet::new();
    for step in plan.all_steps() {
        match &step.kind {
            StepKind::Migrate(m) => {
                let found = migrate::tool_path(host, plan, m).map_err(|e| e.to_string());
                let name = match plan.tokens[&m.token].is_cca() {
                    true => "pkcscca",
                    false => "pkcsep11_migrate",
                };
                wanted.push((name.to_owned(), found))
            }
            StepKind::Stop(id) | StepKind::Start(id) if services.insert(id.clone()) => {
                let argv0s: Vec<&str> = match &plan.services[id].control {
                    ServiceControl::Systemd(_) => vec!["systemctl"],
                    ServiceControl::Commands {
                        stop,
                        start,
                        is_active,
                    } => [stop, start, is_active]
                        .iter()
                        .map(|a| a[0].as_str())
                        .collect(),
                };
                for program in argv0s {
                    let found = host.resolve_program(program).map_err(|e| e.to_string());
                    wanted.push((program.to_owned(), found));
                }
            }
            StepKind::Command(c) if !c.shell => {
                let found = host.resolve_program(&c.argv[0]).map_err(|e| e.to_string());
                wanted.push((c.argv[0].clone(), found))
            }
            _ => {}
        }
    }
    let mut checked = BTreeSet::new();
    for (name, found) in wanted {
        if !checked.insert(name.clone()) {
            continue;
        }
        let what = format!("tool `{name}`");
        let runnable = |path: PathBuf| {
            host.runnable(&path)
                .map(|()| path)
                .map_err(|e| e.to_string())
        };
        match found.and_then(runnable) {
            // `tool_path` refuses a migration tool others could change (it gets the PIN).
            Ok(path) if name == "pkcsep11_migrate" || name == "pkcscca" => p.hold(
                what,
                format!(
                    "`{}`, runnable, and nobody but root or you can write it",
                    path.display()
                ),
            ),
            Ok(path) => p.hold(what, format!("`{}`, runnable", path.display())),
            Err(e) => p.problem(what, e),
        }
    }
}

fn needs_slotd(plan: &Plan) -> bool {
    plan.all_steps()
        .any(|s| matches!(s.kind, StepKind::Migrate(_) | StepKind::ProbeKeys(_)))
}

/// pkcsslotd runs (the tool and every PKCS#11 use need it). Returns whether it does.
fn daemon(p: &mut Preflight, host: &dyn HostView) -> bool {
    match host.slot_daemon() {
        Ok(d) => {
            p.hold(
                "pkcsslotd",
                format!(
                    "running, pid {} (pid file `{}`, executable `{}`)",
                    d.pid,
                    d.pid_file.display(),
                    d.exe
                ),
            );
            true
        }
        Err(e) => {
            p.problem("pkcsslotd", e.to_string());
            false
        }
    }
}

/// The WK (CCA: MK) states a TKE checkpoint is to bring about: checked by the step, when
/// it runs.
pub fn later(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<&Step> = None;
    for step in &plan.steps {
        let reads = match &step.kind {
            StepKind::AssertWk(_) => Some("WK"),
            StepKind::AssertMk(_) => Some("MK"),
            StepKind::Checkpoint(c) => c.until.as_ref().map(|u| match u.check {
                UntilCheck::Wk(_) => "WK",
                UntilCheck::Mk(_) => "MK",
            }),
            _ => None,
        };
        if let (Some(registers), Some(checkpoint)) = (reads, after) {
            out.push(format!(
                "will check at {} `{}`: the {registers} registers, after the TKE checkpoint {} `{}`",
                StepRef::of(step).position(),
                step.name,
                StepRef::of(checkpoint).position(),
                checkpoint.name
            ));
        }
        if matches!(&step.kind, StepKind::Checkpoint(c) if c.tke.is_some()) {
            after = Some(step);
        }
    }
    out
}

//! The preflight of `run` and `check` (design rule 9): everything the plan needs of the host
//! that must hold *now*, before any step acts — nobody but root or the operator can write
//! what the run trusts (the plan, approvals files, the state directory, the migration tool,
//! the signing key: `crate::engine::trust`); an AP bus and every APQN the steps read, present and
//! online; each token's `ep11tok.conf`; the tools, runnable; pkcsslotd; the report-signing
//! key; the PINs, obtained and (for `run`) verified by one login each, so a wrong PIN is
//! found before anything is stopped. Each problem is said once. What can only hold later (a
//! WK state a TKE checkpoint brings about) is named with the step that checks it.
//!
//! A stop request (Ctrl-C) while the preflight waits at a PIN prompt ends it as
//! [`Preflight::interrupted`]: no PIN is tried, nothing is a problem, and `run` records no
//! run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::cancel::Cancel;
use crate::engine::events::StepRef;
use crate::engine::ports::Ports;
use crate::engine::ports::host::HostView;
use crate::engine::ports::operator::Operator;
use crate::engine::secret::Pins;
use crate::plan::model::{
    Apqn, PinSource, Pkcs11KeyRef, Plan, ServiceControl, SignKey, Step, StepKind, Token, TokenId,
};
use crate::plan::model::{ExpectedWkvpStep, ProbeKeysStep, RestoreStep};
use crate::report::sign::{ReportSigner, SigningPorts, read_key_file};
use crate::steps::migrate;

mod trusted;

/// How far the preflight goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `check`: no PIN is asked for or tried, no key is used.
    DryRun,
    /// `run`: PINs are obtained (asked for, if the plan says so) and verified with one login
    /// each; the signing key signs and verifies a probe.
    Run,
}

/// One thing the preflight looked at: what, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub text: String,
}

/// What the preflight found, and what `run` carries on with.
#[derive(Default)]
pub struct Preflight {
    pub holds: Vec<Finding>,
    pub problems: Vec<Finding>,
    /// What only holds later, with the step that checks it.
    pub later: Vec<String>,
    /// The PINs verified (`Depth::Run`).
    pub pins: Pins,
    /// The report signer, proven to sign (`Depth::Run`).
    pub signer: Option<ReportSigner>,
    /// Tokens whose adapters or config have a problem above: `check` points their steps at
    /// it instead of saying it again.
    pub unreadable: BTreeSet<TokenId>,
    /// A stop was requested at a prompt (`Depth::Run`): the preflight ended there, and what
    /// it found decides nothing.
    pub interrupted: bool,
}

/// What the preflight looks at besides the plan and the host.
pub struct Scope<'a> {
    /// The plan file, as given.
    pub plan_file: &'a Path,
    /// The approvals files given (`--approvals`).
    pub approvals_files: &'a [PathBuf],
    /// The state directory the run is kept in.
    pub state_dir: &'a Path,
    /// The run's stop flag: a stop request at a PIN prompt interrupts the preflight.
    pub cancel: &'a Cancel,
}

impl Preflight {
    fn hold(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.holds.push(Finding {
            what: what.into(),
            text: text.into(),
        });
    }

    fn problem(&mut self, what: impl Into<String>, text: impl Into<String>) {
        let finding = Finding {
            what: what.into(),
            text: text.into(),
        };
        if !self.problems.contains(&finding) {
            self.problems.push(finding);
        }
    }
}

/// Runs the preflight of `plan` on `host`.
pub fn preflight(
    plan: &Plan,
    ports: &Ports,
    operator: &dyn Operator,
    depth: Depth,
    scope: &Scope<'_>,
) -> Preflight {
    let mut p = Preflight::default();
    trusted::files(&mut p, scope);
    let host: &dyn HostView = &*ports.host;
    adapters(&mut p, plan, host);
    configs(&mut p, plan, host);
    programs(&mut p, plan, host);
    let daemon_ok = !needs_slotd(plan) || daemon(&mut p, host);
    signing(&mut p, plan, ports, operator, depth);
    if !scope.cancel.requested() {
        pins(
            &mut p,
            plan,
            ports,
            operator,
            depth,
            daemon_ok,
            scope.cancel,
        );
    }
    // Whatever was waiting when the stop came (a PIN prompt, the one login), the run stops.
    p.interrupted = scope.cancel.requested();
    p.later = later(plan);
    p
}

/// The tokens whose adapters a step reads: `assert_wk`, a checkpoint's `until`, `migrate`,
/// `restore`, `set_expected_wkvp`.
fn hardware_tokens(plan: &Plan) -> Vec<&Token> {
    let mut ids: Vec<&TokenId> = Vec::new();
    for step in plan.all_steps() {
        match &step.kind {
            StepKind::AssertWk(a) => ids.push(&a.token),
            // A checkpoint reads the adapters only through its `until`; its TKE action is
            // a person's (a rehearsal's simulated TKE is not part of the host).
            StepKind::Checkpoint(c) => ids.extend(c.until.as_ref().map(|u| &u.check.token)),
            StepKind::Migrate(m) => ids.push(&m.token),
            StepKind::Restore(RestoreStep { token, .. })
            | StepKind::SetExpectedWkvp(ExpectedWkvpStep { token }) => ids.push(token),
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
    for apqn in tokens.iter().flat_map(|t| t.apqns.iter()) {
        if !seen.insert(*apqn) {
            continue;
        }
        let what = format!("APQN {}", apqn.lszcrypt());
        match host.read_apqn(*apqn) {
            Err(e) => {
                bad.insert(*apqn);
                p.problem(what, e.to_string());
            }
            Ok(s) => {
                let problem = if !(s.card_config && s.queue_config) {
                    Some("is not configured (see `lszcrypt -V`; `chzcrypt --config-on`)")
                } else if !(s.card_online && s.queue_online) {
                    Some("is offline (see `lszcrypt -V`; `chzcrypt -e`)")
                } else if s.card_chkstop || s.queue_chkstop {
                    Some("is check-stopped")
                } else if !s.ep11 {
                    Some("is not an EP11 coprocessor")
                } else {
                    None
                };
                match problem {
                    Some(why) => {
                        bad.insert(*apqn);
                        p.problem(what, format!("{apqn} ({} card) {why}", s.card_type));
                    }
                    None => p.hold(what, format!("{} EP11 coprocessor, online", s.card_type)),
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
        let Some(config) = &token.config else {
            continue;
        };
        let what = format!("config of `{}`", token.id);
        let shown = config.display();
        match host.read_config(&host.root().path(config)) {
            Err(e) => {
                p.problem(what, format!("cannot read `{shown}`: {e}"));
                p.unreadable.insert(token.id.clone());
            }
            Ok(text) => match crate::plan::ep11conf::parse(&text) {
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
                wanted.push(("pkcsep11_migrate".to_owned(), migrate::tool_path(host, m)))
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
            Ok(path) if name == "pkcsep11_migrate" => p.hold(
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

/// The report-signing key: readable (`check`), and signing (`run`).
fn signing(p: &mut Preflight, plan: &Plan, ports: &Ports, operator: &dyn Operator, depth: Depth) {
    let host: &dyn HostView = &*ports.host;
    let what = "report-signing key";
    // Nobody types a PIN for a run that is refused anyway: then it is only looked at.
    let prompted = matches!(
        &plan.report.sign,
        Some(SignKey::Pkcs11 { pin, .. }) if *pin == PinSource::Prompt
    );
    let ask = !prompted || p.problems.is_empty();
    if depth == Depth::Run && ask {
        let signing = SigningPorts {
            root: host.root(),
            pins: &*ports.pins,
            keys: Arc::clone(&ports.signing),
            operator,
        };
        let proven = ReportSigner::for_plan(plan, &signing).and_then(|signer| {
            let probe = b"mkplan preflight: the report-signing key signs";
            let signature = signer.sign(probe)?;
            signer.public().verify(probe, &signature)?;
            Ok(signer)
        });
        match proven {
            Ok(signer) => {
                p.hold(what, describe_signer(&signer));
                p.signer = Some(signer);
            }
            Err(e) => p.problem(what, e),
        }
        return;
    }
    match &plan.report.sign {
        None => p.hold(what, "none in the plan: an ephemeral key (integrity only)"),
        Some(SignKey::File(path)) => match read_key_file(&host.root().path(path), path) {
            Ok(key) => p.hold(
                what,
                format!(
                    "key file `{}` ({})",
                    path.display(),
                    key.algorithm().describe()
                ),
            ),
            Err(e) => p.problem(what, e),
        },
        Some(SignKey::Pkcs11 {
            module, slot, key, ..
        }) => {
            let key = match key {
                Pkcs11KeyRef::Label(label) => format!("label `{label}`"),
                Pkcs11KeyRef::Id(id) => format!("id {}", hex::encode(id)),
            };
            let shown = format!("{key} in slot {slot} of `{}`", module.display());
            if host.root().path(module).is_file() {
                p.hold(
                    what,
                    format!("PKCS#11 key {shown} (its PIN is read and the key used by `run`)"),
                );
            } else {
                p.problem(
                    what,
                    format!("the PKCS#11 module of key {shown} does not exist"),
                );
            }
        }
    }
}

fn describe_signer(signer: &ReportSigner) -> String {
    let facts = signer.facts();
    match &facts.key {
        Some(key) => format!("{} `{key}` ({}), signs", facts.method, facts.algorithm),
        None => format!("an ephemeral key ({}): integrity only", facts.algorithm),
    }
}

/// Every token a step logs in to (`migrate`, `probe_keys`), once, with the module a
/// `probe_keys` of it names.
fn pin_tokens(plan: &Plan) -> Vec<(&Token, Option<&PathBuf>)> {
    let mut out: Vec<(&Token, Option<&PathBuf>)> = Vec::new();
    for step in plan.all_steps() {
        let (id, module) = match &step.kind {
            StepKind::Migrate(m) => (&m.token, None),
            StepKind::ProbeKeys(ProbeKeysStep { token, module }) => (token, module.as_ref()),
            _ => continue,
        };
        match out.iter_mut().find(|(t, _)| t.id == *id) {
            Some(entry) => entry.1 = entry.1.or(module),
            None => out.push((&plan.tokens[id], module)),
        }
    }
    out
}

fn source(pin: &PinSource) -> String {
    match pin {
        PinSource::Env(name) => format!("the environment variable `{name}`"),
        PinSource::File(path) => format!("the file `{}`", path.display()),
        PinSource::Prompt => "a prompt".to_owned(),
    }
}

/// Every PIN a step needs: obtainable (`check`), and obtained and verified by one login
/// (`run`) — unless pkcsslotd or the token's adapters already failed above.
fn pins(
    p: &mut Preflight,
    plan: &Plan,
    ports: &Ports,
    operator: &dyn Operator,
    depth: Depth,
    daemon_ok: bool,
    cancel: &Cancel,
) {
    for (token, module) in pin_tokens(plan) {
        let what = format!("PIN of `{}`", token.id);
        let from = source(&token.pin);
        if token.pin == PinSource::Prompt {
            if depth == Depth::DryRun {
                p.hold(
                    what,
                    "typed at a prompt when `run` starts, before anything is stopped",
                );
                continue;
            }
            if !p.problems.is_empty() {
                // Nobody types a PIN for a run that is refused anyway.
                p.hold(what, "not asked for: the problems above come first");
                continue;
            }
        }
        let label = format!("token `{}`", token.id);
        let pin = match ports.pins.read(&token.pin, operator, &label) {
            Ok(pin) => pin,
            // Ctrl-C at the prompt: no PIN, no login, no problem — the run stops here.
            Err(_) if cancel.requested() => return,
            Err(e) => {
                p.problem(what, e);
                continue;
            }
        };
        if depth == Depth::DryRun {
            p.hold(
                what,
                format!("in {from}; `run` verifies it by one login before anything is stopped"),
            );
            continue;
        }
        if !daemon_ok || p.unreadable.contains(&token.id) {
            p.hold(
                what,
                format!("from {from}; not tried: the problems above come first"),
            );
            continue;
        }
        let module = match ports.host.pkcs11_module(module.map(PathBuf::as_path)) {
            Ok(module) => module,
            Err(e) => {
                p.problem(what, format!("cannot be verified: {e}"));
                continue;
            }
        };
        match ports.keys.verify_pin(&module, u64::from(token.slot.get()), &pin) {
            Ok(()) => {
                p.hold(what, format!("from {from}, verified by one login"));
                p.pins.insert(token.id.clone(), pin);
            }
            Err(e) => p.problem(
                what,
                format!(
                    "from {from} was refused by its one login: {e}; it is not tried again (so a wrong PIN cannot lock the token) and nothing was stopped: fix the PIN's source, then run again"
                ),
            ),
        }
    }
}

/// The WK states a TKE checkpoint is to bring about: checked by the step, when it runs.
fn later(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<&Step> = None;
    for step in &plan.steps {
        let reads_wk = match &step.kind {
            StepKind::AssertWk(_) => true,
            StepKind::Checkpoint(c) => c.until.is_some(),
            _ => false,
        };
        if let (true, Some(checkpoint)) = (reads_wk, after) {
            out.push(format!(
                "will check at {} `{}`: the WK registers, after the TKE checkpoint {} `{}`",
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

/// `check` and `run` print the preflight the same way: one line per finding.
pub fn render(p: &Preflight) -> String {
    let mut out = String::new();
    for f in &p.holds {
        out.push_str(&format!("  ok          {}: {}\n", f.what, f.text));
    }
    for f in &p.problems {
        out.push_str(&format!("  PROBLEM     {}: {}\n", f.what, f.text));
    }
    for line in &p.later {
        out.push_str(&format!("  later       {line}\n"));
    }
    out
}

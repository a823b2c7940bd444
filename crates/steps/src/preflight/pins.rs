//! Every PIN a step needs: obtainable (`check`), and obtained and verified by one login
//! (`run`), so a wrong PIN is found before anything is stopped.

use std::path::PathBuf;

use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::Ports;
use mkplan_engine::ports::keys::KeyError;
use mkplan_engine::ports::operator::Operator;
use mkplan_engine::preflight::{Depth, Preflight};
use mkplan_plan::model::{PinSource, Plan, ProbeKeysStep, StepKind, Token, TokenId};

/// Every token a step logs in to (`migrate`, `probe_keys`), once, with the module a
/// `probe_keys` of it names.
fn pin_tokens(plan: &Plan) -> Vec<(&Token, Option<&PathBuf>)> {
    let mut out: Vec<(&Token, Option<&PathBuf>)> = Vec::new();
    for step in plan.all_steps() {
        let logins: Vec<(&TokenId, Option<&PathBuf>)> = match &step.kind {
            StepKind::Migrate(m) => vec![(&m.token, None)],
            StepKind::ProbeKeys(ProbeKeysStep { token, module }) => vec![(token, module.as_ref())],
            // `pkcshsm_mk_change` asks for the USER PIN of every token of the operation.
            StepKind::MkReencipher(r) => r.tokens.iter().map(|t| (t, None)).collect(),
            _ => continue,
        };
        for (id, module) in logins {
            match out.iter_mut().find(|(t, _)| t.id == *id) {
                Some(entry) => entry.1 = entry.1.or(module),
                None => out.push((&plan.tokens[id], module)),
            }
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
pub fn pins(
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
                p.problem(what, e.to_string());
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
            Err(e @ KeyError::PinRefused(_)) => p.problem(
                what,
                format!(
                    "from {from} was refused by its one login: {e}; it is not tried again (so a wrong PIN cannot lock the token) and nothing was stopped: fix the PIN's source, then run again"
                ),
            ),
            // The module or the token failed, not the PIN: saying "refused" would send the
            // operator to fix a PIN that may be right.
            Err(e) => p.problem(
                what,
                format!(
                    "from {from} could not be verified, because the token could not be used: {e}; it is not tried again and nothing was stopped: fix the PKCS#11 module or the token, then run again"
                ),
            ),
        }
    }
}

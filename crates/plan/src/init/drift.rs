//! `mkplan init --check PLAN`: where an existing plan and the host disagree now — a token
//! moved, an APQN added to the token since, a WK changed, a new service using a token.

use std::collections::BTreeSet;

use crate::Plan;
use crate::init::inventory::{ConfigFacts, CurFacts, Inventory, NewFacts, TokenKind};
use crate::model::{ServiceControl, Token};

/// One line per disagreement; empty when the plan matches the host.
pub fn drift(plan: &Plan, inventory: &Inventory) -> Vec<String> {
    let units: BTreeSet<&str> = plan
        .services
        .values()
        .filter_map(|s| match &s.control {
            ServiceControl::Systemd(list) => Some(list.iter().map(String::as_str)),
            ServiceControl::Commands { .. } => None,
        })
        .flatten()
        .collect();
    let mut found = Vec::new();
    for token in plan.tokens.values() {
        token_drift(token, inventory, &units, &mut found);
    }
    found
}

fn token_drift(
    token: &Token,
    inventory: &Inventory,
    units: &BTreeSet<&str>,
    found: &mut Vec<String>,
) {
    let id = token.id.as_str();
    let slot = token.slot.get();
    let Some(facts) = inventory.slots.iter().find(|s| s.slot == slot) else {
        found.push(format!(
            "token `{id}`: slot {slot} is not in `{}` any more",
            inventory.ock_conf.display()
        ));
        return;
    };
    let mut say = |text: String| found.push(format!("token `{id}`: {text}"));
    if facts.kind != TokenKind::Ep11 {
        say(format!(
            "slot {slot} is now a `{}` token, not EP11",
            facts.stdll
        ));
        return;
    }
    if facts.store != token.store {
        say(format!(
            "the plan's store is `{}`, opencryptoki.conf now gives `{}`",
            token.store.display(),
            facts.store.display()
        ));
    }
    if let Some(config) = token.config.as_ref().filter(|c| **c != facts.config) {
        say(format!(
            "the plan's config is `{}`, opencryptoki.conf now names `{}`",
            config.display(),
            facts.config.display()
        ));
    }
    let expected = match &facts.config_facts {
        ConfigFacts::Ep11 { expected_wkvp, .. } => *expected_wkvp,
        ConfigFacts::Missing => {
            say(format!(
                "`{}` does not exist any more",
                facts.config.display()
            ));
            None
        }
        ConfigFacts::Invalid { line, message } => {
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            say(format!("`{}{at}`: {message}", facts.config.display()));
            None
        }
        ConfigFacts::NotRead => None,
    };
    if let Some(expected) = expected
        && expected != token.wkvp_current
        && expected != token.wkvp_new
    {
        say(format!(
            "EXPECTED_WKVP in `{}` is {expected}, neither the plan's current {} nor its new {}",
            facts.config.display(),
            token.wkvp_current,
            token.wkvp_new
        ));
    }
    for apqn in &facts.apqns {
        if !token.apqns.contains(&apqn.apqn) {
            say(format!(
                "APQN {} was added to the token since (it is not in the plan)",
                apqn.apqn
            ));
        }
        if !apqn.problems.is_empty() {
            say(apqn.problems.join("; "));
        }
        match apqn.cur {
            CurFacts::Valid(w) if w == token.wkvp_current => {}
            CurFacts::Valid(w) if w == token.wkvp_new => {
                say(format!(
                    "APQN {}: the new WK {w} is already current (activated)",
                    apqn.apqn
                ));
            }
            CurFacts::Valid(w) => say(format!(
                "APQN {}: the current WK is {w}, the plan says {}",
                apqn.apqn, token.wkvp_current
            )),
            CurFacts::Invalid | CurFacts::Unknown => {
                say(format!("APQN {}: no valid current WK", apqn.apqn));
            }
        }
        if let NewFacts::Committed(w) | NewFacts::Uncommitted(w) = apqn.new
            && w != token.wkvp_new
        {
            say(format!(
                "APQN {}: the NEW register holds {w}, the plan's new WK is {}",
                apqn.apqn, token.wkvp_new
            ));
        }
    }
    for apqn in token
        .apqns
        .iter()
        .filter(|a| !facts.apqns.iter().any(|f| f.apqn == **a))
    {
        say(format!(
            "APQN {apqn} is in the plan but the token no longer uses it"
        ));
    }
    for user in &facts.users {
        match &user.unit {
            Some(unit) if units.contains(unit.as_str()) => {}
            Some(unit) => say(format!(
                "unit `{unit}` (pid {}) maps the token and is in no service group of the plan",
                user.pid
            )),
            None => say(format!(
                "pid {} ({}) maps the token outside any unit",
                user.pid,
                user.command.chars().take(100).collect::<String>()
            )),
        }
    }
}

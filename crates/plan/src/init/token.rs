//! One token's APQNs and wrapping keys, judged: the current WK every APQN agrees on (or a
//! refusal listing each), and the new WK when every APQN has the same one loaded (or a
//! placeholder that says why not).

use std::collections::BTreeSet;

use crate::init::draft::{DraftToken, NewWkvp, token_id};
use crate::init::inventory::{ApqnFacts, ConfigFacts, CurFacts, NewFacts, SlotFacts};
use crate::model::Wkvp;

/// One token's APQNs and WKVPs, or why they cannot be trusted.
pub(crate) fn judge_token(facts: &SlotFacts) -> Result<DraftToken<'_>, Vec<String>> {
    let id = token_id(facts);
    let (any, expected_wkvp) = match &facts.config_facts {
        ConfigFacts::Ep11 {
            apqns,
            expected_wkvp,
        } => (
            matches!(apqns, crate::init::inventory::ApqnList::Any),
            *expected_wkvp,
        ),
        ConfigFacts::Missing => {
            return Err(vec![format!(
                "token `{id}` (slot {}): its configuration `{}` does not exist, so the token cannot start; create it or fix `confname`",
                facts.slot,
                facts.config.display()
            )]);
        }
        ConfigFacts::Invalid { line, message } => {
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            return Err(vec![format!(
                "token `{id}` (slot {}): `{}{at}`: {message}; the token would not start with it",
                facts.slot,
                facts.config.display()
            )]);
        }
        ConfigFacts::NotRead => unreachable!("only EP11 slots are judged"),
    };
    let mut refusals: Vec<String> = Vec::new();
    if facts.store_bytes.is_none() {
        refusals.push(format!(
            "token `{id}` (slot {}): its store `{}` does not exist or cannot be read (is the token initialised, and is `tokname` right?)",
            facts.slot,
            facts.store.display()
        ));
    }
    if facts.apqns.is_empty() {
        refusals.push(format!(
            "token `{id}` (slot {}): `{}` has APQN_ANY and sysfs shows no EP11 APQN; list the token's APQNs in an APQN_ALLOWLIST",
            facts.slot,
            facts.config.display()
        ));
    }
    for apqn in facts.apqns.iter().filter(|a| !a.problems.is_empty()) {
        refusals.push(format!(
            "token `{id}`: {}; the token cannot use it, and a plan for it cannot be checked",
            apqn.problems.join("; ")
        ));
    }
    let current = agreed_current(&id, &facts.apqns, &mut refusals);
    if let (Some(current), Some(expected)) = (current, expected_wkvp)
        && current != expected
    {
        refusals.push(format!(
            "token `{id}`: `{}` has EXPECTED_WKVP {expected}, but every APQN holds {current} as its current WK: the token does not start like this (opencryptoki-ep11.md 1.6); find out which is right before planning a change",
            facts.config.display()
        ));
    }
    match current {
        Some(current) if refusals.is_empty() => Ok(DraftToken {
            id,
            facts,
            apqns: facts.apqns.iter().map(|a| a.apqn).collect(),
            any,
            current,
            new: new_wkvp(&facts.apqns, current),
            expected_wkvp,
        }),
        _ => Err(refusals),
    }
}

/// The current WK every APQN holds, or a refusal that lists each APQN's.
fn agreed_current(id: &str, apqns: &[ApqnFacts], refusals: &mut Vec<String>) -> Option<Wkvp> {
    let first = apqns.first()?.cur;
    if let CurFacts::Valid(wkvp) = first
        && apqns.iter().all(|a| a.cur == first)
    {
        return Some(wkvp);
    }
    let seen: BTreeSet<String> = apqns.iter().map(|a| cur_text(a.cur)).collect();
    let each: Vec<String> = apqns
        .iter()
        .map(|a| format!("{} {}", a.apqn.lszcrypt(), cur_text(a.cur)))
        .collect();
    let why = if seen.len() > 1 {
        "the APQNs of the token disagree on the current WK"
    } else {
        "the token's APQNs have no valid current WK"
    };
    refusals.push(format!(
        "token `{id}`: {why} ({}); openCryptoki 3.19+ does not start such a token, and a plan cannot name one current WKVP — finish or undo the TKE work first",
        each.join(", ")
    ));
    None
}

fn cur_text(cur: CurFacts) -> String {
    match cur {
        CurFacts::Valid(w) => format!("CUR valid {w}"),
        CurFacts::Invalid => "CUR invalid".to_owned(),
        CurFacts::Unknown => "CUR unknown (- -)".to_owned(),
    }
}

/// The new WK when every APQN has the same one loaded; otherwise why a person must say.
fn new_wkvp(apqns: &[ApqnFacts], current: Wkvp) -> NewWkvp {
    let states: BTreeSet<String> = apqns.iter().map(|a| new_text(a.new)).collect();
    let each = || {
        apqns
            .iter()
            .map(|a| format!("{} {}", a.apqn.lszcrypt(), new_text(a.new)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first = apqns.first().map(|a| a.new);
    let known = match first {
        Some(NewFacts::Committed(w)) => Some((w, true)),
        Some(NewFacts::Uncommitted(w)) => Some((w, false)),
        _ => None,
    };
    match known {
        Some((wkvp, committed)) if states.len() == 1 && wkvp != current => {
            NewWkvp::Known { wkvp, committed }
        }
        Some((wkvp, _)) if states.len() == 1 => NewWkvp::Placeholder(format!(
            "the NEW register holds the current WK {wkvp} on every APQN; ask the TKE officer which WK is new"
        )),
        _ if states.len() == 1 && first == Some(NewFacts::Empty) => NewWkvp::Placeholder(
            "no new WK is loaded yet (WK NEW empty on every APQN); the TKE officer gives its WKVP"
                .to_owned(),
        ),
        _ => NewWkvp::Placeholder(format!(
            "the APQNs disagree on the NEW register ({}); ask the TKE officer which WK is new, and reload it everywhere",
            each()
        )),
    }
}

fn new_text(new: NewFacts) -> String {
    match new {
        NewFacts::Empty => "NEW empty".to_owned(),
        NewFacts::Uncommitted(w) => format!("NEW uncommitted {w}"),
        NewFacts::Committed(w) => format!("NEW committed {w}"),
        NewFacts::Unknown => "NEW unknown (- -)".to_owned(),
    }
}

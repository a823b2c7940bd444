//! From an inventory to what a plan will say: the tokens chosen, their APQNs and WKVPs, the
//! services, the backup directory and the procedure — or every reason the host gives none.
//! Where the host disagrees with itself, this refuses or says so; it never picks a side.

use crate::init::backup::{BackupChoice, choose_backup};
use crate::init::inventory::{Inventory, SlotFacts, TokenKind, UserFacts};
use crate::init::procedure::{CONCURRENT_SINCE, suggest, tool_refusal_or_note};
use crate::init::token::judge_token;
use crate::model::{Apqn, Wkvp};

/// What the operator asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub procedure: Option<Procedure>,
    /// `--token NAME`: a `tokname`, a store directory name or the id the plan would use.
    pub tokens: Vec<String>,
    pub slots: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Procedure {
    Offline,
    Concurrent,
}

/// Why no plan is written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The command line asks for what this host or this mkplan cannot give.
    #[error("{0}")]
    Usage(String),
    /// The host disagrees with itself or cannot be changed safely as it is: one line each.
    #[error("{}", .0.join("\n"))]
    Host(Vec<String>),
}

/// A plan's content, decided.
#[derive(Debug)]
pub struct Draft<'i> {
    /// The procedure the plan carries out: `--procedure`, else offline.
    pub procedure: Procedure,
    pub tokens: Vec<DraftToken<'i>>,
    /// systemd units that map a chosen token, in the order found.
    pub units: Vec<String>,
    /// Processes that map a chosen token outside any service unit, with the token's id.
    pub strays: Vec<(&'i UserFacts, String)>,
    pub backup: BackupChoice,
    pub suggestion: Suggestion,
    /// One line per slot not in the plan, and why.
    pub other_slots: Vec<String>,
    /// Header notes a reviewer should read (tool versions, …).
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct DraftToken<'i> {
    pub id: String,
    pub facts: &'i SlotFacts,
    pub apqns: Vec<Apqn>,
    /// `APQN_ANY`: the APQNs are every EP11 APQN found, not a list in the file.
    pub any: bool,
    pub current: Wkvp,
    pub new: NewWkvp,
    pub expected_wkvp: Option<Wkvp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewWkvp {
    /// The same WK is loaded on every APQN (committed or not).
    Known { wkvp: Wkvp, committed: bool },
    /// A person must fill it in; why.
    Placeholder(String),
}

#[derive(Debug, Clone)]
pub struct Suggestion {
    pub procedure: Procedure,
    pub why: String,
}

/// Decides the plan's content, or says every reason it cannot (all at once).
pub fn draft<'i>(inventory: &'i Inventory, choice: &Choice) -> Result<Draft<'i>, InitError> {
    let chosen = select(inventory, choice)?;
    let suggestion = suggest(&inventory.release);
    let procedure = choice.procedure.unwrap_or(Procedure::Offline);
    let mut refusals = Vec::new();
    if procedure == Procedure::Concurrent && suggestion.procedure != Procedure::Concurrent {
        refusals.push(format!(
            "the concurrent procedure needs `pkcshsm_mk_change` of openCryptoki {CONCURRENT_SINCE} or newer with event support, and here {}; use `--procedure offline` (applications are stopped during the migration)",
            suggestion.why
        ));
    }
    let mut tokens = Vec::new();
    for facts in &chosen {
        match judge_token(facts) {
            Ok(token) => tokens.push(token),
            Err(mut reasons) => refusals.append(&mut reasons),
        }
    }
    refusals.extend(shared_apqns(inventory, &chosen));
    let mut notes = Vec::new();
    // The concurrent procedure neither runs `pkcsep11_migrate` nor takes a backup.
    let offline = procedure == Procedure::Offline;
    if offline {
        match tool_refusal_or_note(&inventory.release) {
            Ok(Some(note)) => notes.push(note),
            Ok(None) => {}
            Err(refusal) => refusals.push(refusal),
        }
    }
    let backup = match offline {
        true => choose_backup(&inventory.backups, &chosen),
        false => BackupChoice::default(),
    };
    if let Some(given) = inventory.backups.iter().find(|b| b.given)
        && backup.dir.is_none()
        && offline
    {
        refusals.push(format!(
            "--backup-dir `{}` cannot take the backup: {}",
            given.dir.display(),
            backup.rejected.join("; ")
        ));
    }
    if !refusals.is_empty() {
        return Err(InitError::Host(refusals));
    }
    if inventory.unreadable > 0 {
        notes.push(format!(
            "{} of {} processes could not be read in /proc (gone while scanned, or not permitted: run as root); a token user may be missing below",
            inventory.unreadable, inventory.scanned
        ));
    }
    let (units, strays) = services(&tokens);
    let other_slots = inventory
        .slots
        .iter()
        .filter(|s| !chosen.iter().any(|c| c.slot == s.slot))
        .map(describe_other)
        .collect();
    Ok(Draft {
        procedure,
        tokens,
        units,
        strays,
        backup,
        suggestion,
        other_slots,
        notes,
    })
}

/// A chosen token's APQN that another EP11 token uses too: both tokens' keys are wrapped by
/// that domain's WK, so activating the new WK strands the other token's keys unless it is
/// migrated in the same change — which one plan cannot do (rule `distinct-tokens`).
fn shared_apqns(inventory: &Inventory, chosen: &[&SlotFacts]) -> Vec<String> {
    let mut refusals = Vec::new();
    for (i, token) in chosen.iter().enumerate() {
        let others = inventory
            .slots
            .iter()
            .filter(|o| o.kind == TokenKind::Ep11 && o.slot != token.slot)
            // A pair of chosen tokens is said once.
            .filter(|o| !chosen[..i].iter().any(|c| c.slot == o.slot));
        for other in others {
            let shared: Vec<String> = token
                .apqns
                .iter()
                .filter(|a| other.apqns.iter().any(|b| b.apqn == a.apqn))
                .map(|a| a.apqn.lszcrypt())
                .collect();
            if !shared.is_empty() {
                refusals.push(format!(
                    "tokens `{}` (slot {}) and `{}` (slot {}) both use APQN {}: a new WK activated there makes the keys of both unusable unless both are migrated in one change, and one plan cannot migrate two tokens on one APQN yet (rule distinct-tokens); give each token its own domain first",
                    token_id(token),
                    token.slot,
                    token_id(other),
                    other.slot,
                    shared.join(", ")
                ));
            }
        }
    }
    refusals
}

/// The id a token gets in the plan: its directory name, made a valid plan name.
pub fn token_id(facts: &SlotFacts) -> String {
    let name = facts
        .store
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(62)
        .collect();
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id.insert(0, 't');
    }
    id
}

fn names(facts: &SlotFacts) -> String {
    format!("slot {} ({}, {})", facts.slot, token_id(facts), facts.stdll)
}

fn select<'i>(inventory: &'i Inventory, choice: &Choice) -> Result<Vec<&'i SlotFacts>, InitError> {
    let hsm: Vec<&SlotFacts> = inventory
        .slots
        .iter()
        .filter(|s| s.kind != TokenKind::Other)
        .collect();
    let listed = || {
        let all: Vec<String> = inventory.slots.iter().map(names).collect();
        if all.is_empty() {
            "it defines no slot".to_owned()
        } else {
            format!("it defines {}", all.join(", "))
        }
    };
    if choice.tokens.is_empty() && choice.slots.is_empty() {
        let ep11: Vec<&SlotFacts> = hsm
            .iter()
            .copied()
            .filter(|s| s.kind == TokenKind::Ep11)
            .collect();
        return match ep11.len() {
            1 => Ok(ep11),
            0 => Err(InitError::Host(vec![format!(
                "`{}` has no EP11 token ({}){}",
                inventory.ock_conf.display(),
                listed(),
                cca_note(&hsm)
            )])),
            _ => Err(InitError::Usage(format!(
                "{} EP11 tokens are configured: {}; say which with --token NAME or --slot N (repeat either for a plan that changes several)",
                ep11.len(),
                ep11.iter().map(|s| names(s)).collect::<Vec<_>>().join(", ")
            ))),
        };
    }
    let mut chosen: Vec<&SlotFacts> = Vec::new();
    let mut problems = Vec::new();
    let wanted = choice
        .slots
        .iter()
        .map(|n| {
            (
                format!("--slot {n}"),
                inventory.slots.iter().find(|s| s.slot == *n),
            )
        })
        .chain(choice.tokens.iter().map(|name| {
            let found = inventory.slots.iter().find(|s| {
                s.tokname.as_deref() == Some(name.as_str())
                    || token_id(s) == *name
                    || s.store.file_name().is_some_and(|f| f == name.as_str())
            });
            (format!("--token {name}"), found)
        }));
    for (asked, found) in wanted {
        match found {
            None => problems.push(format!(
                "{asked}: no such token in `{}` ({})",
                inventory.ock_conf.display(),
                listed()
            )),
            Some(s) if s.kind == TokenKind::Cca => problems.push(format!(
                "{asked}: {} is a CCA token; `mkplan init` does not write CCA plans yet (mkplan runs them: start from plans/cca-offline.yaml)",
                names(s)
            )),
            Some(s) if s.kind == TokenKind::Other => problems.push(format!(
                "{asked}: {} is not an HSM token: it has no master key to change",
                names(s)
            )),
            Some(s) if !chosen.iter().any(|c| c.slot == s.slot) => chosen.push(s),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(chosen)
    } else {
        Err(InitError::Usage(problems.join("\n")))
    }
}

fn cca_note(hsm: &[&SlotFacts]) -> String {
    let cca: Vec<String> = hsm
        .iter()
        .filter(|s| s.kind == TokenKind::Cca)
        .map(|s| s.slot.to_string())
        .collect();
    if cca.is_empty() {
        String::new()
    } else {
        format!(
            "; a CCA token was found in slot {}, and `mkplan init` does not write CCA plans yet (start from plans/cca-offline.yaml)",
            cca.join(", ")
        )
    }
}

fn describe_other(facts: &SlotFacts) -> String {
    let why = match facts.kind {
        TokenKind::Ep11 => "EP11, not chosen (--token/--slot)",
        TokenKind::Cca => "CCA token found; `mkplan init` does not write CCA plans yet",
        TokenKind::Other => "no HSM master key",
    };
    format!("slot {}: {} — {why}", facts.slot, facts.stdll)
}

/// Units that map a chosen token (in the order found) and processes outside any unit.
fn services<'i>(tokens: &[DraftToken<'i>]) -> (Vec<String>, Vec<(&'i UserFacts, String)>) {
    let mut units: Vec<String> = Vec::new();
    let mut strays: Vec<(&UserFacts, String)> = Vec::new();
    for token in tokens {
        for user in &token.facts.users {
            match &user.unit {
                Some(unit) if !units.contains(unit) => units.push(unit.clone()),
                Some(_) => {}
                None => match strays.iter_mut().find(|(u, _)| u.pid == user.pid) {
                    Some((_, ids)) => {
                        ids.push_str(", ");
                        ids.push_str(&token.id);
                    }
                    None => strays.push((user, token.id.clone())),
                },
            }
        }
    }
    (units, strays)
}

//! From an inventory to what a plan will say: the tokens chosen, their APQNs and WKVPs, the
//! services, the backup directory and the procedure — or every reason the host gives none.
//! Where the host disagrees with itself, this refuses or says so; it never picks a side.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::plan::init::inventory::{
    ApqnFacts, BackupFacts, ConfigFacts, CurFacts, Inventory, NewFacts, ReleaseFacts, SlotFacts,
    TokenKind, UserFacts, Version,
};
use crate::plan::model::{Apqn, Wkvp};

/// The first release with `pkcshsm_mk_change` (opencryptoki-ep11.md 0, 2).
pub const CONCURRENT_SINCE: Version = Version {
    major: 3,
    minor: 21,
    patch: 0,
};
/// `pkcsep11_migrate` before 3.12.1 cannot work (opencryptoki-ep11.md 0, PR #263).
pub const MIGRATE_USABLE_SINCE: Version = Version {
    major: 3,
    minor: 12,
    patch: 1,
};

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
pub struct BackupChoice {
    pub dir: Option<PathBuf>,
    /// Said beside the chosen directory (same file system as a store, …).
    pub warnings: Vec<String>,
    /// Directories looked at and not chosen, and why.
    pub rejected: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Suggestion {
    pub procedure: Procedure,
    pub why: String,
}

/// Decides the plan's content, or says every reason it cannot (all at once).
pub fn draft<'i>(inventory: &'i Inventory, choice: &Choice) -> Result<Draft<'i>, InitError> {
    if choice.procedure == Some(Procedure::Concurrent) {
        return Err(InitError::Usage(
            "the concurrent procedure (`pkcshsm_mk_change`) is not implemented in mkplan's executor yet, so `mkplan init` writes no plan for it; use `--procedure offline` (applications are stopped during the migration)".to_owned(),
        ));
    }
    let chosen = select(inventory, choice)?;
    let suggestion = suggest(&inventory.release);
    let mut refusals = Vec::new();
    let mut tokens = Vec::new();
    for facts in &chosen {
        match judge_token(facts) {
            Ok(token) => tokens.push(token),
            Err(mut reasons) => refusals.append(&mut reasons),
        }
    }
    let mut notes = Vec::new();
    match tool_refusal_or_note(&inventory.release) {
        Ok(Some(note)) => notes.push(note),
        Ok(None) => {}
        Err(refusal) => refusals.push(refusal),
    }
    let backup = choose_backup(&inventory.backups, &chosen);
    if let Some(given) = inventory.backups.iter().find(|b| b.given)
        && backup.dir.is_none()
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
        tokens,
        units,
        strays,
        backup,
        suggestion,
        other_slots,
        notes,
    })
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
                "{asked}: {} is a CCA token; CCA plans are not supported yet (mkplan changes EP11 wrapping keys only)",
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
            "; a CCA token was found in slot {}, and CCA plans are not supported yet",
            cca.join(", ")
        )
    }
}

fn describe_other(facts: &SlotFacts) -> String {
    let why = match facts.kind {
        TokenKind::Ep11 => "EP11, not chosen (--token/--slot)",
        TokenKind::Cca => "CCA token found; CCA plans are not supported yet",
        TokenKind::Other => "no HSM master key",
    };
    format!("slot {}: {} — {why}", facts.slot, facts.stdll)
}

/// One token's APQNs and WKVPs, or why they cannot be trusted.
fn judge_token(facts: &SlotFacts) -> Result<DraftToken<'_>, Vec<String>> {
    let id = token_id(facts);
    let (any, expected_wkvp) = match &facts.config_facts {
        ConfigFacts::Ep11 {
            apqns,
            expected_wkvp,
        } => (
            matches!(apqns, crate::plan::init::inventory::ApqnList::Any),
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

/// Which procedure the installed release suggests, and why.
pub fn suggest(release: &ReleaseFacts) -> Suggestion {
    let version = release.version.map(|v| {
        let from = release
            .source
            .as_ref()
            .map(|s| format!(" (read from {})", s.display()))
            .unwrap_or_default();
        format!("openCryptoki {v}{from}")
    });
    let (procedure, why) = match (&release.mk_change_tool, release.version, version) {
        (Some(tool), Some(v), Some(text)) if v >= CONCURRENT_SINCE => (
            Procedure::Concurrent,
            format!(
                "{text} has `{}`: the concurrent procedure re-enciphers while applications run",
                tool.display()
            ),
        ),
        (Some(tool), Some(_), Some(text)) => (
            Procedure::Offline,
            format!(
                "`{}` is installed, but {text} is older than {CONCURRENT_SINCE}",
                tool.display()
            ),
        ),
        (Some(tool), _, _) => (
            Procedure::Offline,
            format!(
                "`{}` is installed, but the openCryptoki release could not be read (looked at {}), so it cannot be shown to be {CONCURRENT_SINCE} or newer",
                tool.display(),
                looked_at(release)
            ),
        ),
        (None, _, Some(text)) => (
            Procedure::Offline,
            format!("{text} has no `pkcshsm_mk_change`"),
        ),
        (None, _, None) => (
            Procedure::Offline,
            format!(
                "no `pkcshsm_mk_change` is installed and the openCryptoki release could not be read (looked at {})",
                looked_at(release)
            ),
        ),
    };
    Suggestion { procedure, why }
}

fn looked_at(release: &ReleaseFacts) -> String {
    let all: Vec<String> = release
        .looked_at
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if all.is_empty() {
        "nothing".to_owned()
    } else {
        all.join(", ")
    }
}

/// A release whose `pkcsep11_migrate` cannot work is refused; a missing tool is a note
/// (the migrate step's preflight refuses it by path).
fn tool_refusal_or_note(release: &ReleaseFacts) -> Result<Option<String>, String> {
    if let Some(v) = release.version
        && v < MIGRATE_USABLE_SINCE
    {
        return Err(format!(
            "openCryptoki {v} is installed: its `pkcsep11_migrate` is broken before {MIGRATE_USABLE_SINCE} (it cannot re-encipher the keys; opencryptoki-ep11.md 0); upgrade openCryptoki first"
        ));
    }
    Ok(release.migrate_tool.is_none().then(|| {
        "`pkcsep11_migrate` was not found in /usr/sbin or /usr/bin: install it before the change (the migrate step's preflight refuses without it)".to_owned()
    }))
}

/// The backup directory: on another file system than every chosen store when one is
/// writable and has room, else on the same one (said), else none (a placeholder).
fn choose_backup(candidates: &[BackupFacts], tokens: &[&SlotFacts]) -> BackupChoice {
    let need: u64 = tokens.iter().filter_map(|t| t.store_bytes).sum();
    let stores: BTreeSet<u64> = tokens.iter().filter_map(|t| t.store_fs).collect();
    let given = candidates.iter().any(|c| c.given);
    let mut rejected = Vec::new();
    let mut usable: Vec<&BackupFacts> = Vec::new();
    for candidate in candidates.iter().filter(|c| c.given == given) {
        let shown = candidate.dir.display();
        if let Some(why) = &candidate.not_writable {
            rejected.push(format!("`{shown}` is not writable: {why}"));
        } else if let Some(free) = candidate.free_bytes.filter(|free| *free < need) {
            rejected.push(format!(
                "`{shown}` has {} free, the store{} {} ({})",
                bytes(free),
                if tokens.len() == 1 {
                    " holds"
                } else {
                    "s hold"
                },
                bytes(need),
                candidate.existing.display()
            ));
        } else {
            usable.push(candidate);
        }
    }
    let elsewhere = usable
        .iter()
        .find(|c| c.fs.is_some_and(|fs| !stores.contains(&fs)));
    let (chosen, warnings) = match (elsewhere, usable.first()) {
        (Some(c), _) => (Some(*c), Vec::new()),
        (None, Some(c)) => (
            Some(*c),
            vec![format!(
                "`{}` is on the same file system as the token store: a failing disk takes both; prefer a directory on another file system (--backup-dir)",
                c.dir.display()
            )],
        ),
        (None, None) => (None, Vec::new()),
    };
    BackupChoice {
        dir: chosen.map(|c| c.dir.clone()),
        warnings,
        rejected,
    }
}

/// `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

//! The plan's header: what was read from where and when, the procedure and why, what a
//! person must fill in, and notes for the reviewer.

use crate::init::backup::bytes;
use crate::init::draft::{Draft, DraftToken, NewWkvp, Procedure};
use crate::init::inventory::{ApqnFacts, ApqnList, ConfigFacts, CurFacts, Inventory, NewFacts};
use crate::init::write::{ChangeRecord, FILL_IN, blank_comment, note};

pub(super) fn header(
    out: &mut String,
    inventory: &Inventory,
    draft: &Draft<'_>,
    change: &ChangeRecord,
) {
    out.push_str("# yaml-language-server: $schema=plan.schema.json\n");
    blank_comment(out);
    note(
        out,
        0,
        &format!(
            "Written by `mkplan init` (mkplan {}) at {} from host {} (root {}). Every value below was read from that host: review it, fill in what says {FILL_IN}, then `mkplan validate` this file (`mkplan schema > plan.schema.json` writes the schema the first line names). `mkplan init --check` on this file later shows where the host has changed since.",
            env!("CARGO_PKG_VERSION"),
            inventory.read_at,
            inventory
                .host_name
                .as_deref()
                .unwrap_or("(no /etc/hostname)"),
            inventory.root.display()
        ),
    );
    blank_comment(out);
    note(out, 0, "Read:");
    let chosen: Vec<String> = draft
        .tokens
        .iter()
        .map(|t| format!("slot {} {} ({})", t.facts.slot, t.facts.stdll, t.id))
        .collect();
    note(
        out,
        1,
        &format!("{}: {}", inventory.ock_conf.display(), chosen.join(", ")),
    );
    for other in &draft.other_slots {
        note(out, 2, other);
    }
    for token in &draft.tokens {
        read_lines(out, token);
    }
    let users: usize = draft.tokens.iter().map(|t| t.facts.users.len()).sum();
    note(
        out,
        1,
        &format!(
            "/proc/*/maps, /proc/*/cgroup: {} processes looked at, {users} map a token in this plan{}",
            inventory.scanned,
            if inventory.unreadable > 0 {
                format!(", {} unreadable", inventory.unreadable)
            } else {
                String::new()
            }
        ),
    );
    let release = &inventory.release;
    note(
        out,
        1,
        &format!(
            "openCryptoki release: {}; pkcshsm_mk_change: {}; pkcsep11_migrate: {}",
            match (&release.version, &release.source) {
                (Some(v), Some(src)) => format!("{v} ({})", src.display()),
                _ => "unknown".to_owned(),
            },
            release
                .mk_change_tool
                .as_ref()
                .map_or("not installed".to_owned(), |p| p.display().to_string()),
            release
                .migrate_tool
                .as_ref()
                .map_or("not installed".to_owned(), |p| p.display().to_string()),
        ),
    );
    blank_comment(out);
    procedure(out, draft);
    fill_ins(out, draft, change);
    if !draft.notes.is_empty() || !draft.backup.warnings.is_empty() {
        blank_comment(out);
        note(out, 0, "Notes:");
        for text in draft.notes.iter().chain(&draft.backup.warnings) {
            note(out, 1, &format!("- {text}"));
        }
    }
}

fn read_lines(out: &mut String, token: &DraftToken<'_>) {
    let facts = token.facts;
    if let ConfigFacts::Ep11 {
        apqns,
        expected_wkvp,
    } = &facts.config_facts
    {
        let mode = match apqns {
            ApqnList::Allowlist(list) => format!(
                "APQN_ALLOWLIST {}",
                list.iter()
                    .map(|a| a.lszcrypt())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            ApqnList::Any => "APQN_ANY (every online EP11 APQN)".to_owned(),
        };
        let expected = expected_wkvp.map_or("no EXPECTED_WKVP".to_owned(), |w| {
            format!("EXPECTED_WKVP {w}")
        });
        note(
            out,
            1,
            &format!("{}: {mode}; {expected}", facts.config.display()),
        );
    }
    for apqn in &facts.apqns {
        note(
            out,
            1,
            &format!(
                "/sys/bus/ap/devices/{}/: {}",
                apqn.apqn.lszcrypt(),
                apqn_state(apqn)
            ),
        );
    }
    note(
        out,
        1,
        &format!(
            "{}: {}",
            facts.store.display(),
            facts.store_bytes.map_or("size unknown".to_owned(), bytes)
        ),
    );
    for text in &facts.notes {
        note(out, 2, text);
    }
}

fn apqn_state(apqn: &ApqnFacts) -> String {
    let cur = match apqn.cur {
        CurFacts::Valid(w) => format!("WK CUR valid {w}"),
        CurFacts::Invalid => "WK CUR invalid".to_owned(),
        CurFacts::Unknown => "WK CUR - -".to_owned(),
    };
    let new = match apqn.new {
        NewFacts::Empty => "WK NEW empty".to_owned(),
        NewFacts::Uncommitted(w) => format!("WK NEW uncommitted {w}"),
        NewFacts::Committed(w) => format!("WK NEW committed {w}"),
        NewFacts::Unknown => "WK NEW - -".to_owned(),
    };
    format!("online, EP11, {cur}, {new}")
}

fn procedure(out: &mut String, draft: &Draft<'_>) {
    let suggestion = &draft.suggestion;
    let (this, agrees) = match draft.procedure {
        Procedure::Offline => (
            "Procedure: offline — IBM's \"Migrating master keys with the pkcsep11_migrate tool\": the applications are stopped while the keys are re-enciphered.",
            suggestion.procedure == Procedure::Offline,
        ),
        Procedure::Concurrent => (
            "Procedure: concurrent — man pkcshsm_mk_change, \"Procedure\": the applications keep running; every key gets a second blob under the new WK, and the run parks until the TKE activates it.",
            true,
        ),
    };
    note(out, 0, this);
    let said = if agrees {
        format!("The release suggests it too: {}.", suggestion.why)
    } else {
        format!(
            "The release suggests the concurrent procedure: {}. This plan is the offline one; `mkplan init --procedure concurrent` writes the concurrent one.",
            suggestion.why
        )
    };
    note(out, 1, &said);
}

fn fill_ins(out: &mut String, draft: &Draft<'_>, change: &ChangeRecord) {
    let mut items = Vec::new();
    for token in &draft.tokens {
        if let NewWkvp::Placeholder(why) = &token.new {
            items.push(format!("tokens.{}.wkvp.new: {why}", token.id));
        }
    }
    if draft.units.is_empty() {
        items.push(
            "services.apps.systemd: no process maps the tokens now; name the units that use them"
                .to_owned(),
        );
    }
    if draft.backup.dir.is_none() && draft.procedure == Procedure::Offline {
        items.push(format!(
            "backups.local.dir: no writable directory with room was found ({})",
            draft.backup.rejected.join("; ")
        ));
    }
    if change.ticket.is_none() {
        items.push("change.ticket: the change ticket (`mkplan init --ticket`); `UNSET` reaches the report as is".to_owned());
    }
    if items.is_empty() {
        return;
    }
    blank_comment(out);
    note(out, 0, &format!("{FILL_IN}:"));
    for item in items {
        note(out, 1, &format!("- {item}"));
    }
}

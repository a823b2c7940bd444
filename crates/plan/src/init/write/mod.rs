//! A decided [`Draft`] as plan YAML a reviewer only has to read: the schema modeline, a
//! header saying what was read from where and when, every step commented with the step of
//! IBM's procedure it implements, and placeholders that cannot validate where a person must
//! fill something in.

use std::fmt::Write as _;

use crate::init::draft::{Draft, NewWkvp, Procedure};
use crate::init::inventory::Inventory;

mod concurrent;
mod header;
mod steps;

/// Said where a value must be filled in; never a valid value, so `validate` stops there.
pub const FILL_IN: &str = "FILL IN";

/// What the operator gave for the change record.
#[derive(Debug, Clone, Default)]
pub struct ChangeRecord {
    pub ticket: Option<String>,
    pub summary: Option<String>,
    pub approvers: Vec<String>,
}

/// The plan text.
pub fn render(inventory: &Inventory, draft: &Draft<'_>, change: &ChangeRecord) -> String {
    let mut out = String::new();
    header::header(&mut out, inventory, draft, change);
    top(&mut out, inventory, draft, change);
    tokens(&mut out, draft);
    services(&mut out, draft);
    match draft.procedure {
        Procedure::Offline => {
            backups(&mut out, draft);
            steps::steps(&mut out, draft, change);
            tail(&mut out, draft);
        }
        Procedure::Concurrent => {
            concurrent::steps(&mut out, draft, change);
            concurrent::rescue(&mut out, draft);
        }
    }
    report(&mut out);
    out
}

/// A JSON string, which is a YAML 1.2 double-quoted scalar: safe for any text.
pub(super) fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// Comment lines at `indent`, wrapped near 96 columns; control characters dropped.
pub(super) fn comment(out: &mut String, indent: usize, text: &str) {
    wrapped(out, &" ".repeat(indent), "", text);
}

/// A header line: `#` in the first column, the text nested `level` steps.
pub(super) fn note(out: &mut String, level: usize, text: &str) {
    wrapped(out, "", &"  ".repeat(level), text);
}

fn wrapped(out: &mut String, pad: &str, nest: &str, text: &str) {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let width = 96usize.saturating_sub(pad.len() + 2 + nest.len());
    let mut line = String::new();
    let mut first = true;
    for word in clean.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{pad}# {nest}{}{line}", if first { "" } else { "  " });
            line.clear();
            first = false;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(out, "{pad}# {nest}{}{line}", if first { "" } else { "  " });
}

pub(super) fn blank_comment(out: &mut String) {
    out.push_str("#\n");
}

fn top(out: &mut String, inventory: &Inventory, draft: &Draft<'_>, change: &ChangeRecord) {
    let ids: Vec<&str> = draft.tokens.iter().map(|t| t.id.as_str()).collect();
    let host = inventory.host_name.as_deref().unwrap_or("this host");
    let _ = writeln!(out, "\nmkplan: 1");
    let _ = writeln!(
        out,
        "name: {}",
        quoted(&format!(
            "EP11 wrapping-key change of token {} on {host}",
            ids.join(" and ")
        ))
    );
    out.push_str("change:\n");
    if change.ticket.is_none() {
        comment(
            out,
            2,
            &format!("{FILL_IN}: the change ticket this plan carries out."),
        );
    }
    let _ = writeln!(
        out,
        "  ticket: {}",
        quoted(change.ticket.as_deref().unwrap_or("UNSET"))
    );
    let summary = change.summary.clone().unwrap_or_else(|| {
        format!(
            "EP11 wrapping-key change of token {} on {host}",
            ids.join(" and ")
        )
    });
    let _ = writeln!(out, "  summary: {}", quoted(&summary));
    if change.approvers.is_empty() {
        comment(
            out,
            2,
            "Who may approve the checkpoints (--approver); with none named, any name is accepted:",
        );
        comment(out, 2, "approvers: [alice, bob]");
    } else {
        let names: Vec<String> = change.approvers.iter().map(|a| quoted(a)).collect();
        let _ = writeln!(out, "  approvers: [{}]", names.join(", "));
    }
    out.push('\n');
}

fn tokens(out: &mut String, draft: &Draft<'_>) {
    out.push_str("tokens:\n");
    for token in &draft.tokens {
        let facts = token.facts;
        let _ = writeln!(out, "  {}:", token.id);
        comment(
            out,
            4,
            &format!(
                "opencryptoki.conf line {}: slot {}, {}",
                facts.line, facts.slot, facts.stdll
            ),
        );
        let _ = writeln!(out, "    slot: {}", facts.slot);
        let _ = writeln!(out, "    store: {}", quoted(&facts.store.to_string_lossy()));
        let _ = writeln!(
            out,
            "    config: {}",
            quoted(&facts.config.to_string_lossy())
        );
        let source = if token.any {
            "every EP11 APQN sysfs shows (the token has APQN_ANY)"
        } else {
            "APQN_ALLOWLIST of the config"
        };
        comment(
            out,
            4,
            &format!(
                "{source}, lszcrypt notation (card.domain, hex): all online, all with the same current WK"
            ),
        );
        let apqns: Vec<String> = token.apqns.iter().map(|a| quoted(&a.lszcrypt())).collect();
        let _ = writeln!(out, "    apqns: [{}]", apqns.join(", "));
        comment(
            out,
            4,
            "asked at the terminal; or { env: NAME }, or { file: PATH } (mode 0600)",
        );
        out.push_str("    pin: { prompt: true }\n");
        out.push_str("    wkvp:\n");
        let expected = if token.expected_wkvp.is_some() {
            " and EXPECTED_WKVP"
        } else {
            ""
        };
        comment(out, 6, &format!("WK CUR on every APQN{expected}"));
        let _ = writeln!(out, "      current: {}", quoted(&token.current.to_string()));
        match &token.new {
            NewWkvp::Known { wkvp, committed } => {
                let state = if *committed {
                    "committed"
                } else {
                    "loaded, not committed yet"
                };
                comment(out, 6, &format!("WK NEW on every APQN: {state}"));
                let _ = writeln!(out, "      new: {}", quoted(&wkvp.to_string()));
            }
            NewWkvp::Placeholder(why) => {
                comment(out, 6, &format!("{FILL_IN}: {why}"));
                let _ = writeln!(
                    out,
                    "      new: {}",
                    quoted(&format!("{FILL_IN}: the new WK's WKVP, 32 hex digits"))
                );
            }
        }
    }
    out.push('\n');
}

fn services(out: &mut String, draft: &Draft<'_>) {
    out.push_str("services:\n");
    if draft.procedure == Procedure::Concurrent {
        comment(
            out,
            2,
            "The applications that use the tokens. No step stops them: pkcsslotd tells every running process about the change, and each keeps using its keys throughout.",
        );
    }
    if draft.units.is_empty() {
        comment(
            out,
            2,
            &format!(
                "{FILL_IN}: no process maps the tokens now; name the systemd units that use them{}",
                match draft.procedure {
                    Procedure::Offline => " (stopped now, started after the change)",
                    Procedure::Concurrent => "",
                }
            ),
        );
    } else {
        comment(
            out,
            2,
            &format!(
                "Every unit whose processes map a token of this plan now (/proc/<pid>/maps, the unit from /proc/<pid>/cgroup){}",
                match draft.procedure {
                    Procedure::Offline => "; stopped in this order, started in reverse.",
                    Procedure::Concurrent => ".",
                }
            ),
        );
    }
    let units: Vec<String> = draft.units.iter().map(|u| quoted(u)).collect();
    let _ = writeln!(out, "  apps:\n    systemd: [{}]", units.join(", "));
    if !draft.strays.is_empty() && draft.procedure == Procedure::Offline {
        comment(
            out,
            2,
            "Outside any unit — stop these by hand or add a command service (the stop step refuses to migrate while they map the token):",
        );
        for (user, ids) in &draft.strays {
            let command: String = user.command.chars().take(100).collect();
            let place = user
                .outside
                .as_deref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default();
            comment(
                out,
                4,
                &format!("pid {}{place}: {command} (token {ids})", user.pid),
            );
        }
    }
    out.push('\n');
}

fn backups(out: &mut String, draft: &Draft<'_>) {
    out.push_str("backups:\n");
    let backup = &draft.backup;
    match &backup.dir {
        Some(dir) => {
            comment(
                out,
                2,
                &format!(
                    "writable, with room for the store{}",
                    if draft.tokens.len() > 1 { "s" } else { "" }
                ),
            );
            for warning in &backup.warnings {
                comment(out, 2, &format!("WARNING: {warning}"));
            }
            let _ = writeln!(
                out,
                "  local: {{ dir: {}, keep: 5 }}",
                quoted(&dir.to_string_lossy())
            );
        }
        None => {
            comment(
                out,
                2,
                &format!("{FILL_IN}: an absolute directory on another file system than the store"),
            );
            let _ = writeln!(
                out,
                "  local: {{ dir: {}, keep: 5 }}",
                quoted(&format!("{FILL_IN}: backup directory"))
            );
        }
    }
    for why in &backup.rejected {
        comment(out, 2, &format!("not chosen: {why}"));
    }
    out.push('\n');
}

pub(super) fn tail(out: &mut String, draft: &Draft<'_>) {
    comment(
        out,
        0,
        "The seed: \"If a failure occurs, restore the backed-up token repository.\"",
    );
    out.push_str("rescue:\n");
    for t in &draft.tokens {
        let _ = writeln!(
            out,
            "  - name: {}\n    restore: {{ token: {}, from: local }}",
            quoted(&format!(
                "Restore the store of token {} from the verified backup",
                t.id
            )),
            t.id
        );
    }
    out.push_str("\nalways:\n  - name: Applications run again\n    start: apps\n\n");
}

fn report(out: &mut String) {
    out.push_str("report:\n  dir: /var/lib/mkplan/reports\n");
    comment(
        out,
        2,
        "The report-signing key (`mkplan keygen --out /etc/mkplan/signing`); without one, an ephemeral key signs and the report says so:",
    );
    comment(out, 2, "sign: { key: /etc/mkplan/signing.pem }");
}

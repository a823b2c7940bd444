//! A decided [`Draft`] as plan YAML a reviewer only has to read: the schema modeline, a
//! header saying what was read from where and when, every step commented with the step of
//! IBM's procedure it implements, and placeholders that cannot validate where a person must
//! fill something in.

use std::fmt::Write as _;

use crate::plan::init::draft::{Draft, DraftToken, NewWkvp, Procedure, bytes};
use crate::plan::init::inventory::{ApqnFacts, ApqnList, ConfigFacts, Inventory, NewFacts};

/// Said where a value must be filled in; never a valid value, so `validate` stops there.
pub const FILL_IN: &str = "FILL IN";
/// How long the activation checkpoint polls for every APQN to show the new WK.
const ACTIVATE_RETRIES: u32 = 30;

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
    header(&mut out, inventory, draft, change);
    top(&mut out, inventory, draft, change);
    tokens(&mut out, draft);
    services(&mut out, draft);
    backups(&mut out, draft);
    steps(&mut out, draft, change);
    tail(&mut out, draft);
    out
}

/// A JSON string, which is a YAML 1.2 double-quoted scalar: safe for any text.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// Comment lines at `indent`, wrapped near 96 columns; control characters dropped.
fn comment(out: &mut String, indent: usize, text: &str) {
    wrapped(out, &" ".repeat(indent), "", text);
}

/// A header line: `#` in the first column, the text nested `level` steps.
fn note(out: &mut String, level: usize, text: &str) {
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

fn blank_comment(out: &mut String) {
    out.push_str("#\n");
}

fn header(out: &mut String, inventory: &Inventory, draft: &Draft<'_>, change: &ChangeRecord) {
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
        crate::plan::init::inventory::CurFacts::Valid(w) => format!("WK CUR valid {w}"),
        crate::plan::init::inventory::CurFacts::Invalid => "WK CUR invalid".to_owned(),
        crate::plan::init::inventory::CurFacts::Unknown => "WK CUR - -".to_owned(),
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
    note(
        out,
        0,
        "Procedure: offline — IBM's \"Migrating master keys with the pkcsep11_migrate tool\": the applications are stopped while the keys are re-enciphered.",
    );
    let suggestion = &draft.suggestion;
    match suggestion.procedure {
        Procedure::Concurrent => note(
            out,
            1,
            &format!(
                "The release suggests the concurrent procedure: {}. mkplan's executor does not implement it yet (pkcshsm_mk_change), so this plan is the offline one.",
                suggestion.why
            ),
        ),
        Procedure::Offline => note(
            out,
            1,
            &format!("The release suggests it too: {}.", suggestion.why),
        ),
    }
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
    if draft.backup.dir.is_none() {
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
    if draft.units.is_empty() {
        comment(
            out,
            2,
            &format!(
                "{FILL_IN}: no process maps the tokens now; name the systemd units that use them (stopped now, started after the change)"
            ),
        );
    } else {
        comment(
            out,
            2,
            "Every unit whose processes map a token of this plan now (/proc/<pid>/maps, the unit from /proc/<pid>/cgroup); stopped in this order, started in reverse.",
        );
    }
    let units: Vec<String> = draft.units.iter().map(|u| quoted(u)).collect();
    let _ = writeln!(out, "  apps:\n    systemd: [{}]", units.join(", "));
    if !draft.strays.is_empty() {
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

/// `tokens.ep11` or `tokens['ep11-x']` in a template.
fn token_ref(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("tokens.{id}")
    } else {
        format!("tokens['{id}']")
    }
}

fn step(out: &mut String, seed: &str, body: &str) {
    if !seed.is_empty() {
        comment(out, 2, seed);
    }
    out.push_str(body);
}

fn steps(out: &mut String, draft: &Draft<'_>, change: &ChangeRecord) {
    let several = draft.tokens.len() > 1;
    let approvals = if change.approvers.len() == 1 { 1 } else { 2 };
    let say: Vec<String> = draft
        .tokens
        .iter()
        .map(|t| {
            format!(
                "{{{{ {r}.wkvp.new }}}} on every APQN of token {id} ({list})",
                r = token_ref(&t.id),
                id = t.id,
                list = t
                    .apqns
                    .iter()
                    .map(|a| a.lszcrypt())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    out.push_str("steps:\n");
    step(
        out,
        "Seed step 1 (TKE): the new WK is submitted and committed on every APQN of the token.",
        &format!(
            "  - name: TKE work is done\n    id: tke-commit\n    checkpoint:\n      tke: commit\n      say: {}\n      approvals: {approvals}\n\n",
            quoted(&format!(
                "Load and commit the new EP11 wrapping key {}. Do not activate it yet.",
                say.join("; ")
            ))
        ),
    );
    for t in &draft.tokens {
        step(
            out,
            "Seed step 1, proven: pkcsep11_migrate checks one APQN and no pattern; mkplan checks all.",
            &format!(
                "  - name: {}\n    assert_wk: {{ token: {}, current: expected, new: committed }}\n\n",
                quoted(&format!(
                    "New WK of token {} is committed on every APQN",
                    t.id
                )),
                t.id
            ),
        );
    }
    step(
        out,
        "Seed step 2: stop every process that uses openCryptoki with the EP11 token.",
        "  - name: Stop applications\n    stop: apps\n\n",
    );
    for t in &draft.tokens {
        step(
            out,
            "The inventory before: every key works under the current WK.",
            &format!(
                "  - name: {}\n    probe_keys: {{ token: {} }}\n\n",
                quoted(&format!(
                    "Every key of token {} works before the change",
                    t.id
                )),
                t.id
            ),
        );
    }
    for t in &draft.tokens {
        step(
            out,
            "Seed step 3: back up the token object repository (here: the whole store), verified.",
            &format!(
                "  - name: {}\n    backup: {{ token: {}, to: local }}\n\n",
                quoted(&format!("Back up the store of token {}", t.id)),
                t.id
            ),
        );
    }
    for t in &draft.tokens {
        step(
            out,
            "Seed step 4: re-encipher every secure key with pkcsep11_migrate (once, one APQN).",
            &format!(
                "  - name: {}\n    migrate: {{ token: {} }}\n\n",
                quoted(&format!("Re-encipher all secure keys of token {}", t.id)),
                t.id
            ),
        );
    }
    for t in &draft.tokens {
        let id = if several {
            format!("tke-activate-{}", t.id)
        } else {
            "tke-activate".to_owned()
        };
        step(
            out,
            "Seed step 5 (TKE): activate the new WK (\"Set, immediate\") on every APQN.",
            &format!(
                "  - name: {}\n    id: {id}\n    checkpoint:\n      tke: activate\n      say: {}\n      until:\n        assert_wk: {{ token: {}, current: new, new: empty }}\n        retries: {ACTIVATE_RETRIES}\n        delay: 10s\n\n",
                quoted(&format!("Activate the new WK of token {} on the TKE", t.id)),
                quoted(&format!(
                    "Run \"Set, immediate\" for the new WK on all APQNs of token {}.",
                    t.id
                )),
                t.id
            ),
        );
    }
    for t in &draft.tokens {
        let now = match t.expected_wkvp {
            Some(_) => "it names the current WK now",
            None => "it sets none now, so this step changes nothing",
        };
        step(
            out,
            &format!(
                "openCryptoki 3.19+ refuses to start the token while EXPECTED_WKVP names the old WK ({now})."
            ),
            &format!(
                "  - name: {}\n    set_expected_wkvp: {{ token: {} }}\n\n",
                quoted(&format!(
                    "Point EXPECTED_WKVP of token {} at the new WK",
                    t.id
                )),
                t.id
            ),
        );
    }
    step(
        out,
        "Seed step 6: restart the applications that use the EP11 token.",
        "  - name: Restart applications\n    start: apps\n\n",
    );
    for t in &draft.tokens {
        step(
            out,
            "",
            &format!(
                "  - name: {}\n    probe_keys: {{ token: {} }}\n\n",
                quoted(&format!(
                    "Every key of token {} works under the new WK",
                    t.id
                )),
                t.id
            ),
        );
    }
}

fn tail(out: &mut String, draft: &Draft<'_>) {
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
    out.push_str("report:\n  dir: /var/lib/mkplan/reports\n");
    comment(
        out,
        2,
        "The report-signing key (`mkplan keygen --out /etc/mkplan/signing`); without one, an ephemeral key signs and the report says so:",
    );
    comment(out, 2, "sign: { key: /etc/mkplan/signing.pem }");
}

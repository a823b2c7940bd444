//! The first printed pages of `report.html`: the whole evidence summary — outcome, change,
//! plan, approvals, the WK state of every APQN before and at the end, the backup, the key
//! counts, the downtime, the signer and how to verify — each block kept whole on a page.
//! Everything longer (step log, readings, key lists) is in the appendices.

use std::fmt::Write as _;

use super::text::{digest, path, rich};
use super::{code, escape, kv, ms, table_cols};
use crate::model::{ApqnState, ApqnTable, CcaMkState, KeyCounts, RunReport, TokenReport};
use crate::sign::Algorithm;
use crate::verify::Cosigner;
use mkplan_sig::short_id;

/// Opens a summary block: kept on one page when printed.
fn block(out: &mut String, title: &str) {
    let _ = write!(out, "<section class=\"blk\"><h2>{}</h2>", escape(title));
}

pub(super) fn facts(out: &mut String, r: &RunReport) {
    block(out, "Change and run");
    let from = |origin: &Option<crate::model::OriginFacts>| {
        origin
            .as_ref()
            .map_or(String::new(), |o| format!(" — {}", escape(&o.summary)))
    };
    let mut operator = format!("{}{}", escape(&r.run.operator), from(&r.run.origin));
    for resumed in &r.run.resumed {
        let _ = write!(
            operator,
            "; resumed by {} at {}{}",
            escape(&resumed.operator),
            escape(&resumed.time),
            from(&resumed.origin)
        );
    }
    kv(
        out,
        &[
            (
                "Change",
                format!(
                    "{} — {}",
                    escape(&r.plan.change_ticket),
                    rich(&r.plan.change_summary)
                ),
            ),
            ("Policy", policy(r)),
            (
                "Plan",
                format!("{} · sha256 {}", path(&r.plan.path), digest(&r.plan.sha256)),
            ),
            (
                "Host",
                format!(
                    "{} · kernel {} · root {}",
                    escape(&r.host.hostname),
                    escape(&r.host.kernel_release),
                    path(&r.host.root)
                ),
            ),
            ("Operator", operator),
            (
                "Time",
                format!(
                    "{} → {} ({})",
                    escape(&r.run.started),
                    r.run.ended.as_deref().map_or("—".to_owned(), escape),
                    ms(r.run.duration_ms)
                ),
            ),
            ("mkplan", escape(&r.mkplan_version)),
        ],
    );
    out.push_str("</section>\n");
}

/// `change.policy` and the WK change it governs, or that the plan names none.
fn policy(r: &RunReport) -> String {
    let wk: Vec<String> = r
        .tokens
        .iter()
        .map(|t| {
            format!(
                "{} {} → {}",
                escape(&t.token),
                code(&t.wkvp_current),
                code(&t.wkvp_new)
            )
        })
        .collect();
    let clause = match &r.plan.policy {
        Some(p) => format!(
            "{}{}",
            escape(&p.reference),
            p.cryptoperiod
                .as_deref()
                .map_or(String::new(), |c| format!(" — cryptoperiod {}", escape(c)))
        ),
        None => "<span class=\"muted\">— (the plan names no <code>change.policy</code>)</span>"
            .to_owned(),
    };
    let label = match r.tokens.iter().any(|t| t.cca) {
        true => "keys",
        false => "WKVP",
    };
    format!("{clause} · {label} {}", wk.join("; "))
}

pub(super) fn warnings(out: &mut String, r: &RunReport) {
    if r.warnings.is_empty() {
        return;
    }
    block(out, "Warnings");
    out.push_str("<div class=\"warn\"><ul>");
    for w in &r.warnings {
        let _ = write!(out, "<li>{}</li>", rich(w));
    }
    out.push_str("</ul></div></section>\n");
}

pub(super) fn approvals(out: &mut String, r: &RunReport) {
    block(out, "Approvals");
    if r.approvals.is_empty() {
        out.push_str("<p class=\"muted\">No approvals were given in this run.</p>");
    } else {
        let rows: Vec<Vec<String>> = r
            .approvals
            .iter()
            .map(|a| {
                vec![
                    format!("{} {}", code(&a.checkpoint), rich(&a.checkpoint_name)),
                    escape(&a.approver),
                    escape(&a.method),
                    escape(&a.time),
                    digest(&a.shown_sha256),
                ]
            })
            .collect();
        table_cols(
            out,
            &[
                "Checkpoint",
                "Approver",
                "How",
                "When",
                "SHA-256 of the text shown",
            ],
            &[30, 14, 10, 22, 24],
            &rows,
        );
    }
    if !r.refused_approvals.is_empty() {
        let _ = write!(
            out,
            "<p class=\"bad\">Refused: {} (Appendix B).</p>",
            r.refused_approvals.len()
        );
    }
    out.push_str("</section>\n");
}

/// A WK register in the plan's words.
fn register(state: &str, vp: Option<&str>, t: &TokenReport) -> String {
    let Some(vp) = vp else {
        return escape(state);
    };
    let is = |wkvp: &str| {
        vp.to_ascii_lowercase()
            .starts_with(&wkvp.to_ascii_lowercase())
    };
    if is(&t.wkvp_current) {
        format!("{} = current (plan)", escape(state))
    } else if is(&t.wkvp_new) {
        format!("{} = new (plan)", escape(state))
    } else {
        format!(
            "{} other {}",
            escape(state),
            code(vp.get(..18).unwrap_or(vp))
        )
    }
}

/// A CCA card's CUR (or NEW) register of each MK type, a line each: `AES valid 0x1a2b3c4d…`.
fn cca_registers(registers: &[CcaMkState], cur: bool) -> String {
    let lines: Vec<String> = registers
        .iter()
        .map(|r| {
            let (state, vp) = match cur {
                true => (&r.cur_state, &r.cur_mkvp),
                false => (&r.new_state, &r.new_mkvp),
            };
            match vp {
                Some(vp) => format!(
                    "{} {} {}",
                    escape(&r.mk),
                    escape(state),
                    code(vp.get(..10).unwrap_or(vp))
                ),
                None => format!("{} {}", escape(&r.mk), escape(state)),
            }
        })
        .collect();
    lines.join("<br>")
}

fn find<'a>(table: Option<&'a ApqnTable>, apqn: &str) -> Option<&'a ApqnState> {
    table?.apqns.iter().find(|a| a.apqn == apqn)
}

pub(super) fn token(out: &mut String, t: &TokenReport) {
    block(out, &format!("Token {} — slot {}", t.token, t.slot));
    let _ = write!(
        out,
        "<p>{} current {} → new {}</p>",
        t.pattern_label(),
        code(&t.wkvp_current),
        code(&t.wkvp_new)
    );
    let end = t.end.as_ref().and_then(|e| e.apqns.as_ref());
    let mut ids: Vec<&str> = Vec::new();
    for table in [t.apqns_before.as_ref(), end].into_iter().flatten() {
        for a in &table.apqns {
            if !ids.contains(&a.apqn.as_str()) {
                ids.push(&a.apqn);
            }
        }
    }
    let cell = |a: Option<&ApqnState>, cur: bool| match a {
        Some(a) if !a.cca.is_empty() => cca_registers(&a.cca, cur),
        Some(a) if cur => register(&a.cur_state, a.cur_wkvp.as_deref(), t),
        Some(a) => register(&a.new_state, a.new_wkvp.as_deref(), t),
        None => "<span class=\"muted\">not read</span>".to_owned(),
    };
    let rows: Vec<Vec<String>> = ids
        .iter()
        .map(|id| {
            let (before, at_end) = (find(t.apqns_before.as_ref(), id), find(end, id));
            let adapter = before
                .or(at_end)
                .map_or(String::new(), |a| format!(" ({},{})", a.adapter, a.domain));
            vec![
                format!("{}{adapter}", code(id)),
                cell(before, true),
                cell(before, false),
                cell(at_end, true),
                cell(at_end, false),
            ]
        })
        .collect();
    let end_title = match t.end.as_ref().and_then(|e| e.restored_by.as_deref()) {
        Some(restore) => format!("End of run (after {restore} restored the backup): CUR"),
        None => "End of run: CUR".to_owned(),
    };
    table_cols(
        out,
        &[
            "APQN",
            "Before: CUR",
            "Before: NEW",
            &end_title,
            "End of run: NEW",
        ],
        &[16, 21, 21, 21, 21],
        &rows,
    );
    out.push_str(&caption(t));
    backup(out, t);
    keys(out, t);
    out.push_str("</section>\n");
}

fn caption(t: &TokenReport) -> String {
    let before = t
        .apqns_before
        .as_ref()
        .map_or("before: not read".to_owned(), |b| {
            format!("before: {} {} at {}", b.step, b.source, b.time)
        });
    let end = match &t.end {
        Some(e) => match (&e.apqns, &e.apqns_not_read) {
            (Some(a), _) => format!("end: {} at {}", a.source, a.time),
            (None, reason) => format!("end: not read ({})", reason.as_deref().unwrap_or("—")),
        },
        None => "end: this run recorded no end state".to_owned(),
    };
    format!("<p class=\"muted\">{}; {}.</p>", rich(&before), rich(&end))
}

fn backup(out: &mut String, t: &TokenReport) {
    match &t.backup {
        Some(b) => {
            let _ = write!(
                out,
                "<p>Backup {} sha256 {}; manifest sha256 {}; {} files, {} bytes, {}.</p>",
                path(&b.archive),
                digest(&b.archive_sha256),
                digest(&b.manifest_sha256),
                b.files,
                b.bytes,
                if b.verified {
                    "<span class=\"ok\">verified</span>"
                } else {
                    "<span class=\"bad\">NOT verified</span>"
                }
            );
        }
        None => out.push_str("<p class=\"muted\">No backup in this run.</p>"),
    }
    let restore = match (
        &t.restore,
        t.end.as_ref().and_then(|e| e.restored_by.as_deref()),
    ) {
        (_, Some(step)) => format!("restored from this run's verified backup at {}", code(step)),
        (Some(r), None) => format!(
            "{} {}: {}",
            code(&r.step),
            escape(&r.status),
            rich(r.action.as_deref().unwrap_or("no action"))
        ),
        (None, None) => "not needed".to_owned(),
    };
    let _ = write!(out, "<p>Restore: {restore}.</p>");
}

fn keys(out: &mut String, t: &TokenReport) {
    let counts = |c: Option<&KeyCounts>| {
        c.map_or("—".to_owned(), |c| {
            format!("{} of {} usable", c.usable, c.total)
        })
    };
    let before_step = t.inventory_before.as_ref().map_or("—", |i| i.step.as_str());
    let reenciphered = t
        .comparison
        .as_ref()
        .map(|c| c.reenciphered)
        .or(t.migration.as_ref().and_then(|m| m.keys_reenciphered));
    let mut rows: Vec<Vec<String>> = t
        .key_summary
        .iter()
        .map(|s| {
            vec![
                code(&s.key_type),
                counts(s.before.as_ref()),
                counts(s.end.as_ref()),
            ]
        })
        .collect();
    let total = |pick: fn(&crate::model::KeyTypeSummary) -> Option<KeyCounts>| {
        let all: Vec<KeyCounts> = t.key_summary.iter().filter_map(pick).collect();
        (!all.is_empty()).then(|| KeyCounts {
            total: all.iter().map(|c| c.total).sum(),
            usable: all.iter().map(|c| c.usable).sum(),
        })
    };
    rows.push(vec![
        "<b>All keys</b>".to_owned(),
        counts(total(|s| s.before).as_ref()),
        counts(total(|s| s.end).as_ref()),
    ]);
    let end_note = match t.end.as_ref().map(|e| (&e.keys, &e.keys_not_read)) {
        Some((Some(_), _)) => "End of run".to_owned(),
        Some((None, reason)) => format!(
            "End of run (not probed: {})",
            reason.as_deref().unwrap_or("—")
        ),
        None => "End of run (not recorded)".to_owned(),
    };
    table_cols(
        out,
        &["Key type", &format!("Before ({before_step})"), &end_note],
        &[40, 30, 30],
        &rows,
    );
    if let Some(n) = reenciphered {
        let _ = write!(
            out,
            "<p class=\"muted\">Re-enciphered by the migration: {n} keys.</p>"
        );
    }
}

pub(super) fn downtime(out: &mut String, r: &RunReport) {
    block(out, "Downtime");
    let d = &r.downtime;
    if d.units.is_empty() {
        out.push_str("<p class=\"muted\">This run stopped no service.</p></section>\n");
        return;
    }
    let units: Vec<String> = d.units.iter().take(6).map(|u| code(&u.unit)).collect();
    let more = d.units.len().saturating_sub(6);
    let _ = writeln!(
        out,
        "<p><b>{}</b>{}: {} → {}; units {}{} (Appendix C).</p></section>",
        ms(d.duration_ms),
        d.duration_ms
            .map_or(String::new(), |n| format!(" ({n} ms)")),
        d.first_stopped.as_deref().map_or("—".to_owned(), escape),
        d.last_started.as_deref().map_or("—".to_owned(), escape),
        units.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
}

pub(super) fn signatures(
    out: &mut String,
    r: &RunReport,
    algorithm: Algorithm,
    key_id: &str,
    cosigners: &[Cosigner],
) {
    block(out, "Signatures");
    let _ = writeln!(
        out,
        "<p>Signed by mkplan's report signer: {} {} ({}), key id {}.</p>",
        escape(&r.signing.method),
        r.signing.key.as_deref().map_or(String::new(), path),
        escape(algorithm.describe()),
        digest(key_id),
    );
    out.push_str(&cosigned(r, cosigners));
    let _ = writeln!(
        out,
        "<p>Verify: <code>mkplan report verify {} --key TRUSTED.pub.pem</code>; without mkplan: Appendix E. \
         The signatures cover <code>report.json</code>, not this page.</p></section>",
        escape(&r.run.id)
    );
}

/// Who co-signed (`report.dsse.json`, verified when this page was rendered) and whether the
/// plan's `report.cosign` is met.
fn cosigned(r: &RunReport, cosigners: &[Cosigner]) -> String {
    if cosigners.is_empty() && r.cosigning.is_none() {
        return String::new();
    }
    let mut line = String::from("<p id=\"cosigners\">Co-signed by: ");
    if cosigners.is_empty() {
        line.push_str("nobody yet");
    }
    let names: Vec<String> = cosigners
        .iter()
        .map(|c| {
            format!(
                "<b>{}</b> (key id {}, {})",
                escape(&c.name),
                code(&short_id(&c.key_id)),
                escape(
                    mkplan_sig::Algorithm::from_name(&c.algorithm)
                        .map_or(c.algorithm.as_str(), |a| a.describe())
                )
            )
        })
        .collect();
    line.push_str(&names.join(", "));
    if let Some(required) = &r.cosigning {
        let counted = cosigners
            .iter()
            .filter(|c| required.by.contains(&c.name))
            .count();
        let status = if counted >= required.required as usize {
            "<span class=\"ok\">complete</span>".to_owned()
        } else {
            format!(
                "<span class=\"bad\">INCOMPLETE: {} more needed</span>",
                required.required as usize - counted
            )
        };
        let _ = write!(
            line,
            ". Required: {} of {} — {status}",
            required.required,
            escape(&required.by.join(", "))
        );
    }
    line.push_str(".</p>\n");
    line
}

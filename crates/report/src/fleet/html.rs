//! `fleet.html`: the fleet report for people and the printed change record, in the same
//! style as a run's `report.html`. It renders `fleet.json` and says so.

use std::fmt::Write as _;

use crate::fleet::FLEET_JSON;
use crate::fleet::collect::VERIFIED;
use crate::fleet::model::{FleetHost, FleetReport, HostToken};
use crate::html::{STYLE, code, escape, kv, ms, outcome_class, table};
use crate::sign::Algorithm;

/// The whole page.
pub fn render(report: &FleetReport, algorithm: Algorithm, key_id: &str, ephemeral: bool) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mkplan fleet report — {} hosts</title><style>{STYLE}</style></head><body><main>\n",
        s.hosts
    );
    if report
        .hosts
        .iter()
        .any(|h| h.run.as_ref().is_some_and(|r| r.rehearsal))
    {
        out.push_str("<div class=\"banner rehearsal\" id=\"rehearsal\">REHEARSAL — simulated hosts among these, nothing real was changed on them</div>\n");
    }
    let verdict = if s.complete { "complete" } else { "incomplete" };
    let _ = writeln!(
        out,
        "<h1>Fleet report</h1><p class=\"sub\">mkplan fleet report · change {}</p>\
         <p>Fleet: <span class=\"outcome {}\" id=\"fleet-outcome\">{verdict}</span></p>",
        escape(&s.change_tickets.join(", ")),
        if s.complete {
            "o-succeeded"
        } else {
            "o-failed"
        },
    );
    if !report.warnings.is_empty() {
        out.push_str("<div class=\"warn\" id=\"warnings\"><ul>");
        for warning in &report.warnings {
            let _ = write!(out, "<li>{}</li>", escape(warning));
        }
        out.push_str("</ul></div>\n");
    }
    summary(&mut out, report);
    out.push_str("<h2>Hosts</h2>\n");
    let rows: Vec<Vec<String>> = report.hosts.iter().map(host_row).collect();
    table(
        &mut out,
        &[
            "host",
            "report",
            "run",
            "outcome",
            "keys usable",
            "downtime",
            "signer key id",
        ],
        &rows,
    );
    for host in &report.hosts {
        host_section(&mut out, host);
    }
    let _ = write!(
        out,
        "<footer>This page renders <code>{FLEET_JSON}</code>; the signature ({}, key id <code>{}</code>{}) covers that file, not this page. Check it with <code>mkplan report verify DIR</code>.</footer>\n</main></body></html>\n",
        algorithm.describe(),
        escape(key_id),
        if ephemeral {
            ", an EPHEMERAL key: integrity only"
        } else {
            ""
        }
    );
    out
}

fn host_row(host: &FleetHost) -> Vec<String> {
    let status = if host.status == VERIFIED {
        "<span class=\"ok\">verified</span>".to_owned()
    } else {
        format!(
            "<span class=\"bad\">{}</span>",
            escape(&host.status.replace('_', " "))
        )
    };
    let (run, outcome, keys, downtime) = match &host.run {
        Some(run) => {
            let keys: Vec<String> = run
                .tokens
                .iter()
                .map(|t| match (t.keys_usable, t.keys) {
                    (Some(u), Some(k)) => format!(
                        "{}: {u} of {k} ({})",
                        t.token,
                        t.inventory.as_deref().unwrap_or("")
                    ),
                    _ => format!("{}: not probed", t.token),
                })
                .collect();
            (
                code(&run.run_id),
                format!(
                    "<span class=\"{}\">{}</span>",
                    if run.outcome == "succeeded" {
                        "ok"
                    } else {
                        "bad"
                    },
                    escape(&run.outcome)
                ),
                escape(&keys.join("; ")),
                ms(run.downtime_ms),
            )
        }
        None => ("—".into(), "—".into(), "—".into(), "—".into()),
    };
    vec![
        format!("<a href=\"#host-{0}\">{0}</a>", escape(&host.name)),
        status,
        run,
        outcome,
        keys,
        downtime,
        host.signer_key_id
            .as_deref()
            .map_or_else(|| "—".to_owned(), code),
    ]
}

fn host_section(out: &mut String, host: &FleetHost) {
    let _ = writeln!(
        out,
        "<h2 id=\"host-{0}\">Host <code>{0}</code></h2>",
        escape(&host.name)
    );
    let checks: Vec<Vec<String>> = host
        .checks
        .iter()
        .map(|c| {
            vec![
                escape(&c.name),
                if c.ok {
                    "<span class=\"ok\">ok</span>".to_owned()
                } else {
                    "<span class=\"bad\">FAILED</span>".to_owned()
                },
                escape(&c.detail),
            ]
        })
        .collect();
    table(out, &["check", "result", "detail"], &checks);
    let Some(run) = &host.run else { return };
    let _ = writeln!(
        out,
        "<p>Outcome: <span class=\"outcome {}\">{}</span> {}</p>",
        outcome_class(&run.outcome),
        escape(&run.outcome),
        escape(&run.outcome_detail)
    );
    kv(
        out,
        &[
            ("run", code(&run.run_id)),
            ("host root", code(&run.root)),
            ("operator", escape(&run.operator)),
            (
                "started / ended",
                format!(
                    "{} / {}",
                    escape(&run.started),
                    run.ended.as_deref().map_or_else(|| "—".to_owned(), escape)
                ),
            ),
            (
                "plan",
                format!("{} {}", escape(&run.plan_name), code(&run.plan_sha256)),
            ),
            (
                "journal",
                format!(
                    "{} events, head {}",
                    run.journal_events,
                    code(&run.journal_head)
                ),
            ),
            ("downtime", ms(run.downtime_ms)),
            (
                "failure",
                run.failure
                    .as_deref()
                    .map_or_else(|| "—".to_owned(), escape),
            ),
        ],
    );
    for token in &run.tokens {
        token_section(out, token);
    }
    let approvals: Vec<Vec<String>> = run
        .approvals
        .iter()
        .map(|a| {
            vec![
                escape(&a.checkpoint),
                escape(&a.approver),
                escape(&a.method),
                escape(&a.time),
            ]
        })
        .collect();
    if !approvals.is_empty() {
        table(
            out,
            &["checkpoint", "approver", "method", "time"],
            &approvals,
        );
    }
}

fn summary(out: &mut String, report: &FleetReport) {
    let s = &report.summary;
    let outcomes: Vec<String> = s.outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
    kv(
        out,
        &[
            ("hosts", s.hosts.to_string()),
            ("reports verified", s.verified.to_string()),
            ("reports NOT verified", s.not_verified.to_string()),
            ("hosts without a report", s.no_report.to_string()),
            ("outcomes (verified)", escape(&outcomes.join(", "))),
            ("total downtime", ms(Some(s.total_downtime_ms))),
            (
                "plan digests",
                s.plan_sha256
                    .iter()
                    .map(|d| code(d))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            ),
        ],
    );
}

fn token_section(out: &mut String, token: &HostToken) {
    let _ = writeln!(
        out,
        "<h3>Token <code>{}</code> (slot {}): {} → {}</h3>",
        escape(&token.token),
        token.slot,
        code(&token.wkvp_current),
        code(&token.wkvp_new)
    );
    let rows: Vec<Vec<String>> = token
        .apqns
        .iter()
        .map(|a| {
            vec![
                code(&a.apqn),
                escape(&a.cur_state),
                a.cur_wkvp.as_deref().map_or_else(|| "—".to_owned(), code),
                escape(&a.new_state),
                a.new_wkvp.as_deref().map_or_else(|| "—".to_owned(), code),
            ]
        })
        .collect();
    let _ = writeln!(
        out,
        "<p>WK state ({} the change); migration {}; restore {}</p>",
        escape(token.apqns_read.as_deref().unwrap_or("not read")),
        escape(token.migration.as_deref().unwrap_or("—")),
        escape(token.restore.as_deref().unwrap_or("—"))
    );
    table(
        out,
        &["APQN", "current", "current WKVP", "new", "new WKVP"],
        &rows,
    );
}

//! `report.html`: the report for people and for the printed change record. One file with
//! inline CSS, no scripts, no external resources; every string from the report is escaped.
//! It renders `report.json` and says so: the signature covers the JSON, not this page.

use std::fmt::Write as _;

use crate::REPORT_JSON;
use crate::model::RunReport;
use crate::sign::Algorithm;
use crate::terminal::duration;
use crate::verify::Cosigner;
use text::rich;

mod end;
mod events;
mod summary;
pub mod text;
mod token;

pub use token::verification_commands;
use token::{token_section, verification};

pub(crate) const STYLE: &str = "
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1b1f24;margin:0;background:#fff}
main{max-width:1100px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:2px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px}
h2 code{font-size:15px}
.sub{color:#57606a;margin:0 0 14px}
.banner{padding:10px 14px;border-radius:6px;font-weight:700;margin:10px 0;letter-spacing:.02em}
.rehearsal{background:repeating-linear-gradient(135deg,#fff3bf 0 14px,#ffe58f 14px 28px);border:2px solid #d4a000;color:#5c4400;text-align:center;font-size:16px}
.outcome{display:inline-block;padding:4px 12px;border-radius:14px;font-weight:700;color:#fff;font-size:15px;text-transform:uppercase}
.o-succeeded{background:#1a7f37}.o-failed{background:#cf222e}.o-rescued,.o-aborted{background:#bc4c00}.o-other{background:#6e7781}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}
th,td{border:1px solid #d0d7de;padding:4px 7px;text-align:left;vertical-align:top}
td{overflow-wrap:break-word}table.fixed{table-layout:fixed}td:first-child code{white-space:nowrap;word-break:normal}
.digest{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
th{background:#f3f5f7;font-weight:600}
table.kv th{width:190px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.s-succeeded,.ok{color:#1a7f37;font-weight:600}.s-failed,.bad{color:#cf222e;font-weight:600}
.s-skipped,.s-not_reached{color:#6e7781}.s-uncertain{color:#bc4c00;font-weight:600}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 14px}
.warn li{margin:3px 0}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;white-space:pre-wrap;word-break:break-all;font-size:12px}
.muted{color:#6e7781}
footer{margin-top:30px;color:#6e7781;font-size:12px;border-top:1px solid #d0d7de;padding-top:8px}
";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(value: Option<&str>) -> String {
    value.map_or_else(|| "—".to_owned(), escape)
}

pub(crate) fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

pub(crate) fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "—".to_owned(), duration)
}

pub(crate) fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "succeeded" => "o-succeeded",
        "failed" => "o-failed",
        "rescued" => "o-rescued",
        "aborted" => "o-aborted",
        _ => "o-other",
    }
}

/// A key/value table; values are HTML already.
pub(crate) fn kv(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table class=\"kv\">");
    for (key, value) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{value}</td></tr>", escape(key));
    }
    out.push_str("</table>\n");
}

/// A table with fixed column widths (percent), so no cell squeezes another; cells are HTML.
pub(crate) fn table_cols(out: &mut String, head: &[&str], widths: &[u32], rows: &[Vec<String>]) {
    out.push_str("<table class=\"fixed\"><colgroup>");
    for w in widths {
        let _ = write!(out, "<col style=\"width:{w}%\">");
    }
    out.push_str("</colgroup><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
}

/// The print rules, with the run's id and outcome in the page footer (both are
/// `[0-9A-Za-z-]`, checked, so safe in a CSS string).
fn print_style(r: &RunReport) -> String {
    let safe = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    };
    format!(
        "@page{{margin:13mm 12mm 15mm 12mm;@bottom-left{{content:\"mkplan run {} · {}\";font:7pt sans-serif;color:#555}}\
         @bottom-right{{content:\"page \" counter(page) \" of \" counter(pages);font:7pt sans-serif;color:#555}}}}{PRINT}",
        safe(&r.run.id),
        safe(&r.run.outcome).to_uppercase()
    )
}

const PRINT: &str = "
@media print{
html{font-size:8.6pt}body{font:8.6pt/1.3 'DejaVu Sans','Liberation Sans',Arial,sans-serif}main{max-width:none;padding:0}
code,.mono{font-family:'DejaVu Sans Mono','Liberation Mono',monospace;font-size:.92em;word-break:normal}
h1{font-size:13pt;margin:0 0 1.5mm}.sub{margin:0 0 1.5mm}
h2{font-size:10pt;margin:3mm 0 1.2mm;border-bottom:.5pt solid #888;padding-bottom:0;break-after:avoid-page}
h3{font-size:9pt;margin:2mm 0 1mm;break-after:avoid-page}
p{margin:1mm 0}.blk{break-inside:avoid-page}#appendices{break-before:page}
table{font-size:8pt;margin:1mm 0 2mm}th,td{padding:1px 4px}table.kv th{width:22%}
thead{display:table-header-group}tr{break-inside:avoid-page}table,pre{break-inside:auto}
p,li{orphans:3;widows:3}td,th,p,li{overflow-wrap:break-word;word-break:normal;hyphens:manual}
.digest{font-family:'DejaVu Sans Mono',monospace;font-size:.92em;overflow-wrap:anywhere}
.banner{padding:1.5mm 3mm;margin:1mm 0;font-size:9pt}.outcome{font-size:9pt;padding:0 3mm}
.warn{padding:1mm 3mm}.warn li{margin:0}ul{margin:0;padding-left:5mm}
.banner,.outcome,.ok,.bad,.warn{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}";

/// A table; cells are HTML already.
pub(crate) fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
}

/// The whole page.
/// `cosigners`: the approvers whose co-signature of `report.dsse.json` verified (the page is
/// rendered again after each `report cosign`; no signature covers it).
pub fn render(
    report: &RunReport,
    algorithm: Algorithm,
    key_id: &str,
    cosigners: &[Cosigner],
) -> String {
    let r = report;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mkplan run report {} — {}</title><style>{STYLE}{}</style></head><body><main>\n\
         <section id=\"summary\">",
        escape(&r.run.id),
        escape(&r.run.outcome),
        print_style(r)
    );
    if r.run.rehearsal {
        out.push_str("<div class=\"banner rehearsal\" id=\"rehearsal\">REHEARSAL — simulated host, nothing real was changed</div>\n");
    }
    let _ = writeln!(
        out,
        "<h1>{}</h1><p class=\"sub\">mkplan run report · change {} · run <span class=\"mono\">{}</span></p>\
         <p>Outcome: <span class=\"outcome {}\" id=\"outcome\">{}</span></p>",
        escape(&r.plan.name),
        escape(&r.plan.change_ticket),
        escape(&r.run.id),
        outcome_class(&r.run.outcome),
        escape(&r.run.outcome)
    );
    if !r.run.outcome_detail.is_empty() {
        let _ = writeln!(
            out,
            "<p id=\"outcome-detail\">{}</p>",
            rich(&r.run.outcome_detail)
        );
    }
    if let Some(f) = &r.run.failure {
        let what = if f.denied { "denied" } else { "failed" };
        let _ = writeln!(
            out,
            "<p class=\"bad\">{} {} <code>{}</code>: {}</p>",
            escape(&f.step),
            what,
            escape(&f.name),
            rich(&f.reason)
        );
    }
    summary::facts(&mut out, r);
    summary::warnings(&mut out, r);
    summary::approvals(&mut out, r);
    for token in &r.tokens {
        summary::token(&mut out, token);
    }
    summary::downtime(&mut out, r);
    summary::signatures(&mut out, r, algorithm, key_id, cosigners);
    out.push_str("</section>\n<section id=\"appendices\">");
    steps(&mut out, r);
    approvals(&mut out, r);
    downtime(&mut out, r);
    for token in &r.tokens {
        token_section(&mut out, token);
    }
    recap(&mut out, r);
    verification(&mut out, r, algorithm, key_id);
    events::appendix(&mut out, r);
    out.push_str("</section>\n");
    let _ = write!(
        out,
        "<footer>This page renders <code>{REPORT_JSON}</code> (report format {}). The signature covers \
         <code>{REPORT_JSON}</code>, not this page: verify the JSON.</footer>\n</main></body></html>\n",
        r.report_version
    );
    out
}

fn recap(out: &mut String, r: &RunReport) {
    out.push_str("<h2>Appendix F — Recap</h2>");
    let counts = |status: &str| r.steps.iter().filter(|s| s.status == status).count();
    kv(
        out,
        &[
            (
                "Change",
                format!(
                    "{} — {}",
                    escape(&r.plan.change_ticket),
                    escape(&r.plan.change_summary)
                ),
            ),
            ("Plan approvers", escape(&r.plan.approvers.join(", "))),
            (
                "Plan",
                format!("{}<br>sha256 {}", code(&r.plan.path), code(&r.plan.sha256)),
            ),
            ("Operator", escape(&r.run.operator)),
            (
                "Host",
                format!(
                    "{} · kernel {} · root {}",
                    escape(&r.host.hostname),
                    escape(&r.host.kernel_release),
                    code(&r.host.root)
                ),
            ),
            ("Started", escape(&r.run.started)),
            ("Ended", opt(r.run.ended.as_deref())),
            ("Duration", ms(r.run.duration_ms)),
            (
                "Steps",
                format!(
                    "{} succeeded, {} failed, {} skipped, {} uncertain, {} not reached",
                    counts("succeeded"),
                    counts("failed"),
                    counts("skipped"),
                    counts("uncertain"),
                    counts("not_reached")
                ),
            ),
            ("Downtime", ms(r.downtime.duration_ms)),
            ("mkplan", escape(&r.mkplan_version)),
            (
                "Signed with",
                format!(
                    "{} {} ({})",
                    escape(&r.signing.method),
                    r.signing
                        .key
                        .as_deref()
                        .map_or_else(|| "key".to_owned(), code),
                    escape(&r.signing.algorithm)
                ),
            ),
            (
                "Journal",
                format!(
                    "{} · {} events · head {}",
                    code(&r.journal.path),
                    r.journal.events,
                    code(&r.journal.head)
                ),
            ),
        ],
    );
    for resumed in &r.run.resumed {
        let _ = write!(
            out,
            "<p class=\"muted\">Resumed by {} at {}.</p>",
            escape(&resumed.operator),
            escape(&resumed.time)
        );
    }
    for d in &r.run.decisions {
        let _ = write!(
            out,
            "<p class=\"muted\">{} was interrupted; {} decided to {} it at {}.</p>",
            escape(&d.step),
            escape(&d.decided_by),
            escape(&d.decision),
            escape(&d.time)
        );
    }
}

fn steps(out: &mut String, r: &RunReport) {
    out.push_str("<h2>Appendix A — Step log</h2>");
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            vec![
                code(&s.position),
                format!("{}<br>{}", rich(&s.name), code(&s.kind)),
                format!("<span class=\"s-{0}\">{0}</span>", escape(&s.status)),
                s.started.as_deref().map_or("—".to_owned(), text::time),
                ms(s.duration_ms),
                rich(&s.summary),
            ]
        })
        .collect();
    table_cols(
        out,
        &[
            "Step",
            "Name & kind",
            "Status",
            "Started",
            "Time",
            "Summary",
        ],
        &[9, 20, 9, 13, 7, 42],
        &rows,
    );
}

fn approvals(out: &mut String, r: &RunReport) {
    out.push_str("<h2>Appendix B — Approvals and refusals</h2>");
    if r.approvals.is_empty() {
        out.push_str("<p class=\"muted\">No approvals were given in this run.</p>");
    } else {
        let rows: Vec<Vec<String>> = r
            .approvals
            .iter()
            .map(|a| {
                vec![
                    format!("{} {}", code(&a.checkpoint), escape(&a.checkpoint_name)),
                    escape(&a.approver),
                    escape(&a.how()),
                    escape(&a.time),
                    code(&a.shown_sha256),
                ]
            })
            .collect();
        table(
            out,
            &[
                "Checkpoint",
                "Approver",
                "Method",
                "Time",
                "SHA-256 of the text shown",
            ],
            &rows,
        );
    }
    if !r.refused_approvals.is_empty() {
        out.push_str("<h3>Refused</h3>");
        let rows: Vec<Vec<String>> = r
            .refused_approvals
            .iter()
            .map(|a| {
                vec![
                    code(&a.checkpoint),
                    escape(&a.approver),
                    escape(&a.method),
                    escape(&a.time),
                    rich(&a.reason),
                ]
            })
            .collect();
        table(
            out,
            &["Checkpoint", "Name given", "Method", "Time", "Why refused"],
            &rows,
        );
    }
}

fn downtime(out: &mut String, r: &RunReport) {
    out.push_str("<h2>Appendix C — Downtime per unit</h2>");
    let d = &r.downtime;
    if d.units.is_empty() {
        out.push_str("<p class=\"muted\">This run stopped no service.</p>");
        return;
    }
    let _ = write!(
        out,
        "<p>From the first unit stopped ({}) to the last started ({}): <b>{}</b>.</p>",
        opt(d.first_stopped.as_deref()),
        opt(d.last_started.as_deref()),
        ms(d.duration_ms)
    );
    let rows: Vec<Vec<String>> = d
        .units
        .iter()
        .map(|u| {
            vec![
                escape(&u.service),
                code(&u.unit),
                escape(&u.stopped_at),
                u.started_at.as_deref().map_or_else(
                    || "<span class=\"bad\">not started again</span>".to_owned(),
                    escape,
                ),
                ms(u.duration_ms),
            ]
        })
        .collect();
    table(
        out,
        &["Service", "Unit", "Stopped", "Started", "Down"],
        &rows,
    );
}

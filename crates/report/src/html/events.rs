//! Appendix G of `report.html`: every journal event as an audit log entry (PCI DSS 10.2.2:
//! user, type, time, success or failure, origin, affected resources).

use std::fmt::Write as _;

use super::text::time;
use super::{code, escape, table_cols};
use crate::model::{AuditResult, RunReport};

pub(super) fn appendix(out: &mut String, r: &RunReport) {
    out.push_str("<h2>Appendix G — Events (PCI DSS 10.2.2)</h2>");
    if r.events.is_empty() {
        out.push_str("<p>This report lists no events (it was written by an older mkplan: rebuild it with <code>mkplan report generate RUN --force</code>).</p>\n");
        return;
    }
    // Origins repeat for a whole session: listed once, referred to by number.
    let mut sessions: Vec<&str> = Vec::new();
    let rows: Vec<Vec<String>> = r
        .events
        .iter()
        .map(|e| {
            let origin = match &e.origin {
                Some(o) => {
                    let n = match sessions.iter().position(|s| *s == o.summary) {
                        Some(i) => i + 1,
                        None => {
                            sessions.push(&o.summary);
                            sessions.len()
                        }
                    };
                    format!("session {n}")
                }
                None => "not recorded".to_owned(),
            };
            let what = match &e.step {
                Some(step) => format!("{}<br>{}", code(&e.event), escape(step)),
                None => code(&e.event),
            };
            let result = match e.result {
                AuditResult::Success => "<span class=\"ok\">success</span>",
                AuditResult::Failure => "<span class=\"bad\">failure</span>",
                AuditResult::None => "—",
            };
            vec![
                e.seq.to_string(),
                time(&e.time),
                what,
                escape(&e.user),
                result.to_owned(),
                origin,
                e.resources
                    .iter()
                    .map(|r| escape(r))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            ]
        })
        .collect();
    out.push_str("<p>Origins: ");
    if sessions.is_empty() {
        out.push_str("not recorded by the mkplan that ran this.");
    }
    for (i, s) in sessions.iter().enumerate() {
        let _ = write!(
            out,
            "{}session {}: {}",
            if i > 0 { "; " } else { "" },
            i + 1,
            escape(s)
        );
    }
    out.push_str("</p>\n");
    table_cols(
        out,
        &[
            "#",
            "Time",
            "Event",
            "User",
            "Result",
            "Origin",
            "Resources",
        ],
        &[4, 13, 25, 9, 8, 9, 32],
        &rows,
    );
}

//! A token's end of run in `report.html`: every APQN's WK as the run left it, and the keys
//! per type before the change and at the end — the state the operator leaves behind.

use std::fmt::Write as _;

use super::text::rich;
use super::token::apqn_table;
use super::{code, escape, table};
use crate::model::{KeyCounts, TokenReport};

/// The end-of-run block; a note when the run recorded no end state.
pub(super) fn end_section(out: &mut String, t: &TokenReport) {
    let Some(end) = &t.end else {
        out.push_str("<h3>End of run</h3><p class=\"muted\">This run recorded no end state (it did not finish, or an older mkplan ran it).</p>");
        return;
    };
    let title = match &end.restored_by {
        Some(restore) => {
            format!("APQNs at the end of the run (after {restore} restored the backup)")
        }
        None => "APQNs at the end of the run".to_owned(),
    };
    match &end.apqns {
        Some(apqns) => apqn_table(out, &title, Some(apqns)),
        None => {
            let _ = write!(
                out,
                "<h3>{}</h3><p class=\"bad\">Not read: {}</p>",
                escape(&title),
                escape(
                    end.apqns_not_read
                        .as_deref()
                        .unwrap_or("no reason recorded")
                )
            );
        }
    }
    out.push_str("<h3>Keys before the change and at the end of the run</h3>");
    match (&end.keys, &end.keys_not_read) {
        (Some(k), _) => {
            let _ = write!(
                out,
                "<p class=\"muted\">Probed at {} through {}: {} objects, {} keys, <span class=\"{}\">{} usable</span>, {} unusable, {} not exercised.</p>",
                escape(&end.time),
                code(&k.module),
                k.objects,
                k.keys,
                if k.unusable == 0 { "ok" } else { "bad" },
                k.usable,
                k.unusable,
                k.not_exercised
            );
            if !k.unusable_keys.is_empty() {
                out.push_str("<p class=\"bad\">Keys that do not work at the end:</p><ul>");
                for key in &k.unusable_keys {
                    let _ = write!(out, "<li>{}</li>", rich(key));
                }
                out.push_str("</ul>");
            }
        }
        (None, reason) => {
            let _ = write!(
                out,
                "<p class=\"bad\">Not probed at the end of the run: {}</p>",
                rich(reason.as_deref().unwrap_or("no reason recorded"))
            );
        }
    }
    let counts = |c: Option<&KeyCounts>| {
        c.map_or_else(
            || "<span class=\"muted\">—</span>".to_owned(),
            |c| format!("{} of {} usable", c.usable, c.total),
        )
    };
    let rows: Vec<Vec<String>> = t
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
    if !rows.is_empty() {
        table(out, &["Key type", "Before", "End of run"], &rows);
    }
}

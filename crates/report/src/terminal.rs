//! `mkplan report show`: the report as a terminal summary — outcome first, then what an
//! auditor asks about (approvals, downtime, per-token evidence), then every step.

use std::fmt::Write as _;

use crate::model::{ApqnTable, InventoryFacts, RunReport, TokenReport};

/// `0.123s`, `4m05s`, `1h02m`: one fixed form per range.
pub fn duration(ms: u64) -> String {
    match ms {
        0..60_000 => format!("{}.{:03}s", ms / 1000, ms % 1000),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), duration)
}

/// The summary, ending in a newline.
pub fn render(report: &RunReport) -> String {
    let r = report;
    let mut out = String::new();
    let _ = writeln!(out, "mkplan run report: {}", r.plan.name);
    if r.run.rehearsal {
        let _ = writeln!(
            out,
            "  *** REHEARSAL: simulated host, nothing real was changed ***"
        );
    }
    let _ = writeln!(out, "  run       {}", r.run.id);
    let _ = writeln!(out, "  outcome   {}", r.run.outcome.to_uppercase());
    if !r.run.outcome_detail.is_empty() {
        let _ = writeln!(out, "            {}", r.run.outcome_detail);
    }
    if let Some(f) = &r.run.failure {
        let what = if f.denied { "denied" } else { "failed" };
        let _ = writeln!(
            out,
            "            {} `{}` {what}: {}",
            f.step, f.name, f.reason
        );
    }
    let _ = writeln!(
        out,
        "  change    {} — {} (approvers: {})",
        r.plan.change_ticket,
        r.plan.change_summary,
        r.plan.approvers.join(", ")
    );
    let _ = writeln!(out, "  plan      {} sha256 {}", r.plan.path, r.plan.sha256);
    let _ = writeln!(
        out,
        "  host      {} (kernel {}), root {}",
        r.host.hostname, r.host.kernel_release, r.host.root
    );
    let _ = writeln!(out, "  operator  {}", r.run.operator);
    let _ = writeln!(
        out,
        "  time      {} → {} ({})",
        r.run.started,
        or_dash(r.run.ended.as_deref()),
        ms(r.run.duration_ms)
    );
    let downtime = if r.downtime.units.is_empty() {
        "none (no service stopped)".to_owned()
    } else {
        format!(
            "{} ({} → {}, {} unit(s))",
            ms(r.downtime.duration_ms),
            or_dash(r.downtime.first_stopped.as_deref()),
            or_dash(r.downtime.last_started.as_deref()),
            r.downtime.units.len()
        )
    };
    let _ = writeln!(out, "  downtime  {downtime}");
    let _ = writeln!(
        out,
        "  signed    {} {} ({})",
        r.signing.method,
        r.signing.key.as_deref().unwrap_or("key"),
        r.signing.algorithm
    );
    let _ = writeln!(
        out,
        "  journal   {}: {} events, head {}",
        r.journal.path, r.journal.events, r.journal.head
    );

    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nWARNINGS");
        for w in &r.warnings {
            let _ = writeln!(out, "  ! {w}");
        }
    }

    let _ = writeln!(out, "\nAPPROVALS");
    if r.approvals.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for a in &r.approvals {
        let _ = writeln!(
            out,
            "  {} `{}`: {} ({}) at {}, shown sha256 {}",
            a.checkpoint,
            a.checkpoint_name,
            a.approver,
            a.how(),
            a.time,
            a.shown_sha256
        );
    }
    for a in &r.refused_approvals {
        let _ = writeln!(
            out,
            "  {} refused `{}` ({}) at {}: {}",
            a.checkpoint, a.approver, a.method, a.time, a.reason
        );
    }

    for t in &r.tokens {
        token(&mut out, t);
    }

    let _ = writeln!(out, "\nSTEPS");
    let width = r
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    for s in &r.steps {
        let name: String = s.name.chars().take(width).collect();
        let _ = writeln!(
            out,
            "  {:<10} {:<width$}  {:<17} {:<11} {:>8}  {}",
            s.position,
            name,
            s.kind,
            s.status,
            ms(s.duration_ms),
            s.summary
        );
    }
    out
}

fn apqns(out: &mut String, title: &str, table: Option<&ApqnTable>) {
    let Some(t) = table else {
        let _ = writeln!(out, "    {title}: no reading");
        return;
    };
    let _ = writeln!(out, "    {title} ({} {} at {}):", t.step, t.source, t.time);
    for a in &t.apqns {
        let offline = if a.online && a.config && !a.chkstop {
            ""
        } else {
            "  (offline, unconfigured or checkstopped)"
        };
        // A CCA card has no EP11 WK: one line per MK type its `mkvps` shows.
        if !a.cca.is_empty() {
            let _ = writeln!(out, "      {} {}{offline}", a.apqn, a.card_type);
            for mk in &a.cca {
                let _ = writeln!(
                    out,
                    "        {:<4}  CUR {} {}  NEW {} {}  OLD {} {}",
                    mk.mk,
                    mk.cur_state,
                    or_dash(mk.cur_mkvp.as_deref()),
                    mk.new_state,
                    or_dash(mk.new_mkvp.as_deref()),
                    mk.old_state,
                    or_dash(mk.old_mkvp.as_deref()),
                );
            }
            continue;
        }
        let _ = writeln!(
            out,
            "      {} {}  CUR {} {}  NEW {} {}{}",
            a.apqn,
            a.card_type,
            a.cur_state,
            or_dash(a.cur_wkvp.as_deref()),
            a.new_state,
            or_dash(a.new_wkvp.as_deref()),
            offline
        );
    }
}

fn inventory(inv: Option<&InventoryFacts>) -> String {
    inv.map_or_else(
        || "not probed".to_owned(),
        |i| format!("{} objects, {} keys ({})", i.objects, i.keys, i.step),
    )
}

/// The state the run left the token in.
fn end_of_run(out: &mut String, t: &TokenReport) {
    let Some(end) = &t.end else {
        let _ = writeln!(out, "    end of run: no end state recorded");
        return;
    };
    let title = match &end.restored_by {
        Some(restore) => {
            format!("APQNs at the end of the run (after {restore} restored the backup)")
        }
        None => "APQNs at the end of the run".to_owned(),
    };
    match (&end.apqns, &end.apqns_not_read) {
        (Some(table), _) => apqns(out, &title, Some(table)),
        (None, reason) => {
            let _ = writeln!(
                out,
                "    {title}: NOT READ ({})",
                or_dash(reason.as_deref())
            );
        }
    }
    match (&end.keys, &end.keys_not_read) {
        (Some(k), _) => {
            let _ = writeln!(
                out,
                "    keys at the end: {} of {} usable, {} unusable, {} not exercised",
                k.usable, k.keys, k.unusable, k.not_exercised
            );
        }
        (None, reason) => {
            let _ = writeln!(
                out,
                "    keys at the end: NOT PROBED ({})",
                or_dash(reason.as_deref())
            );
        }
    }
}

fn token(out: &mut String, t: &TokenReport) {
    let _ = writeln!(
        out,
        "\nTOKEN {} (slot {}, store {})",
        t.token, t.slot, t.store
    );
    let _ = writeln!(
        out,
        "    {} current {}  new {}",
        t.pattern_label(),
        t.wkvp_current,
        t.wkvp_new
    );
    apqns(out, "APQNs before the migration", t.apqns_before.as_ref());
    if t.apqns_after.is_some() || t.end.is_none() {
        apqns(out, "APQNs after activation", t.apqns_after.as_ref());
    }
    end_of_run(out, t);
    match &t.backup {
        Some(b) => {
            let _ = writeln!(
                out,
                "    backup    {} sha256 {} ({} bytes, {} files, {})",
                b.archive,
                b.archive_sha256,
                b.archive_bytes,
                b.files,
                if b.verified {
                    "verified"
                } else {
                    "NOT verified"
                }
            );
        }
        None => {
            let _ = writeln!(out, "    backup    none in this run");
        }
    }
    match &t.migration {
        Some(m) => {
            let _ = writeln!(
                out,
                "    migrate   {}: {} of {} keys re-enciphered, exit {}, {}{}",
                m.status,
                m.keys_reenciphered
                    .map_or("-".to_owned(), |n| n.to_string()),
                m.keys_started.map_or("-".to_owned(), |n| n.to_string()),
                m.exit_code.map_or("-".to_owned(), |c| c.to_string()),
                ms(m.duration_ms),
                m.error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" — {e}"))
            );
        }
        None => {
            let _ = writeln!(out, "    migrate   not in this run");
        }
    }
    if let Some(r) = &t.restore {
        let _ = writeln!(
            out,
            "    restore   {} {} ({}): {}",
            r.step,
            r.status,
            r.action.as_deref().unwrap_or("no action"),
            r.detail
        );
    }
    let _ = writeln!(
        out,
        "    keys      before: {}",
        inventory(t.inventory_before.as_ref())
    );
    let _ = writeln!(
        out,
        "              after:  {}",
        inventory(t.inventory_after.as_ref())
    );
    if let Some(c) = &t.comparison {
        let verdict = if c.ok {
            format!("same keys, all usable ({} re-enciphered)", c.reenciphered)
        } else {
            format!(
                "DIFFERENT: {} missing, {} extra, {} no longer usable",
                c.missing.len(),
                c.extra.len(),
                c.newly_unusable.len()
            )
        };
        let _ = writeln!(out, "              {verdict}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_one_form_per_range() {
        assert_eq!(duration(0), "0.000s");
        assert_eq!(duration(1_234), "1.234s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(3_720_000), "1h02m");
    }
}

//! The recap table at the end of a run, from the journal's replayed state.

use std::io::Write;

use crate::globals::LogFormat;
use mkplan_engine::state::{RunState, StepStatus};
use mkplan_plan::Plan;

/// The recap table, from the journal's replayed state.
pub fn print_recap(plan: &Plan, state: &RunState, format: LogFormat) {
    let mut rows = Vec::new();
    for step in plan.all_steps() {
        let section = step.section;
        let record = state.record(section, step.index);
        let (status, detail) = match record.map(|r| &r.status) {
            Some(StepStatus::Succeeded { summary, .. }) => ("ok", summary.clone()),
            Some(StepStatus::Failed { error, .. }) => ("failed", error.clone()),
            Some(StepStatus::Skipped { reason }) => ("skipped", reason.clone()),
            Some(StepStatus::Started { .. })
                if state
                    .parked()
                    .is_some_and(|p| (p.step.section, p.step.index) == (section, step.index)) =>
            {
                (
                    "parked",
                    "parked: waiting for work outside this host".to_owned(),
                )
            }
            Some(StepStatus::Started { .. }) => {
                ("uncertain", "started, no outcome recorded".to_owned())
            }
            None => ("-", String::new()),
        };
        let duration = record.and_then(|r| r.duration_ms);
        rows.push((
            mkplan_engine::events::StepRef::of(step),
            status,
            duration,
            detail,
        ));
    }
    let mut out = std::io::stdout().lock();
    if format == LogFormat::Json {
        let json: Vec<_> = rows
            .iter()
            .map(|(s, status, d, detail)| serde_json::json!({"step": s.position(), "name": s.name, "kind": s.kind, "status": status, "duration_ms": d, "detail": detail}))
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"recap": json, "run": state.run_id, "state": state.state_name()})
        );
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.0.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    let _ = writeln!(
        out,
        "\n{}RECAP  run {}  {}",
        if state.rehearsal { "REHEARSAL " } else { "" },
        state.run_id,
        state.state_name()
    );
    let _ = writeln!(
        out,
        "  {:<11} {:<width$}  {:<17} {:<9} {:>8}",
        "STEP", "NAME", "KIND", "STATUS", "TIME"
    );
    let mut counts = std::collections::BTreeMap::new();
    for (step, status, duration, _) in &rows {
        *counts.entry(*status).or_insert(0) += 1;
        let name: String = step.name.chars().take(width).collect();
        let time = duration
            .map(|d| format!("{:.1}s", d as f64 / 1000.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<11} {:<width$}  {:<17} {:<9} {:>8}",
            step.position(),
            name,
            step.kind,
            status,
            time
        );
    }
    let totals: Vec<String> = counts
        .iter()
        .map(|(k, v)| format!("{v} {}", if *k == "-" { "not reached" } else { k }))
        .collect();
    let _ = writeln!(out, "  totals: {}", totals.join(", "));
}

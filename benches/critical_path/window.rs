//! Taking a rehearsal's downtime window apart: `report.json` says when the first unit
//! stopped and the last one started; `journal.jsonl` says when each step started and ended,
//! how long the migration tool ran, and how big each journal line was.
//!
//! Every millisecond of the window is given to exactly one part: the overlap of each step's
//! interval (its `step_started` to its outcome event, journal time stamps) with the window,
//! by step kind, and what is left — time between steps — to the executor.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::results::{Gap, RehearsalRun};

/// The parts of the window, in the order the report lists them. The first four are the
/// work a shell runbook would also do (or, for the TKE operator, a person); the rest is what
/// mkplan adds.
pub const PARTS: [(&str, &str); 9] = [
    ("tool", "pkcsep11_migrate stand-in (the tool run)"),
    ("archive", "archive I/O (`backup` and `restore` steps)"),
    ("units", "unit stop/start (simulated systemctl)"),
    (
        "operator",
        "simulated TKE operator (checkpoint shown → approved)",
    ),
    (
        "migrate_other",
        "`migrate` step outside the tool (preflight, output parsing)",
    ),
    (
        "probe_keys",
        "`probe_keys` step (key inventory through simulated PKCS#11)",
    ),
    (
        "checkpoints",
        "`checkpoint` steps besides the operator (showing it, the `until` check)",
    ),
    (
        "other_steps",
        "other steps (`assert_wk`, `set_expected_wkvp`)",
    ),
    (
        "between_steps",
        "between steps (journal append + fdatasync, state, log)",
    ),
];

/// Parts that are not overhead.
pub const WORK: [&str; 4] = ["tool", "archive", "units", "operator"];

fn millis(text: &str) -> Result<i64> {
    let ts: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("time stamp `{text}`"))?;
    Ok(ts.as_millisecond())
}

struct Span {
    label: String,
    kind: String,
    start: i64,
    end: i64,
    tool_ms: Option<f64>,
    /// The step's own `duration_ms` (its body, timed by the executor).
    duration_ms: f64,
    /// For a checkpoint: from `checkpoint_shown` to the last `checkpoint_approved`, the
    /// (simulated) operator's time.
    operator: Option<(i64, i64)>,
    end_line_bytes: usize,
}

fn spans(journal: &str) -> Result<Vec<Span>> {
    let mut open: HashMap<(String, u64), i64> = HashMap::new();
    let mut shown: HashMap<(String, u64), (i64, Option<i64>)> = HashMap::new();
    let mut out = Vec::new();
    for line in journal.lines() {
        let e: Value = serde_json::from_str(line).context("journal line")?;
        let kind = e["kind"].as_str().unwrap_or_default();
        let step = &e["data"]["step"];
        let key = (
            step["section"].as_str().unwrap_or_default().to_owned(),
            step["index"].as_u64().unwrap_or_default(),
        );
        let time = millis(e["time"].as_str().unwrap_or_default())?;
        match kind {
            "step_started" => {
                open.insert(key, time);
            }
            "checkpoint_shown" => {
                shown.entry(key).or_insert((time, None));
            }
            "checkpoint_approved" => {
                if let Some(s) = shown.get_mut(&key) {
                    s.1 = Some(time);
                }
            }
            "step_succeeded" | "step_failed" | "step_skipped" => {
                let Some(start) = open.remove(&key) else {
                    continue;
                };
                let step_kind = step["kind"].as_str().unwrap_or_default().to_owned();
                let tool_ms = (step_kind == "migrate")
                    .then(|| e["data"]["data"]["duration_ms"].as_f64())
                    .flatten();
                out.push(Span {
                    label: format!("{}[{}] {step_kind}", key.0, key.1),
                    kind: step_kind,
                    start,
                    end: time,
                    tool_ms,
                    duration_ms: e["data"]["duration_ms"].as_f64().unwrap_or(0.0),
                    operator: shown.remove(&key).and_then(|(a, b)| b.map(|b| (a, b))),
                    end_line_bytes: line.len() + 1,
                });
            }
            _ => {}
        }
    }
    out.sort_by_key(|s| s.start);
    Ok(out)
}

fn part_of(kind: &str) -> &'static str {
    match kind {
        "stop" | "start" => "units",
        "backup" | "restore" => "archive",
        "migrate" => "migrate_other",
        "probe_keys" => "probe_keys",
        "checkpoint" => "checkpoints",
        _ => "other_steps",
    }
}

/// Analyses the one run in `state_dir/runs/`.
pub fn analyse(state_dir: &Path, process_ms: f64, load_1m: Option<f64>) -> Result<RehearsalRun> {
    let runs = state_dir.join("runs");
    let mut dirs: Vec<_> = fs::read_dir(&runs)
        .with_context(|| format!("list `{}`", runs.display()))?
        .collect::<Result<_, _>>()?;
    if dirs.len() != 1 {
        bail!("expected one run in `{}`", runs.display());
    }
    let dir = dirs.remove(0).path();
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).with_context(|| format!("read `{}`", path.display()))
    };
    let report: Value = serde_json::from_str(&read("report.json")?).context("report.json")?;
    let down = &report["downtime"];
    let (Some(first), Some(last)) = (
        down["first_stopped"].as_str(),
        down["last_started"].as_str(),
    ) else {
        bail!("report.json has no downtime window");
    };
    let (w0, w1) = (millis(first)?, millis(last)?);
    let window = (w1 - w0) as f64;
    let spans = spans(&read("journal.jsonl")?)?;

    let mut parts: HashMap<&str, f64> = HashMap::new();
    let mut inside = 0.0;
    let mut gaps: Vec<Gap> = Vec::new();
    for (k, span) in spans.iter().enumerate() {
        let clip = |a: i64, b: i64| (b.min(w1) - a.max(w0)).max(0) as f64;
        let overlap = clip(span.start, span.end);
        inside += overlap;
        match (span.tool_ms, span.operator) {
            (Some(tool), _) => {
                let tool = tool.min(overlap);
                *parts.entry("tool").or_default() += tool;
                *parts.entry("migrate_other").or_default() += overlap - tool;
            }
            (None, Some((shown, approved))) => {
                let operator = clip(shown, approved).min(overlap);
                *parts.entry("operator").or_default() += operator;
                *parts.entry(part_of(&span.kind)).or_default() += overlap - operator;
            }
            (None, None) => *parts.entry(part_of(&span.kind)).or_default() += overlap,
        }
        if let Some(next) = spans.get(k + 1) {
            let gap = (next.start.min(w1) - span.end.max(w0)).max(0) as f64;
            if gap > 0.0 {
                gaps.push(Gap {
                    after: span.label.clone(),
                    ms: gap,
                    journal_line_bytes: span.end_line_bytes,
                });
            }
        }
    }
    parts.insert("between_steps", (window - inside).max(0.0));
    let overhead_ms: f64 = PARTS
        .iter()
        .filter(|(id, _)| !WORK.contains(id))
        .map(|(id, _)| parts.get(id).copied().unwrap_or(0.0))
        .sum();
    let pct = |ms: f64| {
        if window > 0.0 {
            ms / window * 100.0
        } else {
            0.0
        }
    };
    Ok(RehearsalRun {
        run_id: report["run"]["id"].as_str().unwrap_or_default().to_owned(),
        outcome: report["run"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        process_ms,
        load_1m,
        window_ms: window,
        parts: PARTS
            .iter()
            .map(|(id, _)| ((*id).to_owned(), parts.get(id).copied().unwrap_or(0.0)))
            .collect(),
        overhead_ms,
        overhead_pct: pct(overhead_ms),
        between_steps_pct: pct(parts["between_steps"]),
        steps: spans
            .iter()
            .map(|s| (s.label.clone(), s.duration_ms))
            .collect(),
        gaps: {
            gaps.sort_by(|a, b| b.ms.total_cmp(&a.ms));
            gaps
        },
    })
}

//! Application downtime from the `stop` and `start` steps' unit records: per unit from its
//! stop to its next start, and the window from the first stop to the last start.

use std::collections::BTreeMap;

use crate::model::{Downtime, UnitDowntime};
use crate::timeline::{Timeline, millis_between, plan_step};
use mkplan_engine::clock;
use mkplan_engine::record::Record;
use mkplan_engine::record::services::{StartOutput, StopOutput};
use mkplan_plan::model::{Plan, StepKind};

/// First unit stopped to last started, per unit in the order they were stopped. Only units
/// this run found active and stopped count: stopping a stopped unit causes no downtime.
pub(crate) fn downtime(
    plan: &Plan,
    timeline: &Timeline<'_>,
    warnings: &mut Vec<String>,
) -> Downtime {
    let mut units: Vec<UnitDowntime> = Vec::new();
    // unit → index in `units` of its open (not yet started) entry
    let mut down: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in &timeline.outcomes {
        let Some(step) = plan_step(plan, outcome.step) else {
            continue;
        };
        match &step.kind {
            StepKind::Stop(service) => {
                let stopped = StopOutput::of(&outcome.output).map_or(&[][..], |s| &s.units[..]);
                for unit in stopped {
                    let Some(stopped_at) = unit.stopped_at.clone() else {
                        continue;
                    };
                    if (unit.was_active || unit.stop_failed) && !down.contains_key(&unit.unit) {
                        down.insert(unit.unit.clone(), units.len());
                        units.push(UnitDowntime {
                            service: service.to_string(),
                            unit: unit.unit.clone(),
                            stopped_at: clock::normalize_or_keep(&stopped_at),
                            started_at: None,
                            duration_ms: None,
                            stop_failed: unit.stop_failed,
                        });
                    }
                }
            }
            StepKind::Start(_) => {
                let started = StartOutput::of(&outcome.output).map_or(&[][..], |s| &s.units[..]);
                for unit in started {
                    if let (Some(started_at), Some(at)) =
                        (unit.started_at.as_deref(), down.remove(&unit.unit))
                    {
                        let started_at = clock::normalize_or_keep(started_at);
                        let entry = &mut units[at];
                        entry.duration_ms = millis_between(&entry.stopped_at, &started_at);
                        entry.started_at = Some(started_at);
                    }
                }
            }
            _ => {}
        }
    }
    for unit in &units {
        if unit.started_at.is_none() {
            warnings.push(format!(
                "unit `{}` (service `{}`) was stopped at {} and not started again by this run",
                unit.unit, unit.service, unit.stopped_at
            ));
        }
    }
    let first_stopped = units.first().map(|u| u.stopped_at.clone());
    let last_started = units
        .iter()
        .filter_map(|u| u.started_at.clone())
        .max_by(|a, b| {
            let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
            parse(a).cmp(&parse(b)).then_with(|| a.cmp(b))
        });
    let all_started = units.iter().all(|u| u.started_at.is_some());
    let duration_ms = match (&first_stopped, &last_started) {
        (Some(from), Some(to)) if all_started => millis_between(from, to),
        _ => None,
    };
    Downtime {
        first_stopped,
        last_started,
        duration_ms,
        units,
    }
}

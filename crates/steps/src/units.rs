//! The units of a service group, and what `stop` and `start` share: asking whether a unit
//! is active, changing it and waiting until it is, and which units this run stopped (known
//! from the journal, so `start` in `always` starts only those).

use std::time::{Duration, Instant};

use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::host::{HostActions, HostView, PortError, ServiceUnit, ServiceVerb};
use mkplan_engine::record::Record;
use mkplan_engine::record::services::StopOutput;
use mkplan_engine::state::RunState;
use mkplan_plan::model::KindName;
use mkplan_plan::model::{Plan, Section, Service, ServiceControl, ServiceId, StepKind};

/// How long stopping or starting a group may take when the step sets no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

/// Why a unit could not be asked, changed or brought to the wanted state.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Host(#[from] PortError),
    #[error("the {verb} command of `{unit}` exited {code}")]
    Exited {
        verb: &'static str,
        unit: String,
        code: i32,
    },
    #[error("`{unit}` is still {state} when the step's time ran out")]
    TimedOut { unit: String, state: &'static str },
}

/// One thing that is stopped and started: a systemd unit, or a command-driven service.
pub struct Unit<'p> {
    pub name: String,
    control: &'p ServiceControl,
}

pub fn units(service: &Service) -> Vec<Unit<'_>> {
    match &service.control {
        ServiceControl::Systemd(list) => list
            .iter()
            .map(|u| Unit {
                name: u.clone(),
                control: &service.control,
            })
            .collect(),
        ServiceControl::Commands { .. } => vec![Unit {
            name: service.id.to_string(),
            control: &service.control,
        }],
    }
}

impl Unit<'_> {
    /// The unit as the host runs its commands: without the plan's PIN variables.
    fn port<'u>(&'u self, scrub_env: &'u [&'u str]) -> ServiceUnit<'u> {
        ServiceUnit {
            name: &self.name,
            control: self.control,
            scrub_env,
        }
    }

    pub fn is_active(
        &self,
        host: &dyn HostView,
        plan: &Plan,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<bool, UnitError> {
        let scrub = plan.pin_variables();
        Ok(host.service_active(&self.port(&scrub), deadline, cancel)?)
    }

    /// Runs `verb`, then polls is-active until the unit is in the wanted state.
    pub fn change(
        &self,
        host: &dyn HostActions,
        plan: &Plan,
        verb: ServiceVerb,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<(), UnitError> {
        let scrub = plan.pin_variables();
        let name = match verb {
            ServiceVerb::Stop => "stop",
            ServiceVerb::Start => "start",
        };
        let code = host.change_service(&self.port(&scrub), verb, deadline, cancel)?;
        if code != 0 {
            return Err(UnitError::Exited {
                verb: name,
                unit: self.name.clone(),
                code,
            });
        }
        let want_active = verb == ServiceVerb::Start;
        loop {
            if self.is_active(host, plan, deadline, cancel)? == want_active {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(UnitError::TimedOut {
                    unit: self.name.clone(),
                    state: if want_active { "not active" } else { "active" },
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The stop step of `id` at this journal position, if that is what it is.
fn stops(plan: &Plan, section: Section, index: usize, id: &ServiceId) -> bool {
    matches!(plan.step_at(section, index).map(|s| &s.kind), Some(StepKind::Stop(stopped)) if stopped == id)
}

/// The units of `id` this run stopped (and that were running), in stop order: those its
/// `stop` steps recorded, and those any attempt announced before it was cut short.
pub fn stopped_by_run(plan: &Plan, state: &RunState, id: &ServiceId) -> Option<Vec<String>> {
    let mut found = false;
    let mut names = Vec::new();
    for ((section, index), unit) in &state.units_stopping {
        if stops(plan, *section, *index, id) && !names.contains(unit) {
            names.push(unit.clone());
        }
    }
    for record in state.started_of_kind(KindName::Stop) {
        if !stops(plan, record.step.section, record.step.index, id) {
            continue;
        }
        found = true;
        let units = record
            .status
            .output()
            .and_then(StopOutput::of)
            .map_or(&[][..], |stop| &stop.units[..]);
        for unit in units.iter().filter(|u| u.was_active) {
            if !names.contains(&unit.unit) {
                names.push(unit.unit.clone());
            }
        }
    }
    found.then_some(names)
}

//! Stopping, starting and querying a service: `systemctl` for a systemd unit, or the plan's
//! own commands for a command-driven service, each found under the host root and run with
//! the plan's PIN variables removed from its environment (services started from here must
//! not keep a PIN for their lifetime).

use std::process::Command;
use std::time::Instant;

use crate::{process, tools};
use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::host::{OnCancel, PortError, ServiceUnit, ServiceVerb};
use mkplan_engine::ports::root::HostRoot;
use mkplan_plan::model::ServiceControl;

/// What is asked of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Stop,
    Start,
    IsActive,
}

impl From<ServiceVerb> for Verb {
    fn from(verb: ServiceVerb) -> Self {
        match verb {
            ServiceVerb::Stop => Verb::Stop,
            ServiceVerb::Start => Verb::Start,
        }
    }
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Stop => "stop",
            Verb::Start => "start",
            Verb::IsActive => "is-active",
        }
    }
}

fn command(root: &HostRoot, unit: &ServiceUnit<'_>, verb: Verb) -> Result<Command, PortError> {
    let argv: Vec<String> = match unit.control {
        ServiceControl::Systemd(_) => {
            let mut argv = vec!["systemctl".to_owned(), verb.name().to_owned()];
            if verb == Verb::IsActive {
                argv.push("--quiet".to_owned());
            }
            argv.push(unit.name.to_owned());
            argv
        }
        ServiceControl::Commands {
            stop,
            start,
            is_active,
        } => match verb {
            Verb::Stop => stop.clone(),
            Verb::Start => start.clone(),
            Verb::IsActive => is_active.clone(),
        },
    };
    let program = tools::resolve(root, &argv[0])?;
    let mut command = Command::new(program);
    command.args(&argv[1..]);
    for name in unit.scrub_env {
        command.env_remove(name);
    }
    Ok(command)
}

/// Runs the unit's `verb` command to its end (waited for on a stop request); its exit code.
pub(crate) fn run(
    root: &HostRoot,
    unit: &ServiceUnit<'_>,
    verb: Verb,
    deadline: Instant,
    cancel: &Cancel,
) -> Result<i32, PortError> {
    let finished = process::run(
        command(root, unit, verb)?,
        Some(deadline),
        cancel,
        OnCancel::Wait,
        &mut || {},
    )
    .map_err(|e| {
        PortError::new(format!(
            "cannot run the {} command of `{}`: {e}",
            verb.name(),
            unit.name
        ))
    })?;
    if finished.timed_out {
        return Err(PortError::new(format!(
            "the {} command of `{}` did not finish in time",
            verb.name(),
            unit.name
        )));
    }
    Ok(finished.exit_code.unwrap_or(-1))
}

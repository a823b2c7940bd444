//! The `systemctl` and `pkcsslotd` stand-ins, the stand-in for a plan's own service commands,
//! and fault bookkeeping. `systemctl` knows this root's simulated units and `pkcsslotd`
//! (`pkcsslotd.service`): `start`, `stop`, `restart`, `is-active [--quiet]` and a short
//! `status`, with systemd's exit codes (0; 3 = not active; 5 = no such unit).

use std::path::Path;

use crate::procs::spawn_helper;
use crate::state::{self, SimState};
use crate::{Fault, SimError, process_main, procs};

const SLOTD_UNIT: &str = "pkcsslotd.service";

fn err(line: &str) {
    eprintln!("{line}");
}

/// systemd appends `.service` to a name without a unit type.
fn unit_name(name: &str) -> String {
    let types = [
        ".service", ".socket", ".target", ".timer", ".scope", ".mount", ".path",
    ];
    if types.iter().any(|t| name.ends_with(t)) {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

fn wont_stop(faults: &[Fault], unit: &str) -> bool {
    faults
        .iter()
        .any(|f| matches!(f, Fault::UnitWontStop(u) if unit_name(u) == unit || u == unit))
}

/// `systemctl VERB [--quiet] UNIT…` for this root.
pub(crate) fn systemctl_main(root: &Path, args: &[String]) -> i32 {
    let mut quiet = false;
    let mut words = Vec::new();
    for arg in args {
        match arg.as_str() {
            "-q" | "--quiet" => quiet = true,
            "--no-pager" | "--no-block" | "--no-ask-password" | "--system" | "--no-legend" => {}
            other if other.starts_with('-') => {
                err(&format!("systemctl: unrecognized option '{other}'"));
                return 1;
            }
            other => words.push(other.to_owned()),
        }
    }
    let Some((verb, units)) = words.split_first() else {
        err("systemctl (mkplan-sim stand-in): a verb and a unit are needed");
        return 1;
    };
    if units.is_empty() {
        err(&format!("Too few arguments for `{verb}`."));
        return 1;
    }
    let state = match state::load(root) {
        Ok(state) => state,
        Err(e) => {
            err(&format!("systemctl (mkplan-sim stand-in): {e}"));
            return 1;
        }
    };
    let faults = state::faults(root).unwrap_or_default();
    let mut worst = 0;
    for unit in units.iter().map(|u| unit_name(u)) {
        let known = unit == SLOTD_UNIT || state.units.contains(&unit);
        let code = match verb.as_str() {
            "start" | "stop" | "restart" if !known => {
                let what = if verb == "stop" {
                    "not loaded"
                } else {
                    "not found"
                };
                err(&format!("Failed to {verb} {unit}: Unit {unit} {what}."));
                5
            }
            "start" => start(root, &state, &unit),
            "stop" => stop(root, &faults, &unit),
            "restart" => match stop(root, &faults, &unit) {
                0 => start(root, &state, &unit),
                code => code,
            },
            "is-active" => {
                let active = known && running(root, &unit);
                if !quiet {
                    println!("{}", if active { "active" } else { "inactive" });
                }
                if active { 0 } else { 3 }
            }
            "status" => {
                let active = known && running(root, &unit);
                if !quiet {
                    let state = if active {
                        "active (running)"
                    } else {
                        "inactive (dead)"
                    };
                    println!("● {unit} - simulated by mkplan-sim\n     Active: {state}");
                }
                match (known, active) {
                    (false, _) => 4,
                    (true, true) => 0,
                    (true, false) => 3,
                }
            }
            other => {
                err(&format!(
                    "Unknown command verb '{other}' (mkplan-sim stand-in)."
                ));
                1
            }
        };
        worst = worst.max(code);
    }
    worst
}

fn running(root: &Path, unit: &str) -> bool {
    if unit == SLOTD_UNIT {
        procs::slotd_running(root).is_some()
    } else {
        procs::unit_pid(root, unit).is_some()
    }
}

fn start(root: &Path, state: &SimState, unit: &str) -> i32 {
    let started = if unit == SLOTD_UNIT {
        procs::start_slotd(root).map(drop)
    } else if procs::unit_pid(root, unit).is_some() {
        Ok(())
    } else {
        procs::spawn_unit(root, &state.sim_exe, Some(unit)).map(drop)
    };
    match started {
        Ok(()) => 0,
        Err(e) => {
            err(&format!(
                "Job for {unit} failed because the control process exited with error code ({e})."
            ));
            1
        }
    }
}

fn stop(root: &Path, faults: &[Fault], unit: &str) -> i32 {
    if wont_stop(faults, unit) && running(root, unit) {
        err(&format!(
            "Job for {unit} failed because a timeout was exceeded."
        ));
        err(&format!(
            "See \"systemctl status {unit}\" and \"journalctl -xeu {unit}\" for details."
        ));
        return 1;
    }
    let stopped = if unit == SLOTD_UNIT {
        procs::stop_slotd(root)
    } else {
        procs::stop_unit(root, unit)
    };
    if stopped { 0 } else { 1 }
}

/// A plan's own service command (`services: {x: {command: {stop, start, is_active}}}`),
/// recognised by its program's file name and its arguments.
pub(crate) fn service_command_main(root: &Path, invoked: &Path, args: &[String]) -> i32 {
    let name = invoked.file_name().unwrap_or_default();
    let state = match state::load(root) {
        Ok(state) => state,
        Err(e) => {
            err(&format!(
                "{}: (mkplan-sim stand-in) {e}",
                name.to_string_lossy()
            ));
            return 1;
        }
    };
    let matches = |argv: &[String]| {
        argv.first().and_then(|p| Path::new(p).file_name()) == Some(name) && argv[1..] == *args
    };
    for service in &state.commands {
        let unit = service.name.as_str();
        if matches(&service.stop) {
            let faults = state::faults(root).unwrap_or_default();
            if wont_stop(&faults, unit) && procs::unit_pid(root, unit).is_some() {
                err(&format!("{unit}: did not stop in time"));
                return 1;
            }
            return if procs::stop_unit(root, unit) { 0 } else { 1 };
        }
        if matches(&service.start) {
            return start(root, &state, unit);
        }
        if matches(&service.is_active) {
            return if procs::unit_pid(root, unit).is_some() {
                0
            } else {
                3
            };
        }
    }
    // Any other use of a service's program (a health check, a self-test) is answered by
    // whether that service runs: all a simulated service can truthfully say.
    let owner = state.commands.iter().find(|service| {
        [&service.stop, &service.start, &service.is_active]
            .iter()
            .any(|argv| argv.first().and_then(|p| Path::new(p).file_name()) == Some(name))
    });
    let Some(service) = owner else {
        err(&format!(
            "{} {}: not a command of any simulated service (mkplan-sim stand-in)",
            name.to_string_lossy(),
            args.join(" ")
        ));
        return 1;
    };
    let running = procs::unit_pid(root, &service.name).is_some();
    println!(
        "{} {}: simulated; service `{}` is {}",
        name.to_string_lossy(),
        args.join(" "),
        service.name,
        if running { "running" } else { "not running" }
    );
    if running { 0 } else { 3 }
}

/// `pkcsslotd`: started in the foreground, it starts its daemon copy and exits once that has
/// written its pid file; the copy (marked by an environment variable) serves until SIGTERM.
pub(crate) fn slotd_main(root: &Path) -> i32 {
    let result = if std::env::var_os(procs::SLOTD_DAEMON_ENV).is_some() {
        process_main::slotd_main(root)
    } else {
        procs::start_slotd(root).map(drop)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            err(&format!("pkcsslotd (mkplan-sim stand-in): {e}"));
            1
        }
    }
}

fn same_kind(a: &Fault, b: &Fault) -> bool {
    match (a, b) {
        (Fault::UnitWontStop(x), Fault::UnitWontStop(y)) => x == y,
        (Fault::InterruptedRead(x), Fault::InterruptedRead(y)) => x.apqn == y.apqn,
        (Fault::MkChangeRefuseInitiate(x), Fault::MkChangeRefuseInitiate(y)) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

pub(crate) fn set_fault(root: &Path, fault: Fault) -> Result<(), SimError> {
    let state = {
        let lock = state::lock(root)?;
        let state = state::load(root)?;
        let mut faults = state::faults(root)?;
        faults.retain(|f| !same_kind(f, &fault) || *f == Fault::Stray);
        faults.push(fault.clone());
        if let Fault::InterruptedRead(spec) = &fault {
            // The fault is in the registers' state, so sysfs shows it (`readfault`).
            let mut state = state.clone();
            state.set_read_fault(spec.apqn, Some(spec.fault))?;
            crate::persist::save(root, &state, &lock)?;
        }
        state::save_faults(root, faults, &lock)?;
        state
    };
    match &fault {
        Fault::Stray => spawn_helper(root, &state.sim_exe, &["--stray"])?,
        Fault::InterruptedRead(spec) if spec.fault.reads.is_some() => {
            procs::stop_watcher(root, spec.apqn);
            spawn_helper(
                root,
                &state.sim_exe,
                &["--read-watcher", &spec.apqn.lszcrypt()],
            )?;
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn clear_faults(root: &Path) -> Result<(), SimError> {
    {
        let lock = state::lock(root)?;
        let mut state = state::load(root)?;
        let before = serde_json::to_value(&state).ok();
        state.clear_read_faults();
        if serde_json::to_value(&state).ok() != before {
            crate::persist::save(root, &state, &lock)?;
        }
        state::save_faults(root, Vec::new(), &lock)?;
    }
    procs::stop_strays(root);
    procs::stop_watchers(root);
    Ok(())
}

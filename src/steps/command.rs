//! `command`: run a program (argv, no shell unless `shell: true`), with extra environment,
//! accepted exit codes, and bounded output kept in the journal. The dry run executes it only
//! when it is marked `read_only`.

use std::process::Command;

use serde_json::json;

use crate::engine::cancel::Cancel;
use crate::engine::ports::root::HostRoot;
use crate::engine::record::command::Finished;
use crate::host::process::{self, OnCancel};
use crate::host::tools;
use crate::plan::model::{CommandStep, Plan};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

/// The program is found under the host root like every tool (`/` on a real system), so a
/// rehearsal can never run a real host's program by accident. `shell: true` scripts run in
/// the system's `/bin/sh`; what they call is theirs to name.
fn build(step: &CommandStep, root: &HostRoot, plan: &Plan) -> Result<Command, String> {
    let mut command = if step.shell {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(&step.argv[0]);
        c
    } else {
        let mut c = Command::new(tools::resolve(root, &step.argv[0])?);
        c.args(&step.argv[1..]);
        c
    };
    command.envs(&step.env);
    for name in plan.pin_variables() {
        command.env_remove(name);
    }
    Ok(command)
}

fn describe(step: &CommandStep) -> String {
    if step.shell {
        format!("sh -c {:?}", step.argv[0])
    } else {
        step.argv.join(" ")
    }
}

fn verdict(step: &CommandStep, finished: &Finished) -> Result<String, String> {
    if finished.timed_out {
        return Err(format!(
            "`{}` did not finish before the step's timeout and was stopped",
            describe(step)
        ));
    }
    if finished.stopped_on_request {
        return Err(format!(
            "`{}` was stopped because the run was interrupted",
            describe(step)
        ));
    }
    match finished.exit_code {
        Some(code) if step.ok_codes.iter().any(|ok| i32::from(*ok) == code) => {
            Ok(format!("`{}` exited {code}", describe(step)))
        }
        Some(code) => Err(format!(
            "`{}` exited {code} (accepted: {})",
            describe(step),
            step.ok_codes
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Err(format!(
            "`{}` was killed by signal {}",
            describe(step),
            finished.signal.unwrap_or_default()
        )),
    }
}

pub fn run(step: &CommandStep, cx: &mut RunContext<'_>) -> StepResult {
    let on_cancel = if step.read_only {
        OnCancel::Kill
    } else {
        OnCancel::Wait
    };
    let cancel = cx.cancel.clone();
    let mut waiting = false;
    let command = build(step, &cx.host.root, cx.plan).map_err(StepError::failed)?;
    let finished = process::run(command, cx.deadline, &cancel, on_cancel, &mut || {
        waiting = true
    })
    .map_err(|e| StepError::failed(format!("cannot start `{}`: {e}", describe(step))))?;
    if waiting {
        cx.notice("stop requested: waiting for the command to finish, since stopping it half-way could leave the system half-changed");
    }
    let data = json!({ "argv": step.argv, "shell": step.shell, "result": finished });
    match verdict(step, &finished) {
        Ok(summary) => Ok(StepSuccess::new(summary).with_data(data)),
        Err(message) => Err(StepError::failed_with(message, data)),
    }
}

pub fn check(step: &CommandStep, cx: &CheckContext<'_>) -> CheckReport {
    if !step.read_only {
        return CheckReport::CannotSimulate(format!(
            "`{}` may change the system (mark it `read_only: true` if it does not)",
            describe(step)
        ));
    }
    let deadline = cx.step.timeout.map(|t| std::time::Instant::now() + t);
    let command = match build(step, &cx.host.root, cx.plan) {
        Ok(command) => command,
        Err(e) => return CheckReport::Blocked(e),
    };
    match process::run(
        command,
        deadline,
        &Cancel::new(),
        OnCancel::Kill,
        &mut || {},
    ) {
        Ok(finished) => match verdict(step, &finished) {
            Ok(summary) => CheckReport::WillRun(format!("read-only, ran it: {summary}")),
            Err(problem) => CheckReport::Blocked(format!("read-only, ran it: {problem}")),
        },
        Err(e) => CheckReport::Blocked(format!("cannot start `{}`: {e}", describe(step))),
    }
}

//! `command`: run a program (argv, no shell unless `shell: true`), with extra environment,
//! accepted exit codes, and bounded output kept in the journal. The dry run executes it only
//! when it is marked `read_only`.

use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::ports::host::{CommandError, CommandSpec, OnCancel, ReadOnlyCommand};
use mkplan_engine::record::command::{CommandOutput, Finished};
use mkplan_engine::step::{CheckContext, CheckReport, Interruption, RunContext};
use mkplan_plan::model::CommandStep;

/// `command`.
pub(crate) struct CommandKind;

impl Kind for CommandKind {
    type Args = CommandStep;
    type Output = CommandOutput;

    /// A command that may change the system may have done so half-way: an operator decides.
    fn interruption(step: &CommandStep) -> Interruption {
        if step.read_only {
            Interruption::Rerun
        } else {
            Interruption::Decide
        }
    }

    fn check(step: &CommandStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &CommandStep, cx: &mut RunContext<'_>) -> KindResult<CommandOutput> {
        run(step, cx)
    }
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

fn run(step: &CommandStep, cx: &mut RunContext<'_>) -> KindResult<CommandOutput> {
    let on_cancel = if step.read_only {
        OnCancel::Kill
    } else {
        OnCancel::Wait
    };
    let cancel = cx.cancel.clone();
    let mut waiting = false;
    let command = CommandSpec::of(step, &cx.plan.pin_variables());
    let finished = cx
        .host
        .run_command(&command, cx.deadline, &cancel, on_cancel, &mut || {
            waiting = true
        })
        .map_err(|e| Failed::step(not_run(step, e)))?;
    if waiting {
        cx.notice("stop requested: waiting for the command to finish, since stopping it half-way could leave the system half-changed");
    }
    let verdict = verdict(step, &finished);
    let output = CommandOutput {
        argv: step.argv.clone(),
        shell: step.shell,
        result: finished,
    };
    match verdict {
        Ok(summary) => Ok(Done::new(summary).with(output)),
        Err(message) => Err(Failed::with(message, output)),
    }
}

/// Why the program did not run: its argv[0] is not under the host root (the program is
/// found there like every tool, so a rehearsal can never run a real host's program by
/// accident), or it could not be started.
fn not_run(step: &CommandStep, error: CommandError) -> String {
    match error {
        CommandError::NotFound(e) => e.to_string(),
        CommandError::Spawn(e) => format!("cannot start `{}`: {e}", describe(step)),
    }
}

fn check(step: &CommandStep, cx: &CheckContext<'_>) -> CheckReport {
    let Some(command) = ReadOnlyCommand::of(step, &cx.plan.pin_variables()) else {
        return CheckReport::CannotSimulate(format!(
            "`{}` may change the system (mark it `read_only: true` if it does not)",
            describe(step)
        ));
    };
    let deadline = cx.step.timeout.map(|t| std::time::Instant::now() + t);
    match cx.host.run_read_only(&command, deadline) {
        Ok(finished) => match verdict(step, &finished) {
            Ok(summary) => CheckReport::WillRun(format!("read-only, ran it: {summary}")),
            Err(problem) => CheckReport::Blocked(format!("read-only, ran it: {problem}")),
        },
        Err(e) => CheckReport::Blocked(not_run(step, e)),
    }
}

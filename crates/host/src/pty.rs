//! A tool on a pty, in its own session: what `pkcsep11_migrate` needs, since it reads the
//! PIN from its terminal with echo off (opencryptoki-ep11.md 1.3). The step's
//! [`PtyDialog`] reads each line and answers the prompt; this side only moves bytes, keeps
//! nothing of the output, and waits for the tool on the thread that started it (so the
//! parent-death signal fits its lifetime, rule 8).

use std::process::Command;
use std::time::Instant;

use rexpect::error::Error as RexpectError;
use rexpect::reader::{Options, ReadUntil};

use crate::process;
use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::host::{PtyCommand, PtyDialog, PtyError, PtyExit, Reply};

/// How long one read waits before the stop flag and the deadline are looked at again.
const READ_SLICE_MS: u64 = 250;

/// Runs `tool` to its end, or until `deadline`, when it is stopped.
pub(crate) fn run(
    tool: &PtyCommand<'_>,
    dialog: &mut dyn PtyDialog,
    deadline: Option<Instant>,
    cancel: &Cancel,
) -> Result<PtyExit, PtyError> {
    let mut command = Command::new(tool.program);
    command.args(&tool.args);
    for name in &tool.scrub_env {
        command.env_remove(name);
    }
    if let Some((name, pin)) = tool.secret_env {
        command.env(name, pin.expose());
    }
    // On its pty the tool leads its own session; it must not outlive mkplan (rule 8),
    // except the one tool that must be left to finish.
    if tool.outlives_mkplan {
        process::outlive_mkplan(&mut command);
    } else {
        process::die_with_mkplan(&mut command);
    }
    let options = Options::new().timeout_ms(Some(READ_SLICE_MS));
    let mut session = rexpect::spawn_with_options(command, options)
        .map_err(|e| PtyError::Spawn(e.to_string()))?;
    let mut told_waiting = false;
    let mut timed_out = false;
    loop {
        if cancel.requested() && !told_waiting {
            told_waiting = true;
            dialog.stop_requested();
        }
        if !tool.outlives_mkplan && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            let _ = session.process_mut().exit();
            break;
        }
        let prompts = dialog.prompts();
        let mut needles: Vec<ReadUntil> = prompts.iter().cloned().map(ReadUntil::String).collect();
        needles.push(ReadUntil::String("\n".to_owned()));
        match session.exp_any(needles) {
            Ok((before, matched)) if prompts.contains(&matched) => {
                dialog.rest(&before);
                let sent = match dialog.answer(&matched) {
                    Reply::Secret(pin, settle) => {
                        std::thread::sleep(settle);
                        session.send_line(pin.expose()).map(drop)
                    }
                    Reply::Text(text) => session.send_line(text).map(drop),
                    Reply::Eof => session.send_control('d'),
                };
                sent.map_err(|e| PtyError::SendPin(e.to_string()))?;
            }
            Ok((line, _)) => dialog.line(&line),
            Err(RexpectError::Timeout { .. }) => {}
            Err(RexpectError::EOF { got, .. }) => {
                dialog.rest(&got);
                break;
            }
            Err(e) => {
                dialog.rest(&format!("(mkplan: reading the tool's output failed: {e})"));
                break;
            }
        }
    }
    let (exit_code, signal) = match session.process().wait() {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => (Some(code), None),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
        _ => (None, None),
    };
    Ok(PtyExit {
        exit_code,
        signal,
        timed_out,
    })
}

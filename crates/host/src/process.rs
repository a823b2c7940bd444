//! Running a child process: in its own process group (a terminal's Ctrl-C reaches mkplan,
//! which decides), with bounded capture of its output, a deadline, and a stop request that a
//! key-rewriting child is allowed to ignore. Every child dies with mkplan (design rule 8):
//! a tool that outlived it would keep rewriting key objects while a later `resume` restores.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::host::OnCancel;
use mkplan_engine::record::command::{Captured, Finished};

/// How much of each output stream is kept (the start; the total size is recorded).
pub const CAPTURE_LIMIT: usize = 16 * 1024;
/// After SIGTERM, how long a child gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// Makes the child of `command` die with mkplan, whatever signals mkplan was started with:
///
/// * SIGHUP, SIGINT, SIGQUIT, SIGTERM and SIGPIPE back to their default action and no
///   signal blocked (`nohup` leaves SIGHUP ignored, and an ignored signal survives `exec`);
/// * `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills the child when the thread that forked it
///   ends, so the caller must fork from a thread that outlives the child (both spawners in
///   mkplan wait for their child on the thread that started it);
/// * and if mkplan died before that took hold (the child was re-parented already), the
///   child kills itself before `exec`.
///
/// Its own process group (or session) is up to the caller.
/// Lets the child outlive mkplan: no parent-death signal, and SIGHUP and SIGPIPE ignored
/// (ignored dispositions survive `execve`, so a closed pty cannot stop it); the rest of the
/// signals default, none blocked. Only for a tool that must never be stopped half-way.
pub fn outlive_mkplan(command: &mut Command) {
    // SAFETY: between fork and exec only async-signal-safe calls are made (sigaction,
    // sigprocmask), and no memory is allocated.
    unsafe {
        command.pre_exec(|| {
            use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
            for sig in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM] {
                signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            for sig in [Signal::SIGHUP, Signal::SIGPIPE] {
                signal(sig, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

pub fn die_with_mkplan(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: between fork and exec only async-signal-safe calls are made (sigaction,
    // sigprocmask, prctl, getppid, getpid, kill), and no memory is allocated.
    unsafe {
        command.pre_exec(move || {
            use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
            for sig in [
                Signal::SIGHUP,
                Signal::SIGINT,
                Signal::SIGQUIT,
                Signal::SIGTERM,
                Signal::SIGPIPE,
            ] {
                signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
            }
            Ok(())
        });
    }
}

/// A child that is stopped and reaped if `run` returns early, so it never outlives the
/// thread that started it.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.wait();
        }
    }
}

/// Runs `command` to completion (stdin closed), honouring `deadline` and `cancel`.
/// `on_waiting` is called once if a stop was requested and the child is being waited for.
pub fn run(
    mut command: Command,
    deadline: Option<Instant>,
    cancel: &Cancel,
    on_cancel: OnCancel,
    on_waiting: &mut dyn FnMut(),
) -> std::io::Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    die_with_mkplan(&mut command);
    let started = Instant::now();
    let mut child = Reaped(Some(command.spawn()?));
    let running = child.0.as_mut().expect("just spawned");
    let stdout = capture(running.stdout.take().expect("piped"));
    let stderr = capture(running.stderr.take().expect("piped"));
    let mut timed_out = false;
    let mut stopped_on_request = false;
    let mut told_waiting = false;
    let status = loop {
        let running = child.0.as_mut().expect("reaped only on drop");
        if let Some(status) = running.try_wait()? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            break terminate(running)?;
        }
        if cancel.requested() {
            match on_cancel {
                OnCancel::Kill => {
                    stopped_on_request = true;
                    break terminate(running)?;
                }
                OnCancel::Wait if !told_waiting => {
                    told_waiting = true;
                    on_waiting();
                }
                OnCancel::Wait => {}
            }
        }
        std::thread::sleep(POLL);
    };
    // Reaped: nothing left to stop.
    child.0 = None;
    Ok(Finished {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        stopped_on_request,
        duration_ms: started.elapsed().as_millis() as u64,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// SIGTERM to the child's process group, SIGKILL after a grace period.
fn terminate(child: &mut Child) -> std::io::Result<std::process::ExitStatus> {
    let group = rustix::process::Pid::from_raw(child.id() as i32);
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + TERM_GRACE;
    while Instant::now() < until {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(POLL);
    }
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    child.wait()
}

fn capture(mut stream: impl Read + Send + 'static) -> JoinHandle<Captured> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            let room = CAPTURE_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        Captured {
            text: String::from_utf8_lossy(&kept).into_owned(),
            truncated: total > kept.len() as u64,
            total_bytes: total,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn captures_bounded_output_and_exit_code() {
        let f = run(
            sh("head -c 100000 /dev/zero | tr '\\0' x; echo err >&2; exit 3"),
            None,
            &Cancel::new(),
            OnCancel::Kill,
            &mut || {},
        )
        .unwrap();
        assert_eq!(f.exit_code, Some(3));
        assert_eq!(f.stdout.total_bytes, 100_000);
        assert!(f.stdout.truncated && f.stdout.text.len() == CAPTURE_LIMIT);
        assert_eq!(f.stderr.text, "err\n");
    }

    #[test]
    fn a_deadline_stops_the_child() {
        let f = run(
            sh("sleep 30"),
            Some(Instant::now() + Duration::from_millis(200)),
            &Cancel::new(),
            OnCancel::Kill,
            &mut || {},
        )
        .unwrap();
        assert!(f.timed_out);
        assert!(f.duration_ms < 10_000);
    }

    #[test]
    fn a_stop_request_kills_readers_but_waits_for_writers() {
        let cancel = Cancel::new();
        cancel.request();
        let f = run(sh("sleep 30"), None, &cancel, OnCancel::Kill, &mut || {}).unwrap();
        assert!(f.stopped_on_request);
        let mut waited = false;
        let f = run(
            sh("sleep 0.3; exit 0"),
            None,
            &cancel,
            OnCancel::Wait,
            &mut || waited = true,
        )
        .unwrap();
        assert!(waited && !f.stopped_on_request);
        assert_eq!(f.exit_code, Some(0));
    }
}

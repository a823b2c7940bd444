//! The person at the controlling terminal, as an [`Operator`]: prompts happen only when
//! there is one, and every prompt has a deadline, so nothing ever hangs waiting for a human
//! who is not there.
//!
//! A prompt at a real terminal hides the progress bars while it waits (a redrawn spinner
//! would erase the prompt and what is typed), and a stop request (Ctrl-C, SIGTERM) ends it
//! at once as [`Answer::Interrupted`]: a signal is never an answer, let alone a "no".

use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::termios::{LocalModes, OptionalActions, Termios};
use zeroize::Zeroize;

use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::operator::{Answer, Nobody, Operator};
use mkplan_engine::secret::Pin;

/// The controlling terminal: prompts on stderr, answers from stdin.
pub struct Terminal {
    cancel: Cancel,
}

/// How often a waiting prompt looks at the stop flag. Signal handlers are installed with
/// `SA_RESTART`, so a blocking read would never notice Ctrl-C: the wait is a `poll` in
/// short slices instead.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// The longest line a prompt takes (a terminal's canonical mode stops at 4096 bytes too).
const MAX_LINE: usize = 4096;

impl Terminal {
    /// A terminal operator when stdin and stderr are terminals, else [`Nobody`]. `cancel`
    /// is the run's stop flag: a stop request ends any prompt that is waiting.
    pub fn detect(non_interactive: bool, cancel: &Cancel) -> Box<dyn Operator> {
        if !non_interactive && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            Box::new(Terminal {
                cancel: cancel.clone(),
            })
        } else {
            Box::new(Nobody)
        }
    }

    /// Writes `prompt` and reads one line as typed (without its line break).
    fn prompt_line(&self, prompt: &str, deadline: Option<Instant>) -> Answer {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{prompt}");
        let _ = err.flush();
        let stdin = std::io::stdin();
        let answer = read_line(stdin.as_fd(), deadline, &self.cancel);
        if matches!(answer, Answer::TimedOut | Answer::Interrupted) {
            // The cursor is still after the prompt: end its line.
            let _ = writeln!(err);
        }
        answer
    }
}

impl Operator for Terminal {
    fn interactive(&self) -> bool {
        true
    }

    fn at_terminal(&self) -> bool {
        true
    }

    fn say(&self, text: &str) {
        above_progress(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        });
    }

    fn ask(&self, prompt: &str, deadline: Option<Instant>) -> Answer {
        match above_progress(|| self.prompt_line(prompt, deadline)) {
            Answer::Text(text) => Answer::Text(text.trim().to_owned()),
            other => other,
        }
    }

    fn ask_secret(&self, prompt: &str) -> Option<Pin> {
        above_progress(|| {
            let stdin = std::io::stdin();
            // Echo off for the answer only; restored however the read ends.
            let _quiet = EchoOff::new(stdin.as_fd());
            let answer = self.prompt_line(prompt, None);
            if matches!(answer, Answer::Text(_) | Answer::Closed) {
                // The Enter the person typed was not echoed either.
                let _ = writeln!(std::io::stderr());
            }
            match answer {
                Answer::Text(text) if !text.is_empty() => Some(Pin::new(text)),
                _ => None,
            }
        })
    }
}

/// Runs `f` with every progress bar of the log subscriber hidden, then redraws them. While
/// `f` runs, nothing may log (the bars' lock is held): prompts only write to stderr.
fn above_progress<R>(f: impl FnOnce() -> R) -> R {
    tracing_indicatif::suspend_tracing_indicatif(f)
}

/// Waits for one line on `fd` (a terminal in canonical mode delivers whole lines), in
/// slices so that a stop request is seen at once. `EINTR` is only a reason to look again.
fn read_line(fd: BorrowedFd<'_>, deadline: Option<Instant>, cancel: &Cancel) -> Answer {
    loop {
        if cancel.requested() {
            return Answer::Interrupted;
        }
        let mut slice = STOP_CHECK;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Answer::TimedOut;
            }
            slice = slice.min(left);
        }
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(slice.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => break,
            Err(_) => return Answer::Closed,
        }
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        // Byte by byte, so nothing after the line is read ahead into a buffer that the
        // next prompt's `poll` cannot see.
        match rustix::io::read(fd, &mut byte) {
            Ok(0) if line.is_empty() => return Answer::Closed,
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < MAX_LINE => line.push(byte[0]),
            Ok(_) => {}
            Err(Errno::INTR) if cancel.requested() => return Answer::Interrupted,
            Err(Errno::INTR) => {}
            Err(_) => return Answer::Closed,
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    // The line may be a PIN: no copy of it stays behind in freed memory.
    line.zeroize();
    Answer::Text(text)
}

/// Terminal echo switched off until dropped.
struct EchoOff<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Option<Termios>,
}

impl<'fd> EchoOff<'fd> {
    fn new(fd: BorrowedFd<'fd>) -> Self {
        let saved = rustix::termios::tcgetattr(fd).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            // Echo of the Enter key too: the prompt's line is ended by hand afterwards.
            quiet.local_modes.remove(LocalModes::ECHONL);
            let _ = rustix::termios::tcsetattr(fd, OptionalActions::Flush, &quiet);
        }
        Self { fd, saved }
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(self.fd, OptionalActions::Now, saved);
        }
    }
}

//! The person at the terminal, behind a trait: prompts happen only when there is one, and
//! every prompt has a deadline, so nothing ever hangs waiting for a human who is not there.

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use crate::secret::Pin;

/// What an operator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Text(String),
    TimedOut,
    /// Input closed (end of file): nobody will answer.
    Closed,
}

pub trait Operator {
    /// Whether prompts can be answered. False means: never ask.
    fn interactive(&self) -> bool;
    /// Shows text to the operator.
    fn say(&self, text: &str);
    /// Asks one line, waiting until `deadline` at the latest.
    fn ask(&self, prompt: &str, deadline: Option<Instant>) -> Answer;
    /// Asks for a secret without echoing it.
    fn ask_secret(&self, prompt: &str) -> Option<Pin>;
}

/// No terminal (or `--non-interactive`): never prompts.
pub struct Nobody;

impl Operator for Nobody {
    fn interactive(&self) -> bool {
        false
    }

    fn say(&self, _: &str) {}

    fn ask(&self, _: &str, _: Option<Instant>) -> Answer {
        Answer::Closed
    }

    fn ask_secret(&self, _: &str) -> Option<Pin> {
        None
    }
}

/// The controlling terminal: prompts on stderr, answers from stdin.
pub struct Terminal;

impl Terminal {
    /// A terminal operator when stdin and stderr are terminals, else [`Nobody`].
    pub fn detect(non_interactive: bool) -> Box<dyn Operator> {
        if !non_interactive && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            Box::new(Terminal)
        } else {
            Box::new(Nobody)
        }
    }
}

impl Operator for Terminal {
    fn interactive(&self) -> bool {
        true
    }

    fn say(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }

    fn ask(&self, prompt: &str, deadline: Option<Instant>) -> Answer {
        {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{prompt}");
            let _ = err.flush();
        }
        let stdin = std::io::stdin();
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let fd = stdin.as_fd();
            let mut fds = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    eprintln!();
                    return Answer::TimedOut;
                }
                Ok(_) => {}
                Err(_) => return Answer::Closed,
            }
        }
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => Answer::Closed,
            Ok(_) => Answer::Text(line.trim().to_owned()),
        }
    }

    fn ask_secret(&self, prompt: &str) -> Option<Pin> {
        dialoguer::Password::new()
            .with_prompt(prompt.trim_end().trim_end_matches(':'))
            .allow_empty_password(false)
            .interact()
            .ok()
            .map(Pin::new)
    }
}

//! The person running mkplan, behind a trait: prompts happen only when there is one, and
//! every prompt has a deadline, so nothing ever hangs waiting for a human who is not there.

use std::time::Instant;

use crate::secret::Pin;

/// What an operator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Text(String),
    TimedOut,
    /// Input closed (end of file): nobody will answer.
    Closed,
    /// A stop was requested (Ctrl-C, SIGTERM) while waiting: the run stops at this safe
    /// point, to be resumed; nobody answered anything.
    Interrupted,
}

pub trait Operator {
    /// Whether prompts can be answered. False means: never ask.
    fn interactive(&self) -> bool;
    /// Whether [`Operator::say`] reaches a person at a terminal (who then needs no second
    /// copy of the same text in the log lines on that terminal).
    fn at_terminal(&self) -> bool {
        false
    }
    /// Shows text to the operator.
    fn say(&self, text: &str);
    /// Asks one line, waiting until `deadline` at the latest.
    fn ask(&self, prompt: &str, deadline: Option<Instant>) -> Answer;
    /// Asks for a secret without echoing it; `None` when none was entered (or the wait was
    /// interrupted).
    fn ask_secret(&self, prompt: &str) -> Option<Pin>;
    /// The PIN the operator gave mkplan in its environment as `name` (`pin: {env: NAME}`).
    /// A rehearsal answers with its simulated PIN instead, which therefore never has to be
    /// put in an environment that a child process could inherit.
    fn pin_variable(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
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

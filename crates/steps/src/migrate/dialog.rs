//! The step's side of the dialog with `pkcsep11_migrate` on its pty: each line counted and
//! kept (the PIN redacted) as [`Observed`], progress for people, the PIN typed after the
//! exact prompt (reference 1.3), and a word when a stop has to wait for the tool.

use std::time::Duration;

use super::outcome::{Observed, PIN_PROMPT};
use mkplan_engine::crash_hooks::kill_point;
use mkplan_engine::ports::host::{PtyDialog, Reply};
use mkplan_engine::secret::Pin;
use mkplan_engine::step::RunContext;

/// The tool prints the prompt and then turns echo off with a flush that discards input
/// already waiting (reference 1.3); a PIN sent at once can be lost, and the tool then waits
/// for it until the step times out. openCryptoki's own test scripts wait before answering.
const PROMPT_SETTLE: Duration = Duration::from_millis(200);

pub(super) struct Dialog<'c, 'a> {
    pub(super) cx: &'c mut RunContext<'a>,
    pub(super) pin: &'c Pin,
    pub(super) observed: Observed,
    /// Objects in the store: the progress bar's length.
    pub(super) total: Option<u64>,
    /// The PIN is typed at the prompt (not given in the environment) and not yet typed.
    pub(super) awaiting_prompt: bool,
}

impl PtyDialog for Dialog<'_, '_> {
    fn prompts(&self) -> Vec<String> {
        match self.awaiting_prompt {
            true => vec![PIN_PROMPT.to_owned()],
            false => Vec::new(),
        }
    }

    fn answer(&mut self, _prompt: &str) -> Reply<'_> {
        self.observed.prompted = true;
        self.awaiting_prompt = false;
        Reply::Secret(self.pin, PROMPT_SETTLE)
    }

    fn line(&mut self, line: &str) {
        self.observed.line(line, self.pin);
        let done = self.observed.succeeded;
        if self.observed.started > 0 || done > 0 {
            self.cx
                .progress(done, self.total, format!("{done} keys re-enciphered"));
        }
        if self.total.is_some_and(|t| done * 2 >= t && done > 0) {
            kill_point("migrate:half");
        }
    }

    fn rest(&mut self, text: &str) {
        for line in text.lines() {
            self.observed.line(line, self.pin);
        }
    }

    fn stop_requested(&mut self) {
        self.cx.notice("stop requested: waiting for pkcsep11_migrate to finish, since stopping it half-way would leave the store partly migrated");
    }
}

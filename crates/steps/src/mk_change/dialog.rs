//! The step's side of the dialog with `pkcshsm_mk_change` on its pty (opencryptoki-ep11.md
//! 2.3, 2.4): the `Continue [y/N]?` prompt answered from what the preflight proved about
//! each slot without a token, each USER PIN typed once after its exact prompt (never twice:
//! a PIN is never retried), the operation ID journaled the moment it is printed, and every
//! line kept for the record.

use std::collections::BTreeMap;
use std::time::Duration;

use mkplan_engine::crash_hooks::kill_point;
use mkplan_engine::events::EventKind;
use mkplan_engine::ports::host::{PtyDialog, Reply};
use mkplan_engine::record::mk_change::{ContinueAnswer, Milestone, OperationId, ToolPhase};
use mkplan_engine::secret::Pin;
use mkplan_engine::step::RunContext;

/// The tool turns echo off after printing the prompt (as `pkcsep11_migrate` does): a PIN
/// sent at once can be flushed away.
const PROMPT_SETTLE: Duration = Duration::from_millis(200);
pub const CONTINUE_PROMPT: &str = "Continue [y/N]? ";
const MAX_LINES: usize = 400;

/// What the tool said, as it ran.
#[derive(Debug, Default)]
pub struct Observed {
    pub lines: Vec<String>,
    pub diagnostics: Vec<String>,
    pub absent: Vec<u16>,
    pub affected: Vec<u16>,
    pub pins_sent_for: Vec<u16>,
    pub continue_prompt: Option<ContinueAnswer>,
    pub working: bool,
    pub completed: bool,
    pub created: Option<OperationId>,
    /// The `successfully finalized` / `canceled` line, with its ID.
    pub ended: Option<OperationId>,
    /// A milestone that could not be journaled.
    pub journal_error: Option<String>,
}

impl Observed {
    pub fn phase(&self) -> ToolPhase {
        if self.working {
            ToolPhase::Working
        } else {
            ToolPhase::Dialog
        }
    }
}

#[derive(PartialEq)]
enum Listing {
    None,
    Absent,
    Affected,
}

pub struct Dialog<'c, 'a> {
    pub cx: &'c mut RunContext<'a>,
    /// The PIN of each slot the operation may prompt for.
    pub pins: BTreeMap<u16, &'c Pin>,
    /// The slots the tool must name as affected (reencipher); a different set is answered
    /// with end of input at the first PIN prompt.
    pub expected_affected: Option<Vec<u16>>,
    /// For each configured slot: whether it provably cannot be affected, and why.
    pub absent_verdicts: BTreeMap<u16, (bool, String)>,
    pub observed: Observed,
    listing: Listing,
}

impl<'c, 'a> Dialog<'c, 'a> {
    pub fn new(cx: &'c mut RunContext<'a>, pins: BTreeMap<u16, &'c Pin>) -> Self {
        Self {
            cx,
            pins,
            expected_affected: None,
            absent_verdicts: BTreeMap::new(),
            observed: Observed::default(),
            listing: Listing::None,
        }
    }

    fn milestone(&mut self, milestone: Milestone) {
        let event = EventKind::StepMilestone {
            step: self.cx.step_ref(),
            milestone,
        };
        if let Err(e) = self.cx.emit(event) {
            self.observed.journal_error = Some(e.to_string());
        }
    }

    /// The answer to `Continue [y/N]?`: `y` only if every slot without a token is one the
    /// change provably cannot affect (the tool's warning is literal: an affected absent
    /// token loses its keys).
    fn continue_answer(&self) -> ContinueAnswer {
        let mut why = Vec::new();
        let mut yes = true;
        for slot in &self.observed.absent {
            match self.absent_verdicts.get(slot) {
                Some((unaffected, reason)) => {
                    yes &= *unaffected;
                    why.push(format!("slot {slot}: {reason}"));
                }
                None => {
                    yes = false;
                    why.push(format!("slot {slot}: not in opencryptoki.conf as mkplan read it; it may be affected"));
                }
            }
        }
        ContinueAnswer {
            slots: self.observed.absent.clone(),
            answered_yes: yes,
            why,
        }
    }

    fn pin_prompt(slot: u16) -> String {
        format!("Enter the USER PIN for slot {slot}: ")
    }
}

/// `Master key change operation 'ID' <rest>`: the ID.
fn operation_line(line: &str, rest: &str) -> Option<OperationId> {
    let inner = line
        .trim()
        .strip_prefix("Master key change operation '")?
        .strip_suffix(rest)?
        .strip_suffix('\'')?;
    OperationId::parse(inner)
}

impl PtyDialog for Dialog<'_, '_> {
    fn prompts(&self) -> Vec<String> {
        let mut prompts = Vec::new();
        if !self.observed.absent.is_empty() && self.observed.continue_prompt.is_none() {
            prompts.push(CONTINUE_PROMPT.to_owned());
        }
        let slots: Vec<u16> = if self.observed.affected.is_empty() {
            self.pins.keys().copied().collect()
        } else {
            self.observed.affected.clone()
        };
        prompts.extend(slots.into_iter().map(Self::pin_prompt));
        prompts
    }

    fn answer(&mut self, prompt: &str) -> Reply<'_> {
        if prompt == CONTINUE_PROMPT {
            let answer = self.continue_answer();
            let yes = answer.answered_yes;
            self.observed.continue_prompt = Some(answer);
            self.observed
                .lines
                .push(CONTINUE_PROMPT.trim_end().to_owned());
            return Reply::Text(if yes { "y" } else { "n" });
        }
        self.observed.lines.push(prompt.trim_end().to_owned());
        let slot = prompt
            .trim_end()
            .trim_end_matches(':')
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u16>().ok());
        let Some(slot) = slot else {
            return Reply::Eof;
        };
        let unexpected = self
            .expected_affected
            .as_ref()
            .is_some_and(|expected| *expected != self.observed.affected);
        // A second prompt for one slot means the first PIN was not taken: never retried.
        if unexpected || self.observed.pins_sent_for.contains(&slot) {
            return Reply::Eof;
        }
        if self.observed.pins_sent_for.is_empty() {
            kill_point("mk_change:dialog");
        }
        match self.pins.get(&slot) {
            Some(pin) => {
                self.observed.pins_sent_for.push(slot);
                Reply::Secret(pin, PROMPT_SETTLE)
            }
            None => Reply::Eof,
        }
    }

    fn line(&mut self, line: &str) {
        let trimmed = line.trim_end_matches('\r');
        if self.observed.lines.len() < MAX_LINES {
            self.observed.lines.push(trimmed.to_owned());
        }
        let text = trimmed.trim();
        if text == "WARNING: The following slots have no token present:" {
            self.listing = Listing::Absent;
            return;
        }
        if text == "The following tokens are affected by this master key change:" {
            self.listing = Listing::Affected;
            return;
        }
        if let Some(rest) = text.strip_prefix("Slot ") {
            let number = rest
                .split(':')
                .next()
                .and_then(|n| n.trim().parse::<u16>().ok());
            match (&self.listing, number) {
                (Listing::Absent, Some(n)) => self.observed.absent.push(n),
                (Listing::Affected, Some(n)) => self.observed.affected.push(n),
                _ => {}
            }
            return;
        }
        self.listing = Listing::None;
        if let Some(diagnostic) = text.strip_prefix("pkcshsm_mk_change: ") {
            if self.observed.diagnostics.len() < 64 {
                self.observed.diagnostics.push(diagnostic.to_owned());
            }
            return;
        }
        match text {
            "Re-enciphering, please wait..."
            | "Finalizing, please wait..."
            | "Canceling, please wait..." => {
                self.observed.working = true;
                self.milestone(Milestone::ToolWorking);
                kill_point("mk_change:working");
            }
            "Completed." => self.observed.completed = true,
            _ => {}
        }
        if let Some(id) = operation_line(text, " created.") {
            self.observed.created = Some(id.clone());
            self.milestone(Milestone::OperationCreated { id });
            kill_point("mk_change:created");
        } else if let Some(id) = operation_line(text, " successfully finalized.")
            .or_else(|| operation_line(text, " successfully canceled."))
        {
            self.observed.ended = Some(id);
        }
    }

    fn rest(&mut self, text: &str) {
        for line in text.lines() {
            self.line(line);
        }
    }

    fn stop_requested(&mut self) {
        self.cx.notice("stop requested: pkcshsm_mk_change is left to finish (it ignores SIGINT and SIGTERM by design, and stopping it half-way would leave an operation neither finalize nor cancel accepts); mkplan waits for it");
    }
}

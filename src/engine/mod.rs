//! The execution engine: runs a validated plan step by step with a durable journal,
//! Ansible-style rescue/always, checkpoints with identity, interruption and resume. It emits
//! events; the journal, logs, progress and recap consume them.

pub mod access;
pub mod approvals;
pub mod cancel;
pub mod clock;
pub mod crash_hooks;
pub mod digest;
pub mod events;
pub mod executor;
pub mod journal;
pub mod lock;
pub mod outcome;
pub mod ports;
pub mod record;
pub mod rundir;
pub mod secret;
pub mod sinks;
pub mod state;
pub mod step;
pub mod trust;

use crate::engine::events::EventKind;
use crate::engine::journal::{Entry, Journal, JournalError};
use crate::engine::sinks::Sink;
use crate::engine::state::RunState;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Without a durable record, nothing may happen: the run stops here.
    #[error("the journal could not record the next event, so the run stopped before acting: {0}")]
    Journal(#[from] JournalError),
}

/// Journals durable events (fsynced before the caller acts), keeps the replayed state in
/// step, and hands every event to the sinks.
pub struct Recorder {
    journal: Journal,
    state: RunState,
    sinks: Vec<Box<dyn Sink>>,
}

impl Recorder {
    pub fn new(journal: Journal, state: RunState, sinks: Vec<Box<dyn Sink>>) -> Self {
        Self {
            journal,
            state,
            sinks,
        }
    }

    pub fn record(&mut self, event: EventKind) -> Result<Option<Entry>, EngineError> {
        let entry = if event.is_durable() {
            let entry = self.journal.append(&event)?;
            self.state.apply(&entry);
            Some(entry)
        } else {
            None
        };
        for sink in &mut self.sinks {
            sink.event(&event, entry.as_ref());
        }
        Ok(entry)
    }

    pub fn state(&self) -> &RunState {
        &self.state
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn finish(&mut self) {
        for sink in &mut self.sinks {
            sink.finish();
        }
    }
}

impl crate::engine::step::Emit for Recorder {
    fn emit(&mut self, event: EventKind) -> Result<(), EngineError> {
        self.record(event).map(|_| ())
    }
}

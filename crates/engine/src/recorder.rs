//! The recorder: every event of a run goes through it, to the journal first when it is
//! durable, then to the sinks.

use crate::error::EngineError;
use crate::events::EventKind;
use crate::journal::{Entry, Journal};
use crate::sinks::Sink;
use crate::state::RunState;
use crate::step::Emit;

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

impl Emit for Recorder {
    fn emit(&mut self, event: EventKind) -> Result<(), EngineError> {
        self.record(event).map(|_| ())
    }
}

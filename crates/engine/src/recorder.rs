//! The recorder: every event of a run goes through it, to the journal first when it is
//! durable, then to the sinks.

use crate::error::EngineError;
use crate::events::EventKind;
use crate::journal::{Entry, Journal};
use crate::sinks::Sink;
use crate::state::RunState;
use crate::step::Emit;
use crate::summary::RunSummary;

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
            self.summarize(&entry);
            Some(entry)
        } else {
            None
        };
        for sink in &mut self.sinks {
            sink.event(&event, entry.as_ref());
        }
        Ok(entry)
    }

    /// Keeps the run's summary (`summary.json`) up to date at its start and its end. It is
    /// a cache for `mkplan runs`: a failure to write it is a warning, never a stop.
    fn summarize(&self, entry: &Entry) {
        let Some(dir) = self.journal.path().parent() else {
            return;
        };
        let summary = match &entry.event {
            EventKind::RunStarted {
                plan_name,
                rehearsal,
                ..
            } => RunSummary {
                run: entry.run.clone(),
                plan_name: plan_name.clone(),
                started: entry.time.clone(),
                rehearsal: *rehearsal,
                outcome: None,
                finished: None,
            },
            // A run from before summaries has none: `runs` reads its journal.
            EventKind::RunFinished { outcome } => match RunSummary::read(dir) {
                Some(summary) => RunSummary {
                    outcome: Some(*outcome),
                    finished: Some(entry.time.clone()),
                    ..summary
                },
                None => return,
            },
            _ => return,
        };
        if let Err(e) = summary.write(dir) {
            tracing::warn!(
                "the run's summary was not written ({e}); `mkplan runs` reads its journal instead"
            );
        }
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

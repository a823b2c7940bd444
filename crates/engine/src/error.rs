//! What stops a run in the engine itself.

use crate::journal::JournalError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Without a durable record, nothing may happen: the run stops here.
    #[error("the journal could not record the next event, so the run stopped before acting: {0}")]
    Journal(#[from] JournalError),
}

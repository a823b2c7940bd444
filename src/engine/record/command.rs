//! What a `command` step records of the program it ran: how it ended and the start of its
//! output.

use serde::Serialize;

/// Output kept from one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Captured {
    pub text: String,
    pub total_bytes: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stopped_on_request: bool,
    pub duration_ms: u64,
    pub stdout: Captured,
    pub stderr: Captured,
}

//! The time as the journal and the step records write it. A rehearsal may move its own
//! process's clock forward ([`advance_simulated`]) to show days passing between the phases
//! of a concurrent change without waiting them; every resumption journals the offset then in
//! force, so a report can never mistake simulated days for real ones.

use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds this process's clock is ahead of the real one (rehearsal only).
static SIMULATED_OFFSET_SECS: AtomicI64 = AtomicI64::new(0);

/// Moves this process's clock forward by `seconds` (only `mkplan rehearse` calls this).
pub fn advance_simulated(seconds: i64) {
    SIMULATED_OFFSET_SECS.fetch_add(seconds, Ordering::SeqCst);
}

/// How far the clock was moved, in words, if it was: `+3 days (simulated)`.
pub fn simulated_offset() -> Option<String> {
    match SIMULATED_OFFSET_SECS.load(Ordering::SeqCst) {
        0 => None,
        secs if secs % 86_400 == 0 => {
            Some(format!("+{} days (simulated, not waited)", secs / 86_400))
        }
        secs => Some(format!("+{secs} s (simulated, not waited)")),
    }
}

/// Now, RFC 3339 in UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    let offset = jiff::SignedDuration::from_secs(SIMULATED_OFFSET_SECS.load(Ordering::SeqCst));
    let now = jiff::Timestamp::now()
        .checked_add(offset)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    now.round(jiff::Unit::Millisecond)
        .unwrap_or(now)
        .to_string()
}

//! The one time format mkplan writes: RFC 3339 in UTC with exactly three decimals
//! (`2026-11-30T15:54:00.430Z`, 24 bytes), so times line up in every column and compare as
//! text. Journals written before it (`…:41.32Z`, `…:41Z`) are never rewritten — their times
//! are hash-chained — but what shows them passes them through [`normalize`].
//!
//! A rehearsal may move its own process's clock forward ([`advance_simulated`]) to show days
//! passing between the phases of a concurrent change without waiting them; every resumption
//! journals the offset then in force, so a report can never mistake simulated days for real ones.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;

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

/// The length of every time [`format`] writes.
pub const FIXED_LEN: usize = 24;

const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(3));

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`: the sub-millisecond part is cut, never rounded up
/// (rounding could carry into the next second, or past a later event's time).
pub fn format(t: Timestamp) -> String {
    PRINTER.timestamp_to_string(&t)
}

/// Now (moved by a rehearsal's simulated offset, if any), in the one format.
pub fn now() -> String {
    let offset = jiff::SignedDuration::from_secs(SIMULATED_OFFSET_SECS.load(Ordering::SeqCst));
    let real = Timestamp::now();
    format(real.checked_add(offset).unwrap_or(real))
}

/// Now, RFC 3339 in UTC, to the millisecond (the name the step kinds use).
pub fn now_rfc3339() -> String {
    now()
}

/// Any RFC 3339 time (as older mkplan wrote it) in the one format; `None` if it is not one.
pub fn normalize(text: &str) -> Option<String> {
    text.parse::<Timestamp>().ok().map(format)
}

/// [`normalize`], keeping a text that is no time as it is (mkplan never writes one; a report
/// shows what the journal holds rather than dropping it).
pub fn normalize_or_keep(text: &str) -> String {
    normalize(text).unwrap_or_else(|| text.to_owned())
}

/// Whether `text` is already in the one format.
pub fn is_fixed(text: &str) -> bool {
    text.len() == FIXED_LEN && normalize(text).as_deref() == Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_decimals_always() {
        let cases = [
            ("2026-11-30T15:54:41.32Z", "2026-11-30T15:54:41.320Z"),
            ("2026-11-30T15:54:41Z", "2026-11-30T15:54:41.000Z"),
            ("2026-11-30T15:54:41.9996Z", "2026-11-30T15:54:41.999Z"),
            ("2026-11-30T16:54:41.5+01:00", "2026-11-30T15:54:41.500Z"),
        ];
        for (given, want) in cases {
            assert_eq!(normalize(given).as_deref(), Some(want), "{given}");
            assert!(is_fixed(want));
            assert!(!is_fixed(given));
        }
        assert_eq!(now().len(), FIXED_LEN);
        assert!(is_fixed(&now()));
    }

    #[test]
    fn a_text_that_is_no_time_is_kept() {
        assert_eq!(normalize("yesterday"), None);
        assert_eq!(normalize_or_keep("yesterday"), "yesterday");
    }
}

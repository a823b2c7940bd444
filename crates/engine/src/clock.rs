//! The time as the journal and the step records write it.

/// Now, RFC 3339 in UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

//! Fault injection for the crash tests, never for anything else, exactly as a power cut or a
//! `kill -9` would strike:
//!
//! * `MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT=<k>`: mkplan SIGKILLs itself right after journal
//!   event `k` is durable;
//! * `MKPLAN_TEST_KILL_AT=<point>`: the first time it reaches that point in the middle of a
//!   step's side effect, between journal events:
//!
//! | point | where |
//! |---|---|
//! | `backup:archived` | the archive is written, not yet verified or renamed into place |
//! | `backup:renamed` | the archive is in place, its manifest not yet |
//! | `restore:extracted` | the backup is extracted beside the store, not yet swapped in |
//! | `restore:swapped-out` | the store is moved aside, the restored one not yet in place |
//! | `stop:unit` | the first unit of a group is stopped, the next not yet |
//! | `start:unit` | the first unit of a group is started, the next not yet |
//! | `set_expected_wkvp:copied` | the old `ep11tok.conf` is copied, not yet rewritten |
//! | `set_expected_wkvp:written` | the new `ep11tok.conf` is written, not yet renamed over |
//! | `migrate:half` | `pkcsep11_migrate` has re-enciphered half of the keys |
//! | `mk_change:dialog` | `pkcshsm_mk_change` asks for the first PIN, none typed yet |
//! | `mk_change:working` | `pkcshsm_mk_change` said it works (the tool is left running) |
//! | `mk_change:created` | the operation ID is printed and journaled, the step not ended |
//!
//! Compiled in only with the feature `crash-hooks`, which only the root package's
//! dev-dependencies turn on: the binaries `cargo test` builds have them; `cargo build`,
//! `cargo run` and `cargo install` binaries do not read these variables at all.

#[cfg(feature = "crash-hooks")]
use std::sync::OnceLock;

/// Names the journal event after which to die.
pub const AFTER_JOURNAL_EVENT: &str = "MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT";
/// Names the kill point at which to die.
pub const AT_POINT: &str = "MKPLAN_TEST_KILL_AT";

/// SIGKILLs this process if event `seq` is the one the environment names.
#[cfg(feature = "crash-hooks")]
pub fn after_journal_event(seq: u64) {
    static KILL_AFTER: OnceLock<Option<u64>> = OnceLock::new();
    let kill_after = KILL_AFTER.get_or_init(|| {
        std::env::var(AFTER_JOURNAL_EVENT)
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *kill_after == Some(seq) {
        die();
    }
}

/// Without the feature: nothing.
#[cfg(not(feature = "crash-hooks"))]
#[inline]
pub fn after_journal_event(_seq: u64) {}

/// SIGKILLs this process if `point` is the one the environment names.
#[cfg(feature = "crash-hooks")]
pub fn kill_point(point: &str) {
    static KILL_AT: OnceLock<Option<String>> = OnceLock::new();
    let kill_at = KILL_AT.get_or_init(|| std::env::var(AT_POINT).ok());
    if kill_at.as_deref() == Some(point) {
        die();
    }
}

/// Without the feature: nothing.
#[cfg(not(feature = "crash-hooks"))]
#[inline]
pub fn kill_point(_point: &str) {}

#[cfg(feature = "crash-hooks")]
fn die() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
}

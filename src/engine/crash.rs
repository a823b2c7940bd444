//! Fault injection for the crash tests, never for anything else: with
//! `MKPLAN_TEST_KILL_AT=<point>` in its environment, mkplan SIGKILLs itself the first time
//! it reaches that point in the middle of a step's side effect, exactly as a power cut or a
//! `kill -9` would. The journal's own hook (`MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT`) kills at
//! journal boundaries; these points lie between them:
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

use std::sync::OnceLock;

pub const VARIABLE: &str = "MKPLAN_TEST_KILL_AT";

/// SIGKILLs this process if `point` is the one the environment names.
pub fn kill_point(point: &str) {
    static KILL_AT: OnceLock<Option<String>> = OnceLock::new();
    let kill_at = KILL_AT.get_or_init(|| std::env::var(VARIABLE).ok());
    if kill_at.as_deref() == Some(point) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

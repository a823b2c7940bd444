//! SIGINT/SIGTERM: the first asks the run to stop at the next safe point (a running tool that
//! rewrites key material is waited for, not killed); a second exits at once, leaving the
//! running step uncertain in the journal. SIGHUP (the ssh session or terminal went away)
//! only ever asks to stop at the next safe point: its default would kill mkplan, and with it
//! a migration tool half-way through the keys. Under `nohup` (SIGHUP ignored when mkplan
//! started) it stays ignored, as the operator asked. The only global state in mkplan.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// A stop request, shared between the signal handlers and the executor.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag nobody but the caller sets (tests, `check`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the handlers: the first signal sets the flag, a second one exits at once
    /// with `second_signal_exit`.
    pub fn install(second_signal_exit: i32) -> std::io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                second_signal_exit,
                Arc::clone(&flag),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        // A hangup may come more than once (the session, then the orphaned process
        // group): it never exits at once.
        if !ignored_at_start(SIGHUP) {
            signal_hook::flag::register(SIGHUP, Arc::clone(&flag))?;
        }
        Ok(Self(flag))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Whether `signal` was ignored when this process started (`nohup` ignores SIGHUP): the
/// `SigIgn` mask of `/proc/self/status`, bit `signal - 1`. Unreadable counts as not ignored.
fn ignored_at_start(signal: i32) -> bool {
    let status = mkplan_plan::input::read_to_string(
        std::path::Path::new("/proc/self/status"),
        mkplan_plan::input::SMALL,
    );
    let Ok(status) = status else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

//! Captures the [`Origin`] of this process's session: read once at the start of a run and
//! at each resume, never in between.

use std::io::IsTerminal;

use crate::record::origin::{Origin, plausible_name, ssh_client};

/// The session mkplan runs in now.
pub fn capture() -> Origin {
    let env = |name: &str| std::env::var(name).ok();
    Origin {
        uid: rustix::process::getuid().as_raw(),
        login: env("LOGNAME")
            .or_else(|| env("USER"))
            .and_then(|v| plausible_name(&v)),
        sudo_user: env("SUDO_USER").and_then(|v| plausible_name(&v)),
        host: host_name(),
        tty: terminal(),
        ssh_client: env("SSH_CONNECTION")
            .and_then(|v| ssh_client(&v))
            .or_else(|| env("SSH_CLIENT").and_then(|v| ssh_client(&v))),
    }
}

/// `uname -n`, as the kernel holds it; `unknown` when it cannot be read.
fn host_name() -> String {
    mkplan_plan::input::read_to_string(
        std::path::Path::new("/proc/sys/kernel/hostname"),
        mkplan_plan::input::SMALL,
    )
    .ok()
    .and_then(|name| plausible_name(name.trim()))
    .unwrap_or_else(|| "unknown".to_owned())
}

/// The terminal on stdin, stdout or stderr (the first that is one).
fn terminal() -> Option<String> {
    let fds = [
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    ];
    let fd = fds.iter().position(|is| *is)?;
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    plausible_name(&link.display().to_string())
}

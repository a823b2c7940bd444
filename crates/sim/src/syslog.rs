//! The simulated host's syslog, `var/log/mkplan-sim/syslog`: what the tokens report where
//! the real ones call `OCK_SYSLOG` (the reasons a `pkcshsm_mk_change` query was refused, the
//! single-APQN mode), one line each: `<time> <program>[<pid>]: <message>`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `var/log/mkplan-sim/syslog` under the root.
pub(crate) fn path(root: &Path) -> PathBuf {
    root.join("var/log/mkplan-sim/syslog")
}

/// Appends one line (one `write` with `O_APPEND`, so lines of several processes do not mix).
/// Losing a line is not worth failing the caller for.
pub(crate) fn log(root: &Path, program: &str, message: &str) {
    let path = path(root);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let line = format!(
        "{} {program}[{}]: {message}\n",
        jiff::Timestamp::now(),
        std::process::id()
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

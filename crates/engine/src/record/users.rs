//! Who uses a token: the processes that map it, as a `/proc` scan found them (the `stop`
//! step records the scan; `migrate` records it again right before the tool starts).

use serde::{Deserialize, Serialize};

/// The outcome of one pass over `/proc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanResult {
    pub users: Vec<TokenUser>,
    /// Processes looked at (not excluded), readable or not.
    pub scanned: usize,
    /// Processes whose `maps` could not be read (gone, or not permitted): they may be users.
    pub unreadable: usize,
}

impl ScanResult {
    /// Only a complete scan that found nobody proves the token is unused: an unreadable
    /// process could be a user (opencryptoki-ep11.md 4: other users' maps need root).
    pub fn proves_unused(&self) -> bool {
        self.users.is_empty() && self.unreadable == 0 && self.scanned > 0
    }
}

/// A process that has the token loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUser {
    pub pid: i32,
    /// `/proc/<pid>/cmdline` joined by spaces, else `comm`.
    pub command: String,
    /// The systemd unit (`….service` or `….scope`) from `/proc/<pid>/cgroup`, if any.
    pub unit: Option<String>,
    /// The mapped path that matched, as `maps` shows it.
    pub matched: String,
}

/// A scan as a step records it: how many processes were looked at and who uses a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSummary {
    #[serde(default)]
    pub scanned: usize,
    #[serde(default)]
    pub unreadable: usize,
    #[serde(default)]
    pub users: Vec<TokenUser>,
}

impl From<ScanResult> for ScanSummary {
    fn from(scan: ScanResult) -> Self {
        Self {
            scanned: scan.scanned,
            unreadable: scan.unreadable,
            users: scan.users,
        }
    }
}

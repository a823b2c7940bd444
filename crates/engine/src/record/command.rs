//! What a `command` step records of the program it ran (how it ended, the start of its
//! output), and what `set_expected_wkvp` records of the file it rewrote.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Output kept from one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    pub text: String,
    pub total_bytes: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stopped_on_request: bool,
    pub duration_ms: u64,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// What a `command` step records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    pub argv: Vec<String>,
    pub shell: bool,
    pub result: Finished,
}

/// What `set_expected_mkvps` records when it rewrote the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedMkvpsOutput {
    /// `ccatok.conf`, as the plan names it.
    pub config: PathBuf,
    /// The previous file, kept beside it.
    pub previous: PathBuf,
    /// The MK types rewritten (`SYM`, `AES`, `APKA`) with their new MKVPs, `0x` and 16 hex
    /// digits; a type the file does not name is not added.
    pub expected_mkvps: std::collections::BTreeMap<String, String>,
}

/// What `set_expected_wkvp` records when it rewrote the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedWkvpOutput {
    /// `ep11tok.conf`, as the plan names it.
    pub config: PathBuf,
    /// The previous file, kept beside it.
    pub previous: PathBuf,
    /// The new WKVP, `0x` and 32 hex digits.
    pub expected_wkvp: String,
}

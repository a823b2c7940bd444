//! What `pkcscca -m keys` said it did (opencryptoki-ep11.md 5), parsed from its output by
//! `mkplan_host::pkcscca`: the tool exits 0 even when keys failed, so this is the verdict.

use serde::{Deserialize, Serialize};

/// The summary and the per-key lines of one `pkcscca -m keys -k <type>` run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkcsccaSummary {
    /// `Successfully migrated: AES: 3. HMAC: 1. `, as printed: the tool counts a key that
    /// was already under the current MK (a `Skipping, …` line) as migrated too.
    #[serde(default)]
    pub migrated: Vec<KeyCount>,
    /// `Failed to migrate: …`: keys whose Key Token Change failed; they stay under the OLD MK.
    #[serde(default)]
    pub failed: Vec<KeyCount>,
    /// Keys the tool passed over, with why.
    #[serde(default)]
    pub skipped: Vec<SkippedKey>,
    /// Keys named by `Migrating <ALG> key failed. label=…, handle=…`.
    #[serde(default)]
    pub failed_keys: Vec<KeyRef>,
    /// Other error lines (`<file>:<line> …` on stderr), kept for the report.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl PkcsccaSummary {
    pub fn migrated_total(&self) -> u64 {
        self.migrated.iter().map(|c| c.count).sum()
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().map(|c| c.count).sum()
    }
}

/// One `<ALG>: <n>.` of a summary line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub algorithm: String,
    pub count: u64,
}

/// A key as the tool names it: `label=<label>, handle=<handle>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    pub algorithm: Option<String>,
    pub label: String,
    pub handle: u64,
}

/// A key the tool passed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedKey {
    pub reason: SkipReason,
    pub key: KeyRef,
}

/// Why: `Skipping, <ALG> token is  wrapped with current master key.` and the three
/// `Skipping key, its …` lines of `cca_migrate_asymmetric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    AlreadyCurrent,
    PublicKey,
    NotOldRsa,
    NotNewRsa,
}

/// One `pkcscca -m keys -k <type>` run of a CCA `migrate` (opencryptoki-ep11.md 5): how it
/// ended and what its output said. Success needs exit 0, a summary and no failed key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkcsccaRun {
    /// `aes`, `apka`, `asym` or `sym`.
    pub mk: String,
    /// The command line (no PIN: both PINs are typed at the tool's prompts).
    pub argv: String,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub timed_out: bool,
    /// The parsed output; `None` when it could not be parsed (`output_error` says why).
    pub summary: Option<PkcsccaSummary>,
    pub output_error: Option<String>,
    pub duration_ms: u64,
    /// The output as it came (the PINs redacted), bounded.
    #[serde(default)]
    pub output: Vec<String>,
}

/// The live checks of a CCA `migrate` right before `pkcscca` started: on every APQN, each
/// MK type to migrate has the new MK in CUR and the token's current one in OLD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcaRegistersChecked {
    /// `0c.0011 AES: CUR valid 0x…, OLD valid 0x…`, one line per APQN and MK type.
    pub checked: Vec<String>,
    /// MK types sysfs does not show (SYM): not checkable here; `pkcscca` fails a key whose
    /// MK is not in OLD.
    #[serde(default)]
    pub not_shown: Vec<String>,
}

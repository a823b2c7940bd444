//! What `migrate` records: whether the tool started, and, once it ran, everything the
//! verdict was made from (its exit, the per-key counts, the success line, the kept output)
//! and the live checks right before it started. Read back leniently, key by key, as the
//! report always read it: a journal without some key still gives the others.

use std::path::PathBuf;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Deserializer, Serialize};

use crate::record::backup::RestoreOutput;
use crate::record::pkcscca::{CcaRegistersChecked, PkcsccaRun};
use crate::record::users::ScanSummary;
use crate::record::wk::WkTable;
use mkplan_plan::model::TokenId;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MigrateOutput {
    pub token: Option<TokenId>,
    /// Whether the tool was started; `None` when a journal does not say.
    pub tool_started: Option<bool>,
    pub tool: Option<PathBuf>,
    /// Never written so far; the report shows it when a journal has it.
    pub tool_version: Option<String>,
    pub argv: Option<String>,
    /// The APQN it re-enciphered through, in lszcrypt notation.
    pub apqn: Option<String>,
    /// `prompt` or `env`.
    pub pin_delivery: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub timed_out: Option<bool>,
    pub keys_started: Option<u64>,
    pub keys_reenciphered: Option<u64>,
    /// Objects in the store's index when it started.
    pub objects_listed: Option<u64>,
    pub success_line: Option<bool>,
    pub duration_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub preflight: Option<MigratePreflight>,
    /// What a retry restored before the tool ran again.
    #[serde(default, deserialize_with = "lenient")]
    pub restored_first: Option<RestoreOutput>,
    #[serde(default)]
    pub output: Vec<String>,
    pub output_lines_dropped: Option<u64>,
    /// A CCA token: one `pkcscca` run per MK type, in order (absent for EP11).
    #[serde(default, deserialize_with = "lenient")]
    pub cca_runs: Option<Vec<PkcsccaRun>>,
    /// A CCA token: the MK registers checked right before the first run.
    #[serde(default, deserialize_with = "lenient")]
    pub cca_registers: Option<CcaRegistersChecked>,
    /// Written with `restored_first` (as `null` too): the live checks refused the tool.
    #[serde(skip)]
    refused_in_preflight: bool,
}

/// The live checks of design rule 1 right before the tool started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigratePreflight {
    pub pkcsslotd_pid: Option<u32>,
    pub token_users: Option<ScanSummary>,
    /// The verified backup's archive.
    pub backup: Option<PathBuf>,
    pub store_files_checked: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub apqns: Option<WkTable>,
}

/// How the tool ran, for [`MigrateOutput::ran`].
#[derive(Debug, Clone, Default)]
pub struct ToolRun {
    pub tool: PathBuf,
    pub argv: String,
    pub apqn: String,
    pub pin_delivery: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub keys_started: u64,
    pub keys_reenciphered: u64,
    pub objects_listed: Option<u64>,
    pub success_line: bool,
    pub duration_ms: u64,
    pub output: Vec<String>,
    pub output_lines_dropped: u64,
}

impl MigrateOutput {
    /// The tool was not started (`started: false`), or started and could not be given the
    /// PIN (`started: true`).
    pub fn stopped(token: &TokenId, started: bool) -> Self {
        Self {
            token: Some(token.clone()),
            tool_started: Some(started),
            ..Self::default()
        }
    }

    /// The live checks right before the tool refused it (after what a retry restored).
    pub fn refused_in_preflight(token: &TokenId, restored_first: Option<RestoreOutput>) -> Self {
        Self {
            restored_first,
            refused_in_preflight: true,
            ..Self::stopped(token, false)
        }
    }

    /// The tool ran.
    pub fn ran(
        token: &TokenId,
        run: ToolRun,
        preflight: MigratePreflight,
        restored_first: Option<RestoreOutput>,
    ) -> Self {
        Self {
            token: Some(token.clone()),
            tool_started: Some(true),
            tool: Some(run.tool),
            tool_version: None,
            argv: Some(run.argv),
            apqn: Some(run.apqn),
            pin_delivery: Some(run.pin_delivery.to_owned()),
            exit_code: run.exit_code.map(i64::from),
            signal: run.signal.map(i64::from),
            timed_out: Some(run.timed_out),
            keys_started: Some(run.keys_started),
            keys_reenciphered: Some(run.keys_reenciphered),
            objects_listed: run.objects_listed,
            success_line: Some(run.success_line),
            duration_ms: Some(run.duration_ms),
            preflight: Some(preflight),
            restored_first,
            output: run.output,
            output_lines_dropped: Some(run.output_lines_dropped),
            cca_runs: None,
            cca_registers: None,
            refused_in_preflight: false,
        }
    }

    /// `pkcscca` ran for a CCA token (`runs`: each MK type's run until the first failure).
    pub fn ran_cca(
        token: &TokenId,
        tool: PathBuf,
        runs: Vec<PkcsccaRun>,
        preflight: MigratePreflight,
        registers: CcaRegistersChecked,
        restored_first: Option<RestoreOutput>,
    ) -> Self {
        Self {
            token: Some(token.clone()),
            tool_started: Some(true),
            tool: Some(tool),
            argv: runs.first().map(|r| r.argv.clone()),
            pin_delivery: Some("prompt".to_owned()),
            duration_ms: Some(runs.iter().map(|r| r.duration_ms).sum()),
            preflight: Some(preflight),
            restored_first,
            cca_runs: Some(runs),
            cca_registers: Some(registers),
            ..Self::default()
        }
    }

    /// Whether the tool may have been started: a journal that does not say counts as yes.
    pub fn may_have_started(&self) -> bool {
        self.tool_started != Some(false)
    }
}

/// The three shapes `migrate` has always written: `{token, tool_started}` when the tool did
/// not start or could not be given the PIN (led by `restored_first` when the live checks
/// refused it), and every key, `null` included, once it ran.
impl Serialize for MigrateOutput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let ran = self.tool.is_some();
        if self.refused_in_preflight && !ran {
            map.serialize_entry("restored_first", &self.restored_first)?;
        }
        map.serialize_entry("token", &self.token)?;
        map.serialize_entry("tool_started", &self.tool_started)?;
        if ran {
            map.serialize_entry("tool", &self.tool)?;
            map.serialize_entry("argv", &self.argv)?;
            map.serialize_entry("apqn", &self.apqn)?;
            map.serialize_entry("pin_delivery", &self.pin_delivery)?;
            map.serialize_entry("exit_code", &self.exit_code)?;
            map.serialize_entry("signal", &self.signal)?;
            map.serialize_entry("timed_out", &self.timed_out)?;
            map.serialize_entry("keys_started", &self.keys_started)?;
            map.serialize_entry("keys_reenciphered", &self.keys_reenciphered)?;
            map.serialize_entry("objects_listed", &self.objects_listed)?;
            map.serialize_entry("success_line", &self.success_line)?;
            map.serialize_entry("duration_ms", &self.duration_ms)?;
            map.serialize_entry("preflight", &self.preflight)?;
            map.serialize_entry("restored_first", &self.restored_first)?;
            map.serialize_entry("output", &self.output)?;
            map.serialize_entry("output_lines_dropped", &self.output_lines_dropped)?;
            if let Some(runs) = &self.cca_runs {
                map.serialize_entry("cca_runs", runs)?;
                map.serialize_entry("cca_registers", &self.cca_registers)?;
            }
        }
        if let Some(version) = &self.tool_version {
            map.serialize_entry("tool_version", version)?;
        }
        map.end()
    }
}

/// A part of a record that does not read as its type is missing, not a reason to lose the
/// rest of the record.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

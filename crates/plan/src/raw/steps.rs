//! The raw step: common fields plus exactly one kind, each kind's arguments as written.

use schemars::{JsonSchema, Schema};
use serde::Deserialize;

use super::{RawApqn, RawDuration, add_one_of_required};

/// The fields every step may have besides its kind.
pub const COMMON_STEP_FIELDS: &[&str] = &["name", "id", "when", "tags", "timeout"];

/// One step: a name, optional conditions, and exactly one kind.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = exactly_one_step_kind)]
pub struct RawStep {
    /// What the step does, in words (templated). Shown in every output.
    #[schemars(length(min = 1))]
    pub name: String,
    /// A short id to name the step on the command line (`--approve ID=NAME`); unique in the plan.
    #[serde(default)]
    #[schemars(regex(pattern = "^[a-z][a-z0-9_-]{0,62}$"))]
    pub id: Option<String>,
    /// A template expression; the step is skipped when it is false.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub when: Option<String>,
    /// Tags for `--tags` / `--skip-tags`.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true, "items" = { "type": "string", "pattern": "^[A-Za-z0-9_.-]+$" }))]
    pub tags: Vec<String>,
    /// The longest the step may take; it fails after that.
    #[serde(default)]
    pub timeout: Option<RawDuration>,

    /// Check every APQN's wrapping-key registers against the plan's WKVPs (read-only).
    #[serde(default)]
    pub assert_wk: Option<RawAssertWk>,
    /// Stop for people: the TKE operator's work and the approvals to go on.
    #[serde(default)]
    pub checkpoint: Option<RawCheckpoint>,
    /// Stop a service group and prove no process still uses the tokens.
    #[serde(default)]
    pub stop: Option<String>,
    /// Start a service group (in reverse stop order) and check it runs.
    #[serde(default)]
    pub start: Option<String>,
    /// Archive a token's whole store, with a manifest, and verify it.
    #[serde(default)]
    pub backup: Option<RawBackupStep>,
    /// Put a token's store back from this run's verified backup.
    #[serde(default)]
    pub restore: Option<RawRestoreStep>,
    /// Re-encipher every secure key of a token with `pkcsep11_migrate`.
    #[serde(default)]
    pub migrate: Option<RawMigrateStep>,
    /// Rewrite `EXPECTED_WKVP` in the token's `ep11tok.conf` to the new WKVP (or back to
    /// the current one, `to: current`).
    #[serde(default)]
    pub set_expected_wkvp: Option<RawSetExpectedWkvp>,
    /// CCA: rewrite `EXPECTED_MKVPS` in the token's `ccatok.conf` to the new MKVPs (or back
    /// to the current ones, `to: current`).
    #[serde(default)]
    pub set_expected_mkvps: Option<RawSetExpectedWkvp>,
    /// CCA: check every APQN's master-key registers (NEW, CUR, OLD) for each MK type the
    /// token declares that sysfs shows (AES, APKA, ASYM).
    #[serde(default)]
    pub assert_mk: Option<RawAssertMk>,
    /// Prove every key of a token works, through PKCS#11.
    #[serde(default)]
    pub probe_keys: Option<RawProbeKeys>,
    /// Run a command.
    #[serde(default)]
    pub command: Option<RawCommand>,
    /// One phase of the concurrent master-key change (`pkcshsm_mk_change`, openCryptoki
    /// 3.21+): `reencipher`, `finalize` or `cancel`.
    #[serde(default)]
    pub mk_change: Option<RawMkChange>,
}

/// The step kinds, in the order the schema lists them.
pub const STEP_KINDS: &[&str] = &[
    "assert_wk",
    "checkpoint",
    "stop",
    "start",
    "backup",
    "restore",
    "migrate",
    "set_expected_wkvp",
    "set_expected_mkvps",
    "assert_mk",
    "probe_keys",
    "command",
    "mk_change",
];

/// The checks `until` can read, exactly one of them.
pub const UNTIL_CHECKS: &[&str] = &["assert_wk", "assert_mk"];

fn exactly_one_until_check(schema: &mut Schema) {
    let checks: Vec<String> = UNTIL_CHECKS.iter().map(|k| (*k).to_owned()).collect();
    add_one_of_required(schema, &checks);
}

fn exactly_one_step_kind(schema: &mut Schema) {
    let kinds: Vec<String> = STEP_KINDS.iter().map(|k| (*k).to_owned()).collect();
    add_one_of_required(schema, &kinds);
}

/// Which state the current wrapping key must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawCurrentWk {
    /// `WK CUR: valid` with the plan's `wkvp.current`.
    Expected,
    /// `WK CUR: valid` with the plan's `wkvp.new` (after activation).
    New,
}

/// Which state the new wrapping-key register must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawNewWk {
    /// `WK NEW: committed` with the plan's `wkvp.new`.
    Committed,
    /// `WK NEW: uncommitted` with the plan's `wkvp.new`.
    Uncommitted,
    /// `WK NEW: empty`.
    Empty,
    /// Anything but unknown (`- -`).
    Any,
}

/// Arguments of `assert_mk`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAssertMk {
    /// The CCA token whose APQNs are read.
    pub token: String,
    /// CUR: `expected` (the token's current MKVPs) or `new` (the new ones, after the set).
    pub current: RawCurrentWk,
    /// NEW: `full` (every key part of the new MK loaded), `empty`, or `any` known state.
    pub new: RawNewMk,
    /// OLD: `expected` (the token's current MKVPs, after the set) or `any` known state
    /// (default).
    #[serde(default)]
    pub old: Option<RawOldMk>,
}

/// Which state the CCA NEW register must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawNewMk {
    /// `NEW: full` with the token's new MKVP.
    Full,
    /// `NEW: empty`.
    Empty,
    /// Anything but unknown (`- -`).
    Any,
}

/// Which state the CCA OLD register must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOldMk {
    /// `OLD: valid` with the token's current MKVP (the MK the keys are under until `pkcscca`).
    Expected,
    /// Anything but unknown (`- -`).
    Any,
}

/// Arguments of `assert_wk`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAssertWk {
    /// The token whose APQNs are read.
    pub token: String,
    /// What the current WK must be: `expected` (the plan's `wkvp.current`) or `new`.
    pub current: RawCurrentWk,
    /// What the new-WK register must hold: `committed`, `uncommitted`, `empty` or `any`.
    pub new: RawNewWk,
}

/// Arguments of `checkpoint`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    /// What the people at this checkpoint are asked to do and confirm (templated).
    #[schemars(length(min = 1))]
    pub say: String,
    /// What the TKE operator does here: `commit`, `activate`, or free text.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub tke: Option<String>,
    /// How many distinct people must approve (dual control: 2).
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    pub approvals: Option<u64>,
    /// Who may approve; default `change.approvers`; an empty list means anyone.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true, "items" = { "type": "string", "minLength": 1 }))]
    pub approvers: Option<Vec<String>>,
    /// How long to wait for the approvals; expiry means "deny".
    #[serde(default)]
    pub timeout: Option<RawDuration>,
    /// A read-only check polled after approval until it holds.
    #[serde(default)]
    pub until: Option<RawUntil>,
    /// Park the run here while `until` does not hold yet: the run stops with exit 6 and
    /// `mkplan resume` continues it (days later, if need be). The `until` check is read
    /// first and the approvals are asked only once it holds (they attest work that is done).
    #[serde(default)]
    pub park: bool,
}

/// A read-only check polled after a checkpoint's approval: exactly one of `assert_wk` (an
/// EP11 token) or `assert_mk` (a CCA token).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = exactly_one_until_check)]
pub struct RawUntil {
    /// The wrapping-key state of an EP11 token to wait for.
    #[serde(default)]
    pub assert_wk: Option<RawAssertWk>,
    /// The master-key state of a CCA token to wait for (every declared MK type sysfs shows).
    #[serde(default)]
    pub assert_mk: Option<RawAssertMk>,
    /// How many more times to check after the first (default 0).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub retries: Option<u64>,
    /// Time between checks (default `10s`).
    #[serde(default)]
    pub delay: Option<RawDuration>,
}

/// Arguments of `backup`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackupStep {
    /// The token whose store is archived.
    pub token: String,
    /// The backup target (a name under `backups`).
    pub to: String,
}

/// Arguments of `restore`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRestoreStep {
    /// The token whose store is restored.
    pub token: String,
    /// The backup target holding this run's backup (a name under `backups`).
    pub from: String,
}

/// How `migrate` hands the PIN to `pkcsep11_migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPinDelivery {
    /// Answer the tool's `Enter the USER PIN: ` prompt on a terminal (openCryptoki 3.9+).
    Prompt,
    /// Set `PKCS11_USER_PIN` for the child only (openCryptoki older than 3.9).
    Env,
}

/// Arguments of `migrate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMigrateStep {
    /// The token to migrate.
    pub token: String,
    /// The APQN to re-encipher through; default the token's first.
    #[serde(default)]
    pub apqn: Option<RawApqn>,
    /// Absolute path of `pkcsep11_migrate`; default: found on `PATH` under the host root.
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub tool: Option<String>,
    /// How the PIN reaches the tool: `prompt` (default) or `env` (openCryptoki < 3.9 only).
    #[serde(default)]
    pub pin_delivery: Option<RawPinDelivery>,
    /// CCA tokens only: the master-key types to migrate (`pkcscca -m keys -k <type>`, one
    /// run each, in this order); default every type the token declares under `mks`.
    #[serde(default)]
    #[schemars(extend("minItems" = 1, "uniqueItems" = true))]
    pub mks: Option<Vec<RawCcaMkName>>,
}

/// A CCA master-key type, as `pkcscca -k` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawCcaMkName {
    Sym,
    Asym,
    Aes,
    Apka,
}

/// Which WKVP `set_expected_wkvp` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawExpectedTarget {
    /// The plan's `wkvp.new` (after the activation).
    New,
    /// The plan's `wkvp.current`: the undo, before a `mk_change` cancel.
    Current,
}

/// Arguments of `set_expected_wkvp`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSetExpectedWkvp {
    /// The token whose `config` is rewritten.
    pub token: String,
    /// `new` (default) or `current`.
    #[serde(default)]
    pub to: Option<RawExpectedTarget>,
}

/// `mk_change`: exactly one phase of the concurrent change.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = super::exactly_one_property)]
pub struct RawMkChange {
    /// `pkcshsm_mk_change reencipher`: every key of the tokens gets a second blob under the
    /// new WK beside its current one, while the applications keep running.
    #[serde(default)]
    pub reencipher: Option<RawReencipher>,
    /// `pkcshsm_mk_change finalize --id ID`: after the activation, the new blobs become current.
    #[serde(default)]
    pub finalize: Option<RawEndOperation>,
    /// `pkcshsm_mk_change cancel --id ID`: before any activation, the new blobs are dropped.
    #[serde(default)]
    pub cancel: Option<RawEndOperation>,
}

/// Arguments of `mk_change: {reencipher}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReencipher {
    /// The tokens re-enciphered in this one operation; its APQNs are all of theirs.
    #[schemars(extend("minItems" = 1, "uniqueItems" = true, "items" = { "type": "string" }))]
    pub tokens: Vec<String>,
    /// Absolute path of `pkcshsm_mk_change`; default: found on `PATH` under the host root.
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub tool: Option<String>,
}

/// Arguments of `mk_change: {finalize}` and `mk_change: {cancel}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEndOperation {
    /// The `id` of this plan's `mk_change: {reencipher}` step whose operation this ends
    /// (the operation ID itself comes from the run's journal, never from the plan).
    #[schemars(regex(pattern = "^[a-z][a-z0-9_-]{0,62}$"))]
    pub of: String,
    /// More attempts after one that left the operation in ERROR (default 1).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<u64>,
    /// Time between attempts (default `30s`).
    #[serde(default)]
    pub delay: Option<RawDuration>,
}

/// Arguments of `probe_keys`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProbeKeys {
    /// The token whose keys are listed and exercised.
    pub token: String,
    /// Absolute path of the PKCS#11 module; default openCryptoki's `libopencryptoki.so`.
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub module: Option<String>,
}

/// Arguments of `command`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    /// The program and its arguments (templated), run without a shell; with `shell: true`, one script.
    #[schemars(extend("minItems" = 1, "items" = { "type": "string" }))]
    pub argv: Vec<String>,
    /// Run `argv[0]` as a `/bin/sh -c` script (argv must then have one element).
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables for the command (templated values).
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }))]
    pub env: std::collections::BTreeMap<String, String>,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default)]
    #[schemars(extend("minItems" = 1, "uniqueItems" = true, "items" = { "type": "integer", "minimum": 0, "maximum": 255 }))]
    pub ok_codes: Option<Vec<u64>>,
    /// The command changes nothing, so `mkplan check` may run it.
    #[serde(default)]
    pub read_only: bool,
}

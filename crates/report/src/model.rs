//! The run report (`report.json`): a versioned, self-describing record of one run, built only
//! from the verified journal, the run directory and the plan. `schemas/report.schema.json` is
//! generated from these types.
//!
//! Determinism: every collection is a `Vec` in run or plan order, or a `BTreeMap`; nothing is
//! read from a clock. The same run data gives the same bytes, which is what lets an auditor
//! rebuild and compare, and what a signature over the exact bytes needs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use mkplan_plan::schema::replace_integer_formats;

/// The report format version this mkplan writes. Format 2 adds each token's end state and
/// key summary; a format-1 report reads as format 2 with those absent, so it still
/// verifies and renders.
pub const REPORT_VERSION: u32 = 2;
/// The oldest report format this mkplan reads.
pub const OLDEST_REPORT_VERSION: u32 = 1;

/// One run, as evidence for change management.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    /// 2 for this format; 1 for reports of older mkplan (without end states).
    #[schemars(range(min = 1, max = 2))]
    pub report_version: u32,
    /// The mkplan version that started the run (from the journal).
    pub mkplan_version: String,
    pub run: RunSummary,
    pub host: HostFacts,
    pub plan: PlanFacts,
    /// How the report is signed (from the plan's `report.sign`).
    pub signing: SigningFacts,
    pub downtime: Downtime,
    /// The concurrent master-key change (`mk_change` steps): one entry per operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concurrent: Vec<crate::model_concurrent::ConcurrentChange>,
    /// Every token of the plan, in name order.
    pub tokens: Vec<TokenReport>,
    /// Every approval given, in journal order.
    pub approvals: Vec<ApprovalRecord>,
    /// Approver names refused at a checkpoint (not allowed, or a second approval by the same
    /// person), in journal order.
    pub refused_approvals: Vec<RefusedApproval>,
    /// Every step of the plan (steps, rescue, always), in plan order, reached or not.
    pub steps: Vec<StepRecord>,
    pub journal: JournalFacts,
    /// Every journal event with the fields PCI DSS 10.2.2 asks of an audit log entry: user,
    /// type, time, success or failure, origin, affected resources; in journal order. Empty in
    /// reports of an older format 2.
    #[serde(default)]
    pub events: Vec<AuditEvent>,
    /// What an auditor should know first; empty when there is nothing to say.
    pub warnings: Vec<String>,
    /// The co-signatures of approvers the plan requires (`report.cosign`); absent when it
    /// requires none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosigning: Option<Cosigning>,
}

/// One journal event, as an audit log entry (PCI DSS 10.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// The journal line's `seq`.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Type of event: the journal's kind (`step_succeeded`, `checkpoint_approved`, …).
    pub event: String,
    /// The step it concerns, `steps[4] migrate: Re-encipher all secure keys`; `null` for an
    /// event of the whole run.
    pub step: Option<String>,
    /// Who: the person running mkplan in that session (`run.operator`, or who resumed it);
    /// the approver for an approval or a refused one; who decided, for a decision.
    pub user: String,
    /// `success`, `failure`, or `none` for an event that is no outcome (a step starting).
    pub result: AuditResult,
    /// The session the event came from (captured at the start and at each resume); `null`
    /// in runs of an older mkplan, which did not record it.
    pub origin: Option<OriginFacts>,
    /// What it acted on or read: tokens, APQNs, services and units, backup targets, files.
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    Success,
    Failure,
    None,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Failure => "failure",
            AuditResult::None => "none",
        }
    }
}

/// The session mkplan ran in (`engine::record::origin::Origin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginFacts {
    /// The mkplan process's real user id.
    pub uid: u32,
    /// `$LOGNAME` (else `$USER`).
    pub login: Option<String>,
    /// `$SUDO_USER`: who ran `sudo`.
    pub sudo_user: Option<String>,
    /// `uname -n` of the machine mkplan ran on.
    pub host: String,
    /// The terminal (`/dev/pts/3`); `null` without one.
    pub tty: Option<String>,
    /// `address port N` of the SSH client; `null` when not over SSH.
    pub ssh_client: Option<String>,
    /// All of it on one line.
    pub summary: String,
}

impl OriginFacts {
    pub fn of(origin: &mkplan_engine::record::origin::Origin) -> Self {
        Self {
            uid: origin.uid,
            login: origin.login.clone(),
            sudo_user: origin.sudo_user.clone(),
            host: origin.host.clone(),
            tty: origin.tty.clone(),
            ssh_client: origin.ssh_client.clone(),
            summary: origin.describe(),
        }
    }
}

/// `required` distinct approvers of `by` must co-sign `report.dsse.json`
/// (`mkplan report cosign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cosigning {
    pub required: u32,
    /// Approver names, each with a key in `plan.approver_keys`.
    pub by: Vec<String>,
}

/// An approver's public key, as the plan lists it: the key a co-signature is checked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproverKeyFacts {
    pub name: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (the DSSE `keyid`).
    pub key_id: String,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: String,
    /// SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSummary {
    pub id: String,
    /// A rehearsal on a simulated host: nothing real was changed.
    pub rehearsal: bool,
    /// Who started the run.
    pub operator: String,
    /// The session it was started from; `null` in runs of an older mkplan.
    #[serde(default)]
    pub origin: Option<OriginFacts>,
    /// RFC 3339, UTC: the run's first journal event.
    pub started: String,
    /// RFC 3339, UTC: the `run_finished` event; `null` when the run did not finish.
    pub ended: Option<String>,
    /// Milliseconds from `started` to `ended`.
    pub duration_ms: Option<u64>,
    /// `succeeded`, `failed`, `rescued`, `aborted`; or `interrupted` / `needs decision` for a
    /// run that did not finish.
    pub outcome: String,
    /// What the outcome means, in one sentence: what failed and what the rescue actually
    /// did (a rescue that restored nothing says so); empty for a run that did not finish.
    pub outcome_detail: String,
    /// The main step whose failure (or denied checkpoint) sent the run to rescue.
    pub failure: Option<FailureFacts>,
    /// Each `mkplan resume` of this run: who, when.
    pub resumed: Vec<Resumption>,
    /// Each decision about a step interrupted half-way.
    pub decisions: Vec<DecisionRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureFacts {
    /// `steps[3]`.
    pub step: String,
    pub name: String,
    /// A checkpoint was denied (rather than a step failing).
    pub denied: bool,
    /// The step's error, or the denial's reason.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resumption {
    pub time: String,
    pub operator: String,
    /// The session it was resumed from; `null` in runs of an older mkplan.
    #[serde(default)]
    pub origin: Option<OriginFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    pub step: String,
    /// `retry` or `accept`.
    pub decision: String,
    pub decided_by: String,
    pub time: String,
}

/// Where the report was made. Hostname and kernel release are those of the machine that
/// wrote the report (from `uname`), the root is the host root the run acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel_release: String,
    /// `/` on a real system; a simulated tree in a rehearsal.
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFacts {
    /// The plan file the run was started with.
    pub path: String,
    /// SHA-256 of the plan's exact bytes (the run directory's `plan.yaml`).
    pub sha256: String,
    pub name: String,
    pub change_ticket: String,
    pub change_summary: String,
    /// Who the plan names as approvers of the change.
    pub approvers: Vec<String>,
    /// `change.policy`: the policy clause that sets the key's cryptoperiod (PCI DSS 3.7.4);
    /// `null` when the plan names none (or in format 1).
    #[serde(default)]
    pub policy: Option<PolicyFacts>,
    /// The approvers with a public key (who may co-sign the report); absent when none has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver_keys: Vec<ApproverKeyFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFacts {
    pub reference: String,
    pub cryptoperiod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningFacts {
    /// `key_file`, `pkcs11` or `ephemeral` (no key configured).
    pub method: String,
    /// The key file, or `module slot N label|id X`; `null` for an ephemeral key.
    pub key: Option<String>,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: String,
}

/// Application downtime: from the first unit stopped to the last started again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Downtime {
    pub first_stopped: Option<String>,
    pub last_started: Option<String>,
    /// `null` when nothing was stopped, or something stopped was not started again.
    pub duration_ms: Option<u64>,
    /// Every unit this run stopped, in the order it was stopped.
    pub units: Vec<UnitDowntime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitDowntime {
    /// The plan's service group (`services.<name>`).
    pub service: String,
    pub unit: String,
    pub stopped_at: String,
    /// `null`: not started again by this run.
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Stopping it failed (it may still have been running).
    pub stop_failed: bool,
}

/// One token: its APQNs' wrapping-key state before the migration and after activation, the
/// backup, the migration and the key inventory before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenReport {
    pub token: String,
    pub slot: u16,
    pub store: String,
    /// The WKVPs the plan names (16 bytes); for a CCA token its MK types' MKVPs
    /// (`CCA AES 0x…, APKA 0x…`).
    pub wkvp_current: String,
    pub wkvp_new: String,
    /// A CCA token (its patterns above are MKVPs per MK type); absent for EP11.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cca: bool,
    pub apqns_before: Option<ApqnTable>,
    pub apqns_after: Option<ApqnTable>,
    pub backup: Option<BackupFacts>,
    pub migration: Option<MigrationFacts>,
    pub restore: Option<RestoreFacts>,
    pub inventory_before: Option<InventoryFacts>,
    pub inventory_after: Option<InventoryFacts>,
    pub comparison: Option<ComparisonFacts>,
    /// The state the run left the token in, read after `always` whatever the outcome (after
    /// a rescue: the restored state); `null` when the run recorded none (it did not finish,
    /// or an older mkplan ran it).
    #[serde(default)]
    pub end: Option<EndFacts>,
    /// Keys per type (`CKO_SECRET_KEY/CKK_AES`): before the change and at the end.
    #[serde(default)]
    pub key_summary: Vec<KeyTypeSummary>,
}

impl TokenReport {
    /// What the token's patterns are called: `WKVP` (EP11) or `MKVPs` (CCA).
    pub fn pattern_label(&self) -> &'static str {
        match self.cca {
            true => "MKVPs",
            false => "WKVP",
        }
    }
}

/// A token at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndFacts {
    /// When it was read (the `end_state` event).
    pub time: String,
    /// The last step run before it, e.g. `always[0]`.
    pub after: Option<String>,
    /// The restore step, when the run restored the token's store from its backup.
    pub restored_by: Option<String>,
    /// Every APQN of the token; `null` when they could not be read (`apqns_not_read`).
    pub apqns: Option<ApqnTable>,
    pub apqns_not_read: Option<String>,
    /// The keys; `null` when they could not be probed (`keys_not_read`).
    pub keys: Option<EndKeyFacts>,
    pub keys_not_read: Option<String>,
}

/// The keys at the end of the run, as counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndKeyFacts {
    pub module: String,
    pub objects: u64,
    pub keys: u64,
    pub usable: u64,
    pub unusable: u64,
    pub not_exercised: u64,
    /// The first 50 keys that do not work, with the token's reason.
    pub unusable_keys: Vec<String>,
}

/// One key type's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyTypeSummary {
    /// `CKO_SECRET_KEY/CKK_AES`.
    pub key_type: String,
    /// From the `probe_keys` before the migration (or the run's first); `null`: none.
    pub before: Option<KeyCounts>,
    /// From the end state; `null`: not probed.
    pub end: Option<KeyCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCounts {
    pub total: u64,
    pub usable: u64,
}

/// The APQN states as one step read them from sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApqnTable {
    /// The step that read them, e.g. `steps[0]`.
    pub step: String,
    /// What read them: `assert_wk`, `migrate preflight`, `checkpoint until`.
    pub source: String,
    /// When the reading step finished.
    pub time: String,
    pub apqns: Vec<ApqnState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApqnState {
    /// lszcrypt notation, e.g. `0a.0011`.
    pub apqn: String,
    pub adapter: u8,
    pub domain: u8,
    pub card_type: String,
    pub online: bool,
    pub config: bool,
    pub chkstop: bool,
    /// `valid`, `invalid`, `unknown`.
    pub cur_state: String,
    /// The 32-byte verification pattern sysfs shows, `0x…`.
    pub cur_wkvp: Option<String>,
    /// `empty`, `uncommitted`, `committed`, `unknown`.
    pub new_state: String,
    pub new_wkvp: Option<String>,
    /// A CCA card: its master-key registers, one entry per MK type its `mkvps` shows (the
    /// WK fields above say `unknown` then: a CCA card has no EP11 WK).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cca: Vec<CcaMkState>,
}

/// One CCA master-key type's registers on an APQN, as `mkvps` shows them (`-`: the read
/// was interrupted; a pattern is absent where the kernel prints none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CcaMkState {
    /// `AES`, `APKA` or `ASYM`.
    pub mk: String,
    /// `empty`, `partial`, `full`, `-`.
    pub new_state: String,
    pub new_mkvp: Option<String>,
    /// `valid`, `invalid`, `empty`, `-`.
    pub cur_state: String,
    pub cur_mkvp: Option<String>,
    pub old_state: String,
    pub old_mkvp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupFacts {
    pub step: String,
    /// The plan's backup target.
    pub target: String,
    pub archive: String,
    pub archive_sha256: String,
    pub archive_bytes: u64,
    pub manifest: String,
    pub manifest_sha256: String,
    /// Regular files in the token store.
    pub files: u64,
    pub bytes: u64,
    /// Read back and matched with the manifest and the live store.
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationFacts {
    pub step: String,
    /// `succeeded`, `failed`, `uncertain`.
    pub status: String,
    /// Whether `pkcsep11_migrate` was started at all (a refused preflight does not start it).
    pub tool_started: bool,
    pub tool: Option<String>,
    /// `pkcsep11_migrate` prints no version; `null` means not known.
    pub tool_version: Option<String>,
    pub argv: Option<String>,
    pub apqn: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub timed_out: bool,
    pub keys_started: Option<u64>,
    pub keys_reenciphered: Option<u64>,
    pub objects_listed: Option<u64>,
    /// The tool printed `all keys successfully reencrypted`.
    pub success_line: bool,
    pub duration_ms: Option<u64>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFacts {
    pub step: String,
    pub status: String,
    /// What it did: `restored` (the store was replaced by the verified backup), `unchanged`
    /// (the store was identical to the backup), `nothing` (no backup, no migration), or
    /// `null` when it failed or did not finish.
    pub action: Option<String>,
    /// The step's summary or error.
    pub detail: String,
}

/// A `probe_keys` inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryFacts {
    pub step: String,
    pub time: String,
    pub objects: u64,
    pub keys: u64,
    /// `CKO_SECRET_KEY/CKK_AES` → count.
    pub counts: BTreeMap<String, u64>,
    /// Keys shown to work, and keys that failed; `None` in reports from before the side file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<u64>,
    /// Keys (secret, private, public) in the inventory's order: with `key_file`, every
    /// unusable key (at most 100) and the first 25 others; without (older reports), all.
    pub key_list: Vec<KeyFacts>,
    /// The full inventory: a JSON Lines file in the run directory, beside `report.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<KeyFileFacts>,
}

/// The side file a `probe_keys` wrote: every object on the token, one JSON object a line
/// (`class`, `key_type`, `label`, `id`, `token`, `blob_len`, `blob_sha256`, `usable` as
/// `{"state": "usable"|"unusable"|"not_exercised", "reason"}`), sorted by class, id, label and
/// key type. Its SHA-256 here, in the signed report, makes it part of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFileFacts {
    /// The file's name in the run directory.
    pub name: String,
    pub sha256: String,
    pub lines: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFacts {
    pub class: String,
    pub key_type: Option<String>,
    /// `CKA_ID`, lowercase hex.
    pub id: String,
    pub label: String,
    /// SHA-256 of the secure-key blob (`CKA_IBM_OPAQUE`): changes when re-enciphered.
    pub blob_sha256: Option<String>,
    /// `usable`, `unusable`, `not_exercised`.
    pub usable: String,
    pub reason: Option<String>,
}

/// The inventory before the migration against the one after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComparisonFacts {
    /// Same keys and all usable.
    pub ok: bool,
    pub same_keys: bool,
    pub all_usable: bool,
    /// Keys before that are not there after (`class id label`).
    pub missing: Vec<String>,
    /// Keys after that were not there before.
    pub extra: Vec<String>,
    /// Usable before, unusable after, with the reason.
    pub newly_unusable: Vec<String>,
    /// Keys whose blob changed: re-enciphered.
    pub reenciphered: u64,
    /// How many keys each list has in full (each list names at most 100); `None` in reports
    /// from before the lists were capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newly_unusable_total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    /// The checkpoint's position, e.g. `steps[1]`.
    pub checkpoint: String,
    pub checkpoint_name: String,
    pub checkpoint_id: Option<String>,
    pub approver: String,
    /// `tty`, `flag`, `file`.
    pub method: String,
    pub time: String,
    /// SHA-256 of exactly the text the approver was shown.
    pub shown_sha256: String,
    /// The approver's signed statement (`mkplan approve`); absent for an asserted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedApprovalFacts>,
}

/// A signed approval as the checkpoint accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedApprovalFacts {
    /// The approver's key id (SHA-256 of the DER SubjectPublicKeyInfo, hex).
    pub key_id: String,
    /// SHA-256 of the statement (the envelope's decoded payload).
    pub statement_sha256: String,
    pub issued: String,
    pub expires: String,
    /// The DSSE envelope exactly as given: the README recipe verifies it with openssl.
    pub envelope: ApprovalEnvelope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalEnvelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<ApprovalEnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalEnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

impl ApprovalRecord {
    /// How it was given: `file`, or `file, signed (key 9c1e…)`.
    pub fn how(&self) -> String {
        match &self.signed {
            Some(signed) => format!(
                "{}, signed (key {})",
                self.method,
                mkplan_sig::short_id(&signed.key_id)
            ),
            None => self.method.clone(),
        }
    }
}

impl SignedApprovalFacts {
    /// From the journaled envelope (verified at the checkpoint that journaled it).
    pub fn of(signed: &mkplan_engine::signed_approval::SignedApproval) -> Self {
        let claimed = signed.claimed();
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &signed.payload)
                .unwrap_or_default();
        Self {
            key_id: signed
                .signatures
                .first()
                .map(|s| s.keyid.clone())
                .unwrap_or_default(),
            statement_sha256: mkplan_engine::digest::sha256_hex(&payload),
            issued: claimed
                .as_ref()
                .map(|c| c.issued.clone())
                .unwrap_or_default(),
            expires: claimed.map(|c| c.expires).unwrap_or_default(),
            envelope: ApprovalEnvelope {
                payload_type: signed.payload_type.clone(),
                payload: signed.payload.clone(),
                signatures: signed
                    .signatures
                    .iter()
                    .map(|s| ApprovalEnvelopeSignature {
                        keyid: s.keyid.clone(),
                        sig: s.sig.clone(),
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefusedApproval {
    pub checkpoint: String,
    pub approver: String,
    pub method: String,
    pub time: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    /// `steps[0]`, `rescue[0]`, `always[0]`.
    pub position: String,
    pub id: Option<String>,
    pub name: String,
    pub kind: String,
    /// `succeeded`, `failed`, `skipped`, `uncertain` (started, no outcome), `not_reached`.
    pub status: String,
    /// When its last attempt started.
    pub started: Option<String>,
    pub duration_ms: Option<u64>,
    pub attempts: u32,
    /// The step's summary, error or skip reason, on one line.
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalFacts {
    /// Relative to the report's directory.
    pub path: String,
    pub version: u32,
    pub events: u64,
    /// The hash of the last event: the whole chain's digest.
    pub head: String,
}

impl RunReport {
    /// The exact bytes of `report.json`: pretty JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("reports serialise");
        bytes.push(b'\n');
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReportParseError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(ReportParseError::NotJson)?;
        match value
            .get("report_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v)
                if (u64::from(OLDEST_REPORT_VERSION)..=u64::from(REPORT_VERSION)).contains(&v) => {}
            Some(v) => return Err(ReportParseError::Version(v)),
            None => return Err(ReportParseError::NoVersion),
        }
        serde_json::from_value(value).map_err(ReportParseError::NotAReport)
    }
}

/// Why bytes are not a run report this mkplan reads.
#[derive(Debug, thiserror::Error)]
pub enum ReportParseError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("report version {0} (this mkplan reads {OLDEST_REPORT_VERSION} to {REPORT_VERSION})")]
    Version(u64),
    #[error("no `report_version`: not an mkplan run report")]
    NoVersion,
    #[error("not an mkplan run report: {0}")]
    NotAReport(#[source] serde_json::Error),
}

/// The report JSON Schema (draft 2020-12), as checked in at `schemas/report.schema.json`.
pub fn report_schema_text() -> String {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<RunReport>();
    // In place: `Schema` serialises its keywords in the conventional order ($schema first).
    if let Some(keywords) = schema.as_object_mut() {
        keywords.values_mut().for_each(replace_integer_formats);
    }
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialise");
    text.push('\n');
    text
}

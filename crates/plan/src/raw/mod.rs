//! The plan as written: a serde + schemars mirror of the YAML. These types *are* the published
//! JSON Schema (`mkplan schema`); nothing here is validated beyond its shape. `model.rs` holds
//! the validated plan that the engine can trust.

mod steps;

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::Value;

pub use steps::*;

/// Names of tokens, services, backups and variables: usable in templates as `tokens.<name>`.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_-]{0,62}$";
/// `lszcrypt` notation: two hex digits for the card, four for the domain.
pub const LSZCRYPT_APQN_PATTERN: &str = "^[0-9a-fA-F]{2}\\.00[0-9a-fA-F]{2}$";
/// Decimal, `0x` hex or leading-`0` octal, as `pkcsep11_migrate` documents them.
pub const NUMBER_TEXT_PATTERN: &str = "^(0[xX][0-9a-fA-F]{1,2}|0([0-3][0-7]{2}|[0-7]{1,2})?|[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5])$";
/// 16 bytes (or the 32 that sysfs prints), optionally `0x`-prefixed.
pub const WKVP_PATTERN: &str = "^(0[xX])?([0-9a-fA-F]{32}|[0-9a-fA-F]{64})$";
/// A CCA MKVP: 16 hex digits.
pub const MKVP_PATTERN: &str = "^(0[xX])?[0-9a-fA-F]{16}$";
/// `30`, `30s`, `500ms`, `5m`, `2h`.
pub const DURATION_PATTERN: &str = "^[0-9]{1,9}(ms|s|m|h)?$";

/// An mkplan plan: one HSM master-key change, its safety net and its evidence.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mkplan plan")]
pub struct RawPlan {
    /// Plan format version. This mkplan reads version `1`.
    #[schemars(range(min = 1, max = 1))]
    pub mkplan: u64,
    /// A short title of the change, shown in the dry run, the journal and the report.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The change-management record this plan carries out.
    pub change: RawChange,
    /// Values for templates: `{{ name }}` anywhere a string is templated.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub vars: BTreeMap<String, Value>,
    /// The openCryptoki EP11 tokens this plan works on, by name.
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }, "minProperties" = 1))]
    pub tokens: BTreeMap<String, RawToken>,
    /// Groups of services that use the tokens and are stopped and started together.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub services: BTreeMap<String, RawService>,
    /// Places where token stores are backed up.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub backups: BTreeMap<String, RawBackupTarget>,
    /// The steps, run in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<RawStep>,
    /// Steps run when a step fails (for example: restore the backup).
    #[serde(default)]
    pub rescue: Vec<RawStep>,
    /// Steps run at the end whatever happened (for example: start the services again).
    #[serde(default)]
    pub always: Vec<RawStep>,
    /// Where the signed run report goes and how it is signed.
    #[serde(default)]
    pub report: Option<RawReport>,
}

/// The change record: what auditors match the run against.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChange {
    /// The change ticket, e.g. `CHG0042`.
    #[schemars(length(min = 1))]
    pub ticket: String,
    /// One line on what the change does.
    #[schemars(length(min = 1))]
    pub summary: String,
    /// People allowed to approve checkpoints (default approvers of every checkpoint): a name,
    /// or `{name, key}` with the approver's public key, who can then co-sign the report.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub approvers: Vec<RawApprover>,
    /// An approval that is only a name (`--approve`, an approvals file's `approver`, a name
    /// typed at the terminal) for an approver who has a key: `refuse` (the default; they
    /// sign with `mkplan approve`) or `warn` (accepted, and the report says so).
    #[serde(default)]
    pub asserted_approvals: Option<RawAssertedApprovals>,
    /// The key-management policy clause that sets this key's cryptoperiod (PCI DSS 3.7.4),
    /// shown on the report's first page.
    #[serde(default)]
    pub policy: Option<RawPolicy>,
}

/// What an asserted-name approval of an approver with a key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawAssertedApprovals {
    Refuse,
    Warn,
}

/// A PEM key block. Loose on purpose: which key it is (a private key pasted by mistake, an
/// RSA key) is said precisely when the plan is lowered.
pub const KEY_PEM_PATTERN: &str = "^-----BEGIN [A-Z0-9 ]*KEY-----\\n";

/// An approver: a name, or a name with the public key they sign with.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawApprover {
    Name(String),
    Keyed(RawKeyedApprover),
}

impl RawApprover {
    pub fn name(&self) -> &str {
        match self {
            RawApprover::Name(name) => name,
            RawApprover::Keyed(keyed) => &keyed.name,
        }
    }
}

impl JsonSchema for RawApprover {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Approver".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let keyed = generator.subschema_for::<RawKeyedApprover>();
        json_schema!({
            "description": "An approver: a name (an asserted approval), or `{name, key}` with the approver's ECDSA P-256 or Ed25519 public key (PEM), who can then co-sign the report.",
            "oneOf": [
                { "type": "string", "minLength": 1 },
                keyed
            ]
        })
    }
}

/// An approver with a public key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKeyedApprover {
    /// The approver's name, as checkpoints' `approvers` and `report.cosign.by` name them.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The approver's public key: SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`),
    /// ECDSA P-256 or Ed25519 (`mkplan keygen` writes one as `PREFIX.pub.pem`).
    #[schemars(regex(pattern = KEY_PEM_PATTERN))]
    pub key: String,
    /// Optional paste check: the key's id (SHA-256 of its DER form, lowercase hex), as
    /// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum` prints it.
    #[serde(default)]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub key_id: Option<String>,
}

/// Where the change's cryptoperiod comes from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// The policy and clause, e.g. `KMP-7 §4.2`.
    #[schemars(length(min = 1))]
    pub reference: String,
    /// The cryptoperiod it sets, e.g. `12 months`.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub cryptoperiod: Option<String>,
}

/// An openCryptoki EP11 or CCA token and the adapter domains (APQNs) that hold its master keys.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// The token type: `ep11` (the default; give `wkvp`) or `cca` (give `mks`).
    #[serde(default, rename = "type")]
    pub token_type: Option<RawTokenType>,
    /// The token's PKCS#11 slot number (as in `opencryptoki.conf`).
    #[schemars(range(min = 0, max = 1023))]
    pub slot: u64,
    /// Absolute path of the token's data store, e.g. `/var/lib/opencryptoki/ep11tok`.
    #[schemars(regex(pattern = "^/"))]
    pub store: String,
    /// Absolute path of the token's `ep11tok.conf`, to cross-check `APQN_ALLOWLIST` and `EXPECTED_WKVP`.
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub config: Option<String>,
    /// Every adapter/domain pair the token uses: `"0a.0011"` (lszcrypt, hex) or `{adapter, domain}`.
    #[schemars(length(min = 1))]
    pub apqns: Vec<RawApqn>,
    /// Where the token's USER PIN comes from. The PIN itself never appears in a plan.
    pub pin: RawPinSource,
    /// CCA only: where the token's SO PIN comes from (`pkcscca` asks for the SO PIN and
    /// the USER PIN). The PIN itself never appears in a plan.
    #[serde(default)]
    pub so_pin: Option<RawPinSource>,
    /// EP11 only: wrapping-key verification patterns, the current one and the new one.
    #[serde(default)]
    pub wkvp: Option<RawWkvpPair>,
    /// CCA only: the master-key types the token's keys use, each with its current and new
    /// pattern.
    #[serde(default)]
    pub mks: Option<RawCcaMks>,
}

/// `ep11` or `cca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawTokenType {
    Ep11,
    Cca,
}

/// A CCA token's master-key types (at least one): `pkcscca -k <type>` migrates each.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct RawCcaMks {
    /// DES, DES2 and DES3 keys (the SYM master key).
    #[serde(default)]
    pub sym: Option<RawMkvpPair>,
    /// Old-format RSA keys (the ASYM master key).
    #[serde(default)]
    pub asym: Option<RawMkvpPair>,
    /// AES, AES-XTS and HMAC keys (the AES master key).
    #[serde(default)]
    pub aes: Option<RawMkvpPair>,
    /// EC, new-format RSA and Dilithium/ML-DSA/ML-KEM keys (the APKA master key).
    #[serde(default)]
    pub apka: Option<RawMkvpPair>,
}

/// The current and new CCA master-key verification patterns of one MK type.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMkvpPair {
    /// The MKVP of the master key in the CUR register now, 16 hex digits.
    #[schemars(regex(pattern = MKVP_PATTERN))]
    pub current: String,
    /// The MKVP of the new master key the TKE loads and sets, 16 hex digits.
    #[schemars(regex(pattern = MKVP_PATTERN))]
    pub new: String,
}

/// An APQN: `"0a.0011"` as `lszcrypt` prints it, or `{adapter: 10, domain: 17}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawApqn {
    Lszcrypt(String),
    Pair(RawApqnPair),
}

impl JsonSchema for RawApqn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Apqn".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let pair = generator.subschema_for::<RawApqnPair>();
        json_schema!({
            "description": "An adapter/domain pair: `\"0a.0011\"` as lszcrypt prints it (hex card.domain), or `{adapter, domain}`.",
            "oneOf": [
                {
                    "type": "string",
                    "pattern": LSZCRYPT_APQN_PATTERN,
                    "description": "lszcrypt notation: two hex digits of card, a dot, four hex digits of domain."
                },
                pair
            ]
        })
    }
}

/// An APQN by numbers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApqnPair {
    /// The adapter (card) number, 0..255: an integer, or a string in decimal, `0x` hex or leading-`0` octal.
    pub adapter: RawNumber,
    /// The domain number, 0..255: an integer, or a string in decimal, `0x` hex or leading-`0` octal.
    pub domain: RawNumber,
}

/// A number 0..255 as an integer or as text in the notations `pkcsep11_migrate` documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawNumber {
    Int(u64),
    Text(String),
}

impl JsonSchema for RawNumber {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ApqnNumber".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "0..255: an integer, or a string in decimal, `0x` hex or leading-`0` octal.",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": 255 },
                { "type": "string", "pattern": NUMBER_TEXT_PATTERN }
            ]
        })
    }
}

/// Where a PIN comes from: exactly one of `env`, `file` or `prompt`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = exactly_one_property)]
pub struct RawPinSource {
    /// The name of an environment variable of mkplan's that holds the PIN.
    #[serde(default)]
    #[schemars(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: Option<String>,
    /// Absolute path of a file (mode 0600 or 0400) whose first line is the PIN.
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub file: Option<String>,
    /// Ask for the PIN on the terminal, without echo.
    #[serde(default)]
    #[schemars(extend("const" = true))]
    pub prompt: Option<bool>,
}

/// The current and new wrapping-key verification patterns.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWkvpPair {
    /// The WKVP of the wrapping key in use now (`WK CUR` in sysfs `mkvps`), 32 hex digits.
    #[schemars(regex(pattern = WKVP_PATTERN))]
    pub current: String,
    /// The WKVP of the new wrapping key the TKE loads and commits (`WK NEW`), 32 hex digits.
    #[schemars(regex(pattern = WKVP_PATTERN))]
    pub new: String,
}

/// A group of services: systemd units, or commands to stop, start and query them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = exactly_one_property)]
pub struct RawService {
    /// systemd units, stopped in this order and started in reverse.
    #[serde(default)]
    #[schemars(extend("minItems" = 1, "uniqueItems" = true, "items" = { "type": "string", "minLength": 1 }))]
    pub systemd: Option<Vec<String>>,
    /// Commands (argv lists) that stop, start and query the service.
    #[serde(default)]
    pub command: Option<RawServiceCommands>,
}

/// A service driven by commands rather than systemd.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServiceCommands {
    /// argv that stops the service.
    #[schemars(extend("minItems" = 1))]
    pub stop: Vec<String>,
    /// argv that starts the service.
    #[schemars(extend("minItems" = 1))]
    pub start: Vec<String>,
    /// argv that exits 0 while the service runs and non-zero when it is stopped.
    #[schemars(extend("minItems" = 1))]
    pub is_active: Vec<String>,
}

/// A directory for verified token-store backups.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackupTarget {
    /// Absolute directory for the archives (templated); not inside any token's store.
    #[schemars(length(min = 1))]
    pub dir: String,
    /// How many of this token's mkplan backups to keep (older ones are removed).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub keep: Option<u64>,
}

/// Where the run report goes and how it is signed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// Absolute directory for a copy of the report (templated); the run directory always has one.
    #[serde(default)]
    pub dir: Option<String>,
    /// File mode of the copy under `dir`, in octal: `"0600"` (the default), `"0640"` or
    /// `"0644"` to share it; never writable by group or others.
    #[serde(default)]
    #[schemars(regex(pattern = "^0?[0-7]{3}$"))]
    pub mode: Option<String>,
    /// The report-signing key; it must not live on a token this plan migrates.
    #[serde(default)]
    pub sign: Option<RawSign>,
    /// Co-signatures the report needs from approvers with a key (`mkplan report cosign`).
    #[serde(default)]
    pub cosign: Option<RawCosign>,
}

/// How many approvers must co-sign the report, and which may.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCosign {
    /// How many distinct approvers of `by` must co-sign.
    #[schemars(range(min = 1, max = 16))]
    pub required: u64,
    /// The approvers (by name, each with a key) who may co-sign; default: every approver
    /// with a key.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true, "items" = { "type": "string", "minLength": 1 }))]
    pub by: Option<Vec<String>>,
}

/// The report-signing key: exactly one of `key` (a PEM file) or `pkcs11` (a key on a token).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = exactly_one_property)]
pub struct RawSign {
    /// Absolute path of a PKCS#8 PEM private key (ECDSA P-256 or Ed25519), mode 0600.
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub key: Option<String>,
    /// A signing key on a PKCS#11 token.
    #[serde(default)]
    pub pkcs11: Option<RawPkcs11Key>,
}

/// A report-signing key on a PKCS#11 token.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPkcs11Key {
    /// Absolute path of the PKCS#11 module.
    #[schemars(regex(pattern = "^/"))]
    pub module: String,
    /// The slot holding the key; it must not be a slot this plan migrates.
    #[schemars(range(min = 0, max = 1023))]
    pub slot: u64,
    /// The key's `CKA_LABEL` (give `label` or `id`).
    #[serde(default)]
    pub label: Option<String>,
    /// The key's `CKA_ID` in hex (give `label` or `id`).
    #[serde(default)]
    #[schemars(regex(pattern = "^([0-9a-fA-F]{2})+$"))]
    pub id: Option<String>,
    /// Where the token's USER PIN comes from.
    pub pin: RawPinSource,
}

/// A number of seconds, or text such as `30s`, `500ms`, `5m`, `2h`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl JsonSchema for RawDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Seconds as an integer, or text: `30s`, `500ms`, `5m`, `2h`.",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": 999_999_999u64 },
                { "type": "string", "pattern": DURATION_PATTERN }
            ]
        })
    }
}

/// Adds `oneOf: [{required: [p]} …]` over every property: exactly one must be given.
pub fn exactly_one_property(schema: &mut Schema) {
    let names: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    add_one_of_required(schema, &names);
}

pub(crate) fn add_one_of_required(schema: &mut Schema, names: &[String]) {
    let one_of: Vec<Value> = names
        .iter()
        .map(|name| serde_json::json!({ "required": [name] }))
        .collect();
    schema.insert("oneOf".to_owned(), Value::Array(one_of));
}

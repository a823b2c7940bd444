//! Simulated applications: processes that keep using the keys, one operation every few
//! milliseconds (sign with a private key, encrypt with a secret key, verify with an EP11
//! public key), and count what worked in `run/mkplan-sim/workloads/<name>.json`, which
//! `mkplan-sim apps` reports. An app runs inside a unit's process (it stops and starts with
//! the service) or as a process of its own; counts add up across restarts.
//!
//! Each operation goes through the token as openCryptoki's does (opencryptoki-ep11.md 2.6):
//! the token starts in the process (`C_Initialize`: a token openCryptoki would not start
//! makes every operation fail); outside a concurrent MK change it spreads requests over its
//! online APQNs; while an operation covers it (found in the operation files, where a process
//! that starts finds it; the simulator's stand-in for pkcsslotd's event) it uses a single
//! APQN, preferring one whose current WK/MK is already the new one, and the blob that works
//! there (`keyuse`). The key is opened under the registers as they are at that moment.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::BlobKind;
use crate::mkchange_ops::{self, KeyType, Operation, SlotRecord};
use crate::presence::not_present_reason;
use crate::state::{self, SimState, TokenKind, TokenRecord};
use crate::store::SimObject;
use crate::token::under;
use crate::{SimError, cca_sysfs, keyuse, sysfs, syslog};

const FORMAT: &str = "mkplan-sim-workload";

/// `run/mkplan-sim/workloads`.
fn workloads_dir(root: &Path) -> PathBuf {
    root.join("run/mkplan-sim/workloads")
}

fn counts_path(root: &Path, name: &str) -> PathBuf {
    workloads_dir(root).join(format!("{name}.json"))
}

/// Operations that worked and that failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
}

/// One failed operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub time: String,
    pub token: String,
    pub key: String,
    pub apqn: Option<String>,
    pub reason: String,
}

/// What an app has done so far (its file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCounts {
    pub format: String,
    pub version: u32,
    pub name: String,
    /// The process that wrote this last.
    pub pid: u32,
    /// How many times the app (its process) started.
    pub starts: u32,
    #[serde(flatten)]
    pub tally: Tally,
    pub by_token: BTreeMap<String, Tally>,
    pub first_failure: Option<Failure>,
    pub last_failure: Option<Failure>,
    /// Per token: `multi-APQN`, or `single-APQN 0a.0011 (operation ID)`.
    pub mode: BTreeMap<String, String>,
    pub updated: String,
}

impl AppCounts {
    fn new(name: &str) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: 1,
            name: name.to_owned(),
            pid: std::process::id(),
            starts: 0,
            tally: Tally::default(),
            by_token: BTreeMap::new(),
            first_failure: None,
            last_failure: None,
            mode: BTreeMap::new(),
            updated: String::new(),
        }
    }
}

/// Every app's counts, and the totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppsReport {
    pub apps: BTreeMap<String, AppStatus>,
    pub total: Tally,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    pub running: bool,
    #[serde(flatten)]
    pub counts: AppCounts,
}

impl AppsReport {
    pub fn no_failures(&self) -> bool {
        self.total.failed == 0
    }
}

impl std::fmt::Display for AppsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, app) in &self.apps {
            let c = &app.counts;
            write!(
                f,
                "app {name}: ok {}, failed {} ({}",
                c.tally.ok,
                c.tally.failed,
                if app.running {
                    "running"
                } else {
                    "not running"
                }
            )?;
            if let Some(last) = &c.last_failure {
                write!(
                    f,
                    "; last failure {}: token {}, key {}{}: {}",
                    last.time,
                    last.token,
                    last.key,
                    last.apqn
                        .as_ref()
                        .map(|a| format!(" on {a}"))
                        .unwrap_or_default(),
                    last.reason
                )?;
            }
            writeln!(f, ")")?;
        }
        writeln!(
            f,
            "total: ok {}, failed {}",
            self.total.ok, self.total.failed
        )
    }
}

/// What every app of the host has counted.
pub(crate) fn report(root: &Path) -> Result<AppsReport, SimError> {
    let state = state::load(root)?;
    let mut report = AppsReport {
        apps: BTreeMap::new(),
        total: Tally::default(),
    };
    for app in &state.apps {
        let counts = load_counts(root, &app.name).unwrap_or_else(|| AppCounts::new(&app.name));
        let running = if app.in_unit {
            crate::procs::unit_pid(root, &app.name).is_some()
        } else {
            crate::procs::app_pid(root, &app.name).is_some()
        };
        report.total.ok += counts.tally.ok;
        report.total.failed += counts.tally.failed;
        report
            .apps
            .insert(app.name.clone(), AppStatus { running, counts });
    }
    Ok(report)
}

fn load_counts(root: &Path, name: &str) -> Option<AppCounts> {
    let text =
        mkplan_plan::input::read_to_string(&counts_path(root, name), mkplan_plan::input::SMALL)
            .ok()?;
    serde_json::from_str::<AppCounts>(&text)
        .ok()
        .filter(|c| c.format == FORMAT && c.version == 1)
}

/// Replaces the file through a rename (readers see old or new; no fsync: counts need not
/// survive a host crash).
fn write_counts(root: &Path, counts: &AppCounts) {
    let dir = workloads_dir(root);
    let _ = fs::create_dir_all(&dir);
    let path = counts_path(root, &counts.name);
    let tmp = dir.join(format!(".{}.{}.tmp", counts.name, std::process::id()));
    let text = serde_json::to_string_pretty(counts).expect("counts serialize");
    if fs::write(&tmp, text).is_ok() {
        let _ = fs::rename(&tmp, &path);
    }
}

/// The app `name`'s loop; returns only if the app is not in the state.
pub(crate) fn run(root: &Path, name: &str) -> Result<(), SimError> {
    let state = state::load(root)?;
    let Some(app) = state.apps.iter().find(|a| a.name == name).cloned() else {
        return Ok(());
    };
    let tokens: Vec<String> = if app.tokens.is_empty() {
        state.tokens.keys().cloned().collect()
    } else {
        app.tokens.clone()
    };
    // C_Initialize: which tokens start in this process, decided once.
    let present: BTreeMap<String, Option<String>> = tokens
        .iter()
        .map(|t| {
            let reason = state
                .tokens
                .get(t)
                .map_or(Some("no such token".to_owned()), |r| {
                    not_present_reason(root, &state, r)
                });
            (t.clone(), reason)
        })
        .collect();
    let mut counts = load_counts(root, name).unwrap_or_else(|| AppCounts::new(name));
    counts.pid = std::process::id();
    counts.starts += 1;
    let mut app_state = AppState::default();
    let mut turn = 0usize;
    loop {
        let token = &tokens[turn % tokens.len().max(1)];
        turn += 1;
        if let Some(outcome) = operation(root, token, &present[token], &mut app_state) {
            record(&mut counts, token, outcome, &app_state);
            counts.updated = jiff::Timestamp::now().to_string();
            write_counts(root, &counts);
        }
        std::thread::sleep(Duration::from_millis(app.interval_ms));
    }
}

/// What one process remembers between operations.
#[derive(Default)]
struct AppState {
    /// Next key to use, per token.
    cursor: BTreeMap<String, usize>,
    /// Next APQN in multi-APQN mode.
    spread: usize,
    /// The single APQN in use per token and the operation it is for.
    single: BTreeMap<String, (String, String)>,
}

/// Whether an operation worked: the key used and the APQN, or the failure.
type Outcome = Result<(String, String), (String, Option<String>, String)>;

fn record(counts: &mut AppCounts, token: &str, outcome: Outcome, app: &AppState) {
    let tally = counts.by_token.entry(token.to_owned()).or_default();
    counts.mode.insert(
        token.to_owned(),
        match app.single.get(token) {
            Some((apqn, id)) => format!("single-APQN {apqn} (operation {id})"),
            None => "multi-APQN".to_owned(),
        },
    );
    match outcome {
        Ok(_) => {
            tally.ok += 1;
            counts.tally.ok += 1;
        }
        Err((key, apqn, reason)) => {
            tally.failed += 1;
            counts.tally.failed += 1;
            let failure = Failure {
                time: jiff::Timestamp::now().to_string(),
                token: token.to_owned(),
                key,
                apqn,
                reason,
            };
            counts.first_failure.get_or_insert_with(|| failure.clone());
            counts.last_failure = Some(failure);
        }
    }
}

/// One operation with the next key of `token`; `None` when the host could not be read at
/// that moment (not the application's failure).
fn operation(
    root: &Path,
    token: &str,
    absent: &Option<String>,
    app: &mut AppState,
) -> Option<Outcome> {
    let state = state::load(root).ok()?;
    let record = state.tokens.get(token)?;
    if let Some(reason) = absent {
        return Some(Err((
            String::new(),
            None,
            format!("CKR_TOKEN_NOT_PRESENT ({reason})"),
        )));
    }
    let object = next_key(
        &under(root, &record.store),
        app.cursor.entry(token.to_owned()).or_default(),
    )?;
    let active = mkchange_ops::active_for_slot(root, record.slot);
    let blobs = keyuse::candidates(&object, active.is_some());
    let Some(apqn) = target(&state, record, &object, active.as_ref(), app) else {
        return Some(Err((
            object.label,
            None,
            "CKR_DEVICE_ERROR (no online APQN)".into(),
        )));
    };
    match &active {
        Some((op, _)) => {
            let entered = app
                .single
                .insert(token.to_owned(), (apqn.clone(), op.id.clone()));
            if entered.as_ref() != Some(&(apqn.clone(), op.id.clone())) {
                announce_single(root, record, op, &apqn);
            }
        }
        None => {
            app.single.remove(token);
        }
    }
    let result = match record.kind {
        TokenKind::Ep11 => keyuse::on_ep11(&state.apqns[&apqn], &blobs),
        TokenKind::Cca => keyuse::on_cca(&state.cca_apqns[&apqn], &blobs, true),
    };
    Some(match result {
        Ok(()) => Ok((object.label, apqn)),
        Err(reason) => Err((object.label, Some(apqn), reason)),
    })
}

/// The next object of the store that has a blob (a key).
fn next_key(store: &Path, cursor: &mut usize) -> Option<SimObject> {
    let index = mkplan_plan::input::read_to_string(
        &store.join("TOK_OBJ/OBJ.IDX"),
        mkplan_plan::input::STORE_FILE,
    )
    .ok()?;
    let names: Vec<&str> = index
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for _ in 0..names.len() {
        let name = names[*cursor % names.len()];
        *cursor += 1;
        let text = mkplan_plan::input::read_to_string(
            &store.join("TOK_OBJ").join(name),
            mkplan_plan::input::STORE_FILE,
        )
        .ok()?;
        let object: SimObject = serde_json::from_str(text.lines().next()?).ok()?;
        if object.key_type.is_some() && object.blob.is_some() {
            return Some(object);
        }
    }
    None
}

/// The APQN the token sends the request to.
fn target(
    state: &SimState,
    record: &TokenRecord,
    object: &SimObject,
    active: Option<&(Operation, SlotRecord)>,
    app: &mut AppState,
) -> Option<String> {
    let answering: Vec<&String> = record
        .apqns
        .iter()
        .filter(|name| answers(state, name))
        .collect();
    if answering.is_empty() {
        return None;
    }
    let Some((op, _)) = active else {
        app.spread += 1;
        return Some(answering[app.spread % answering.len()].clone());
    };
    let has_new = |name: &String| match record.kind {
        TokenKind::Ep11 => {
            let new = op.new_mkvp(KeyType::Ep11);
            state.apqns[name]
                .cur
                .vp
                .is_some_and(|vp| Some(&vp[..16]) == new)
        }
        TokenKind::Cca => {
            let mk = object
                .blob_bytes()
                .as_deref()
                .and_then(BlobKind::of)
                .and_then(BlobKind::cca_mk);
            mk.is_some_and(|mk| {
                let cur = state.cca_apqns[name].mk(mk).cur.valid_vp();
                cur.is_some_and(|vp| Some(&vp.bytes()[..]) == op.new_mkvp(KeyType::Cca(mk)))
            })
        }
    };
    Some(
        answering
            .iter()
            .find(|n| has_new(n))
            .unwrap_or(&answering[0])
            .to_string(),
    )
}

fn answers(state: &SimState, name: &str) -> bool {
    if let Some(queue) = state.apqns.get(name) {
        let card = state.cards.get(&format!("{:02x}", queue.adapter));
        return card.is_some_and(|card| sysfs::answers(card, queue));
    }
    state.cca_apqns.get(name).is_some_and(|queue| {
        let card = state.cards.get(&format!("{:02x}", queue.adapter));
        card.is_some_and(|card| cca_sysfs::answers(card, queue))
    })
}

/// The token's syslog line when it goes to single-APQN mode (opencryptoki-ep11.md 2.6).
fn announce_single(root: &Path, record: &TokenRecord, op: &Operation, apqn: &str) {
    let kind = match record.kind {
        TokenKind::Ep11 => "EP11",
        TokenKind::Cca => "CCA",
    };
    let upper = apqn.to_uppercase();
    syslog::log(
        root,
        "app",
        &format!(
            "Slot {}: A concurrent HSM master key change operation ({}) is active, {kind} token uses a single APQN: {upper}",
            record.slot, op.id
        ),
    );
}

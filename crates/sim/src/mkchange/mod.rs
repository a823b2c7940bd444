//! The `pkcshsm_mk_change` stand-in: openCryptoki 3.21+'s concurrent master-key change
//! (opencryptoki-ep11.md 2) against the simulated tokens and registers: `reencipher`,
//! `finalize`, `cancel` and `list`, their prompts, messages, operation files, lock and exit
//! codes (0 success, 1 any failure; diagnostics on stderr as `pkcshsm_mk_change: …`).
//! SIGINT and SIGTERM are ignored while it runs, as the real tool does.
//!
//! Start-up, as for every command (2.2): the MK-change lock file is created; `C_Initialize`
//! needs pkcsslotd; every slot's token is started (a token openCryptoki would not start, and
//! a configured slot without a token, count as "not present"); all commands but `list` need
//! pkcsslotd's event support (the `disable-event-support` fault turns it off).

mod args;
mod flow;
mod list;
mod passes;
mod query;

use std::path::{Path, PathBuf};

use crate::mkchange_ops;
use crate::presence::not_present_reason;
use crate::state::{self, SimState, TokenRecord};
use crate::store::{self, Login};
use crate::token::under;
use crate::{Fault, pin_prompt, procs};

pub(crate) const TOOL: &str = "pkcshsm_mk_change";

/// `warnx`: the tool's diagnostics.
pub(crate) fn warnx(text: &str) {
    eprintln!("{TOOL}: {text}");
}

/// A slot whose token started in the tool's process.
pub(crate) struct Present {
    pub record: TokenRecord,
    /// The token label from its token data.
    pub label: String,
    /// The store under the root.
    pub store: PathBuf,
}

/// The tool's view of the host after start-up.
pub(crate) struct Tool {
    pub root: PathBuf,
    pub state: SimState,
    pub faults: Vec<Fault>,
    /// Present tokens, in slot order.
    pub present: Vec<Present>,
    /// Configured slots without a present token, in order.
    pub missing: Vec<u64>,
}

impl Tool {
    /// The USER PIN prompt and login for `slot` (2.3 step 6): an empty PIN is asked again;
    /// `false` after the tool has said why not.
    pub fn log_in(&self, token: &Present) -> bool {
        let slot = token.record.slot;
        let pin = loop {
            match pin_prompt::pin_prompt(&format!("Enter the USER PIN for slot {slot}: ")) {
                None => {
                    warnx("Aborted by user.");
                    return false;
                }
                Some(pin) if pin.is_empty() => warnx("Empty pin entered, try again."),
                Some(pin) => break zeroize::Zeroizing::new(pin),
            }
        };
        match store::login(&self.root, &token.store, &pin) {
            Ok(Login::Ok) => true,
            Ok(Login::Incorrect(_)) => {
                warnx(&format!(
                    "Error logging in for slot {slot}: 0xA0 (CKR_PIN_INCORRECT)"
                ));
                false
            }
            Err(_) => {
                warnx(&format!(
                    "Error logging in for slot {slot}: 0x6 (CKR_FUNCTION_FAILED)"
                ));
                false
            }
        }
    }

    pub fn token(&self, slot: u64) -> Option<&Present> {
        self.present.iter().find(|t| t.record.slot == slot)
    }
}

/// Runs the stand-in; returns the exit status.
pub(crate) fn main(argv0: &str, args: &[String], root: &Path) -> i32 {
    ignore_interrupts();
    pin_prompt::log_invocation(root, TOOL, argv0, args);
    let parsed = match args::parse(argv0, args) {
        args::Parsed::Run(parsed) => parsed,
        args::Parsed::Exit {
            code,
            stdout,
            stderr,
        } => {
            pin_prompt::out(&stdout);
            for line in stderr.lines() {
                eprintln!("{line}");
            }
            return code;
        }
    };
    for warning in &parsed.warnings {
        eprintln!("{warning}");
    }
    let tool = match start_up(root, parsed.command != args::Command::List) {
        Ok(tool) => tool,
        Err(code) => return code,
    };
    match parsed.command {
        args::Command::Reencipher => flow::reencipher(&tool, &parsed),
        args::Command::Finalize => flow::end(&tool, &parsed, query::End::Finalize),
        args::Command::Cancel => flow::end(&tool, &parsed, query::End::Cancel),
        args::Command::List => flow::list(&tool, parsed.id.as_deref()),
    }
}

/// SIGINT and SIGTERM do nothing while the tool runs (2.1).
fn ignore_interrupts() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: installing SIG_IGN runs no code of ours in the handler.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

/// 2.2: the lock file, the library, the slots, and the event socket.
fn start_up(root: &Path, needs_events: bool) -> Result<Tool, i32> {
    if mkchange_ops::lock_shared(root).is_err() {
        warnx("Failed to create the HSM master key change lock file");
        return Err(1);
    }
    let state = match state::load(root) {
        Ok(state) if procs::slotd_running(root).is_some() => state,
        _ => {
            warnx("Error initializing the PKCS11 library: 0x5 (CKR_GENERAL_ERROR)");
            return Err(1);
        }
    };
    let faults = state::faults(root).unwrap_or_default();
    let mut present = Vec::new();
    let mut missing = state.absent_slots.clone();
    for record in state.tokens.values() {
        if not_present_reason(root, &state, record).is_some() {
            missing.push(record.slot);
            continue;
        }
        let store = under(root, &record.store);
        let label = store::read_nvtok(&store)
            .map(|nv| nv.label)
            .unwrap_or_default();
        present.push(Present {
            record: record.clone(),
            label,
            store,
        });
    }
    present.sort_by_key(|t| t.record.slot);
    missing.sort_unstable();
    if needs_events && faults.contains(&Fault::DisableEventSupport) {
        warnx("Failed to connect to pkcsslotd's event socket: No such file or directory");
        return Err(1);
    }
    Ok(Tool {
        root: root.to_path_buf(),
        state,
        faults,
        present,
        missing,
    })
}

//! The `pkcsep11_migrate` stand-in: the released (≤ 3.27.0) tool's contract, step by step
//! (opencryptoki-ep11.md 1.1–1.5), against the simulated token and registers. Messages are
//! the source's format strings (typos included); hex is `%lx` (no `0x`) where the source
//! says so. Every invocation's argv and environment *names* are logged to
//! `<root>/var/log/mkplan-sim/pkcsep11_migrate.log` (JSON lines) so tests can prove that no
//! PIN reached argv.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::crypto::{BlobError, reencrypt};
use crate::migrate_args::{Parsed, parse};
use crate::presence::not_present_reason;
use crate::state::{self, CurRegister, NewRegister, SimState};
use crate::store::{self, Login};
use crate::token::by_slot;
use crate::{Fault, procs, sysfs};

/// `CKR_DEVICE_ERROR`: what the simulated card answers for a queue it cannot reach and for an
/// injected failure.
const CKR_DEVICE_ERROR: u64 = 0x30;
/// `CKR_IBM_WKID_MISMATCH` (`CKR_VENDOR_DEFINED + 0x10001`): a blob that is not under the
/// card's current WK.
const CKR_IBM_WKID_MISMATCH: u64 = 0x8001_0001;
/// `PKCS11_MAX_PIN_LEN` in the tool.
const MAX_PIN_LEN: usize = 128;
/// `BLOBSIZE` in the tool: larger blobs stop the run.
const MAX_BLOB: usize = 8192;
/// `C_FindObjects(…, 4096, …)`: the per-key index restarts in each batch.
const BATCH: usize = 4096;

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs the stand-in; returns the exit status (the tool's `int rc` & 0xFF).
pub(crate) fn main(argv0: &str, args: &[String], root: &Path) -> i32 {
    log_invocation(root, argv0, args);
    let (slot, adapter, domain) = match parse(argv0, args) {
        Parsed::Run {
            slot,
            adapter,
            domain,
        } => (slot, adapter, domain),
        Parsed::Exit { code, stdout } => {
            out(&stdout);
            return code;
        }
        Parsed::Crash => crash(),
    };
    // 1.2 step 2: the EP11 host library always loads on the simulated host.
    out(&format!("Using slot #{slot}...\n\n"));
    let faults = state::faults(root).unwrap_or_default();
    if faults.contains(&Fault::LibLoadFailure) {
        // 1.2 step 4: the failure value 0 is returned as the exit status.
        err("ERROR do_GetFunctionList() Failed, rx = 0x0");
        return 0;
    }
    // 1.2 step 5: without pkcsslotd, C_GetFunctionStatus returns CKR_CRYPTOKI_NOT_INITIALIZED
    // (0x190), which becomes the exit status with no message.
    if procs::slotd_running(root).is_none() {
        return 0x190 & 0xff;
    }
    let Ok(state) = state::load(root) else {
        return 0x190 & 0xff;
    };
    // C_Initialize starts every token: its shm stays mapped while the tool runs (section 4).
    let Ok(_attached) = procs::attach_tokens(root, &state) else {
        return 0x190 & 0xff;
    };
    let Some(token) = by_slot(root, &state, slot) else {
        err("C_OpenSession() rc = 0x03 [CKR_SLOT_ID_INVALID]");
        return 3;
    };
    if not_present_reason(root, &state, token.record).is_some() {
        err("C_OpenSession() rc = 0xe0 [CKR_TOKEN_NOT_PRESENT]");
        return 0xe0;
    }
    let Some(pin) = get_user_pin(&faults) else {
        // ≤ 3.27.0: the exit status is C_CloseAllSessions' return value, CKR_OK (1.3).
        err("get_user_pin() failed");
        return 0;
    };
    match store::login(root, &token.store, &pin) {
        Ok(Login::Ok) => {}
        Ok(Login::Incorrect(_)) => {
            err("C_Login() rc = 0xa0 [CKR_PIN_INCORRECT]");
            return 0xa0;
        }
        Err(_) => {
            err("C_Login() rc = 0x06 [CKR_FUNCTION_FAILED]");
            return 6;
        }
    }
    if let Err(code) = check_card_status(&state, adapter, domain) {
        return code;
    }
    reencrypt_all(root, &token.store, adapter, domain, &faults)
}

/// The NULL dereference of the released parser (1.1): die of SIGSEGV.
fn crash() -> ! {
    let _ = std::io::stdout().flush();
    let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGSEGV);
    std::process::abort()
}

fn log_invocation(root: &Path, argv0: &str, args: &[String]) {
    let mut env_keys: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    env_keys.sort();
    let mut argv = vec![argv0.to_owned()];
    argv.extend(args.iter().cloned());
    let line = json!({
        "time": jiff::Timestamp::now().to_string(),
        "pid": std::process::id(),
        "argv": argv,
        "env_keys": env_keys,
        "stdin_is_tty": std::io::stdin().is_terminal(),
    });
    let dir = root.join("var/log/mkplan-sim");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pkcsep11_migrate.log"))
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// The PIN as the version being simulated gets it (1.3 and the version matrix), or `None`
/// after printing why (the caller adds `get_user_pin() failed`).
fn get_user_pin(faults: &[Fault]) -> Option<String> {
    const PROMPT: &str = "Enter the USER PIN: ";
    if faults.contains(&Fault::EnvPin) {
        // < 3.9: no prompt, the environment variable only.
        return match std::env::var("PKCS11_USER_PIN") {
            Ok(pin) => Some(pin),
            Err(_) => {
                err("The environment variable PKCS11_USER_PIN must be set.");
                None
            }
        };
    }
    let stdin = std::io::stdin();
    out(PROMPT);
    if faults.contains(&Fault::RequireTty) && !stdin.is_terminal() {
        // 3.9 – 3.18: tcgetattr on a stdin that is not a terminal fails before any read.
        err("Could not get USER PIN.");
        return None;
    }
    if faults.contains(&Fault::PinReadExitZero) {
        // As if getline failed; pin_prompt prints its newline either way.
        out("\n");
        err("Could not get USER PIN.");
        return None;
    }
    // 3.19+ pin_prompt(): echo off (TCSAFLUSH, errors ignored), getline, echo on, "\n".
    let saved = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &quiet);
    }
    let mut line = Vec::new();
    // getline is unbounded; a stand-in need not be: no PIN is longer than this.
    let read = std::io::Read::take(stdin.lock(), 4096).read_until(b'\n', &mut line);
    if let Some(saved) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, saved);
    }
    out("\n");
    if !matches!(read, Ok(n) if n > 0) {
        err("Could not get USER PIN.");
        return None;
    }
    let end = line
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(line.len());
    line.truncate(end);
    if line.len() > MAX_PIN_LEN {
        err(&format!(
            "The USER PIN must be less than {MAX_PIN_LEN} chars in length."
        ));
        return None;
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

/// 1.2 step 10: the committed-new-WK check on the one given APQN only.
fn check_card_status(state: &SimState, adapter: i64, domain: i64) -> Result<(), i32> {
    let card_hex = adapter as u64;
    match reach(state, adapter, domain) {
        None => {
            err(&format!(
                "m_get_xcp_info rc 0x{CKR_DEVICE_ERROR:x}, valid apapter/domain 0x{card_hex:02x}/{domain}?."
            ));
            Err(1)
        }
        Some(name) if state.apqns[&name].new.state == NewRegister::Committed => {
            err(&format!(
                "Card ID 0x{card_hex:02x}, domain ID {domain} has committed pending(next) WK"
            ));
            Ok(())
        }
        Some(_) => {
            err(&format!(
                "Card ID 0x{card_hex:02x}, domain ID {domain} has no committed pending WK"
            ));
            Err(1)
        }
    }
}

/// The simulated APQN `adapter`/`domain`, if the card can be reached there.
fn reach(state: &SimState, adapter: i64, domain: i64) -> Option<String> {
    let (Ok(adapter), Ok(domain)) = (u8::try_from(adapter), u8::try_from(domain)) else {
        return None;
    };
    let name = mkplan_plan::model::Apqn::new(adapter, domain).lszcrypt();
    let queue = state.apqns.get(&name)?;
    let card = state.cards.get(&format!("{adapter:02x}"))?;
    sysfs::answers(card, queue).then_some(name)
}

/// 1.2 steps 11–13: every object with a blob, re-enciphered from the APQN's current WK to
/// its committed new WK and written back at once; the first failure stops the run (255).
fn reencrypt_all(
    root: &Path,
    store_dir: &Path,
    adapter: i64,
    domain: i64,
    faults: &[Fault],
) -> i32 {
    // C_FindObjects: every object is found (and readable) before the first is touched; then
    // they are read again one at a time, so a large store is not held in memory.
    let readable = store::objects(store_dir).is_ok_and(|mut all| all.all(|o| o.is_ok()));
    let objects = match store::objects(store_dir) {
        Ok(objects) if readable => objects,
        _ => {
            err("C_FindObjects() rc = 0x06 [CKR_FUNCTION_FAILED]");
            return 6;
        }
    };
    let fail_at = faults.iter().find_map(|f| match f {
        Fault::FailAtKey(k) => Some(*k),
        _ => None,
    });
    let slow = faults.iter().find_map(|f| match f {
        Fault::SlowKeys(ms) => Some(Duration::from_millis(*ms)),
        _ => None,
    });
    let mut keys = 0;
    for (position, stored) in objects.enumerate() {
        let Ok(stored) = stored else {
            err("C_FindObjects() rc = 0x06 [CKR_FUNCTION_FAILED]");
            return 6;
        };
        let stored = &stored;
        let idx = position % BATCH;
        // Not a key (no CKA_KEY_TYPE) or no CKA_IBM_OPAQUE: skipped silently.
        let Some(blob) = stored
            .object
            .key_type
            .as_ref()
            .and(stored.object.blob_bytes())
        else {
            continue;
        };
        keys += 1;
        let label = if stored.object.label.len() < 256 {
            stored.object.label.as_str()
        } else {
            ""
        };
        err(&format!(
            "going to reencrpyt key {idx:x} with blob len {:x}: '{label}'",
            blob.len()
        ));
        if blob.len() > MAX_BLOB {
            err(&format!("reencryption blob is too large: {}", blob.len()));
            return 255;
        }
        if let Some(pause) = slow {
            std::thread::sleep(pause);
        }
        if fail_at == Some(keys) {
            err(&format!("reencryption failed: {CKR_DEVICE_ERROR:x}"));
            return 255;
        }
        let new_blob = match card_reencrypt(root, adapter, domain, &blob) {
            Ok(new_blob) => new_blob,
            Err(message) => {
                err(&message);
                return 255;
            }
        };
        if store::rewrite_blob(store_dir, stored, &new_blob).is_err() {
            err(&format!(
                "reencryption C_SetAttributeValue failed: obj {idx:x} '{label}' rc: 30"
            ));
            return 255;
        }
        err(&format!("reencryption success obj: {idx:x} '{label}:"));
    }
    err("all keys successfully reencrypted");
    0
}

/// `XCP_ADM_REENCRYPT` on the APQN, with the registers as they are at this moment.
fn card_reencrypt(root: &Path, adapter: i64, domain: i64, blob: &[u8]) -> Result<Vec<u8>, String> {
    let state = state::load(root)
        .map_err(|_| format!("reencryption failed: {CKR_DEVICE_ERROR:x} {}", blob.len()))?;
    // m_admin cannot reach the queue: "reencryption failed: <rc> <reqlen>".
    let name = reach(&state, adapter, domain).ok_or_else(|| {
        format!(
            "reencryption failed: {CKR_DEVICE_ERROR:x} {}",
            blob.len() + 64
        )
    })?;
    let queue = &state.apqns[&name];
    let (CurRegister::Valid, Some(cur), NewRegister::Committed, Some(next)) =
        (queue.cur.state, queue.cur.vp, queue.new.state, queue.new.vp)
    else {
        return Err(format!("reencryption failed: {CKR_DEVICE_ERROR:x}"));
    };
    reencrypt(blob, &cur, &next).map_err(|e| match e {
        BlobError::WrongWk { .. } | BlobError::Malformed => {
            format!("reencryption failed: {CKR_IBM_WKID_MISMATCH:x}")
        }
    })
}

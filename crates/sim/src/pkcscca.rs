//! The `pkcscca -m keys` stand-in (opencryptoki-ep11.md 5): CCA master-key migration of one
//! MK type, re-enciphering every key token of that type from the OLD master key register to
//! the CURRENT one (CCA Key Token Change, rule `RTCMK`) after the TKE has set the new MK.
//!
//! Order, as the reference gives it: the SO PIN and USER PIN prompts (`Enter the SO PIN: `,
//! `Enter the USER PIN: `, stdout), both checked against the data store (`-d`, default
//! `/var/lib/opencryptoki/ccatok`) before anything else; then `C_Initialize` (exit 2),
//! `C_OpenSession` (exit 5: no such slot, or a token openCryptoki would not start),
//! `C_Login` (exit 8); then the search for the token keys of the MK type, each re-enciphered
//! in memory (a key that fails is counted and the run goes on), then written back. Output on
//! stdout: `Skipping, <ALG> token is  wrapped with current master key. …` per key that is
//! already under CUR, then `Successfully migrated: <ALG>: n. …` and `Failed to migrate:
//! <ALG>: n. …`; exit 0 **even when keys failed**. Usage errors exit 255 (−1).
//!
//! The reference elides the tails of those lines and quotes none of the error messages; the
//! stand-in's are its own: each summary line names every key kind of the MK type in a fixed
//! order (`AES`, `AES XTS`, `HMAC` | `EC`, `RSA`, `IBM Dilithium` | `RSA` | `DES`, `DES2`,
//! `DES3`), and each skip line ends `Label: '<label>'`. With `-v info` (or more) each key
//! gets a line `Migrated <ALG> key '<label>'.` or `Failed to migrate <ALG> key '<label>': …`.

use std::path::{Path, PathBuf};

use crate::cca::MkType;
use crate::crypto::{BlobKind, reencrypt};
use crate::pin_prompt::{log_invocation, out, pin_prompt};
use crate::presence::not_present_reason;
use crate::state::{self, SimState, TokenRecord};
use crate::store::{self, Login, SimObject, StoredObject};
use crate::token::{token_apqns, under};
use crate::{Fault, cca_sysfs, procs};

const DEFAULT_DATASTORE: &str = "/var/lib/opencryptoki/ccatok";
const USAGE: &str = "usage: pkcscca [-d <datastore>] [-h] [-m keys] [-s <slot>] [-k aes|apka|asym|sym] [-v <level>]\n";

struct Options {
    slot: u64,
    mk: MkType,
    datastore: PathBuf,
    verbose: bool,
}

fn err(text: &str) {
    eprintln!("{text}");
}

/// Runs the stand-in; returns the exit status.
pub(crate) fn main(argv0: &str, args: &[String], root: &Path) -> i32 {
    log_invocation(root, "pkcscca", argv0, args);
    let options = match parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            out(USAGE);
            return 0;
        }
        Err(message) => {
            err(&message);
            err(USAGE.trim_end());
            return 255;
        }
    };
    let Some(so_pin) = pin_prompt("Enter the SO PIN: ").map(zeroize::Zeroizing::new) else {
        err("Could not get SO PIN.");
        return 255;
    };
    let Some(user_pin) = pin_prompt("Enter the USER PIN: ").map(zeroize::Zeroizing::new) else {
        err("Could not get USER PIN.");
        return 255;
    };
    if let Err(message) = verify_pins(&under(root, &options.datastore), &so_pin, &user_pin) {
        err(&message);
        return 255;
    }
    let state = match state::load(root) {
        Ok(state) if procs::slotd_running(root).is_some() => state,
        _ => {
            err("C_Initialize failed, rc = 0x5 (CKR_GENERAL_ERROR)");
            return 2;
        }
    };
    let Some(token) = state.tokens.values().find(|t| t.slot == options.slot) else {
        err("C_OpenSession failed, rc = 0x3 (CKR_SLOT_ID_INVALID)");
        return 5;
    };
    if not_present_reason(root, &state, token).is_some() {
        err("C_OpenSession failed, rc = 0xE0 (CKR_TOKEN_NOT_PRESENT)");
        return 5;
    }
    let store_dir = under(root, &token.store);
    match store::login(root, &store_dir, &user_pin) {
        Ok(Login::Ok) => {}
        _ => {
            err("C_Login failed, rc = 0xA0 (CKR_PIN_INCORRECT)");
            return 8;
        }
    }
    let faults = state::faults(root).unwrap_or_default();
    migrate(&state, token, &store_dir, &options, &faults);
    0
}

/// `Ok(None)`: `-h`.
fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let (mut mode, mut slot, mut mk, mut datastore, mut verbose) = (None, None, None, None, false);
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if matches!(flag, "-h" | "--help") {
            return Ok(None);
        }
        let Some(value) = args.get(i + 1) else {
            return Err(format!(
                "pkcscca: option requires an argument -- '{}'",
                flag.trim_start_matches('-')
            ));
        };
        match flag {
            "-m" | "--mode" => mode = Some(value.clone()),
            "-s" | "--slot" => {
                slot = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s < 1024 && value.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| format!("invalid slot number '{value}'"))?,
                );
            }
            "-k" | "--mkey" => {
                mk = Some(MkType::parse(value).ok_or_else(|| {
                    format!("invalid master key type '{value}': use aes, apka, asym or sym")
                })?);
            }
            "-d" | "--datastore" => datastore = Some(PathBuf::from(value)),
            "-v" | "--verbose" => verbose = matches!(value.as_str(), "info" | "devel" | "debug"),
            other => return Err(format!("pkcscca: invalid option '{other}'")),
        }
        i += 2;
    }
    match mode.as_deref() {
        Some("keys") => {}
        Some(other @ ("v2objectsv3" | "oldrsakeys")) => {
            return Err(format!("mode '{other}' is not simulated by mkplan-sim"));
        }
        Some(other) => return Err(format!("invalid mode '{other}'")),
        None => return Err("a mode is required (-m keys)".into()),
    }
    let slot = slot.ok_or("a slot is required (-s)")?;
    let mk = mk.ok_or("a master key type is required (-k aes|apka|asym|sym)")?;
    Ok(Some(Options {
        slot,
        mk,
        datastore: datastore.unwrap_or_else(|| PathBuf::from(DEFAULT_DATASTORE)),
        verbose,
    }))
}

/// Both PINs against the data store's token data (the simulator keeps them in NVTOK.DAT),
/// without counting a failed login.
fn verify_pins(store_dir: &Path, so_pin: &str, user_pin: &str) -> Result<(), String> {
    let nv = store::read_nvtok(store_dir).map_err(|_| {
        format!(
            "Failed to read the token data of the data store '{}'.",
            store_dir.display()
        )
    })?;
    if !nv.so_pin.matches(so_pin) {
        return Err("Failed to verify the SO PIN: it does not match the data store.".into());
    }
    if !nv.user_pin.matches(user_pin) {
        return Err("Failed to verify the USER PIN: it does not match the data store.".into());
    }
    Ok(())
}

/// The key kinds an MK type covers, in the order the summary names them.
fn kinds(mk: MkType) -> &'static [(BlobKind, &'static str, &'static str)] {
    match mk {
        MkType::Aes => &[
            (BlobKind::CcaAes, "CKK_AES", "AES"),
            (BlobKind::CcaAesXts, "CKK_AES_XTS", "AES XTS"),
            (BlobKind::CcaHmac, "CKK_GENERIC_SECRET", "HMAC"),
        ],
        MkType::Apka => &[
            (BlobKind::CcaEcPrivate, "CKK_EC", "EC"),
            (BlobKind::CcaRsaAesc, "CKK_RSA", "RSA"),
            (
                BlobKind::CcaDilithium,
                "CKK_IBM_PQC_DILITHIUM",
                "IBM Dilithium",
            ),
        ],
        MkType::Asym => &[(BlobKind::CcaRsaCrt, "CKK_RSA", "RSA")],
        MkType::Sym => &[
            (BlobKind::CcaDes, "CKK_DES", "DES"),
            (BlobKind::CcaDes2, "CKK_DES2", "DES2"),
            (BlobKind::CcaDes3, "CKK_DES3", "DES3"),
        ],
    }
}

/// Finds, re-enciphers and writes back the keys of the MK type; prints what happened.
fn migrate(
    state: &SimState,
    token: &TokenRecord,
    store_dir: &Path,
    options: &Options,
    faults: &[Fault],
) {
    let kinds = kinds(options.mk);
    let mut succeeded = vec![0usize; kinds.len()];
    let mut failed = vec![0usize; kinds.len()];
    let fail_at = faults.iter().find_map(|f| match f {
        Fault::CcaFailAtKey(k) => Some(*k),
        _ => None,
    });
    let objects = store::read_objects(store_dir).unwrap_or_default();
    let mut migrated: Vec<(StoredObject, Vec<u8>)> = Vec::new();
    let mut seen = 0usize;
    for stored in objects {
        let object = &stored.object;
        let Some(blob) = object.blob_bytes() else {
            continue;
        };
        let Some(position) = searched(kinds, object, &blob) else {
            continue;
        };
        seen += 1;
        let name = kinds[position].2;
        let outcome = if fail_at == Some(seen) {
            Err("CCA return code 12, reason 769 (simulated card failure)".to_owned())
        } else {
            key_token_change(state, token, options.mk, &blob)
        };
        match outcome {
            Ok(None) => out(&format!(
                "Skipping, {name} token is  wrapped with current master key. Label: '{}'\n",
                object.label
            )),
            Ok(Some(new_blob)) => {
                succeeded[position] += 1;
                if options.verbose {
                    out(&format!("Migrated {name} key '{}'.\n", object.label));
                }
                migrated.push((stored, new_blob));
            }
            Err(why) => {
                failed[position] += 1;
                if options.verbose {
                    out(&format!(
                        "Failed to migrate {name} key '{}': {why}\n",
                        object.label
                    ));
                }
            }
        }
    }
    for (stored, new_blob) in migrated {
        if let Err(e) = store::rewrite_blob(store_dir, &stored, &new_blob) {
            err(&format!(
                "C_SetAttributeValue failed for key '{}': {e}",
                stored.object.label
            ));
            return;
        }
    }
    out(&format!(
        "Successfully migrated: {}\n",
        summary(kinds, &succeeded)
    ));
    out(&format!("Failed to migrate: {}\n", summary(kinds, &failed)));
}

/// The search (CKA_TOKEN, a secret or private key of a type the MK covers; an RSA key by
/// its token's format): the key's position in `kinds`.
fn searched(kinds: &[(BlobKind, &str, &str)], object: &SimObject, blob: &[u8]) -> Option<usize> {
    if object.class == "CKO_PUBLIC_KEY" {
        return None;
    }
    let kind = BlobKind::of(blob);
    kinds.iter().position(|(k, key_type, _)| {
        // A blob that is no CCA key token (an EP11 one) is found by its key type alone.
        object.key_type.as_deref() == Some(key_type)
            && kind.is_none_or(|kind| kind == *k || kind.cca_mk().is_none())
    })
}

/// `AES: 3. AES XTS: 0. HMAC: 1.`
fn summary(kinds: &[(BlobKind, &str, &str)], counts: &[usize]) -> String {
    kinds
        .iter()
        .zip(counts)
        .map(|((_, _, name), n)| format!("{name}: {n}."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CSNBKTC/CSNDKTC with `RTCMK` on the token's first online APQN: `Ok(None)` when the key
/// token is already under the current MK, the key under CUR when it was under OLD.
fn key_token_change(
    state: &SimState,
    token: &TokenRecord,
    mk: MkType,
    blob: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    let queue = token_apqns(token)
        .into_iter()
        .filter_map(|a| {
            let queue = state.cca_apqns.get(&a.lszcrypt())?;
            let card = state.cards.get(&format!("{:02x}", a.adapter()))?;
            cca_sysfs::answers(card, queue).then_some(queue)
        })
        .next()
        .ok_or("CCA return code 12, reason 338 (no CCA coprocessor available)")?;
    if BlobKind::of(blob).and_then(BlobKind::cca_mk) != Some(mk) {
        return Err("CCA return code 8, reason 72 (not a CCA key token of this master key)".into());
    }
    let registers = queue.mk(mk);
    let cur = registers
        .cur
        .valid_vp()
        .ok_or_else(|| format!("CCA return code 12 (no current {mk} master key)"))?;
    if crate::crypto::open(blob, &cur.identity(mk)).is_ok() {
        return Ok(None);
    }
    let old = registers
        .old
        .valid_vp()
        .ok_or_else(|| format!("CCA return code 8, reason 48 (the key is not under the current {mk} master key, and the OLD register is empty)"))?;
    reencrypt(blob, &old.identity(mk), &cur.identity(mk))
        .map(Some)
        .map_err(|_| format!("CCA return code 8, reason 48 (the key is under neither the current nor the old {mk} master key)"))
}

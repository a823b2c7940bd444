//! The `pkcscca -m keys` stand-in (opencryptoki-ep11.md 5): CCA master-key migration of one
//! MK type, re-enciphering every key token of that type from the OLD master key register to
//! the CURRENT one (CCA Key Token Change, rule `RTCMK`) after the TKE has set the new MK.
//!
//! Order, as the reference gives it: the SO PIN and USER PIN prompts (`Enter the SO PIN: `,
//! `Enter the USER PIN: `, stdout), both checked against the data store (`-d`, default
//! `/var/lib/opencryptoki/ccatok`) before anything else; then `C_Initialize` (exit 2),
//! `C_OpenSession` (exit 5: no such slot, or a token openCryptoki would not start),
//! `C_Login` (exit 8); then the searches of the MK type's key types (`migrate_wrapped_keys`),
//! each key re-enciphered in memory (a key that fails is counted and the run goes on), then
//! written back; exit 0 **even when keys failed**. Usage errors exit 255 (−1).
//!
//! The per-key lines and the summary follow `usr/sbin/pkcscca/pkcscca.c` (openCryptoki master;
//! the reference elides them): `Skipping, <ALG> token is  wrapped with current master key.
//! label=<l>, handle=<h>` for a key already under CUR (counted as migrated, as the tool counts
//! it), `Skipping key, its not an new|old RSA key. …` for an RSA key of the other format
//! (counted too), with `-v` `Search for <ALG> keys` and `Successfully migrated <ALG> key.
//! label=…, handle=…`; a failure on stderr as `pkcscca.c:<line> <verb> (Key Token Change)
//! failed. return code: <rc>, reason code: <rsn>` and `pkcscca.c:<line> Migrating <ALG> key
//! failed. label=…, handle=…` (no newline, as `print_error` prints it); then the summary:
//! `Successfully migrated: ` if any key counted, `<NAME>: <n>. ` per nonzero counter,
//! `\nFailed to migrate: …` if any failed, and `\n`. The PIN and `C_*` error messages are
//! the stand-in's own.

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

/// One `find_wrapped_keys` search of `migrate_wrapped_keys`: its `-v` line, the PKCS#11 key
/// type, and the blob kinds that key type finds in the simulated store.
struct Search {
    verbose_line: Option<&'static str>,
    key_type: &'static str,
    kinds: &'static [BlobKind],
}

/// The searches per MK type, in pkcscca.c's order (`migrate_wrapped_keys`). RSA finds both
/// formats: the other one is skipped (and counted as migrated, as the tool counts it).
fn searches(mk: MkType) -> &'static [Search] {
    const RSA: &[BlobKind] = &[BlobKind::CcaRsaAesc, BlobKind::CcaRsaCrt];
    match mk {
        MkType::Aes => &[
            Search {
                verbose_line: Some("Search for AES keys"),
                key_type: "CKK_AES",
                kinds: &[BlobKind::CcaAes],
            },
            Search {
                verbose_line: None,
                key_type: "CKK_AES_XTS",
                kinds: &[BlobKind::CcaAesXts],
            },
            Search {
                verbose_line: Some("Search for HMAC keys"),
                key_type: "CKK_GENERIC_SECRET",
                kinds: &[BlobKind::CcaHmac],
            },
        ],
        MkType::Apka => &[
            Search {
                verbose_line: Some("Search for ECC keys"),
                key_type: "CKK_EC",
                kinds: &[BlobKind::CcaEcPrivate],
            },
            Search {
                verbose_line: Some("Search for RSA keys"),
                key_type: "CKK_RSA",
                kinds: RSA,
            },
            Search {
                verbose_line: Some("Search for IBM Dilithium keys"),
                key_type: "CKK_IBM_PQC_DILITHIUM",
                kinds: &[BlobKind::CcaDilithium],
            },
            Search {
                verbose_line: Some("Search for IBM ML-DSA keys"),
                key_type: "CKK_IBM_ML_DSA",
                kinds: &[],
            },
            Search {
                verbose_line: Some("Search for IBM ML-KEM keys"),
                key_type: "CKK_IBM_ML_KEM",
                kinds: &[],
            },
            Search {
                verbose_line: Some("Search for ML-DSA keys"),
                key_type: "CKK_ML_DSA",
                kinds: &[],
            },
        ],
        MkType::Asym => &[Search {
            verbose_line: Some("Search for old RSA keys"),
            key_type: "CKK_RSA",
            kinds: RSA,
        }],
        MkType::Sym => &[
            Search {
                verbose_line: Some("Search for DES keys"),
                key_type: "CKK_DES",
                kinds: &[BlobKind::CcaDes],
            },
            Search {
                verbose_line: Some("Search for DES2 keys"),
                key_type: "CKK_DES2",
                kinds: &[BlobKind::CcaDes2],
            },
            Search {
                verbose_line: Some("Search for DES3 keys"),
                key_type: "CKK_DES3",
                kinds: &[BlobKind::CcaDes3],
            },
        ],
    }
}

/// The summary's counters (`struct key_count`), in `key_migration_results`' order.
const COUNTERS: [&str; 11] = [
    "AES",
    "DES",
    "DES2",
    "DES3",
    "ECC",
    "HMAC",
    "RSA",
    "IBM Dilithium",
    "IBM ML-DSA",
    "IBM ML-KEM",
    "ML-DSA",
];

/// How pkcscca.c handles a key of this kind: the `algo` name its per-key lines print, its
/// counter, and the verb and source lines of `cca_error` and `print_error` on failure.
fn handling(kind: BlobKind) -> (&'static str, usize, &'static str, (u32, u32)) {
    const SYMMETRIC: (&str, (u32, u32)) = ("CSNBKTC", (1147, 1148));
    match kind {
        BlobKind::CcaAes => ("AES", 0, SYMMETRIC.0, SYMMETRIC.1),
        BlobKind::CcaAesXts => ("AES", 0, "CSNBKTC2", (1113, 1114)),
        BlobKind::CcaDes | BlobKind::CcaDes2 | BlobKind::CcaDes3 => {
            ("DES", 1, SYMMETRIC.0, SYMMETRIC.1)
        }
        BlobKind::CcaEcPrivate => ("ECC", 4, "CSNDKTC", (1063, 1064)),
        BlobKind::CcaHmac => ("HMAC", 5, "CSNBKTC2", (1210, 1211)),
        BlobKind::CcaDilithium => ("IBM Dilithium", 7, "CSNDKTC", (1063, 1064)),
        _ => ("RSA", 6, "CSNDKTC", (1063, 1064)),
    }
}

/// Finds, re-enciphers and writes back the keys of the MK type; prints what pkcscca.c prints
/// (stdout; per-key failures on stderr as `pkcscca.c:<line> …`, `print_error`'s without a
/// newline).
fn migrate(
    state: &SimState,
    token: &TokenRecord,
    store_dir: &Path,
    options: &Options,
    faults: &[Fault],
) {
    let mut succeeded = [0usize; COUNTERS.len()];
    let mut failed = [0usize; COUNTERS.len()];
    let fail_at = faults.iter().find_map(|f| match f {
        Fault::CcaFailAtKey(k) => Some(*k),
        _ => None,
    });
    let objects = store::read_objects(store_dir).unwrap_or_default();
    let mut migrated: Vec<(StoredObject, Vec<u8>)> = Vec::new();
    let mut seen = 0usize;
    for search in searches(options.mk) {
        if options.verbose
            && let Some(line) = search.verbose_line
        {
            out(&format!("{line}\n"));
        }
        for (index, stored) in objects.iter().enumerate() {
            let object = &stored.object;
            let Some(blob) = object.blob_bytes() else {
                continue;
            };
            let Some(kind) = found(search, object, &blob) else {
                continue;
            };
            // The object handle: its place in the store, as the simulated library numbers it.
            let key = format!("label={}, handle={}", object.label, index + 1);
            let (algo, counter, verb, (cca_line, print_line)) = handling(kind);
            seen += 1;
            // cca_migrate_asymmetric: an RSA key of the other format is passed over, and
            // counted as migrated.
            let other_rsa = match (options.mk, kind) {
                (MkType::Apka, BlobKind::CcaRsaCrt) => Some("not an new RSA key"),
                (MkType::Asym, BlobKind::CcaRsaAesc) => Some("not an old RSA key"),
                _ => None,
            };
            if let Some(why) = other_rsa {
                out(&format!("Skipping key, its {why}. {key}\n"));
                succeeded[counter] += 1;
                continue;
            }
            let outcome = if fail_at == Some(seen) {
                Err((12, 769))
            } else {
                key_token_change(state, token, options.mk, &blob)
            };
            match outcome {
                Ok(new_blob) => {
                    succeeded[counter] += 1;
                    if options.verbose {
                        out(&format!("Successfully migrated {algo} key. {key}\n"));
                    }
                    match new_blob {
                        None => out(&format!(
                            "Skipping, {algo} token is  wrapped with current master key. {key}\n"
                        )),
                        Some(new_blob) => migrated.push((stored.clone(), new_blob)),
                    }
                }
                Err((rc, reason)) => {
                    failed[counter] += 1;
                    eprint!(
                        "pkcscca.c:{cca_line} {verb} (Key Token Change) failed. return code: \
                         {rc}, reason code: {reason}\npkcscca.c:{print_line} Migrating {algo} \
                         key failed. {key}"
                    );
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
    out(&summary(&succeeded, &failed));
}

/// The search's key type finds the object (CKA_TOKEN, CKA_KEY_TYPE; a secret or private key
/// with CKA_IBM_OPAQUE): the blob kind it holds.
fn found(search: &Search, object: &SimObject, blob: &[u8]) -> Option<BlobKind> {
    if object.class == "CKO_PUBLIC_KEY" || object.key_type.as_deref() != Some(search.key_type) {
        return None;
    }
    // A blob that is no CCA key token (an EP11 one) is found by its key type alone.
    match BlobKind::of(blob) {
        Some(kind) if search.kinds.contains(&kind) => Some(kind),
        Some(kind) if kind.cca_mk().is_some() => None,
        _ => search.kinds.first().copied(),
    }
}

/// `key_migration_results`: `Successfully migrated: AES: 3. HMAC: 1. ` if any key counted,
/// `\nFailed to migrate: …` if any failed, each counter only when nonzero, then `\n`.
fn summary(succeeded: &[usize], failed: &[usize]) -> String {
    let counts = |counts: &[usize]| -> String {
        COUNTERS
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("{name}: {n}. "))
            .collect()
    };
    let mut text = String::new();
    if succeeded.iter().any(|n| *n > 0) {
        text.push_str("Successfully migrated: ");
        text.push_str(&counts(succeeded));
    }
    if failed.iter().any(|n| *n > 0) {
        text.push_str("\nFailed to migrate: ");
        text.push_str(&counts(failed));
    }
    text.push('\n');
    text
}

/// CSNBKTC/CSNDKTC with `RTCMK` on the token's first online APQN: `Ok(None)` when the key
/// token is already under the current MK, the key under CUR when it was under OLD.
fn key_token_change(
    state: &SimState,
    token: &TokenRecord,
    mk: MkType,
    blob: &[u8],
) -> Result<Option<Vec<u8>>, (i64, i64)> {
    let queue = token_apqns(token)
        .into_iter()
        .filter_map(|a| {
            let queue = state.cca_apqns.get(&a.lszcrypt())?;
            let card = state.cards.get(&format!("{:02x}", a.adapter()))?;
            cca_sysfs::answers(card, queue).then_some(queue)
        })
        .next()
        // No CCA coprocessor available.
        .ok_or((12, 338))?;
    if BlobKind::of(blob).and_then(BlobKind::cca_mk) != Some(mk) {
        // Not a CCA key token of this master key.
        return Err((8, 72));
    }
    let registers = queue.mk(mk);
    let cur = registers
        .cur
        .valid_vp()
        // No current master key of this type.
        .ok_or((12, 0))?;
    if crate::crypto::open(blob, &cur.identity(mk)).is_ok() {
        return Ok(None);
    }
    let old = registers
        .old
        .valid_vp()
        // Not under the current MK, and the OLD register is empty.
        .ok_or((8, 48))?;
    reencrypt(blob, &old.identity(mk), &cur.identity(mk))
        .map(Some)
        // Under neither the current nor the old MK.
        .map_err(|_| (8, 48))
}

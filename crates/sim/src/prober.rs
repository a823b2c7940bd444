//! [`SimProber`]: the simulator's [`KeyProber`], injected by `mkplan rehearse` where no
//! PKCS#11 module can open a simulated EP11 token. It behaves like the real probe
//! (`host::pkcs11::probe`) on the simulated token: the library fails to initialise without
//! pkcsslotd, an unknown slot or a token openCryptoki would not start is an error, a wrong
//! PIN counts against the token's failed-login counter, and then every object is listed.
//! A key (secret, private or public: each has a blob) is `Usable` when its blob opens under
//! the current WK of all the token's APQNs; certificates and data objects are not exercised.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::crypto::open;
use crate::presence::not_present_reason;
use crate::state::{SimState, TokenKind, TokenRecord};
use crate::store::SimObject;
use crate::store::{self, Login};
use crate::token::{agreed_current_wk, by_slot};
use crate::{canonical_root, keyuse, procs, state};
use mkplan_engine::ports::keys::{KeyError, KeyProber, ObjectSink};
use mkplan_engine::record::probe::{ObjectInfo, Usability};
use mkplan_engine::secret::Pin;

/// Probes the simulated tokens under `root`.
#[derive(Debug, Clone)]
pub struct SimProber {
    root: PathBuf,
}

impl SimProber {
    pub fn new(root: &Path) -> Self {
        Self {
            root: canonical_root(root),
        }
    }
}

impl SimProber {
    /// What `C_Initialize`, `C_OpenSession` and one `C_Login` do on the simulated token:
    /// the state and the token, or the error the real module would give.
    fn login(
        &self,
        module_name: &str,
        slot: u64,
        pin: &Pin,
    ) -> Result<(crate::state::SimState, PathBuf), KeyError> {
        let token_error = |message: String| KeyError::Token(message.into());
        let root = &self.root;
        if procs::slotd_running(root).is_none() {
            return Err(token_error(format!(
                "`{module_name}`: C_Initialize failed: CKR_GENERAL_ERROR (the slot manager daemon pkcsslotd is not running on the simulated host)"
            )));
        }
        let state = state::load(root).map_err(|e| KeyError::Token(e.into()))?;
        let token = by_slot(root, &state, slot).ok_or_else(|| {
            let present: Vec<String> = state.tokens.values().map(|t| t.slot.to_string()).collect();
            token_error(format!(
                "`{module_name}` has no slot {slot} (slots present: {})",
                present.join(", ")
            ))
        })?;
        if let Some(reason) = not_present_reason(root, &state, token.record) {
            return Err(token_error(format!(
                "`{module_name}` slot {slot}: C_OpenSession failed: CKR_TOKEN_NOT_PRESENT (openCryptoki does not start the EP11 token: {reason})"
            )));
        }
        match store::login(root, &token.store, pin.expose())
            .map_err(|e| KeyError::Token(e.into()))?
        {
            Login::Ok => {}
            Login::Incorrect(failures) => {
                return Err(KeyError::PinRefused(format!(
                    "`{module_name}` slot {slot}: C_Login failed: CKR_PIN_INCORRECT; the token's failed-login counter was incremented (now {failures})"
                ).into()));
            }
        }
        let store = token.store;
        Ok((state, store))
    }
}

impl KeyProber for SimProber {
    fn verify_pin(&self, module: &Path, slot: u64, pin: &Pin) -> Result<(), KeyError> {
        self.login(&module.display().to_string(), slot, pin)
            .map(drop)
    }

    /// `module` is only named in the inventory and messages: the simulated token is reached
    /// through the simulator's files, not through a library. Objects are read one at a time.
    fn probe_into(
        &self,
        module: &Path,
        slot: u64,
        pin: &Pin,
        out: &mut ObjectSink<'_>,
    ) -> Result<String, KeyError> {
        let module_name = module.display().to_string();
        let (state, store) = self.login(&module_name, slot, pin)?;
        let token = crate::token::all(&self.root, &state)
            .into_iter()
            .find(|t| t.store == store)
            .ok_or_else(|| KeyError::Token("the token is gone".into()))?;
        let current = agreed_current_wk(&state, token.record);
        // A CCA token, or a token in a concurrent MK change: each APQN judges the key.
        let operation = crate::mkchange_ops::active_for_slot(&self.root, slot).is_some();
        let per_apqn = token.record.kind == TokenKind::Cca || operation;
        for stored in store::objects(&store).map_err(|e| KeyError::Token(e.into()))? {
            let object = stored.map_err(|e| KeyError::Token(e.into()))?.object;
            let blob = object.blob_bytes();
            let usable = match (&object.key_type, &blob) {
                (Some(_), Some(_)) if per_apqn => {
                    on_every_apqn(&state, token.record, &object, operation)
                }
                (Some(_), Some(blob)) => usability(&object.class, blob, &current),
                // A CCA public key is a clear key token: no master key to check.
                (Some(_), None)
                    if token.record.kind == TokenKind::Cca && object.class == "CKO_PUBLIC_KEY" =>
                {
                    Usability::Usable
                }
                (Some(_), None) => Usability::Unusable(
                    "the key has no secure-key blob (CKA_IBM_OPAQUE)".to_owned(),
                ),
                (None, _) => not_exercised(&object.class),
            };
            out(ObjectInfo {
                class: object.class,
                key_type: object.key_type,
                label: object.label,
                id: object.id,
                token: true,
                blob_len: blob.as_ref().map(|b| b.len() as u64),
                blob_sha256: blob.map(|b| hex::encode(Sha256::digest(&b))),
                usable,
            })?;
        }
        Ok(module_name)
    }
}

/// What using the key would give: the call the real probe makes fails with the card's
/// answer when the blob is not under the current WK.
fn usability(class: &str, blob: &[u8], current: &Result<[u8; 32], String>) -> Usability {
    let call = call_for(class);
    match current {
        Err(why) => Usability::Unusable(format!("{call}: CKR_DEVICE_ERROR (simulated: {why})")),
        Ok(vp) => match open(blob, vp) {
            Ok(_) => Usability::Usable,
            Err(why) => Usability::Unusable(format!(
                "{call}: CKR_IBM_WKID_MISMATCH (simulated: the blob is {why})"
            )),
        },
    }
}

/// The key works on every APQN of the token (`keyuse`: during an operation either of its
/// blobs will do; a CCA key only under the current MK of its type).
fn on_every_apqn(
    state: &SimState,
    token: &TokenRecord,
    object: &SimObject,
    operation_active: bool,
) -> Usability {
    let call = call_for(&object.class);
    let blobs = keyuse::candidates(object, operation_active);
    let mut checked = 0;
    for name in &token.apqns {
        let result = match token.kind {
            TokenKind::Ep11 => state.apqns.get(name).map(|q| keyuse::on_ep11(q, &blobs)),
            TokenKind::Cca => state
                .cca_apqns
                .get(name)
                .map(|q| keyuse::on_cca(q, &blobs, false)),
        };
        match result {
            Some(Err(why)) => {
                return Usability::Unusable(format!("{call}: {why} (simulated, on APQN {name})"));
            }
            Some(Ok(())) => checked += 1,
            None => {}
        }
    }
    if checked == 0 {
        return Usability::Unusable(format!(
            "{call}: CKR_DEVICE_ERROR (simulated: the token has no APQN)"
        ));
    }
    Usability::Usable
}

fn call_for(class: &str) -> &'static str {
    match class {
        "CKO_SECRET_KEY" => "C_EncryptInit",
        "CKO_PRIVATE_KEY" => "C_SignInit",
        _ => "C_VerifyInit",
    }
}

fn not_exercised(class: &str) -> Usability {
    let what = match class {
        "CKO_CERTIFICATE" => "certificate",
        "CKO_DATA" => "data object",
        other => other,
    };
    Usability::NotExercised(format!("{what}: listed, not exercised"))
}

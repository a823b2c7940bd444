//! Whether a key object works on one APQN right now, as the token would use it: shared by
//! `verify`, the key prober and the simulated applications.
//!
//! * Outside an operation the token uses `CKA_IBM_OPAQUE`.
//! * While a concurrent MK change covers the token it uses `CKA_IBM_OPAQUE` under the old
//!   WK/MK and `CKA_IBM_OPAQUE_REENC` under the new one, and when the card answers a blob
//!   with a WK mismatch it retries with the other (openCryptoki's `RETRY_REENC_BLOB`, 3.21),
//!   so either blob that opens will do.
//! * A CCA card also accepts a key token under its OLD master key (CCA return code 0 with a
//!   warning reason code): applications keep working after the new MK is set, which is why
//!   `pkcscca` can re-encipher afterwards. `verify` does not count that as usable: a key is
//!   only migrated when it is under CUR.

use crate::cca::{CcaQueue, KeyRegister};
use crate::crypto::{BlobKind, open};
use crate::state::{CurRegister, Queue};
use crate::store::SimObject;

/// Which blobs of `object` the token would try: OPAQUE, and REENC while an operation is
/// active for the token.
pub(crate) fn candidates(object: &SimObject, operation_active: bool) -> Vec<Vec<u8>> {
    let mut blobs: Vec<Vec<u8>> = object.blob_bytes().into_iter().collect();
    if operation_active {
        blobs.extend(object.reenc_bytes());
    }
    blobs
}

/// The key's blobs on an EP11 APQN: `Ok` when one opens under its current WK.
pub(crate) fn on_ep11(queue: &Queue, blobs: &[Vec<u8>]) -> Result<(), String> {
    let (CurRegister::Valid, Some(vp)) = (queue.cur.state, queue.cur.vp) else {
        return Err("CKR_DEVICE_ERROR (no valid current WK on the APQN)".into());
    };
    if blobs.iter().any(|blob| open(blob, &vp).is_ok()) {
        return Ok(());
    }
    Err(format!(
        "CKR_IBM_WKID_MISMATCH (no blob of the key is under the APQN's current WK 0x{})",
        hex::encode(&vp[..16])
    ))
}

/// The key's blobs on a CCA APQN: `Ok` when one opens under the current MK of the key's MK
/// type, or under its OLD MK when `accept_old`.
pub(crate) fn on_cca(queue: &CcaQueue, blobs: &[Vec<u8>], accept_old: bool) -> Result<(), String> {
    let Some(mk) = blobs
        .first()
        .and_then(|b| BlobKind::of(b))
        .and_then(BlobKind::cca_mk)
    else {
        return Err("not a CCA key token".into());
    };
    let registers = queue.mk(mk);
    let mut usable: Vec<&KeyRegister> = vec![&registers.cur];
    if accept_old {
        usable.push(&registers.old);
    }
    let opens = usable.iter().filter_map(|r| r.valid_vp()).any(|vp| {
        blobs
            .iter()
            .any(|blob| open(blob, &vp.identity(mk)).is_ok())
    });
    if opens {
        return Ok(());
    }
    match registers.cur.valid_vp() {
        Some(cur) => Err(format!(
            "CCA return code 8, reason 48 (the key token is not under the {mk} master key {cur}{})",
            if accept_old { " nor its old one" } else { "" }
        )),
        None => Err(format!(
            "CCA return code 12 (no current {mk} master key on the APQN)"
        )),
    }
}

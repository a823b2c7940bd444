//! The simulator's own cryptography: how a plan's 16-byte WKVP becomes the 32-byte VP that
//! `mkvps` prints, the secret each simulated wrapping key stands for, and the sealed "secure
//! key" blobs in the token's object files. **Simulator-only formats**: nothing here is EP11's
//! real blob format or key derivation; only the observable contract is kept (a blob names the
//! WK it is sealed under in its WKVP field and can only be used, or re-enciphered, by a card
//! that holds that WK).
//!
//! * VP: `wkvp[16] || SHA-256(wkvp[16])[..16]`. The kernel prints 32 bytes, everybody compares
//!   the first 16 (zcrypt-sysfs.md 1.5), so only the first half has to be the plan's.
//! * WK secret: `SHA-256("mkplan-sim wk secret v1\0" || vp[32])`. Deterministic, so every
//!   process of the simulator derives the same key from the registers; a real WK is random and
//!   never leaves the card.
//! * Blob (big-endian lengths):
//!
//!   | offset | bytes | field |
//!   |---|---|---|
//!   | 0 | 8 | magic `MKPLSIM1` |
//!   | 8 | 1 | kind (1 AES, 2 EC private, 3 EC public, 4 RSA private, 5 RSA public) |
//!   | 9 | 23 | zero (the real `struct ep11keyblob` has its session id here) |
//!   | 32 | 16 | WKVP of the WK the blob is sealed under (the kernel's `wkvp[16]` offset) |
//!   | 48 | 16 | nonce |
//!   | 64 | 2 | payload length n |
//!   | 66 | n | payload XOR keystream |
//!   | 66+n | 32 | tag |
//!
//!   With `k = WK secret`, `enc = HMAC(k, "enc")`, `mac = HMAC(k, "mac")`: keystream block i is
//!   `HMAC(enc, nonce || i as u32)`, and the tag is `HMAC(mac, bytes 0..66+n)`. Opening with
//!   another WK fails the tag check; the clear key material is never written anywhere.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use mkplan_plan::model::Wkvp;

const MAGIC: &[u8; 8] = b"MKPLSIM1";
const WKVP_AT: usize = 32;
const NONCE_AT: usize = 48;
const LEN_AT: usize = 64;
const PAYLOAD_AT: usize = 66;
const TAG_LEN: usize = 32;
/// Bytes a blob adds to its payload.
pub(crate) const BLOB_OVERHEAD: usize = PAYLOAD_AT + TAG_LEN;

/// What a sealed blob holds; the number is stored in the blob. 1–5 are EP11 keys, 16 and
/// up CCA key tokens, each under the register of one CCA MK type (`BlobKind::cca_mk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobKind {
    Aes = 1,
    EcPrivate = 2,
    EcPublic = 3,
    RsaPrivate = 4,
    RsaPublic = 5,
    CcaAes = 16,
    CcaAesXts = 17,
    CcaHmac = 18,
    CcaDes = 19,
    CcaDes2 = 20,
    CcaDes3 = 21,
    CcaEcPrivate = 22,
    /// RSA in the new (AES-protected, `RSA-AESC`) format: under the APKA MK.
    CcaRsaAesc = 23,
    CcaDilithium = 24,
    /// RSA in the old (`RSA-CRT`, `RSA-ME`) format: under the ASYM MK.
    CcaRsaCrt = 25,
}

impl BlobKind {
    const ALL: [BlobKind; 15] = [
        BlobKind::Aes,
        BlobKind::EcPrivate,
        BlobKind::EcPublic,
        BlobKind::RsaPrivate,
        BlobKind::RsaPublic,
        BlobKind::CcaAes,
        BlobKind::CcaAesXts,
        BlobKind::CcaHmac,
        BlobKind::CcaDes,
        BlobKind::CcaDes2,
        BlobKind::CcaDes3,
        BlobKind::CcaEcPrivate,
        BlobKind::CcaRsaAesc,
        BlobKind::CcaDilithium,
        BlobKind::CcaRsaCrt,
    ];

    /// The kind a blob says it is.
    pub(crate) fn of(blob: &[u8]) -> Option<BlobKind> {
        check_shape(blob).ok()?;
        BlobKind::ALL.into_iter().find(|k| *k as u8 == blob[8])
    }

    /// The CCA MK type whose register a CCA key token is sealed under (opencryptoki-ep11.md
    /// 5: aes → AES, AES-XTS, HMAC; apka → EC, new-format RSA, Dilithium; asym → old RSA;
    /// sym → DES, DES2, DES3). `None` for EP11 blobs.
    pub(crate) fn cca_mk(self) -> Option<crate::cca::MkType> {
        use crate::cca::MkType;
        match self {
            BlobKind::CcaAes | BlobKind::CcaAesXts | BlobKind::CcaHmac => Some(MkType::Aes),
            BlobKind::CcaDes | BlobKind::CcaDes2 | BlobKind::CcaDes3 => Some(MkType::Sym),
            BlobKind::CcaEcPrivate | BlobKind::CcaRsaAesc | BlobKind::CcaDilithium => {
                Some(MkType::Apka)
            }
            BlobKind::CcaRsaCrt => Some(MkType::Asym),
            _ => None,
        }
    }
}

/// Why a blob cannot be used with a given WK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlobError {
    #[error("not a simulator blob (bad magic or length)")]
    Malformed,
    #[error("sealed under WK {blob}, not under {wk}")]
    WrongWk { blob: String, wk: String },
}

/// The 32-byte VP `mkvps` shows for a WK whose 16-byte WKVP is `wkvp`.
pub(crate) fn extend_vp(wkvp: &Wkvp) -> [u8; 32] {
    let mut vp = [0u8; 32];
    vp[..16].copy_from_slice(wkvp.bytes());
    vp[16..].copy_from_slice(&Sha256::digest(wkvp.bytes())[..16]);
    vp
}

/// The secret a simulated WK stands for, derived from its full VP (simulator-only).
pub(crate) fn wk_secret(vp: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"mkplan-sim wk secret v1\0");
    hasher.update(vp);
    hasher.finalize().into()
}

/// HMAC-SHA-256 (RFC 2104) over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner);
    block.zeroize();
    outer.finalize().into()
}

/// `n` bytes from the kernel's CSPRNG.
pub(crate) fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// `SHA-256(salt || pin)` in hex: how NVTOK.DAT keeps the USER PIN (simulator format).
pub(crate) fn pin_digest(salt: &[u8], pin: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(pin.as_bytes());
    hex::encode(hasher.finalize())
}

/// Constant-time equality, for tags and PIN digests.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn keystream_xor(secret: &[u8; 32], nonce: &[u8], data: &mut [u8]) {
    let enc = hmac_sha256(secret, &[b"enc"]);
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let counter = u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes();
        let block = hmac_sha256(&enc, &[nonce, &counter]);
        for (byte, k) in chunk.iter_mut().zip(block) {
            *byte ^= k;
        }
    }
}

fn tag(secret: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mac = hmac_sha256(secret, &[b"mac"]);
    hmac_sha256(&mac, &[body])
}

/// Seals `payload` under the WK with VP `vp` (its first 16 bytes go into the blob).
pub(crate) fn seal(kind: BlobKind, vp: &[u8; 32], payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let nonce = random_bytes(16)?;
    let len =
        u16::try_from(payload.len()).map_err(|_| std::io::Error::other("payload too long"))?;
    let mut blob = Vec::with_capacity(payload.len() + BLOB_OVERHEAD);
    blob.extend_from_slice(MAGIC);
    blob.push(kind as u8);
    blob.resize(WKVP_AT, 0);
    blob.extend_from_slice(&vp[..16]);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&len.to_be_bytes());
    blob.extend_from_slice(payload);
    let secret = wk_secret(vp);
    keystream_xor(&secret, &nonce, &mut blob[PAYLOAD_AT..]);
    let tag = tag(&secret, &blob);
    blob.extend_from_slice(&tag);
    Ok(blob)
}

/// The WKVP a blob claims to be sealed under, if it is a simulator blob.
pub(crate) fn blob_wkvp(blob: &[u8]) -> Option<[u8; 16]> {
    check_shape(blob).ok()?;
    blob[WKVP_AT..NONCE_AT].try_into().ok()
}

fn check_shape(blob: &[u8]) -> Result<usize, BlobError> {
    if blob.len() < BLOB_OVERHEAD || &blob[..8] != MAGIC {
        return Err(BlobError::Malformed);
    }
    let n = usize::from(u16::from_be_bytes([blob[LEN_AT], blob[LEN_AT + 1]]));
    if blob.len() != n + BLOB_OVERHEAD {
        return Err(BlobError::Malformed);
    }
    Ok(n)
}

/// Opens `blob` with the WK whose VP is `vp`: the payload (wiped on drop) or why not.
pub(crate) fn open(blob: &[u8], vp: &[u8; 32]) -> Result<zeroize::Zeroizing<Vec<u8>>, BlobError> {
    let n = check_shape(blob)?;
    let secret = wk_secret(vp);
    let body = &blob[..PAYLOAD_AT + n];
    if blob[WKVP_AT..NONCE_AT] != vp[..16] || !same(&tag(&secret, body), &blob[PAYLOAD_AT + n..]) {
        return Err(BlobError::WrongWk {
            blob: format!("0x{}", hex::encode(&blob[WKVP_AT..NONCE_AT])),
            wk: format!("0x{}", hex::encode(&vp[..16])),
        });
    }
    let mut payload = zeroize::Zeroizing::new(blob[PAYLOAD_AT..PAYLOAD_AT + n].to_vec());
    keystream_xor(&secret, &blob[NONCE_AT..LEN_AT], &mut payload);
    Ok(payload)
}

/// What the card's `XCP_ADM_REENCRYPT` does: opens `blob` under the current WK `from` and
/// seals the same key under the next WK `to`. The length stays the same (the real tool checks
/// that, opencryptoki-ep11.md 1.2 step 12).
pub(crate) fn reencrypt(blob: &[u8], from: &[u8; 32], to: &[u8; 32]) -> Result<Vec<u8>, BlobError> {
    let payload = open(blob, from)?;
    let kind = BlobKind::of(blob).ok_or(BlobError::Malformed)?;
    seal(kind, to, &payload).map_err(|_| BlobError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wkvp(text: &str) -> Wkvp {
        Wkvp::parse(text).unwrap().0
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        let mac = hmac_sha256(
            &long_key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_vp_starts_with_the_plan_wkvp() {
        let w = wkvp("0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5");
        let vp = extend_vp(&w);
        assert_eq!(&vp[..16], w.bytes());
        assert_eq!(vp, extend_vp(&w), "deterministic");
    }

    #[test]
    fn a_blob_opens_only_under_its_wk_and_reencrypts_to_the_next() {
        let old = extend_vp(&wkvp("0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5"));
        let new = extend_vp(&wkvp("0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"));
        let key = b"0123456789abcdef0123456789abcdef";
        let blob = seal(BlobKind::Aes, &old, key).unwrap();
        assert_eq!(blob.len(), key.len() + BLOB_OVERHEAD);
        assert!(
            !blob.windows(key.len()).any(|w| w == key),
            "no clear key in the blob"
        );
        assert_eq!(open(&blob, &old).unwrap().as_slice(), key);
        assert!(matches!(open(&blob, &new), Err(BlobError::WrongWk { .. })));
        assert_eq!(blob_wkvp(&blob).unwrap(), old[..16]);

        let moved = reencrypt(&blob, &old, &new).unwrap();
        assert_eq!(moved.len(), blob.len());
        assert_eq!(open(&moved, &new).unwrap().as_slice(), key);
        assert!(open(&moved, &old).is_err());
        assert!(
            reencrypt(&moved, &old, &new).is_err(),
            "not under the current WK any more"
        );

        let mut tampered = blob.clone();
        tampered[PAYLOAD_AT] ^= 1;
        assert!(open(&tampered, &old).is_err());
        assert_eq!(open(&blob[..40], &old), Err(BlobError::Malformed));
    }
}

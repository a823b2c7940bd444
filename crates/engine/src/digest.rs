//! SHA-256 as lowercase hex: how mkplan names a plan, a shown checkpoint text or a file.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

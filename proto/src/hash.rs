//! SHA-256, the one hash peergrid uses for content addresses and digests.

use sha2::{Digest, Sha256};

/// A SHA-256 digest (modules, inputs, outputs and peer ids are named by one).
pub type Sha256Hash = [u8; 32];

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Sha256Hash {
    Sha256::digest(bytes).into()
}

/// Reads a 32-byte hash from a wire field, or `None` if it has another length.
pub fn hash_from_slice(bytes: &[u8]) -> Option<Sha256Hash> {
    bytes.try_into().ok()
}

/// Short lowercase hex of a hash (first 6 bytes), for logs and tables.
pub fn short_hex(hash: &Sha256Hash) -> String {
    hex::encode(&hash[..6])
}

//! Deterministic guest randomness: the job seed expanded with SHA-256 in
//! counter mode into a byte stream that `random_get` cycles through.

use sha2::{Digest, Sha256};
use wasmtime_wasi::Deterministic;

/// Length of the expanded stream; `random_get` output repeats with this
/// period. Plenty for hash-map seeds and the like (what guest runtimes use
/// `random_get` for); jobs that need long random streams should run their
/// own PRNG seeded from `random_get`. Computed for every run, so kept small.
pub(crate) const STREAM_BYTES: usize = 4 * 1024;

/// Domain separator, so the stream cannot collide with other uses of the
/// seed by the caller.
const DOMAIN: &[u8] = b"peergrid-sandbox/random/v1";

/// Block number `counter` of the stream named `purpose`.
fn block(seed: &[u8; 32], purpose: &[u8], counter: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update((purpose.len() as u64).to_le_bytes());
    hasher.update(purpose);
    hasher.update(seed);
    hasher.update(counter.to_le_bytes());
    hasher.finalize().into()
}

/// Expands `seed` into [`STREAM_BYTES`] bytes for the stream named `purpose`.
pub(crate) fn expand(seed: &[u8; 32], purpose: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM_BYTES);
    let mut counter: u64 = 0;
    while out.len() < STREAM_BYTES {
        out.extend_from_slice(&block(seed, purpose, counter));
        counter += 1;
    }
    out
}

/// A deterministic generator for the stream named `purpose`.
pub(crate) fn generator(seed: &[u8; 32], purpose: &[u8]) -> Deterministic {
    Deterministic::new(expand(seed, purpose))
}

/// A deterministic generator with a short (32-byte) period, for streams the
/// guest cannot reach through WASI preview 1 (`wasi:random/insecure`).
pub(crate) fn short_generator(seed: &[u8; 32], purpose: &[u8]) -> Deterministic {
    Deterministic::new(block(seed, purpose, 0).to_vec())
}

/// A deterministic `u128` for the stream named `purpose`.
pub(crate) fn seed_u128(seed: &[u8; 32], purpose: &[u8]) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&block(seed, purpose, 0)[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_seed_and_purpose_only() {
        let a = expand(&[1; 32], b"secure");
        assert_eq!(a.len(), STREAM_BYTES);
        assert_eq!(a, expand(&[1; 32], b"secure"));
        assert_ne!(a, expand(&[2; 32], b"secure"));
        assert_ne!(a, expand(&[1; 32], b"insecure"));
        // No early repetition inside the stream.
        assert_ne!(a[..32], a[32..64]);
    }
}

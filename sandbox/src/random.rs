//! Deterministic guest randomness: the job seed expanded with SHA-256 in
//! counter mode into a byte stream that `random_get` cycles through.

use std::convert::Infallible;

use rand_core::TryRng;
use sha2::{Digest, Sha256};
use wasmtime_wasi::Deterministic;

/// Length of the expanded stream; `random_get` output repeats with this
/// period. Plenty for hash-map seeds and the like (what guest runtimes use
/// `random_get` for); jobs that need long random streams should run their
/// own PRNG seeded from `random_get`.
pub(crate) const STREAM_BYTES: usize = 4 * 1024;

/// Bytes of one SHA-256 block of the stream.
const BLOCK_BYTES: usize = 32;

/// Domain separator, so the stream cannot collide with other uses of the
/// seed by the caller.
const DOMAIN: &[u8] = b"peergrid-sandbox/random/v1";

/// The hash state of the stream named `purpose` before its block counter.
fn prefix(seed: &[u8; 32], purpose: &[u8]) -> Sha256 {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update((purpose.len() as u64).to_le_bytes());
    hasher.update(purpose);
    hasher.update(seed);
    hasher
}

/// Block number `counter` of the stream whose [`prefix`] is `prefix`.
fn block_after(prefix: &Sha256, counter: u64) -> [u8; BLOCK_BYTES] {
    let mut hasher = prefix.clone();
    hasher.update(counter.to_le_bytes());
    hasher.finalize().into()
}

/// Block number `counter` of the stream named `purpose`.
fn block(seed: &[u8; 32], purpose: &[u8], counter: u64) -> [u8; BLOCK_BYTES] {
    block_after(&prefix(seed, purpose), counter)
}

/// The stream named `purpose`, cycling with period [`STREAM_BYTES`]:
/// blocks 0, 1, 2, ... of SHA-256 in counter mode.
///
/// Computed as the guest reads it, not when the job starts: expanding all
/// 4 KiB up front (128 hashes) was most of what a trivial job cost (13 of
/// 16.5 µs in `peergrid bench`, pooled), and most jobs read a few bytes or
/// none. Each byte is
/// computed once per job; the stream and its period are those of the
/// up-front expansion it replaced, byte for byte, and the words follow
/// `wasmtime_wasi::Deterministic` (big-endian `u32`s, high word first).
pub(crate) struct Stream {
    /// Hash state of this stream before the block counter.
    prefix: Sha256,
    /// The first blocks of the stream, computed so far.
    bytes: Vec<u8>,
    /// Offset of the next byte in the stream, below [`STREAM_BYTES`].
    position: usize,
}

impl Stream {
    /// Copies the next bytes of the stream into `out`.
    fn read(&mut self, mut out: &mut [u8]) {
        while !out.is_empty() {
            let end = (self.position + out.len()).min(STREAM_BYTES);
            while self.bytes.len() < end {
                let counter = (self.bytes.len() / BLOCK_BYTES) as u64;
                self.bytes
                    .extend_from_slice(&block_after(&self.prefix, counter));
            }
            let n = end - self.position;
            let (now, rest) = out.split_at_mut(n);
            now.copy_from_slice(&self.bytes[self.position..end]);
            self.position = end % STREAM_BYTES;
            out = rest;
        }
    }
}

impl TryRng for Stream {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut word = [0; 4];
        self.read(&mut word);
        Ok(u32::from_be_bytes(word))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut word = [0; 8];
        self.read(&mut word);
        Ok(u64::from_be_bytes(word))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.read(dst);
        Ok(())
    }
}

/// The deterministic generator for the stream named `purpose`.
pub(crate) fn generator(seed: &[u8; 32], purpose: &[u8]) -> Stream {
    Stream {
        prefix: prefix(seed, purpose),
        bytes: Vec::new(),
        position: 0,
    }
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

    /// The whole stream at once, as the sandbox computed it before
    /// [`Stream`]: the reference the lazy stream must match.
    fn expand(seed: &[u8; 32], purpose: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(STREAM_BYTES);
        let mut counter: u64 = 0;
        while out.len() < STREAM_BYTES {
            out.extend_from_slice(&block(seed, purpose, counter));
            counter += 1;
        }
        out
    }

    #[test]
    fn the_lazy_stream_is_the_expanded_one_read_by_deterministic() {
        let seed = [7; 32];
        let mut lazy = generator(&seed, b"secure");
        let mut eager = Deterministic::new(expand(&seed, b"secure"));
        // Words, odd-sized reads, a read across the period's end, and a
        // read longer than the period.
        for round in 0..3 {
            assert_eq!(lazy.try_next_u32(), eager.try_next_u32(), "{round}");
            assert_eq!(lazy.try_next_u64(), eager.try_next_u64(), "{round}");
            for len in [1, 5, 31, 32, 33, 1000, 3 * STREAM_BYTES + 17] {
                let (mut a, mut b) = (vec![0; len], vec![0; len]);
                let Ok(()) = lazy.try_fill_bytes(&mut a);
                let Ok(()) = eager.try_fill_bytes(&mut b);
                assert!(a == b, "round {round}, {len} bytes");
            }
        }
    }

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

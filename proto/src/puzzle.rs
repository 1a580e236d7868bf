//! The S/Kademlia static puzzle: what an identity costs.
//!
//! A key pair is accepted by the network only if `SHA-256(SHA-256(public
//! key))` starts with at least `c` zero bits, `c` being a network parameter.
//! Finding such a key takes `2^c` key generations on average ([`grind`]);
//! checking one takes two hashes ([`solves`]). So a node pays once, when it
//! creates its identity, and an attacker who wants a thousand identities pays
//! a thousand times — while every receiver checks each key for free.
//!
//! Measured on the project's 2-core VM (one core, release build, `cargo test
//! --release -p peergrid-proto -- --ignored grinding_speed --nocapture`):
//! about 58,000 attempts per second (17 µs each), so on average
//!
//! | bits `c` | attempts | time on one core |
//! |---|---|---|
//! | 8  | 256 | 4.4 ms |
//! | 16 | 65,536 | 1.1 s |
//! | 20 | 1,048,576 | 18 s |
//! | 24 | 16.8 million | 4.8 min |
//!
//! (the time to solve is geometric: one run in twenty takes three times the
//! mean). An attempt is one ed25519 key generation (a fixed-base scalar
//! multiplication) plus two SHA-256 hashes; the key generation dominates.
//!
//! ```
//! use peergrid_proto::puzzle;
//!
//! let id = puzzle::grind(4, |_attempts| {});
//! assert!(puzzle::difficulty(&id.public_key()) >= 4);
//! assert!(puzzle::solves(&id.public_key(), 4));
//! ```

use rand::{CryptoRng, RngCore};

use crate::hash::sha256;
use crate::identity::Identity;

/// How often [`grind`] reports progress, in attempts.
pub const PROGRESS_EVERY: u64 = 4096;

/// The puzzle difficulty a public key solves: the number of leading zero
/// bits of `SHA-256(SHA-256(public_key))` (0 to 256).
pub fn difficulty(public_key: &[u8; 32]) -> u32 {
    let digest = sha256(&sha256(public_key));
    let mut bits = 0;
    for byte in digest {
        if byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `public_key` solves the puzzle at `bits` (0 always does).
pub fn solves(public_key: &[u8; 32], bits: u32) -> bool {
    bits == 0 || difficulty(public_key) >= bits
}

/// Generates identities from the operating system's RNG until one solves
/// the puzzle at `bits`. `progress` is called with the number of attempts so
/// far every [`PROGRESS_EVERY`] attempts, and once more with the total when
/// the search ends. Expect `2^bits` attempts (see the module doc for times).
pub fn grind(bits: u32, progress: impl FnMut(u64)) -> Identity {
    grind_with(bits, &mut rand::rngs::OsRng, progress)
}

/// [`grind`] drawing secret keys from `rng`: a seeded RNG gives reproducible
/// identities (simulations and tests).
pub fn grind_with<R: RngCore + CryptoRng>(
    bits: u32,
    rng: &mut R,
    mut progress: impl FnMut(u64),
) -> Identity {
    let mut attempts = 0u64;
    loop {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let identity = Identity::from_secret(secret);
        attempts += 1;
        if solves(&identity.public_key(), bits) {
            progress(attempts);
            return identity;
        }
        if attempts.is_multiple_of(PROGRESS_EVERY) {
            progress(attempts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn difficulty_counts_leading_zero_bits() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            let digest = sha256(&sha256(&key));
            let expected = u128::from_be_bytes(digest[..16].try_into().unwrap()).leading_zeros();
            assert_eq!(difficulty(&key), expected.min(128));
        }
    }

    #[test]
    fn ground_identity_solves_and_progress_reports_total() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut reports = Vec::new();
        let id = grind_with(6, &mut rng, |n| reports.push(n));
        assert!(solves(&id.public_key(), 6));
        assert!(difficulty(&id.public_key()) >= 6);
        let total = *reports.last().unwrap();
        assert!(total >= 1);
        assert!(reports.windows(2).all(|w| w[0] < w[1]));
        // The same seed gives the same identity.
        let again = grind_with(6, &mut StdRng::seed_from_u64(7), |_| {});
        assert_eq!(again.peer_id(), id.peer_id());
    }

    #[test]
    fn zero_bits_accepts_anything() {
        assert!(solves(&[0xff; 32], 0));
        let weak = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| difficulty(k) == 0)
            .unwrap();
        assert!(!solves(&weak, 1));
    }

    /// Grinding speed on this machine: `cargo test --release -p
    /// peergrid-proto -- --ignored grinding_speed --nocapture`.
    #[test]
    #[ignore]
    fn grinding_speed() {
        let mut rng = StdRng::seed_from_u64(3);
        let start = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..20 {
            grind_with(12, &mut rng, |n| total += n % PROGRESS_EVERY);
        }
        let mut attempts = 0u64;
        let start2 = std::time::Instant::now();
        while start2.elapsed().as_secs_f64() < 2.0 {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            std::hint::black_box(difficulty(&Identity::from_secret(secret).public_key()));
            attempts += 1;
        }
        let rate = attempts as f64 / start2.elapsed().as_secs_f64();
        println!(
            "{rate:.0} attempts/s; 20 identities at 12 bits took {:.2} s",
            start.elapsed().as_secs_f64() - start2.elapsed().as_secs_f64()
        );
    }
}

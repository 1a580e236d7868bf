//! Replay protection: a bounded memory of the (submitter, nonce) pairs this
//! worker has accepted, each kept until its envelope expires.
//!
//! Pure state; the caller passes the current time.

use std::collections::{BTreeSet, HashMap};

use peergrid_proto::PeerId;

/// Longest an envelope may be valid for, from now. Bounds how long a nonce
/// must be remembered.
pub const MAX_ENVELOPE_LIFETIME_MS: u64 = 24 * 3600 * 1000;

/// Why a job envelope fails the freshness check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The envelope's expiry has passed.
    #[error("job envelope expired {0} ms ago")]
    Expired(u64),
    /// The envelope claims to stay valid for too long.
    #[error(
        "job envelope expiry is {0} ms away; at most {MAX_ENVELOPE_LIFETIME_MS} ms is accepted"
    )]
    TooFarAhead(u64),
    /// This (submitter, nonce) was accepted before.
    #[error("job envelope replayed: this submitter's nonce was already used")]
    Replayed,
    /// The memory is full of unexpired nonces (a flood); try later.
    #[error("replay cache full ({0} live envelopes); try again later")]
    Full(usize),
}

/// Remembers accepted nonces until they expire.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<(PeerId, [u8; 16]), u64>,
    by_expiry: BTreeSet<(u64, PeerId, [u8; 16])>,
    capacity: usize,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` live envelopes.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
        }
    }

    /// Checks freshness of an envelope without recording it.
    pub fn check(
        &self,
        submitter: PeerId,
        nonce: [u8; 16],
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        if expires_ms <= now_ms {
            return Err(ReplayError::Expired(now_ms - expires_ms));
        }
        if expires_ms - now_ms > MAX_ENVELOPE_LIFETIME_MS {
            return Err(ReplayError::TooFarAhead(expires_ms - now_ms));
        }
        if self.seen.contains_key(&(submitter, nonce)) {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// Checks and records an envelope as accepted.
    pub fn accept(
        &mut self,
        submitter: PeerId,
        nonce: [u8; 16],
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        self.prune(now_ms);
        self.check(submitter, nonce, expires_ms, now_ms)?;
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Full(self.seen.len()));
        }
        self.seen.insert((submitter, nonce), expires_ms);
        self.by_expiry.insert((expires_ms, submitter, nonce));
        Ok(())
    }

    /// Live envelopes remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn prune(&mut self, now_ms: u64) {
        while let Some(&(exp, peer, nonce)) = self.by_expiry.first() {
            if exp > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&(peer, nonce));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::Identity;

    #[test]
    fn replay_expiry_and_bounds() {
        let p = Identity::generate().peer_id();
        let mut g = ReplayGuard::new(2);
        assert_eq!(g.accept(p, [1; 16], 1_000, 500), Ok(()));
        assert_eq!(g.accept(p, [1; 16], 1_000, 600), Err(ReplayError::Replayed));
        assert_eq!(
            g.accept(p, [2; 16], 400, 600),
            Err(ReplayError::Expired(200))
        );
        assert!(matches!(
            g.accept(p, [3; 16], u64::MAX, 600),
            Err(ReplayError::TooFarAhead(_))
        ));
        assert_eq!(g.accept(p, [4; 16], 2_000, 600), Ok(()));
        assert_eq!(g.accept(p, [5; 16], 2_000, 600), Err(ReplayError::Full(2)));
        // After the first expires it is forgotten and room is made.
        assert_eq!(g.accept(p, [5; 16], 2_000, 1_500), Ok(()));
        assert_eq!(g.len(), 2);
    }
}

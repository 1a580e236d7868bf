//! Per-peer token buckets and relay penalties. Pure: time is passed in.
//!
//! Inbound gossip is rate-limited per (claimed peer id, source IP) — the
//! source IP is in the key so that an attacker replaying an honest peer's
//! advert from its own address drains only its own bucket. A peer that
//! relays adverts which fail verification collects penalties; past
//! `max_bad_adverts` it is graylisted (gossipsub's graylist): its requests
//! are refused and it is never picked as a gossip target until the
//! graylist expires. Both maps are bounded.

use std::collections::HashMap;
use std::hash::Hash;

use peergrid_proto::PeerId;

/// A token bucket: `burst` tokens, refilled at `per_sec` tokens a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Most requests accepted back to back.
    pub burst: u32,
    /// Sustained requests per second.
    pub per_sec: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// Token buckets keyed by `K`, at most `capacity` of them.
#[derive(Debug, Clone)]
pub(crate) struct KeyedLimiter<K> {
    limit: RateLimit,
    capacity: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        Self {
            limit,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(bucket.last_ms) as f64 / 1000.0;
        bucket.tokens =
            (bucket.tokens + elapsed * self.limit.per_sec).min(f64::from(self.limit.burst));
        bucket.last_ms = now_ms.max(bucket.last_ms);
    }

    /// Takes one token for `key`; false when the bucket is empty (or when
    /// all `capacity` buckets are busy and none can be recycled).
    pub fn allow(&mut self, key: &K, now_ms: u64) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.capacity {
            // Recycle buckets that have refilled: they hold no history.
            let (per_sec, burst) = (self.limit.per_sec, f64::from(self.limit.burst));
            self.buckets.retain(|_, b| {
                let elapsed = now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
                b.tokens + elapsed * per_sec < burst
            });
            if self.buckets.len() >= self.capacity {
                return false;
            }
        }
        let fresh = Bucket {
            tokens: f64::from(self.limit.burst),
            last_ms: now_ms,
        };
        let mut bucket = *self.buckets.get(key).unwrap_or(&fresh);
        self.refill(&mut bucket, now_ms);
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        self.buckets.insert(key.clone(), bucket);
        allowed
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Penalty {
    bad: u32,
    graylisted_until_ms: u64,
}

/// Counts bad adverts per relayer and graylists repeat offenders.
#[derive(Debug, Clone)]
pub(crate) struct Penalties {
    max_bad: u32,
    graylist_ms: u64,
    capacity: usize,
    peers: HashMap<PeerId, Penalty>,
}

impl Penalties {
    pub fn new(max_bad: u32, graylist_ms: u64, capacity: usize) -> Self {
        Self {
            max_bad: max_bad.max(1),
            graylist_ms,
            capacity: capacity.max(1),
            peers: HashMap::new(),
        }
    }

    /// Charges one bad advert to `peer`; returns the graylist expiry when
    /// this charge graylists it.
    pub fn charge(&mut self, peer: PeerId, now_ms: u64) -> Option<u64> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.capacity {
            self.peers.retain(|_, p| p.graylisted_until_ms > now_ms);
            if self.peers.len() >= self.capacity {
                return None;
            }
        }
        let penalty = self.peers.entry(peer).or_default();
        penalty.bad += 1;
        if penalty.bad >= self.max_bad {
            penalty.bad = 0;
            penalty.graylisted_until_ms = now_ms.saturating_add(self.graylist_ms);
            return Some(penalty.graylisted_until_ms);
        }
        None
    }

    /// Whether `peer` is graylisted at `now_ms`.
    pub fn graylisted(&self, peer: &PeerId, now_ms: u64) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|p| p.graylisted_until_ms > now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let mut l = KeyedLimiter::new(
            RateLimit {
                burst: 3,
                per_sec: 2.0,
            },
            10,
        );
        assert!((0..3).all(|_| l.allow(&1u8, 1000)));
        assert!(!l.allow(&1, 1000));
        assert!(l.allow(&2, 1000), "other keys are independent");
        assert!(!l.allow(&1, 1400), "0.8 tokens after 400 ms");
        assert!(l.allow(&1, 1600));
        assert!(!l.allow(&1, 1600));
    }

    #[test]
    fn limiter_is_bounded_and_recycles_idle_buckets() {
        let mut l = KeyedLimiter::new(
            RateLimit {
                burst: 1,
                per_sec: 1.0,
            },
            2,
        );
        assert!(l.allow(&1u8, 0));
        assert!(l.allow(&2, 0));
        assert!(!l.allow(&3, 0), "full, nothing idle");
        assert!(l.allow(&3, 5000), "idle buckets recycled");
    }

    #[test]
    fn repeat_offenders_are_graylisted_for_a_while() {
        let mut p = Penalties::new(3, 60_000, 100);
        let peer = PeerId::from_bytes([9; 32]);
        assert_eq!(p.charge(peer, 0), None);
        assert_eq!(p.charge(peer, 0), None);
        assert_eq!(p.charge(peer, 10), Some(60_010));
        assert!(p.graylisted(&peer, 60_000));
        assert!(!p.graylisted(&peer, 60_010));
    }
}

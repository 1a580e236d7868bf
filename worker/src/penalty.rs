//! Scoring down flooders: a peer (or source IP) that keeps calling after
//! being refused by a rate limit earns strikes, and enough strikes in a
//! window put it in the penalty box — every call refused at once, before
//! any signature is checked — for a time that doubles with each offence.
//!
//! A client that backs off when told (`RESOURCE_EXHAUSTED` with the time to
//! wait) never gets here: the threshold is far above what retries with
//! back-off produce. Memory is bounded: at most `capacity` keys are
//! tracked; past that, keys with no recent strikes and no sentence are
//! forgotten, and if none can be, new offenders are not tracked (the rate
//! limits still apply to them). Pure: the caller passes the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Knobs of the penalty box (part of [`crate::flood::FloodConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenaltyConfig {
    /// Rate-limit refusals one key may collect within `window` before it is
    /// boxed. Default: 200.
    pub strikes: u32,
    /// The window strikes are counted in. Default: 10 s.
    pub window: Duration,
    /// The first sentence; each later one doubles. Default: 30 s.
    pub first: Duration,
    /// The longest sentence. Default: 10 minutes.
    pub longest: Duration,
}

impl Default for PenaltyConfig {
    fn default() -> Self {
        Self {
            strikes: 200,
            window: Duration::from_secs(10),
            first: Duration::from_secs(30),
            longest: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Instant,
    strikes: u32,
    /// Sentences served so far (the next one is `first × 2^sentences`).
    sentences: u32,
    until: Option<Instant>,
}

/// Strikes and sentences per key.
#[derive(Debug)]
pub struct PenaltyBox<K> {
    config: PenaltyConfig,
    capacity: usize,
    records: Mutex<HashMap<K, Record>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq + Clone> PenaltyBox<K> {
    /// A penalty box tracking at most `capacity` keys.
    pub fn new(config: PenaltyConfig, capacity: usize) -> Self {
        Self {
            config,
            capacity: capacity.max(1),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(remaining)` while `key` serves a sentence.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match lock(&self.records).get(key).and_then(|r| r.until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a rate-limit refusal of `key`; returns the sentence when this
    /// strike boxes it.
    pub fn strike(&self, key: &K, now: Instant) -> Option<Duration> {
        let mut records = lock(&self.records);
        if !records.contains_key(key) && records.len() >= self.capacity {
            let window = self.config.window;
            records.retain(|_, r| {
                r.until.is_some_and(|u| u > now) || now.duration_since(r.window_start) < window
            });
            if records.len() >= self.capacity {
                return None;
            }
        }
        let record = records.entry(key.clone()).or_insert(Record {
            window_start: now,
            strikes: 0,
            sentences: 0,
            until: None,
        });
        if now.duration_since(record.window_start) >= self.config.window {
            record.window_start = now;
            record.strikes = 0;
        }
        record.strikes += 1;
        if record.strikes < self.config.strikes {
            return None;
        }
        let doubling = 1u32.checked_shl(record.sentences).unwrap_or(u32::MAX);
        let sentence = self
            .config
            .first
            .saturating_mul(doubling)
            .min(self.config.longest);
        record.sentences = record.sentences.saturating_add(1);
        record.strikes = 0;
        record.window_start = now;
        record.until = Some(now + sentence);
        Some(sentence)
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PenaltyConfig {
        PenaltyConfig {
            strikes: 3,
            window: Duration::from_secs(10),
            first: Duration::from_secs(30),
            longest: Duration::from_secs(100),
        }
    }

    #[test]
    fn enough_strikes_in_a_window_box_a_key_for_a_doubling_sentence() {
        let b = PenaltyBox::new(config(), 10);
        let t = Instant::now();
        assert_eq!(b.strike(&1u8, t), None);
        assert_eq!(b.strike(&1, t), None);
        assert_eq!(b.strike(&1, t), Some(Duration::from_secs(30)));
        assert_eq!(
            b.check(&1, t + Duration::from_secs(10)),
            Err(Duration::from_secs(20))
        );
        assert!(b.check(&2, t).is_ok(), "others are not affected");
        let t = t + Duration::from_secs(31);
        assert!(b.check(&1, t).is_ok(), "the sentence ends");
        for _ in 0..2 {
            assert_eq!(b.strike(&1, t), None);
        }
        assert_eq!(b.strike(&1, t), Some(Duration::from_secs(60)));
        let t = t + Duration::from_secs(61);
        for _ in 0..2 {
            b.strike(&1, t);
        }
        assert_eq!(
            b.strike(&1, t),
            Some(Duration::from_secs(100)),
            "capped at the longest sentence"
        );
    }

    #[test]
    fn strikes_spread_over_windows_never_box() {
        let b = PenaltyBox::new(config(), 10);
        let mut t = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.strike(&1u8, t), None);
            assert_eq!(b.strike(&1u8, t), None);
            t += Duration::from_secs(10);
        }
        assert!(b.check(&1, t).is_ok());
    }

    #[test]
    fn rotating_keys_never_grow_past_capacity() {
        let b = PenaltyBox::new(config(), 4);
        let t = Instant::now();
        for k in 0u32..10_000 {
            b.strike(&k, t);
        }
        assert!(b.len() <= 4, "{}", b.len());
        // Once their windows pass, old keys make room for new ones.
        let later = t + Duration::from_secs(11);
        b.strike(&99_999, later);
        assert!(b.len() <= 4);
        assert_eq!(b.strike(&99_999, later), None);
        assert_eq!(b.strike(&99_999, later), Some(Duration::from_secs(30)));
    }
}

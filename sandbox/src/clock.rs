//! Virtual clocks: time that advances with what the guest does, never with
//! the host's real time, so every replica reads the same timestamps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// How far virtual time advances on every clock read.
const READ_STEP_NS: u64 = 1_000;

/// The virtual time of one job run, shared by its wall clock, its monotonic
/// clock and the deterministic `poll_oneoff`.
#[derive(Debug)]
pub(crate) struct VirtualTime {
    base_unix_ns: u64,
    elapsed_ns: AtomicU64,
}

impl VirtualTime {
    /// Virtual time starting at `base_unix_ns` on the wall clock and 0 on
    /// the monotonic clock.
    pub(crate) fn new(base_unix_ns: u64) -> Arc<Self> {
        Arc::new(Self {
            base_unix_ns,
            elapsed_ns: AtomicU64::new(0),
        })
    }

    /// Monotonic time now, without advancing it.
    pub(crate) fn peek(&self) -> u64 {
        self.elapsed_ns.load(Ordering::Relaxed)
    }

    /// Wall-clock time now (ns since the Unix epoch), without advancing it.
    pub(crate) fn peek_wall(&self) -> u64 {
        self.base_unix_ns.saturating_add(self.peek())
    }

    /// Advances time by `ns` (saturating).
    pub(crate) fn advance(&self, ns: u64) {
        // A job's store is used by one thread at a time, so a plain
        // load/store pair cannot race with another update.
        let now = self.peek();
        self.elapsed_ns
            .store(now.saturating_add(ns), Ordering::Relaxed);
    }

    /// A clock read: returns the monotonic time, then advances it by 1 µs.
    fn read(&self) -> u64 {
        let now = self.peek();
        self.advance(READ_STEP_NS);
        now
    }
}

/// The guest's wall clock (`CLOCK_REALTIME`).
pub(crate) struct WallClock(pub(crate) Arc<VirtualTime>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(READ_STEP_NS)
    }

    fn now(&self) -> Duration {
        let elapsed = self.0.read();
        Duration::from_nanos(self.0.base_unix_ns.saturating_add(elapsed))
    }
}

/// The guest's monotonic clock (`CLOCK_MONOTONIC`).
pub(crate) struct MonotonicClock(pub(crate) Arc<VirtualTime>);

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        READ_STEP_NS
    }

    fn now(&self) -> u64 {
        self.0.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_advance_one_microsecond_shared() {
        let time = VirtualTime::new(1_000_000_000);
        let wall = WallClock(time.clone());
        let mono = MonotonicClock(time.clone());
        assert_eq!(mono.now(), 0);
        assert_eq!(wall.now(), Duration::from_nanos(1_000_001_000));
        assert_eq!(mono.now(), 2_000);
        time.advance(5_000);
        assert_eq!(mono.now(), 8_000);
        assert_eq!(time.peek_wall(), 1_000_009_000);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let time = VirtualTime::new(u64::MAX - 1);
        time.advance(u64::MAX);
        assert_eq!(time.peek(), u64::MAX);
        assert_eq!(MonotonicClock(time.clone()).now(), u64::MAX);
        assert_eq!(WallClock(time).now(), Duration::from_nanos(u64::MAX));
    }
}

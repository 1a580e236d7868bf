//! The compile cache: module hash → compiled module (or the reason it could
//! not be compiled), LRU-bounded, compiling each module at most once even
//! when many threads ask for it at the same time. Host failures
//! ([`ExecError::Host`]) are the node's, not the module's, and are dropped
//! so the next caller tries again. On a miss the sandbox may first load the
//! module from its on-disk artifact directory ([`crate::artifacts`]); the
//! counters here tell loads from compiles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::{CompiledModule, ExecError, ModuleHash};

/// The outcome of compiling one module, shared by everyone who asked.
pub(crate) type Outcome = Result<Arc<CompiledModule>, ExecError>;

/// A cache slot; the first thread to reach it compiles, the others wait.
type Slot = Arc<OnceLock<Outcome>>;

/// Counters of the compile cache, since the sandbox was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `compile` calls answered from the cache (including calls that waited
    /// for another thread's compile of the same module).
    pub hits: u64,
    /// `compile` calls that found nothing cached in memory (and then
    /// loaded the module from disk or compiled it).
    pub misses: u64,
    /// Modules actually compiled (successfully or not).
    pub compiles: u64,
    /// Modules currently cached in memory (and failures).
    pub entries: usize,
    /// Misses answered by loading a compiled artifact from
    /// [`Config::artifact_dir`](crate::Config::artifact_dir), without
    /// compiling.
    pub disk_hits: u64,
    /// Compiled artifacts written to the artifact directory.
    pub disk_writes: u64,
    /// Artifact files found bad (corrupt, truncated, or refused by
    /// wasmtime) and deleted; the module was compiled again.
    pub disk_discarded: u64,
}

struct Entry {
    slot: Slot,
    last_used: u64,
}

struct Inner {
    entries: HashMap<ModuleHash, Entry>,
    clock: u64,
}

/// An LRU map of compile outcomes.
pub(crate) struct ModuleCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    disk_writes: AtomicU64,
    disk_discarded: AtomicU64,
}

impl ModuleCache {
    /// An empty cache keeping at most `capacity` (≥ 1) entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                clock: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            disk_writes: AtomicU64::new(0),
            disk_discarded: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing is left half-updated if a holder panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outcome for `hash`, running `compile` (outside the cache lock)
    /// if nobody has yet. Concurrent callers for the same hash wait for the
    /// first one's result.
    #[cfg(test)]
    pub(crate) fn get_or_compile(
        &self,
        hash: &ModuleHash,
        compile: impl FnOnce() -> Outcome,
    ) -> Outcome {
        self.get_or_load(hash, || None, compile)
    }

    /// The outcome for `hash`; on a miss, the first caller tries `load`
    /// (the disk cache; counted as a disk hit) and runs `compile` only if
    /// that returns `None`, both outside the cache lock. Concurrent callers
    /// for the same hash wait for the first one's result.
    pub(crate) fn get_or_load(
        &self,
        hash: &ModuleHash,
        load: impl FnOnce() -> Option<Arc<CompiledModule>>,
        compile: impl FnOnce() -> Outcome,
    ) -> Outcome {
        let slot = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(entry) = inner.entries.get_mut(hash) {
                entry.last_used = now;
                self.hits.fetch_add(1, Ordering::Relaxed);
                entry.slot.clone()
            } else {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let slot = Slot::default();
                inner.entries.insert(
                    *hash,
                    Entry {
                        slot: slot.clone(),
                        last_used: now,
                    },
                );
                evict(&mut inner.entries, self.capacity);
                slot
            }
        };
        let outcome = slot
            .get_or_init(|| {
                if let Some(module) = load() {
                    self.disk_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(module);
                }
                self.compiles.fetch_add(1, Ordering::Relaxed);
                compile()
            })
            .clone();
        if matches!(outcome, Err(ExecError::Host(_))) {
            // The node failed, not the module: let the next caller retry.
            let mut inner = self.lock();
            if inner
                .entries
                .get(hash)
                .is_some_and(|entry| Arc::ptr_eq(&entry.slot, &slot))
            {
                inner.entries.remove(hash);
            }
        }
        outcome
    }

    /// The compiled module for `hash`, if it is cached and compiled
    /// successfully. Marks it as recently used; does not touch the counters.
    pub(crate) fn get(&self, hash: &ModuleHash) -> Option<Arc<CompiledModule>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(hash)?;
        let module = entry.slot.get()?.as_ref().ok()?.clone();
        entry.last_used = now;
        Some(module)
    }

    /// Counts an artifact written to disk.
    pub(crate) fn count_disk_write(&self) {
        self.disk_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a bad artifact file deleted.
    pub(crate) fn count_disk_discard(&self) {
        self.disk_discarded.fetch_add(1, Ordering::Relaxed);
    }

    /// Current counters.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
            entries: self.lock().entries.len(),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            disk_writes: self.disk_writes.load(Ordering::Relaxed),
            disk_discarded: self.disk_discarded.load(Ordering::Relaxed),
        }
    }
}

/// Drops least recently used entries until at most `capacity` remain. A
/// compile in progress in an evicted slot still completes for the threads
/// waiting on it; it is just not kept.
fn evict(entries: &mut HashMap<ModuleHash, Entry>, capacity: usize) {
    while entries.len() > capacity {
        let Some(oldest) = entries
            .iter()
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(hash, _)| *hash)
        else {
            return;
        };
        entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(msg: &str) -> Outcome {
        Err(ExecError::InvalidModule(msg.into()))
    }

    fn message(outcome: Outcome) -> String {
        match outcome {
            Err(ExecError::InvalidModule(msg)) => msg,
            _ => String::new(),
        }
    }

    #[test]
    fn failures_are_cached_and_lru_evicts_oldest() {
        let cache = ModuleCache::new(2);
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        assert_eq!(message(cache.get_or_compile(&a, || fail("a"))), "a");
        assert_eq!(message(cache.get_or_compile(&a, || fail("again"))), "a");
        assert_eq!(message(cache.get_or_compile(&b, || fail("b"))), "b");
        // Touch a so that b is the least recently used, then evict it.
        assert_eq!(message(cache.get_or_compile(&a, || fail("again"))), "a");
        assert_eq!(message(cache.get_or_compile(&c, || fail("c"))), "c");
        assert_eq!(message(cache.get_or_compile(&a, || fail("again"))), "a");
        assert_eq!(message(cache.get_or_compile(&b, || fail("b2"))), "b2");
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.compiles, stats.entries),
            (3, 4, 4, 2)
        );
        // Failed compiles are cached but not returned by `get`.
        assert!(cache.get(&a).is_none());
    }

    #[test]
    fn host_failures_are_not_cached() {
        let cache = ModuleCache::new(2);
        let a = [1; 32];
        let host = || Err(ExecError::Host("no compiler".into()));
        assert!(matches!(
            cache.get_or_compile(&a, host),
            Err(ExecError::Host(_))
        ));
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(message(cache.get_or_compile(&a, || fail("a"))), "a");
        assert_eq!(cache.stats().compiles, 2);
    }
}

//! The per-job [`ResourceLimiter`]: caps linear memory and table growth and
//! records what it denied, so a run that fails afterwards can be reported as
//! [`ExecError::MemoryLimit`](crate::ExecError::MemoryLimit) rather than as
//! whatever the guest did after seeing `memory.grow` return -1.

use wasmtime::{Error, ResourceLimiter, Result};

/// Most tables a job may have; wasmparser's validator already rejects
/// modules defining more than 100.
pub(crate) const MAX_TABLES: usize = 100;
/// Most table elements a job may hold across all its tables (each costs a
/// pointer of host memory outside `Limits::memory_bytes`).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Limits for one job's store.
#[derive(Debug)]
pub(crate) struct JobLimiter {
    memory_bytes: usize,
    table_elements_in_use: usize,
    /// A growth was refused because of the job's limits.
    pub(crate) denied: bool,
    /// The host failed to provide memory the job was entitled to.
    pub(crate) host_failure: bool,
}

impl JobLimiter {
    /// A limiter allowing `memory_bytes` of linear memory.
    pub(crate) fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements_in_use: 0,
            denied: false,
            host_failure: false,
        }
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Beyond the module's own declared maximum: ordinary wasm
            // semantics (memory.grow returns -1), not our limit.
            return Ok(false);
        }
        if desired > self.memory_bytes {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: Error) -> Result<()> {
        // Only reached for growth we allowed: the host ran out of memory or
        // address space. Do not let the guest continue on a host-dependent
        // path; stop it and report a host failure.
        self.host_failure = true;
        Err(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        // Our cap first, unlike for memory: a pooled table reports the
        // pool's slot size (`MAX_TABLE_ELEMENTS`) as its maximum, where an
        // on-demand one reports the module's, so only growth past our cap
        // counts the same with and without `Config::pool`. Growth past
        // both is therefore a denied growth.
        let in_use = self
            .table_elements_in_use
            .saturating_sub(current)
            .saturating_add(desired);
        if in_use > MAX_TABLE_ELEMENTS {
            self.denied = true;
            return Ok(false);
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.table_elements_in_use = in_use;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: Error) -> Result<()> {
        self.host_failure = true;
        Err(error)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_and_records_only_our_limit() {
        let mut limiter = JobLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap_or(false));
        assert!(!limiter.denied);
        // The module's own maximum is not our limit.
        assert!(
            !limiter
                .memory_growing(0, 1 << 19, Some(1 << 18))
                .unwrap_or(true)
        );
        assert!(!limiter.denied);
        assert!(!limiter.memory_growing(0, 2 << 20, None).unwrap_or(true));
        assert!(limiter.denied);
    }

    #[test]
    fn table_elements_are_counted_across_tables() {
        let mut limiter = JobLimiter::new(0);
        assert!(limiter.table_growing(0, 60_000, None).unwrap_or(false));
        assert!(!limiter.table_growing(0, 60_000, None).unwrap_or(true));
        assert!(limiter.denied);
        assert!(limiter.table_growing(0, 40_000, None).unwrap_or(false));
    }

    #[test]
    fn table_growth_past_our_cap_is_denied_whatever_the_maximum() {
        // Within the cap, the table's own maximum is not our limit.
        let mut limiter = JobLimiter::new(0);
        assert!(!limiter.table_growing(0, 20, Some(10)).unwrap_or(true));
        assert!(!limiter.denied);
        // Past it, denied whether the maximum is the module's or a pool
        // slot's: the verdict must not depend on the allocator.
        let past = MAX_TABLE_ELEMENTS + 1;
        assert!(
            !limiter
                .table_growing(0, past, Some(MAX_TABLE_ELEMENTS))
                .unwrap_or(true)
        );
        assert!(limiter.denied);
    }
}

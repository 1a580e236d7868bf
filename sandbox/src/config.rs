//! Knobs: [`Config`] for the whole node (engine-level, fixed when the
//! [`Sandbox`](crate::Sandbox) is built) and [`Limits`] for one job run.

use std::time::Duration;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Engine-level settings of a [`Sandbox`](crate::Sandbox): the single place
/// for everything that is fixed for the lifetime of the node's engine.
///
/// Build it from [`Config::default`] and change fields as needed; the struct
/// is `#[non_exhaustive]` so that knobs (e.g. the pooling allocator) can be
/// added later without breaking callers.
///
/// ```
/// let mut config = peergrid_sandbox::Config::default();
/// config.module_cache_capacity = 16;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Compile guests so that every replica computes bit-identical results:
    /// NaN canonicalization on, relaxed SIMD and threads off.
    ///
    /// Turning this off only affects code generation (it is faster for
    /// float-heavy code); clocks, randomness and I/O are always virtual.
    /// Default: `true`.
    pub deterministic: bool,
    /// Maximum native stack, in bytes, that guest code may use before it
    /// traps with "call stack exhausted". The thread calling
    /// [`Sandbox::run`](crate::Sandbox::run) needs a native stack comfortably
    /// larger than this. Default: 512 KiB.
    pub max_wasm_stack: usize,
    /// Period of the epoch ticker thread that backs [`Limits::wall_time`].
    /// Timeouts fire within `wall_time + 2 × epoch_tick`. Default: 10 ms.
    pub epoch_tick: Duration,
    /// How many compiled modules (and cached compile failures) the sandbox
    /// keeps; the least recently used one is evicted first. Must be at
    /// least 1. Default: 64.
    pub module_cache_capacity: usize,
    /// Modules larger than this many bytes are rejected without being
    /// parsed. Default: 256 MiB.
    pub max_module_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            deterministic: true,
            max_wasm_stack: 512 * KIB,
            epoch_tick: Duration::from_millis(10),
            module_cache_capacity: 64,
            max_module_bytes: 256 * MIB,
        }
    }
}

/// Resource limits of one job run. Every replica of a job must use the same
/// values (except `wall_time`) or their results will differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel budget: roughly one unit per executed wasm instruction.
    /// Deterministic, and the unit of work reported back in
    /// [`Execution::fuel_used`](crate::Execution::fuel_used).
    /// Default: 10 000 000 000.
    pub fuel: u64,
    /// Maximum size of the job's linear memory, in bytes. Default: 256 MiB.
    pub memory_bytes: u64,
    /// Wall-clock backstop; exceeding it gives
    /// [`ExecError::Timeout`](crate::ExecError::Timeout), the only
    /// non-deterministic outcome. Default: 60 s.
    pub wall_time: Duration,
    /// Maximum bytes of stdout; writing more aborts the job with
    /// [`ExecError::OutputTooLarge`](crate::ExecError::OutputTooLarge).
    /// Default: 1 MiB.
    pub max_output_bytes: usize,
    /// Maximum bytes of stderr kept; further stderr output is silently
    /// discarded (the guest still sees its writes succeed). Default: 64 KiB.
    pub max_stderr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 256 * MIB as u64,
            wall_time: Duration::from_secs(60),
            max_output_bytes: MIB,
            max_stderr_bytes: 64 * KIB,
        }
    }
}

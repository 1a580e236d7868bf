//! What goes into one job run ([`JobInput`]) and what comes out of it
//! ([`Execution`]).

use std::time::Duration;

use crate::ExecError;

/// The inputs of one job run. Everything the guest can observe is derived
/// from these bytes, so replicas given equal inputs behave identically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInput {
    /// Command-line arguments `argv[1..]`; the sandbox supplies
    /// `argv[0] = "job"`.
    pub args: Vec<String>,
    /// The whole of the guest's stdin.
    pub stdin: Vec<u8>,
    /// Seed of the guest's randomness (`random_get`), derived by the caller
    /// from the job id so every replica sees the same "random" bytes.
    pub seed: [u8; 32],
    /// Start of the virtual wall clock, in nanoseconds since the Unix epoch.
    ///
    /// Both clocks are virtual: the first read of either returns the start
    /// (`clock_base_unix_ns` for the wall clock, 0 for the monotonic clock)
    /// and every read advances both by 1 µs; a guest sleeping via
    /// `poll_oneoff` advances them by the sleep duration without waiting.
    pub clock_base_unix_ns: u64,
}

/// The outcome of one job run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// `Ok(())` if `_start` returned or the guest called `proc_exit(0)`.
    pub result: Result<(), ExecError>,
    /// Everything the guest wrote to stdout (at most
    /// [`Limits::max_output_bytes`](crate::Limits::max_output_bytes)), also
    /// on failure.
    pub stdout: Vec<u8>,
    /// The first [`Limits::max_stderr_bytes`](crate::Limits::max_stderr_bytes)
    /// bytes the guest wrote to stderr.
    pub stderr: Vec<u8>,
    /// Fuel consumed: the budget minus what was left (so equal to the
    /// budget on [`ExecError::OutOfFuel`]). Deterministic for a given
    /// wasmtime version, and the unit of work reported back.
    ///
    /// Compiled code keeps its fuel count in a register and writes it back
    /// only at calls, returns and when fuel runs out, so after a trap or a
    /// timeout the work done since the trapping function's last call is not
    /// counted (still deterministic for traps: the write-back points are
    /// fixed by the code).
    /// Always 0 under [`Metering::Supervised`](crate::Metering::Supervised)
    /// and [`Metering::Unbounded`](crate::Metering::Unbounded), which do not
    /// count fuel: [`Execution::cpu_time`] is their unit of work.
    pub fuel_used: u64,
    /// Wall-clock time of the run, instantiation included (informational,
    /// not deterministic).
    pub elapsed: Duration,
    /// CPU time the thread that ran the job spent on it, instantiation
    /// included (informational, not deterministic). Zero where the
    /// platform cannot measure it.
    pub cpu_time: Duration,
}

impl Execution {
    /// The execution of a job that never ran (e.g. its module did not
    /// compile): no output, no fuel.
    pub fn failed(error: ExecError) -> Self {
        Self {
            result: Err(error),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_used: 0,
            elapsed: Duration::ZERO,
            cpu_time: Duration::ZERO,
        }
    }

    /// Whether the job succeeded.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

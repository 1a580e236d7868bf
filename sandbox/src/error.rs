//! Error types: [`ExecError`] (why a job did not succeed) and
//! [`SandboxError`] (the sandbox itself could not be built).

/// Why a job failed to compile or did not run to successful completion.
///
/// Every message is a pure function of the module, its input and the
/// [`Limits`](crate::Limits) (no addresses, backtraces or host details), so
/// replicas can compare errors as well as outputs — except for the kinds
/// where [`ExecError::is_deterministic`] is `false`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The job used up its whole fuel budget
    /// ([`Limits::fuel`](crate::Limits::fuel)).
    #[error("out of fuel: the job used its whole fuel budget")]
    OutOfFuel,
    /// The job tried to grow its memory or tables beyond
    /// [`Limits::memory_bytes`](crate::Limits::memory_bytes) (or the table
    /// element cap), and then failed or could not be instantiated.
    #[error("memory limit exceeded: the job tried to grow memory or tables beyond its limit")]
    MemoryLimit,
    /// The job ran longer than [`Limits::wall_time`](crate::Limits::wall_time).
    /// Not deterministic: a faster node might have finished the job.
    #[error("timeout: the job exceeded its wall-clock limit")]
    Timeout,
    /// Any other wasm trap. Holds only the trap's description (e.g.
    /// `"call stack exhausted"`, `"wasm `unreachable` instruction executed"`),
    /// or for a failed host call the host's fixed message.
    #[error("wasm trap: {0}")]
    Trap(String),
    /// The module cannot be run: not wasm, fails validation, too large, uses
    /// a disabled feature, imports something the sandbox does not provide,
    /// or has no `_start`. The message names the problem.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The module is too costly to compile: it exceeds a pre-check limit
    /// ([`Config::max_functions`](crate::Config::max_functions),
    /// [`Config::max_function_body_bytes`](crate::Config::max_function_body_bytes),
    /// [`Config::max_function_locals`](crate::Config::max_function_locals)),
    /// or compiling it in the [`Config::compiler`](crate::Config::compiler)
    /// child did not finish within the
    /// [`Config::compile_budget`](crate::Config::compile_budget) (time or
    /// memory; killed, or it crashed). The message names the limit, never
    /// measured times, so nodes with the same [`Config`](crate::Config)
    /// report the same text. Cached like other compile failures: the same
    /// module is never compiled twice.
    ///
    /// Counted as deterministic: a pre-check is, and a module that blows the
    /// budget of one node blows it on any node with the same budget unless
    /// it sits right at the edge, which the budget's margin over real
    /// programs (about 5×) makes rare.
    #[error("compile budget exceeded: {0}")]
    CompileBudget(String),
    /// The job wrote more than
    /// [`Limits::max_output_bytes`](crate::Limits::max_output_bytes) to
    /// stdout (it is stopped at the first write past the limit).
    #[error("output too large: the job wrote more to stdout than its limit allows")]
    OutputTooLarge,
    /// The job called `proc_exit` with a non-zero status.
    #[error("job exited with status {0}")]
    ExitCode(i32),
    /// The host failed while running the job (e.g. it could not allocate
    /// memory the job was entitled to). Not the job's fault and not
    /// deterministic: another node may well succeed.
    #[error("host failure: {0}")]
    Host(String),
}

impl ExecError {
    /// A short, stable, machine-readable name for the kind of error:
    /// `"out_of_fuel"`, `"memory_limit"`, `"timeout"`, `"trap"`,
    /// `"invalid_module"`, `"compile_budget"`, `"output_too_large"`,
    /// `"exit_code"` or `"host"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OutOfFuel => "out_of_fuel",
            Self::MemoryLimit => "memory_limit",
            Self::Timeout => "timeout",
            Self::Trap(_) => "trap",
            Self::InvalidModule(_) => "invalid_module",
            Self::CompileBudget(_) => "compile_budget",
            Self::OutputTooLarge => "output_too_large",
            Self::ExitCode(_) => "exit_code",
            Self::Host(_) => "host",
        }
    }

    /// Whether every honest replica running the same module with the same
    /// input and limits gets this same error. `false` only for
    /// [`ExecError::Timeout`] and [`ExecError::Host`], which depend on the
    /// node rather than the job.
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, Self::Timeout | Self::Host(_))
    }
}

/// The sandbox could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// A [`Config`](crate::Config) value is out of range.
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    /// wasmtime refused the engine configuration.
    #[error("failed to create the wasmtime engine: {0}")]
    Engine(String),
    /// The WASI imports could not be added to the linker.
    #[error("failed to set up the WASI linker: {0}")]
    Linker(String),
    /// The epoch ticker thread could not be started.
    #[error("failed to start the epoch ticker thread: {0}")]
    Ticker(String),
    /// The thread that retires idle runner processes could not be started.
    #[error("failed to start the runner reaper thread: {0}")]
    Reaper(String),
    /// The [`Config::artifact_dir`](crate::Config::artifact_dir) could not
    /// be created.
    #[error("failed to open the compiled-artifact directory: {0}")]
    ArtifactDir(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_determinism() {
        let all = [
            ExecError::OutOfFuel,
            ExecError::MemoryLimit,
            ExecError::Timeout,
            ExecError::Trap("x".into()),
            ExecError::InvalidModule("x".into()),
            ExecError::CompileBudget("x".into()),
            ExecError::OutputTooLarge,
            ExecError::ExitCode(3),
            ExecError::Host("x".into()),
        ];
        let kinds: Vec<_> = all.iter().map(ExecError::kind).collect();
        let mut unique = kinds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len());
        let nondet: Vec<_> = all
            .iter()
            .filter(|e| !e.is_deterministic())
            .map(ExecError::kind)
            .collect();
        assert_eq!(nondet, ["timeout", "host"]);
        assert_eq!(
            ExecError::ExitCode(3).to_string(),
            "job exited with status 3"
        );
    }
}

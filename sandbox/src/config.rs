//! Knobs: [`Config`] for the whole node (engine-level, fixed when the
//! [`Sandbox`](crate::Sandbox) is built), with the compile-bomb defences
//! [`CompilerCommand`] and [`CompileBudget`], the instance pool
//! [`PoolConfig`], and [`Limits`] for one job run.

use std::path::PathBuf;
use std::time::Duration;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Engine-level settings of a [`Sandbox`](crate::Sandbox): the single place
/// for everything that is fixed for the lifetime of the node's engine.
///
/// Build it from [`Config::default`] and change fields as needed; the struct
/// is `#[non_exhaustive]` so that knobs can be added later without breaking
/// callers.
///
/// ```
/// let mut config = peergrid_sandbox::Config::default();
/// config.module_cache_capacity = 16;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Compile guests so that every replica computes bit-identical results:
    /// relaxed SIMD and threads off, and NaNs canonicalized if
    /// [`Config::canonicalize_nans`] is set.
    ///
    /// Turning this off only affects code generation (it is faster for
    /// float-heavy code); clocks, randomness and I/O are always virtual.
    /// Default: `true`.
    pub deterministic: bool,
    /// With [`Config::deterministic`]: rewrite every NaN a float operation
    /// produces to the one canonical NaN, so that replicas on *different*
    /// CPU architectures agree bit for bit. It costs a compare and a select
    /// after every float operation: 2.5× on the f64 loops of the example
    /// jobs (`peergrid bench`). Without it, NaN bits are the CPU's, which
    /// are the same on every machine of one architecture running the same
    /// wasmtime: replicas placed within one [`Sandbox::platform`](crate::Sandbox::platform)
    /// (which names this setting) agree anyway. That is how nodes run
    /// (homogeneous redundancy). Default: `true`.
    pub canonicalize_nans: bool,
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
    /// Pre-check before compiling: most functions a module may define.
    /// Default: 1,000,000 (the web platform's limit).
    pub max_functions: u32,
    /// Pre-check before compiling: largest function body, in bytes.
    /// Default: 7,654,321 (the web platform's limit).
    pub max_function_body_bytes: usize,
    /// Pre-check before compiling: most locals one function may declare
    /// (parameters not counted; the validator caps those at 1,000).
    /// Default: 50,000 (the web platform's limit).
    pub max_function_locals: u32,
    /// The program that compiles untrusted modules in a child process under
    /// [`Config::compile_budget`] (see [`crate::compiler`]). `None`
    /// compiles in-process with the pre-checks only and no time or memory
    /// bound: for tests and trusted modules, not for a node on the
    /// internet. Default: `None`.
    pub compiler: Option<CompilerCommand>,
    /// Time and memory a compile in the [`Config::compiler`] child may take
    /// before it is killed and the module rejected with
    /// [`ExecError::CompileBudget`](crate::ExecError::CompileBudget).
    pub compile_budget: CompileBudget,
    /// Directory of the on-disk compiled-code cache: artifacts of
    /// successfully compiled modules, kept across restarts, so a restarted
    /// node loads a module in milliseconds instead of compiling it again
    /// (see [`Sandbox::compile`](crate::Sandbox::compile)). Created if
    /// missing. It must be this node's own (inside its data directory):
    /// loading runs the native code in these files. `None`: memory only.
    /// Default: `None` (a node sets `<data dir>/compiled`).
    pub artifact_dir: Option<PathBuf>,
    /// Size bound of [`Config::artifact_dir`], in bytes: after each write,
    /// the least recently used files are deleted until the rest fit.
    /// Default: 1 GiB.
    pub artifact_dir_max_bytes: u64,
    /// Take each job's instance, linear memory and tables from a pool
    /// reserved when the sandbox is built (wasmtime's pooling allocator)
    /// instead of mapping and unmapping them per job. `None`: on demand.
    /// Default: `None` (a node sets one from its slots, see
    /// [`PoolConfig::for_slots`]).
    ///
    /// # When to use the pool
    ///
    /// It makes a job's set-up and teardown cheaper. Measured with
    /// `peergrid bench` on a 2-core VM (medians), instantiate + call + drop
    /// of a tiny module takes 3.4 µs pooled against 9.7 µs on demand
    /// through [`Sandbox::run`](crate::Sandbox::run) (p99: 4.4 against
    /// 13.5 µs), and 2.3 against 8.6 µs in plain wasmtime: the pool reuses
    /// a slot's mappings and resets it with `memset` and `madvise`, where
    /// on demand maps 4 GiB of address space, changes its protection and
    /// unmaps it for every job. Use it for a node, which runs many short
    /// jobs; a sandbox that runs a handful (`peergrid run`, tests) gains
    /// nothing.
    ///
    /// # What it costs
    ///
    /// Address space, not memory: each of [`PoolConfig::instances`]
    /// reserves its linear memory slot (4 GiB plus a 32 MiB guard, the same
    /// reservation an on-demand memory makes per job, because compiled code
    /// relies on it to skip bounds checks) and room for 100 tables of
    /// 100,000 elements, all untouched until a job uses them. After a job,
    /// its slot keeps at most [`PoolConfig::memory_keep_resident`] and
    /// [`PoolConfig::table_keep_resident`] bytes resident and gives the rest
    /// back to the kernel, so an idle node stays small and a job that grew
    /// to its memory limit does not leave that memory behind.
    ///
    /// # What it does not change
    ///
    /// Verdicts. The per-job limits stay with the resource limiter
    /// ([`Limits::memory_bytes`], the table element cap), which is why
    /// there is no per-instance memory cap here: slots admit any 32-bit
    /// memory (up to 4 GiB; a smaller cap would not shrink the reservation,
    /// it would only make modules declaring a larger minimum fail to load
    /// instead of failing with
    /// [`ExecError::MemoryLimit`](crate::ExecError::MemoryLimit)). A module
    /// that does not fit a slot anyway (a table declaring more than 100,000
    /// elements) is loaded into a second, on-demand engine with the same
    /// compile settings and runs exactly as without the pool. Memory and
    /// tables are reset between jobs: nothing leaks from one job into the
    /// next. The compiled code, the engine fingerprint and so the
    /// [`Config::artifact_dir`] files are the same with or without the
    /// pool; the [`Config::compiler`] child never uses it (its `RLIMIT_AS`
    /// leaves no room for the reservation).
    ///
    /// # When it is full
    ///
    /// A job that finds all [`PoolConfig::instances`] in use fails with
    /// [`ExecError::Host`](crate::ExecError::Host) (the node's fault, not a
    /// verdict on the job) instead of waiting, so a leak can never hang a
    /// node. Size the pool above the number of threads that call
    /// [`Sandbox::run`](crate::Sandbox::run) at once.
    pub pool: Option<PoolConfig>,
    /// How a job's run time is bounded: see [`Metering`]. Default:
    /// [`Metering::Fuel`].
    pub metering: Metering,
    /// With [`Metering::Supervised`]: a runner process that has had no job
    /// for this long exits, giving its memory (5–6 MiB, and its last job's
    /// pages) back; the next job starts a new one (a few milliseconds).
    /// Default: 30 s.
    pub runner_idle_time: Duration,
}

/// How a [`Sandbox`](crate::Sandbox) bounds a job's run time: part of the
/// engine configuration, because it changes the generated code.
///
/// Every replica of one job must run under the same metering (a job's
/// submitter names it, see `JobLimits.budget` in the protocol): only
/// [`Metering::Fuel`] can end a job with the deterministic
/// [`ExecError::OutOfFuel`](crate::ExecError::OutOfFuel), and only fuel
/// reports [`Execution::fuel_used`](crate::Execution::fuel_used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metering {
    /// The guest code is instrumented in this process: fuel charged per
    /// basic block ([`Limits::fuel`], a deterministic budget and the unit
    /// of work) and an epoch check at loop headers and function entries
    /// (the [`Limits::wall_time`] backstop). Costs 1.5–2× on tight loops.
    #[default]
    Fuel,
    /// The guest code is not instrumented at all (no fuel, no epoch
    /// checks), so it runs at the speed of plain wasmtime, and it runs in
    /// a supervised runner process ([`crate::runner`]), started from
    /// [`Config::compiler`] (which must be set), that is killed when the
    /// job passes [`Limits::wall_time`]. A timeout is the only way such a
    /// job can run out of budget, and it is not deterministic, so it is
    /// never a vote. [`Limits::fuel`] is ignored; the work done is
    /// reported as CPU time ([`Execution::cpu_time`](crate::Execution::cpu_time)).
    /// The runner is also a second wall around the job: a bug that let a
    /// guest corrupt its process would corrupt a runner, not the node.
    Supervised,
    /// Not instrumented and not bounded: the job runs in the calling
    /// thread until it ends, whatever [`Limits::wall_time`] says. Only for
    /// code that is itself killed from outside — the runner process of
    /// [`Metering::Supervised`] — and for measurements.
    Unbounded,
}

impl Metering {
    /// Whether compiled code carries fuel and epoch checks.
    pub fn instrumented(self) -> bool {
        self == Metering::Fuel
    }
}

/// The pooling allocator's sizes: see [`Config::pool`].
///
/// ```
/// let mut config = peergrid_sandbox::Config::default();
/// config.pool = Some(peergrid_sandbox::PoolConfig::new(8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most job instances alive at once (each with one linear memory and
    /// up to 100 tables). Must be at least 1. Default: 16.
    pub instances: u32,
    /// Bytes at the start of a linear memory that are zeroed with `memset`
    /// and stay resident when a job ends; the rest of what it touched is
    /// returned to the kernel with `madvise`. Trades a little resident
    /// memory per used slot for fewer page faults and system calls per
    /// job. Default: 64 KiB (one wasm page).
    pub memory_keep_resident: usize,
    /// The same for tables. Default: 16 KiB (2,048 function references).
    pub table_keep_resident: usize,
}

impl PoolConfig {
    /// Instances taken from a pool beyond a node's job slots, for anything
    /// else that runs a job at the same time: none does today, so this is
    /// only a margin.
    pub const HEADROOM: u32 = 4;

    /// A pool of `instances` with the default resident sizes.
    pub fn new(instances: u32) -> Self {
        Self {
            instances,
            ..Self::default()
        }
    }

    /// The pool of a node running `slots` jobs at once: `slots` plus
    /// [`PoolConfig::HEADROOM`] instances.
    pub fn for_slots(slots: usize) -> Self {
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        Self::new(slots.saturating_add(Self::HEADROOM))
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            instances: 16,
            memory_keep_resident: 1024 * KIB,
            table_keep_resident: 16 * KIB,
        }
    }
}

/// A program that compiles one module per run: `program args...`, given
/// the request on stdin, must call [`compiler::child_main`](crate::compiler::child_main)
/// (for example the `peergrid-compile` binary of this crate, or
/// `peergrid __compile-module`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments that make it call `child_main`.
    pub args: Vec<String>,
}

impl CompilerCommand {
    /// `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// `program` with `args`.
    pub fn with_args<I, S>(program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// The hard budget of one compile in the child process: wall-clock time
/// `base + per_mib × module size in MiB`, and an address-space cap.
///
/// Real programs compile at about 1 s per MiB on a 2020s core (measured:
/// WASI programs of 20–56 MiB); the compile bombs of issue 5 at 23–211 s
/// per MiB and up to tens of GB. The defaults (10 s + 5 s/MiB, 2 GiB)
/// leave real programs a 5× margin for slow or busy machines while
/// rejecting a 1 MiB bomb within 15 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// Time allowed for any module (process start-up, engine creation).
    /// Default: 10 s.
    pub base: Duration,
    /// Time allowed per MiB of module. Default: 5 s.
    pub per_mib: Duration,
    /// Address space (`RLIMIT_AS`) of the compiler process, in bytes.
    /// Default: 2 GiB.
    pub memory_bytes: u64,
}

impl CompileBudget {
    /// The wall-clock time allowed to compile a module of `bytes` bytes.
    pub fn time_for(&self, bytes: usize) -> Duration {
        let per_byte = self.per_mib.as_secs_f64() / MIB as f64;
        let extra = Duration::try_from_secs_f64(per_byte * bytes as f64).unwrap_or(Duration::MAX);
        self.base.saturating_add(extra)
    }
}

impl Default for CompileBudget {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            per_mib: Duration::from_secs(5),
            memory_bytes: 2 << 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            deterministic: true,
            canonicalize_nans: true,
            max_wasm_stack: 512 * KIB,
            epoch_tick: Duration::from_millis(10),
            module_cache_capacity: 64,
            max_module_bytes: 256 * MIB,
            max_functions: 1_000_000,
            max_function_body_bytes: 7_654_321,
            max_function_locals: 50_000,
            compiler: None,
            compile_budget: CompileBudget::default(),
            artifact_dir: None,
            artifact_dir_max_bytes: 1 << 30,
            pool: None,
            metering: Metering::Fuel,
            runner_idle_time: Duration::from_secs(30),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compile_time_budget_grows_with_module_size() {
        let budget = CompileBudget::default();
        assert_eq!(budget.time_for(0), Duration::from_secs(10));
        assert_eq!(budget.time_for(MIB), Duration::from_secs(15));
        assert_eq!(budget.time_for(56 * MIB), Duration::from_secs(290));
        let huge = CompileBudget {
            per_mib: Duration::MAX,
            ..budget
        };
        assert_eq!(huge.time_for(MIB), Duration::MAX);
    }
}

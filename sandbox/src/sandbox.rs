//! [`Sandbox`]: the node-wide engine (pooled with [`Config::pool`]), linker,
//! compile cache (in memory, and on disk with [`Config::artifact_dir`]) and
//! epoch ticker, and the code that runs one job and classifies its outcome.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{
    Engine, Linker, PoolConcurrencyLimitError, PoolingAllocationConfig, Store, Trap, WasmFeatures,
};
use wasmtime_wasi::I32Exit;

use crate::artifacts::ArtifactDir;
use crate::cache::{CacheStats, ModuleCache};
use crate::limiter::{MAX_TABLE_ELEMENTS, MAX_TABLES};
use crate::module::{self, CompiledModule, ModuleHash, Runtime};
use crate::runner::Runners;
use crate::state::JobState;
use crate::ticker::EpochTicker;
use crate::{
    Config, ExecError, Execution, JobInput, Limits, Metering, PoolConfig, SandboxError, poll,
};

/// Epoch deadlines are clamped to this many ticks so that adding them to
/// the current epoch cannot overflow (2^62 ticks of 1 ns is 146 years).
const MAX_DEADLINE_TICKS: u64 = 1 << 62;

/// Runs WASM jobs: one per node, shared by all worker threads via `Arc`.
///
/// Holds the wasmtime [`Engine`] (with its epoch ticker thread), the WASI
/// preview 1 linker built once, and the compile cache. See the
/// [crate documentation](crate) for costs and lifetimes.
pub struct Sandbox {
    /// The engine and linker modules are loaded into: pooled with
    /// [`Config::pool`], then (only with a pool) an on-demand pair with the
    /// same compile settings for modules that do not fit a pool slot.
    runtimes: Vec<Runtime>,
    /// `(module, name)` of every import the linkers define.
    provided: HashSet<(String, String)>,
    cache: ModuleCache,
    /// The on-disk cache, if [`Config::artifact_dir`] is set.
    artifacts: Option<ArtifactDir>,
    config: Config,
    /// The epoch ticker, with [`Metering::Fuel`] only.
    _ticker: Option<EpochTicker>,
    /// The runner processes, with [`Metering::Supervised`] only.
    runners: Option<Runners>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .field("cache", &self.cache.stats())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the engine from `config`, the WASI preview 1 linker (nothing
    /// else is importable) and starts the epoch ticker thread, which stops
    /// when the sandbox is dropped. Creates [`Config::artifact_dir`] if it
    /// is set and missing.
    pub fn new(config: Config) -> Result<Self, SandboxError> {
        if config.epoch_tick.is_zero() {
            return Err(SandboxError::InvalidConfig(
                "epoch_tick must not be zero".into(),
            ));
        }
        if config.module_cache_capacity == 0 {
            return Err(SandboxError::InvalidConfig(
                "module_cache_capacity must be at least 1".into(),
            ));
        }
        if config.max_wasm_stack == 0 {
            return Err(SandboxError::InvalidConfig(
                "max_wasm_stack must not be zero".into(),
            ));
        }
        if config.pool.is_some_and(|pool| pool.instances == 0) {
            return Err(SandboxError::InvalidConfig(
                "pool.instances must be at least 1".into(),
            ));
        }
        let runners = match (config.metering, &config.compiler) {
            (Metering::Supervised, None) => {
                return Err(SandboxError::InvalidConfig(
                    "supervised metering needs Config::compiler, the program that also runs the \
                     runner processes"
                        .into(),
                ));
            }
            (Metering::Supervised, Some(command)) => Some(
                Runners::new(command.clone(), &config)
                    .map_err(|e| SandboxError::Reaper(e.to_string()))?,
            ),
            (Metering::Fuel | Metering::Unbounded, _) => None,
        };
        let mut runtimes = Vec::with_capacity(2);
        // With runners the jobs are instantiated there, not here: a pool
        // here would only reserve address space.
        if let Some(pool) = config.pool.as_ref().filter(|_| runners.is_none()) {
            let mut engine = engine_config(&config);
            engine.allocation_strategy(pooling(pool));
            runtimes.push(runtime(&engine)?);
        }
        runtimes.push(runtime(&engine_config(&config))?);
        let engine = &runtimes[0].engine;
        let provided = provided_imports(engine, &runtimes[0].linker);
        let artifacts = match &config.artifact_dir {
            None => None,
            Some(dir) => Some(
                ArtifactDir::open(dir, config.artifact_dir_max_bytes, engine)
                    .map_err(|e| SandboxError::ArtifactDir(format!("{}: {e}", dir.display())))?,
            ),
        };
        let ticker = if config.metering.instrumented() {
            Some(
                EpochTicker::start(
                    runtimes.iter().map(|r| r.engine.clone()).collect(),
                    config.epoch_tick,
                )
                .map_err(|e| SandboxError::Ticker(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Self {
            runtimes,
            provided,
            cache: ModuleCache::new(config.module_cache_capacity),
            artifacts,
            config,
            _ticker: ticker,
            runners,
        })
    }

    /// Validates and compiles `wasm`, or returns the cached result.
    ///
    /// Modules are keyed by SHA-256 and compiled at most once per sandbox:
    /// concurrent callers for the same module wait for the first one's
    /// compile. Failures ([`ExecError::InvalidModule`],
    /// [`ExecError::CompileBudget`]) are cached too, so the same compile bomb
    /// never costs twice; host failures ([`ExecError::Host`], e.g. the
    /// compiler process could not start) are not. The cache keeps the
    /// [`Config::module_cache_capacity`] most recently used modules.
    ///
    /// Before compiling, the module is pre-checked against
    /// [`Config::max_functions`], [`Config::max_function_body_bytes`] and
    /// [`Config::max_function_locals`]. With [`Config::compiler`] set it is
    /// then compiled in that child process under [`Config::compile_budget`]
    /// (see [`crate::compiler`]); without, in this thread with no bound.
    ///
    /// With [`Config::artifact_dir`] set, a module missing from memory is
    /// first looked up there (a file named by its hash and this engine's
    /// fingerprint, checked against its checksum; a bad file is deleted and
    /// the module compiled afresh), and every successful compile is written
    /// there, evicting the least recently used files beyond
    /// [`Config::artifact_dir_max_bytes`]. Failures are never written.
    /// [`Sandbox::stats`] counts disk hits, writes and discarded files.
    pub fn compile(&self, wasm: &[u8]) -> Result<Arc<CompiledModule>, ExecError> {
        if wasm.len() > self.config.max_module_bytes {
            return Err(ExecError::InvalidModule(format!(
                "module is {} bytes, more than the limit of {} bytes",
                wasm.len(),
                self.config.max_module_bytes
            )));
        }
        let hash = module::hash(wasm);
        self.cache.get_or_load(
            &hash,
            || self.load_artifact(&hash, wasm),
            || self.compile_and_store(wasm, hash),
        )
    }

    /// The module `hash` (of `wasm`) from the artifact directory, if it is
    /// there and sound; a bad file is deleted and counted.
    fn load_artifact(&self, hash: &ModuleHash, wasm: &[u8]) -> Option<Arc<CompiledModule>> {
        let artifacts = self.artifacts.as_ref()?;
        // The pre-checks take microseconds; running them here too keeps the
        // verdict on a module independent of what is on disk (e.g. after
        // the limits were lowered). `compile` then reports the failure.
        if crate::precheck::check(wasm, &self.config).is_err() {
            return None;
        }
        let started = Instant::now();
        let artifact = match artifacts.load(hash) {
            Ok(Some(artifact)) => artifact,
            Ok(None) => return None,
            Err(_) => {
                // Logged and deleted by `load`.
                self.cache.count_disk_discard();
                return None;
            }
        };
        match CompiledModule::from_cached_artifact(
            &self.runtimes,
            &self.provided,
            &artifact,
            *hash,
            wasm.len(),
        ) {
            Ok(module) => {
                tracing::debug!(
                    module = %hex::encode(hash),
                    artifact_bytes = artifact.len(),
                    elapsed = ?started.elapsed(),
                    "loaded compiled module from disk"
                );
                Some(Arc::new(module))
            }
            Err(problem) => {
                artifacts.discard(hash, &problem);
                self.cache.count_disk_discard();
                None
            }
        }
    }

    /// Compiles `wasm` and, if that succeeded and there is an artifact
    /// directory, stores the artifact there.
    fn compile_and_store(
        &self,
        wasm: &[u8],
        hash: ModuleHash,
    ) -> Result<Arc<CompiledModule>, ExecError> {
        let started = Instant::now();
        let outcome = CompiledModule::compile(
            &self.runtimes,
            &self.provided,
            &self.config,
            wasm,
            hash,
            self.artifacts.is_some(),
        );
        tracing::debug!(
            module = %hex::encode(hash),
            bytes = wasm.len(),
            ok = outcome.is_ok(),
            elapsed = ?started.elapsed(),
            "compiled module"
        );
        let (module, artifact) = outcome?;
        if let (Some(artifacts), Some(artifact)) = (&self.artifacts, artifact)
            && artifacts.store(&hash, &artifact)
        {
            self.cache.count_disk_write();
        }
        Ok(Arc::new(module))
    }

    /// The file [`Sandbox::compile`] reads and writes for the module with
    /// this hash in [`Config::artifact_dir`] (whether or not it exists), or
    /// `None` without an artifact directory. The name is
    /// `<module sha256 hex>-<engine fingerprint>.cwasm`.
    pub fn artifact_path(&self, hash: &ModuleHash) -> Option<std::path::PathBuf> {
        self.artifacts.as_ref().map(|a| a.path(hash))
    }

    /// The engine fingerprint in artifact file names: 16 hex digits of
    /// SHA-256 over wasmtime's precompile compatibility hash. Sandboxes
    /// with the same fingerprint can load each other's artifacts.
    pub fn engine_fingerprint(&self) -> String {
        match &self.artifacts {
            Some(artifacts) => artifacts.engine_fingerprint().to_owned(),
            None => crate::artifacts::fingerprint(&self.runtimes[0].engine),
        }
    }

    /// The cached, successfully compiled module with this hash, if any
    /// (lookup without the bytes). Not counted in [`Sandbox::stats`].
    pub fn cached(&self, hash: &ModuleHash) -> Option<Arc<CompiledModule>> {
        self.cache.get(hash)
    }

    /// Compile-cache counters.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The class of machines whose runs of any job are bit-identical to
    /// this sandbox's: CPU architecture, wasmtime version, NaN mode
    /// ([`Config::canonicalize_nans`]) and native stack budget (where a
    /// deep recursion traps), e.g.
    /// `x86_64/wasmtime-48.0.8/nan-native/stack-524288`. Metering is not
    /// part of it: a job names its budget kind, and every replica runs
    /// under that one. Schedulers place all replicas of a job within one
    /// platform (homogeneous redundancy).
    pub fn platform(&self) -> String {
        platform(&self.config)
    }

    /// The configuration the sandbox was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `module`'s `_start` with `input` under `limits`, blocking the
    /// calling thread until it finishes, fails or times out.
    ///
    /// Call it from a plain thread (the worker's dedicated pool), **not**
    /// from inside a tokio runtime: the synchronous WASI implementation
    /// uses `Handle::block_on` when a runtime is current, which panics on
    /// a runtime worker thread. The thread's native stack must be
    /// comfortably larger than [`Config::max_wasm_stack`] (8 MiB pool
    /// threads are fine).
    ///
    /// Never panics on a hostile module; every failure is reported in
    /// [`Execution::result`].
    ///
    /// With [`Metering::Supervised`] the job runs in a runner process
    /// instead (see [`crate::runner`]), and this thread waits for it.
    pub fn run(&self, module: &CompiledModule, input: &JobInput, limits: &Limits) -> Execution {
        match &self.runners {
            Some(runners) => runners.run(module, input, limits),
            None => self.run_here(module, input, limits),
        }
    }

    /// Process ids of the idle runner processes of
    /// [`Metering::Supervised`] (none otherwise), for measurements such as
    /// the memory a node uses.
    pub fn runner_pids(&self) -> Vec<u32> {
        self.runners
            .as_ref()
            .map_or_else(Vec::new, Runners::idle_pids)
    }

    /// Loads a module the runner process's parent sent (see
    /// [`crate::runner`]).
    pub(crate) fn load_from_runner_parent(
        &self,
        hash: ModuleHash,
        artifact: &[u8],
        size: usize,
    ) -> Result<Arc<CompiledModule>, String> {
        CompiledModule::from_runner_parent(&self.runtimes, &self.provided, artifact, hash, size)
            .map(Arc::new)
    }

    /// [`Sandbox::run`] in this thread.
    fn run_here(&self, module: &CompiledModule, input: &JobInput, limits: &Limits) -> Execution {
        let started = Instant::now();
        let cpu_started = crate::cputime::thread();
        let (state, stdio) = JobState::new(input, limits);
        let engine = module.module().engine();
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);

        let outcome = if self
            .runtimes
            .iter()
            .any(|r| Engine::same(engine, &r.engine))
        {
            self.execute(&mut store, module, limits)
        } else {
            Err(Failure::Setup(
                "the module was compiled by a different sandbox".into(),
            ))
        };
        let fuel_used = if self.config.metering.instrumented() {
            limits
                .fuel
                .saturating_sub(store.get_fuel().unwrap_or(limits.fuel))
        } else {
            0
        };
        let result = match outcome {
            Ok(()) => Ok(()),
            Err(failure) => classify(failure, store.data(), stdio.stdout.overflowed()),
        };
        drop(store);
        let execution = Execution {
            result,
            stdout: stdio.stdout.take(),
            stderr: stdio.stderr.take(),
            fuel_used,
            elapsed: started.elapsed(),
            cpu_time: crate::cputime::thread().saturating_sub(cpu_started),
        };
        tracing::debug!(
            module = %hex::encode(module.hash()),
            outcome = execution.result.as_ref().err().map_or("ok", ExecError::kind),
            fuel_used = execution.fuel_used,
            elapsed = ?execution.elapsed,
            "ran job"
        );
        execution
    }

    /// Sets the budgets on `store`, instantiates and calls `_start`.
    fn execute(
        &self,
        store: &mut Store<JobState>,
        module: &CompiledModule,
        limits: &Limits,
    ) -> Result<(), Failure> {
        if self.config.metering.instrumented() {
            store
                .set_fuel(limits.fuel)
                .map_err(|e| Failure::Setup(format!("{e:#}")))?;
            store.set_epoch_deadline(deadline_ticks(limits.wall_time, self.config.epoch_tick));
            store.epoch_deadline_trap();
        }
        let instance = module
            .pre
            .instantiate(&mut *store)
            .map_err(Failure::Instantiate)?;
        let start = instance
            .get_typed_func::<(), ()>(&mut *store, "_start")
            .map_err(|e| Failure::Setup(format!("{e:#}")))?;
        start.call(&mut *store, ()).map_err(Failure::Run)
    }
}

/// The engine configuration for `config`: everything that affects compiled
/// code, shared with the compiler child process
/// ([`crate::compiler::child_main`]) so that its artifacts load here. The
/// allocation strategy ([`Config::pool`]) is set by [`Sandbox::new`] on top
/// of this, never here: under the child's `RLIMIT_AS` the pool's
/// address-space reservations would not fit. It is not part of wasmtime's
/// compatibility hash, so pooled and on-demand engines share artifacts.
pub(crate) fn engine_config(config: &Config) -> wasmtime::Config {
    let mut engine = wasmtime::Config::new();
    engine
        .consume_fuel(config.metering.instrumented())
        .epoch_interruption(config.metering.instrumented())
        .max_wasm_stack(config.max_wasm_stack)
        // No backtraces: error messages stay free of code offsets, and traps
        // do not pay for a stack walk.
        .wasm_backtrace_max_frames(None)
        // The limiter allows a single memory: reject others at validation.
        .wasm_multi_memory(false);
    if config.deterministic {
        engine
            .cranelift_nan_canonicalization(config.canonicalize_nans)
            .wasm_relaxed_simd(false)
            .relaxed_simd_deterministic(true)
            .wasm_features(WasmFeatures::THREADS, false)
            .wasm_shared_everything_threads(false);
    }
    engine
}

/// The wasmtime release this crate is built against (pinned in the
/// workspace's `Cargo.toml`; a test checks `Cargo.lock`).
pub(crate) const WASMTIME_VERSION: &str = "48.0.8";

/// See [`Sandbox::platform`].
pub(crate) fn platform(config: &Config) -> String {
    let nan = if config.deterministic && config.canonicalize_nans {
        "canonical"
    } else if config.deterministic {
        "native"
    } else {
        // Relaxed SIMD on: not reproducible even within an architecture.
        "nondeterministic"
    };
    format!(
        "{}/wasmtime-{WASMTIME_VERSION}/nan-{nan}/stack-{}",
        std::env::consts::ARCH,
        config.max_wasm_stack
    )
}

/// wasmtime's pooling allocator for `pool`, sized so that it refuses
/// nothing the job's limiter would allow (see [`Config::pool`]): one 32-bit
/// memory of up to 4 GiB (the default memory reservation, which each slot
/// takes anyway), up to [`MAX_TABLES`] tables of [`MAX_TABLE_ELEMENTS`]
/// each, no bound on instance metadata (it is allocated per instance, not
/// pooled), and no async stacks (jobs run synchronously).
fn pooling(pool: &PoolConfig) -> PoolingAllocationConfig {
    // Tables: the validator allows at most 100 per module.
    let tables = u32::try_from(MAX_TABLES).unwrap_or(u32::MAX);
    let mut config = PoolingAllocationConfig::new();
    config
        .total_core_instances(pool.instances)
        .total_memories(pool.instances)
        .max_memories_per_module(1)
        .max_memory_size(4 << 30)
        .total_tables(pool.instances.saturating_mul(tables))
        .max_tables_per_module(tables)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_core_instance_size(usize::MAX >> 1)
        .total_stacks(0)
        .linear_memory_keep_resident(pool.memory_keep_resident)
        .table_keep_resident(pool.table_keep_resident)
        // Where the kernel can say which pages a job touched (Linux 6.7+),
        // only those are reset, by memset, up to the resident sizes above:
        // no madvise and no page faults for the next job in the slot.
        .pagemap_scan(wasmtime::Enabled::Auto);
    config
}

/// An engine built from `config` and the WASI preview 1 linker (nothing
/// else is importable).
fn runtime(config: &wasmtime::Config) -> Result<Runtime, SandboxError> {
    let engine = Engine::new(config).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut JobState| &mut state.wasi)
        .map_err(|e| SandboxError::Linker(format!("{e:#}")))?;
    poll::add_to_linker(&mut linker).map_err(|e| SandboxError::Linker(format!("{e:#}")))?;
    Ok(Runtime { engine, linker })
}

/// Every `(module, name)` that `linker` defines.
fn provided_imports(engine: &Engine, linker: &Linker<JobState>) -> HashSet<(String, String)> {
    let (state, _) = JobState::new(&JobInput::default(), &Limits::default());
    let mut store = Store::new(engine, state);
    linker
        .iter(&mut store)
        .map(|(module, name, _)| (module.to_owned(), name.to_owned()))
        .collect()
}

/// Epoch ticks to allow for `wall_time`: rounded up, plus one because the
/// first tick comes anywhere within one period.
fn deadline_ticks(wall_time: Duration, tick: Duration) -> u64 {
    let ticks = wall_time.as_nanos().div_ceil(tick.as_nanos().max(1));
    u64::try_from(ticks)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
        .min(MAX_DEADLINE_TICKS)
}

/// How a run went wrong, before classification.
enum Failure {
    /// The host could not set the run up: not the job's fault.
    Setup(String),
    /// Instantiation failed (limits, start-function or segment traps).
    Instantiate(wasmtime::Error),
    /// `_start` trapped or exited.
    Run(wasmtime::Error),
}

/// Turns a failed run into the [`ExecError`] every replica would report.
///
/// Order matters: `proc_exit(0)` is success whatever happened before;
/// a timeout is reported as such even if limits were hit earlier (a
/// timed-out run never reached its deterministic end); then the
/// recorded limit violations win over however the guest reacted to them.
fn classify(failure: Failure, state: &JobState, stdout_overflowed: bool) -> Result<(), ExecError> {
    let (error, instantiating) = match failure {
        Failure::Setup(message) => return Err(ExecError::Host(message)),
        Failure::Instantiate(error) => (error, true),
        Failure::Run(error) => (error, false),
    };
    let exit = error.downcast_ref::<I32Exit>().map(|exit| exit.0);
    if exit == Some(0) {
        return Ok(());
    }
    if let Some(full) = error.downcast_ref::<PoolConcurrencyLimitError>() {
        // Never a verdict on the job: the node ran more jobs at once than
        // it sized its pool for.
        return Err(ExecError::Host(format!(
            "no free instance in the sandbox's pool ({full}); Config::pool is smaller than \
             the number of jobs running at once"
        )));
    }
    let trap = error.downcast_ref::<Trap>().copied();
    Err(if trap == Some(Trap::Interrupt) {
        ExecError::Timeout
    } else if stdout_overflowed {
        ExecError::OutputTooLarge
    } else if state.limiter.host_failure {
        ExecError::Host("the host could not allocate memory the job is entitled to".into())
    } else if state.limiter.denied {
        ExecError::MemoryLimit
    } else if let Some(code) = exit {
        ExecError::ExitCode(code)
    } else if trap == Some(Trap::OutOfFuel) {
        ExecError::OutOfFuel
    } else if let Some(trap) = trap {
        let text = trap.to_string();
        ExecError::Trap(text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned())
    } else if instantiating {
        ExecError::Host(format!("instantiation failed: {error:#}"))
    } else {
        // A host function (WASI) refused the guest's call with a trap.
        ExecError::Trap(format!("{error:#}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_names_the_wasmtime_in_cargo_lock() {
        let lock = include_str!("../../Cargo.lock");
        assert!(
            lock.contains(&format!(
                "name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\""
            )),
            "WASMTIME_VERSION is not the locked wasmtime"
        );
        let mut config = Config::default();
        assert!(platform(&config).contains("/nan-canonical/"));
        config.canonicalize_nans = false;
        assert_eq!(
            platform(&config),
            format!(
                "{}/wasmtime-{WASMTIME_VERSION}/nan-native/stack-524288",
                std::env::consts::ARCH
            )
        );
    }

    #[test]
    fn deadline_rounds_up_and_clamps() {
        let tick = Duration::from_millis(10);
        assert_eq!(deadline_ticks(Duration::ZERO, tick), 1);
        assert_eq!(deadline_ticks(Duration::from_millis(200), tick), 21);
        assert_eq!(deadline_ticks(Duration::from_millis(201), tick), 22);
        assert_eq!(deadline_ticks(Duration::MAX, tick), MAX_DEADLINE_TICKS);
    }

    #[test]
    fn sandbox_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sandbox>();
        assert_send_sync::<CompiledModule>();
    }
}

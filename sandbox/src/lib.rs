//! Runs one untrusted WASM job (a WASI preview 1 command) in a
//! deterministic, resource-bounded wasmtime sandbox.
//!
//! Every job runs on several volunteer nodes and their outputs are compared
//! byte for byte, so everything the guest can observe is a function of the
//! module bytes, the [`JobInput`] and the [`Limits`]: clocks are virtual,
//! randomness is seeded, stdin is given, nothing else (files, environment,
//! network) is granted, and the engine is configured so floating point and
//! SIMD give the same bits on every host.
//!
//! # Key types, costs and lifetimes
//!
//! * [`Sandbox`] — **one per node**, shared between worker threads through
//!   an `Arc`. Creating it builds the wasmtime `Engine` (expensive: code
//!   generator settings, signal handlers, a small epoch ticker thread) and
//!   the WASI linker, once. Dropping it stops the ticker thread.
//! * [`CompiledModule`] — the result of [`Sandbox::compile`]: machine code
//!   plus pre-resolved imports. Compiling costs milliseconds to seconds, so
//!   modules are cached by SHA-256 ([`ModuleHash`]) and compiled at most
//!   once per sandbox (LRU-bounded by [`Config::module_cache_capacity`]).
//!   With [`Config::artifact_dir`] set, compiled modules are also kept on
//!   disk (keyed by module hash and engine fingerprint, size-bounded, least
//!   recently used evicted first), so they survive a restart.
//!   A hostile module can make compiling itself the attack (a *compile
//!   bomb*: minutes of CPU and gigabytes from one small module), so modules
//!   are pre-checked (function count, body size, locals) and, with
//!   [`Config::compiler`] set, compiled in a child process under a hard
//!   time and memory budget ([`compiler`], [`CompileBudget`]); a module
//!   over either is rejected with [`ExecError::CompileBudget`].
//! * A wasmtime `Store` — **one per job run**, created and dropped inside
//!   [`Sandbox::run`]. It holds the job's memory, WASI state and budgets;
//!   creating it and instantiating the pre-linked module is cheap
//!   (microseconds plus memory setup; with [`Config::pool`] the instance,
//!   memory and tables come from slots reserved once and reset between
//!   jobs), so nothing else is reused across jobs and no state can leak
//!   from one job into the next.
//!
//! # Stopping a job: [`Metering`]
//!
//! [`Config::metering`] decides how a job's run time is bounded, and with it
//! what the compiled code looks like.
//!
//! * [`Metering::Supervised`]: the code carries **no** checks and runs at
//!   the speed of plain wasmtime in a runner process ([`runner`]) that the
//!   sandbox kills at [`Limits::wall_time`]; a killed run is
//!   [`ExecError::Timeout`]. No fuel is counted;
//!   [`Execution::cpu_time`] is the work done. What nodes run by default.
//! * [`Metering::Fuel`] (the default of [`Config`]): the code runs in the
//!   calling thread with both mechanisms below compiled in.
//! * [`Metering::Unbounded`]: no checks, in the calling thread, no bound:
//!   the runner process itself.
//!
//! Under [`Metering::Fuel`], two independent mechanisms stop a job:
//!
//! * **Fuel** ([`Limits::fuel`]) is the deterministic budget. wasmtime
//!   charges it per executed wasm operator, so every replica runs out at
//!   exactly the same instruction and reports the same
//!   [`ExecError::OutOfFuel`]. Fuel used is also the unit of work reported
//!   back ([`Execution::fuel_used`]). It costs some speed (a counter update
//!   per basic block), and the counts are only comparable between nodes
//!   running the same wasmtime version and [`Config`].
//! * **Epochs** ([`Limits::wall_time`]) are a cheap wall-clock backstop: a
//!   background thread bumps the engine's epoch every
//!   [`Config::epoch_tick`] and compiled code merely compares a counter at
//!   loop headers and function entries. They catch jobs that are slow for
//!   reasons fuel does not price (e.g. a slow node), but where a job stops
//!   depends on the host's speed, so [`ExecError::Timeout`] is the one
//!   non-deterministic outcome (with [`ExecError::Host`]).
//!
//! Memory is capped per job by a resource limiter ([`Limits::memory_bytes`];
//! one linear memory, bounded tables), and output by capped in-memory
//! pipes ([`Limits::max_output_bytes`], [`Limits::max_stderr_bytes`]).
//!
//! # Determinism caveats
//!
//! * Stack exhaustion ("call stack exhausted") depends on native frame
//!   sizes, so it is only reproducible between nodes of the same CPU
//!   architecture running the same wasmtime version and
//!   [`Config::max_wasm_stack`].
//! * Without [`Config::canonicalize_nans`] the bits of a NaN are the
//!   CPU's: identical between machines of one architecture and wasmtime
//!   version, not across architectures.
//!
//! [`Sandbox::platform`] names all of these; runs on one platform are
//! bit-identical, and schedulers keep a job's replicas on one.
//! * Guest `sleep`s (`poll_oneoff` on a clock) return immediately and
//!   advance virtual time instead.
//!
//! # Example
//!
//! ```
//! use peergrid_sandbox::{Config, JobInput, Limits, Sandbox};
//!
//! let sandbox = Sandbox::new(Config::default())?;
//! let wasm = wat::parse_str(r#"(module (func (export "_start")) (memory (export "memory") 1))"#)
//!     .map_err(|e| e.to_string())?;
//! let module = sandbox.compile(&wasm)?;
//! let execution = sandbox.run(&module, &JobInput::default(), &Limits::default());
//! assert_eq!(execution.result, Ok(()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod artifacts;
mod cache;
mod clock;
pub mod compiler;
mod config;
mod cputime;
mod error;
mod job;
mod limiter;
mod module;
mod output;
mod poll;
mod precheck;
mod random;
pub mod runner;
mod sandbox;
mod state;
mod ticker;

pub use cache::CacheStats;
pub use config::{CompileBudget, CompilerCommand, Config, Limits, Metering, PoolConfig};
pub use error::{ExecError, SandboxError};
pub use job::{Execution, JobInput};
pub use module::{CompiledModule, ModuleHash};
pub use sandbox::Sandbox;

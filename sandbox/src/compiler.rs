//! Compiling untrusted modules in a child process under a hard time and
//! memory budget, so that a compile bomb (a small module that makes
//! Cranelift run for minutes or allocate gigabytes) costs the node at most
//! its [`CompileBudget`](crate::CompileBudget) and is rejected with
//! [`ExecError::CompileBudget`].
//!
//! # Protocol
//!
//! The parent ([`Sandbox::compile`](crate::Sandbox::compile) with
//! [`Config::compiler`] set) spawns the configured program, which must call
//! [`child_main`], and writes to its stdin one header line
//!
//! ```text
//! peergrid-compile/2 deterministic=1 canonicalize_nans=1 instrumented=1 max_wasm_stack=524288 memory_bytes=2147483648 cpu_seconds=16 wasm_bytes=1048576
//! ```
//!
//! followed by exactly `wasm_bytes` bytes of module. The child caps its own
//! address space (`RLIMIT_AS`), CPU time (`RLIMIT_CPU`) and core dumps
//! (`RLIMIT_CORE = 0`), builds a wasmtime engine with the same
//! compile-relevant settings as the node's ([`Config::deterministic`],
//! [`Config::canonicalize_nans`], [`Config::metering`], [`Config::max_wasm_stack`]; the on-demand allocator, never the pooling
//! one, whose reservations would not fit under `RLIMIT_AS`), calls
//! [`Engine::precompile_module`] and answers with its exit status:
//!
//! * `0`: stdout is the compiled artifact;
//! * `3`: the module is invalid; stdout is wasmtime's message;
//! * `4`: the child could not set itself up (bad request, engine
//!   creation failed); stderr says why. A host problem, not the module's;
//! * anything else (killed by a signal — `SIGKILL` at the parent's wall
//!   clock deadline or the CPU hard limit, `SIGXCPU`, `SIGABRT` when an
//!   allocation fails under `RLIMIT_AS` — or another exit code, or exit
//!   `5` for an out-of-memory error wasmtime reported itself): the module
//!   is over budget.
//!
//! The parent kills the child at the wall-clock deadline
//! [`CompileBudget::time_for`](crate::CompileBudget::time_for) the module's
//! size and loads the artifact with `Module::deserialize`, which checks that
//! it was produced by the same wasmtime version with a compatible engine
//! configuration.

use std::io::{self, BufRead, Read, Write};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use wasmtime::Engine;

use crate::module::ModuleHash;
use crate::{CompilerCommand, Config, ExecError, Metering};

/// First word of the request header: the protocol and its version.
const MAGIC: &str = "peergrid-compile/2";
/// Longest header line accepted by the child.
const MAX_HEADER_BYTES: u64 = 512;
/// Exit status: the module is invalid, stdout holds the message.
const EXIT_INVALID: u8 = 3;
/// Exit status: the child could not set itself up, stderr says why.
const EXIT_SETUP: u8 = 4;
/// Exit status: wasmtime reported running out of memory.
const EXIT_OUT_OF_MEMORY: u8 = 5;
/// Bytes of the child's stderr kept for the log.
const MAX_STDERR_BYTES: usize = 8 << 10;
/// Longest pause between two checks of whether the child has exited.
const MAX_POLL: Duration = Duration::from_millis(10);

/// What the parent asks of the child: the header line's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    deterministic: bool,
    /// [`Config::canonicalize_nans`].
    canonicalize_nans: bool,
    /// Fuel and epoch checks in the code ([`crate::Metering::instrumented`]).
    instrumented: bool,
    max_wasm_stack: usize,
    memory_bytes: u64,
    cpu_seconds: u64,
    wasm_bytes: usize,
}

impl Request {
    /// The header line, newline included.
    fn header(&self) -> String {
        format!(
            "{MAGIC} deterministic={} canonicalize_nans={} instrumented={} max_wasm_stack={} memory_bytes={} cpu_seconds={} wasm_bytes={}\n",
            u8::from(self.deterministic),
            u8::from(self.canonicalize_nans),
            u8::from(self.instrumented),
            self.max_wasm_stack,
            self.memory_bytes,
            self.cpu_seconds,
            self.wasm_bytes
        )
    }

    /// Parses a header line (with or without its newline).
    fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.trim_end_matches('\n').split(' ');
        if words.next() != Some(MAGIC) {
            return Err(format!("the request does not start with {MAGIC}"));
        }
        let mut fields = [None; 7];
        const NAMES: [&str; 7] = [
            "deterministic",
            "canonicalize_nans",
            "instrumented",
            "max_wasm_stack",
            "memory_bytes",
            "cpu_seconds",
            "wasm_bytes",
        ];
        for word in words {
            let (name, value) = word
                .split_once('=')
                .ok_or_else(|| format!("malformed field {word:?}"))?;
            let index = NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| format!("unknown field {name:?}"))?;
            let value: u64 = value
                .parse()
                .map_err(|_| format!("field {name} is not a number: {value:?}"))?;
            fields[index] = Some(value);
        }
        let field = |i: usize| fields[i].ok_or_else(|| format!("field {} is missing", NAMES[i]));
        let size = |i: usize| {
            field(i).and_then(|v| usize::try_from(v).map_err(|_| format!("{} too large", NAMES[i])))
        };
        Ok(Self {
            deterministic: field(0)? != 0,
            canonicalize_nans: field(1)? != 0,
            instrumented: field(2)? != 0,
            max_wasm_stack: size(3)?,
            memory_bytes: field(4)?,
            cpu_seconds: field(5)?,
            wasm_bytes: size(6)?,
        })
    }

    /// The node configuration the child's engine must reproduce.
    fn config(&self) -> Config {
        Config {
            deterministic: self.deterministic,
            canonicalize_nans: self.canonicalize_nans,
            max_wasm_stack: self.max_wasm_stack,
            metering: if self.instrumented {
                Metering::Fuel
            } else {
                Metering::Unbounded
            },
            ..Config::default()
        }
    }
}

/// The compiler child's `main`: reads one request from stdin, compiles it
/// under the requested limits and writes the artifact to stdout (see the
/// [module documentation](self) for the protocol). Call it first thing from
/// the program named by [`Config::compiler`], before starting threads or
/// runtimes, and return its exit code:
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     peergrid_sandbox::compiler::child_main()
/// }
/// ```
pub fn child_main() -> ExitCode {
    match child() {
        Ok(code) => code,
        Err(problem) => {
            // stderr is the parent's pipe: the problem ends up in its log.
            let _ = writeln!(io::stderr(), "peergrid compiler: {problem}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

/// [`child_main`], with set-up failures as `Err`.
fn child() -> Result<ExitCode, String> {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    (&mut stdin)
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the request: {e}"))?;
    let line = String::from_utf8(line).map_err(|_| "the request is not UTF-8".to_owned())?;
    if line.starts_with(crate::runner::MAGIC) {
        return crate::runner::child(&line, stdin);
    }
    let request = Request::parse(&line)?;
    limit_resources(&request)?;
    // Before reading the module, so a set-up failure never depends on it.
    let engine = Engine::new(&crate::sandbox::engine_config(&request.config()))
        .map_err(|e| format!("creating the engine: {e:#}"))?;
    let mut wasm = Vec::with_capacity(request.wasm_bytes);
    (&mut stdin)
        .take(request.wasm_bytes as u64)
        .read_to_end(&mut wasm)
        .map_err(|e| format!("reading the module: {e}"))?;
    if wasm.len() != request.wasm_bytes {
        return Err(format!(
            "the module ended after {} of {} bytes",
            wasm.len(),
            request.wasm_bytes
        ));
    }
    let (code, answer) = match engine.precompile_module(&wasm) {
        Ok(artifact) => (ExitCode::SUCCESS, artifact),
        Err(e) if e.downcast_ref::<wasmtime::OutOfMemory>().is_some() => {
            (ExitCode::from(EXIT_OUT_OF_MEMORY), Vec::new())
        }
        Err(e) => (ExitCode::from(EXIT_INVALID), format!("{e:#}").into_bytes()),
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&answer)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing the answer: {e}"))?;
    Ok(code)
}

/// Caps the child's own address space, CPU time and core dumps (soft and
/// hard limits alike, so they cannot be raised again).
#[cfg(unix)]
fn limit_resources(request: &Request) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let set = |resource: Resource, soft: u64, hard: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
        .map_err(|e| format!("setrlimit({resource:?}): {e}"))
    };
    set(Resource::Core, 0, 0)?;
    set(Resource::As, request.memory_bytes, request.memory_bytes)?;
    // SIGXCPU at the soft limit, SIGKILL a second later.
    let cpu = request.cpu_seconds.max(1);
    set(Resource::Cpu, cpu, cpu.saturating_add(1))
}

/// Without rlimits only the parent's wall-clock deadline applies.
#[cfg(not(unix))]
fn limit_resources(_request: &Request) -> Result<(), String> {
    Ok(())
}

/// Compiles `wasm` in a child process running `command` under
/// `config.compile_budget`, and returns the artifact for
/// `Module::deserialize`. Blocks the calling thread until the child exits
/// or is killed at the deadline.
pub(crate) fn compile(
    command: &CompilerCommand,
    config: &Config,
    wasm: &[u8],
    hash: &ModuleHash,
) -> Result<Vec<u8>, ExecError> {
    let budget = config.compile_budget;
    let time = budget.time_for(wasm.len());
    let request = Request {
        deterministic: config.deterministic,
        canonicalize_nans: config.canonicalize_nans,
        instrumented: config.metering.instrumented(),
        max_wasm_stack: config.max_wasm_stack,
        memory_bytes: budget.memory_bytes,
        // The wall clock normally fires first; this also stops a child
        // whose parent died.
        cpu_seconds: time.as_secs().saturating_add(1),
        wasm_bytes: wasm.len(),
    };
    let started = Instant::now();
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            ExecError::Host(format!(
                "could not start the compiler {}: {e}",
                command.program.display()
            ))
        })?;
    let run = supervise(&mut child, &request, wasm, started + time);
    let elapsed = started.elapsed();
    let run = run.map_err(|e| ExecError::Host(format!("supervising the compiler: {e}")))?;
    let over_budget = |reason: &str| {
        tracing::warn!(
            module = %hex::encode(hash),
            bytes = wasm.len(),
            reason,
            ?elapsed,
            stderr = %String::from_utf8_lossy(&run.stderr),
            "compile budget exceeded"
        );
        ExecError::CompileBudget(format!(
            "compiling a module of {} bytes did not finish within {:.1} s and {} MiB",
            wasm.len(),
            time.as_secs_f64(),
            budget.memory_bytes >> 20
        ))
    };
    let status = match run.ended {
        Ended::Killed => return Err(over_budget("wall-clock deadline")),
        Ended::Exited(status) => status,
    };
    match status.code() {
        Some(0) if run.stdout_overflowed => Err(over_budget("artifact larger than the budget")),
        Some(0) => {
            tracing::debug!(
                module = %hex::encode(hash),
                bytes = wasm.len(),
                artifact_bytes = run.stdout.len(),
                ?elapsed,
                "compiled module in the compiler process"
            );
            Ok(run.stdout)
        }
        Some(code) if code == i32::from(EXIT_INVALID) => Err(ExecError::InvalidModule(
            String::from_utf8_lossy(&run.stdout).into_owned(),
        )),
        Some(code) if code == i32::from(EXIT_SETUP) => Err(ExecError::Host(format!(
            "the compiler {} failed to set up: {}",
            command.program.display(),
            String::from_utf8_lossy(&run.stderr).trim_end()
        ))),
        Some(code) if code == i32::from(EXIT_OUT_OF_MEMORY) => {
            Err(over_budget("out of memory (reported by wasmtime)"))
        }
        _ => Err(over_budget(&describe(status))),
    }
}

/// How a child run ended.
enum Ended {
    /// It exited (or a signal killed it) before the deadline.
    Exited(ExitStatus),
    /// The parent killed it at the deadline.
    Killed,
}

/// A finished child run: how it ended and what it wrote.
struct Run {
    ended: Ended,
    stdout: Vec<u8>,
    stdout_overflowed: bool,
    stderr: Vec<u8>,
}

/// Feeds the request to `child`, collects its output and waits for it
/// until `deadline`, killing it then. Always reaps the child.
fn supervise(
    child: &mut Child,
    request: &Request,
    wasm: &[u8],
    deadline: Instant,
) -> io::Result<Run> {
    let missing = || io::Error::other("a pipe of the child is missing");
    let mut stdin = child.stdin.take().ok_or_else(missing)?;
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr = child.stderr.take().ok_or_else(missing)?;
    // The artifact cannot be larger than the child's whole address space.
    let stdout_limit = usize::try_from(request.memory_bytes).unwrap_or(usize::MAX);
    let header = request.header();
    std::thread::scope(|scope| {
        // A write error means the child died early: its exit status says why.
        scope.spawn(move || {
            let _ = stdin
                .write_all(header.as_bytes())
                .and_then(|()| stdin.write_all(wasm));
        });
        let out = scope.spawn(move || read_bounded(stdout, stdout_limit));
        let err = scope.spawn(move || read_bounded(stderr, MAX_STDERR_BYTES));
        let ended = wait_until(child, deadline);
        let joined = |r: std::thread::Result<io::Result<(Vec<u8>, bool)>>| {
            r.map_err(|_| io::Error::other("a pipe reader panicked"))?
        };
        let (stdout, stdout_overflowed) = joined(out.join())?;
        let (stderr, _) = joined(err.join())?;
        Ok(Run {
            ended: ended?,
            stdout,
            stdout_overflowed,
            stderr,
        })
    })
}

/// Waits for `child` to exit, killing and reaping it at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Ended> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ended::Exited(status));
        }
        let now = Instant::now();
        if now >= deadline {
            // Already exited (and so not killable) is fine: reap it anyway.
            let _ = child.kill();
            child.wait()?;
            return Ok(Ended::Killed);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// Reads `reader` to the end, keeping at most `limit` bytes; the flag says
/// whether there was more.
fn read_bounded(mut reader: impl Read, limit: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    (&mut reader)
        .take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut kept)?;
    // Drain the rest so the child never blocks on a full pipe.
    let more = io::copy(&mut reader, &mut io::sink())?;
    Ok((kept, more > 0))
}

/// A child's exit status in words, for the log.
fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT: an allocation failed under the memory limit, or a panic)",
                9 => " (SIGKILL: CPU hard limit, or the kernel's OOM killer)",
                24 => " (SIGXCPU: CPU time limit)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "ended without a status".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn header_round_trips() {
        let request = Request {
            deterministic: true,
            canonicalize_nans: false,
            instrumented: false,
            max_wasm_stack: 512 << 10,
            memory_bytes: 2 << 30,
            cpu_seconds: 16,
            wasm_bytes: 12345,
        };
        let header = request.header();
        assert!(header.ends_with('\n') && header.len() < MAX_HEADER_BYTES as usize);
        assert_eq!(Request::parse(&header), Ok(request));
    }

    #[test]
    fn bad_headers_are_refused() {
        for line in [
            "",
            "hello",
            "peergrid-compile/3 deterministic=1",
            "peergrid-compile/2 deterministic=1",
            "peergrid-compile/1 deterministic=1 max_wasm_stack=1 memory_bytes=1 cpu_seconds=1 wasm_bytes=1",
            "peergrid-compile/2 deterministic=1 canonicalize_nans=1 instrumented=1 max_wasm_stack=1 memory_bytes=1 cpu_seconds=1 wasm_bytes=x",
            "peergrid-compile/2 deterministic=1 canonicalize_nans=1 instrumented=1 max_wasm_stack=1 memory_bytes=1 cpu_seconds=1 wasm_bytes=1 extra=1",
        ] {
            assert!(Request::parse(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn a_missing_compiler_is_a_host_failure_not_the_module() {
        let command = CompilerCommand::new("/nonexistent/peergrid-compile");
        let result = compile(&command, &Config::default(), b"\0asm", &[0; 32]);
        assert!(matches!(result, Err(ExecError::Host(_))), "{result:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_slow_compiler_is_killed_at_the_deadline() {
        let mut config = Config::default();
        config.compile_budget.base = Duration::from_millis(200);
        config.compile_budget.per_mib = Duration::ZERO;
        let command = CompilerCommand::with_args("/bin/sh", ["-c", "exec sleep 30"]);
        let started = Instant::now();
        let result = compile(&command, &config, b"\0asm", &[0; 32]);
        assert!(
            matches!(&result, Err(ExecError::CompileBudget(m)) if m.contains("within 0.2 s")),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[cfg(unix)]
    #[test]
    fn a_crashing_compiler_is_over_budget() {
        let command =
            CompilerCommand::with_args("/bin/sh", ["-c", "cat >/dev/null; kill -ABRT $$"]);
        let result = compile(&command, &Config::default(), b"\0asm", &[0; 32]);
        assert!(
            matches!(result, Err(ExecError::CompileBudget(_))),
            "{result:?}"
        );
    }
}

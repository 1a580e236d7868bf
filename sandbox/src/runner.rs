//! Supervised runner processes: how [`Metering::Supervised`] bounds the
//! run time of a job whose compiled code carries no fuel or epoch checks.
//!
//! wasmtime can only interrupt guest code that checks something (fuel, an
//! epoch counter), and those checks cost 1.5–2× on tight loops. Code
//! without them runs at plain wasmtime speed but cannot be stopped from
//! inside its process, so it runs in a child process, a *runner*, that the
//! node kills at the job's wall-clock deadline. A killed run is
//! [`ExecError::Timeout`], which is never a vote; every other outcome is
//! what the same job gives in this crate's own process. The runner is also
//! a second wall around the job: a guest that broke out of wasmtime would
//! hold a runner, not the node (its identity, sockets and ledger).
//!
//! # Pool
//!
//! [`Runners`] keeps idle runners and hands one to each
//! [`Sandbox::run`](crate::Sandbox::run) call, starting a new one when none
//! is idle (so there are never more runners than concurrent runs, i.e. a
//! node's slots). A runner idle for [`Config::runner_idle_time`] is
//! stopped by a reaper thread, so an idle node holds no runners. A runner that was killed or misbehaved is reaped and
//! forgotten; the next run starts a fresh one.
//!
//! # Protocol
//!
//! The node starts [`Config::compiler`]'s program (the program that also
//! compiles modules: [`crate::compiler::child_main`] tells the two roles
//! apart by the first line) and writes one header line
//!
//! ```text
//! peergrid-run/1 deterministic=1 canonicalize_nans=0 max_wasm_stack=524288
//! ```
//!
//! then frames, each a little-endian `u32` length and that many bytes:
//!
//! * `R` — run: module hash (32 bytes), seed (32), virtual clock base
//!   (`u64`), memory limit, stdout limit, stderr limit (`u64` each),
//!   argument count (`u32`) and each argument (`u32` length, UTF-8), stdin
//!   (`u64` length, bytes). The answer is `M` (the runner does not hold
//!   that module: send it and ask again) or `X` and the execution: the
//!   outcome (a kind byte, then an `i32` exit code or a `u32`-length
//!   string for the kinds that carry one), wall and CPU time in
//!   nanoseconds (`u64` each), stdout and stderr (`u64` length, bytes).
//! * `L` — load: module hash, module size in bytes (`u64`), and the rest of
//!   the frame is the serialized module. The answer is `L` and a status
//!   byte: 0 loaded, 1 refused followed by the reason (`u32`-length
//!   string), a host problem.
//!
//! The runner exits when its stdin closes (the node dropped it or exited).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::time::{Duration, Instant};

use crate::module::{CompiledModule, ModuleHash};
use crate::{
    CompilerCommand, Config, ExecError, Execution, JobInput, Limits, Metering, PoolConfig,
};

/// First word of the runner header: the protocol and its version.
pub(crate) const MAGIC: &str = "peergrid-run/1";

/// Modules a runner keeps loaded; the least recently loaded goes first.
const RUNNER_MODULES: usize = 16;

/// Frame bytes beyond stdout and stderr that an answer may carry (an error
/// message, the fixed fields).
const ANSWER_SLACK: u64 = 1 << 20;

/// Largest request frame a runner accepts: a module or a job's stdin.
const MAX_REQUEST_BYTES: u64 = 1 << 31;

/// Bytes read from a runner's stdout at a time.
const READ_CHUNK: usize = 64 << 10;

/// How long the node looks for a runner's answer without sleeping.
const SPIN: Duration = Duration::from_micros(40);

/// Whether a thread is looking for an answer without sleeping.
static SPINNING: AtomicBool = AtomicBool::new(false);

/// Asks left that wait without spinning, because a recent spin found no
/// answer: on a busy machine the runner needs the CPU a spin would burn.
static SPIN_SKIP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Asks that skip spinning after a spin that found no answer.
const SKIP_AFTER_MISS: u32 = 8;

/// Pause before the next look at a runner that is being killed.
const REAP_POLL: Duration = Duration::from_millis(1);

/// The node's side: idle runner processes and how to start more.
pub(crate) struct Runners {
    command: CompilerCommand,
    /// The header line every runner is started with.
    header: String,
    idle: Arc<Mutex<Vec<Runner>>>,
    /// Dropping it stops the reaper thread.
    _stop_reaper: mpsc::Sender<()>,
}

impl Runners {
    /// Runners started from `command` with `config`'s compile settings,
    /// and the thread that stops those idle for `config.runner_idle_time`.
    pub(crate) fn new(command: CompilerCommand, config: &Config) -> io::Result<Self> {
        let idle = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = mpsc::channel();
        let lifetime = config.runner_idle_time;
        let reaped = Arc::downgrade(&idle);
        std::thread::Builder::new()
            .name("peergrid-runner-reaper".into())
            .spawn(move || reap(&reaped, &stopped, lifetime))?;
        Ok(Self {
            command,
            header: format!(
                "{MAGIC} deterministic={} canonicalize_nans={} max_wasm_stack={}\n",
                u8::from(config.deterministic),
                u8::from(config.canonicalize_nans),
                config.max_wasm_stack
            ),
            idle,
            _stop_reaper: stop,
        })
    }

    /// Runs `module` in an idle runner (or a new one), killing it at
    /// `limits.wall_time`.
    pub(crate) fn run(
        &self,
        module: &CompiledModule,
        input: &JobInput,
        limits: &Limits,
    ) -> Execution {
        let started = Instant::now();
        let deadline = started.checked_add(limits.wall_time);
        let request = run_request(module.hash(), input, limits);
        let (mut runner, mut answer) = match self.attempt(module, &request, limits, deadline, false)
        {
            Ok(attempt) => attempt,
            Err(e) => return host_failure(&self.command, &e, started),
        };
        if let (Err(Ended::Broken(problem)), true) = (&answer, runner.reused) {
            // An idle runner can die between jobs (the OOM killer, an
            // operator): that is no fault of this job, so it gets one
            // fresh runner before the failure counts.
            let status = runner.kill();
            tracing::debug!(%problem, %status, "an idle runner process had died; starting another");
            (runner, answer) = match self.attempt(module, &request, limits, deadline, true) {
                Ok(attempt) => attempt,
                Err(e) => return host_failure(&self.command, &e, started),
            };
        }
        match answer {
            Ok(mut execution) => {
                self.give_back(runner);
                execution.elapsed = started.elapsed();
                execution
            }
            Err(Ended::Deadline) => {
                runner.kill();
                Execution {
                    elapsed: started.elapsed(),
                    ..Execution::failed(ExecError::Timeout)
                }
            }
            Err(Ended::Broken(problem)) => {
                let status = runner.kill();
                tracing::warn!(%problem, %status, "runner process failed");
                Execution {
                    elapsed: started.elapsed(),
                    ..Execution::failed(ExecError::Host(format!(
                        "the runner process failed: {problem} ({status})"
                    )))
                }
            }
        }
    }

    /// Sends `request` to an idle runner (or a new one; always a new one
    /// with `fresh`), and `module` too if the runner does not hold it: the
    /// runner and its answer. `Err` only when no runner could be started.
    fn attempt(
        &self,
        module: &CompiledModule,
        request: &[u8],
        limits: &Limits,
        deadline: Option<Instant>,
        fresh: bool,
    ) -> io::Result<(Runner, Result<Execution, Ended>)> {
        let mut runner = if fresh {
            Runner::start(&self.command, &self.header)?
        } else {
            self.take()?
        };
        let answer_limit = (limits.max_output_bytes as u64)
            .saturating_add(limits.max_stderr_bytes as u64)
            .saturating_add(ANSWER_SLACK);
        let answer = runner
            .ask(request, deadline, answer_limit)
            .and_then(|answer| match answer.first() {
                Some(b'M') => {
                    runner.load(module, deadline)?;
                    runner.ask(request, deadline, answer_limit)
                }
                _ => Ok(answer),
            })
            .and_then(|answer| decode_execution(&answer).map_err(Ended::Broken));
        Ok((runner, answer))
    }

    /// An idle runner, or a new one.
    fn take(&self) -> io::Result<Runner> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(mut runner) => {
                runner.reused = true;
                Ok(runner)
            }
            None => Runner::start(&self.command, &self.header),
        }
    }

    /// Puts a runner that answered properly back among the idle ones.
    fn give_back(&self, mut runner: Runner) {
        runner.idle_since = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(runner);
    }

    /// Process ids of the idle runners (for measurements and tests).
    pub(crate) fn idle_pids(&self) -> Vec<u32> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.child.id())
            .collect()
    }
}

impl Drop for Runners {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for runner in idle {
            runner.kill();
        }
    }
}

/// The reaper thread: every so often, stops the runners in `idle` that
/// have waited `lifetime` for a job, until `stop` hangs up.
fn reap(idle: &Weak<Mutex<Vec<Runner>>>, stop: &mpsc::Receiver<()>, lifetime: Duration) {
    let every = (lifetime / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(idle) = idle.upgrade() else { return };
        let expired: Vec<Runner> = {
            let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
            let (expired, kept) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|r| r.idle_since.elapsed() >= lifetime);
            *idle = kept;
            expired
        };
        for runner in expired {
            let status = runner.kill();
            tracing::debug!(%status, "stopped a runner process that had been idle");
        }
    }
}

/// The execution of a job whose runner could not be started.
fn host_failure(command: &CompilerCommand, error: &io::Error, started: Instant) -> Execution {
    Execution {
        elapsed: started.elapsed(),
        ..Execution::failed(ExecError::Host(format!(
            "cannot start a runner process ({}): {error}",
            command.program.display()
        )))
    }
}

/// Why an exchange with a runner ended without an answer.
enum Ended {
    /// The job's deadline passed.
    Deadline,
    /// The runner died, or said something that breaks the protocol.
    Broken(String),
}

/// One runner process and its pipes.
struct Runner {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Bytes read from stdout and not yet consumed as a frame.
    buffer: Vec<u8>,
    /// Whether it ran a job before this one (so it may have died idle).
    reused: bool,
    /// When it last went idle.
    idle_since: Instant,
    /// Room for one read from stdout.
    chunk: Vec<u8>,
}

impl Runner {
    /// Starts `command` and sends it `header`.
    fn start(command: &CompilerCommand, header: &str) -> io::Result<Self> {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the runner's pipes are missing"));
        };
        if let Err(e) = stdin.write_all(header.as_bytes()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Self {
            child,
            stdin,
            stdout,
            buffer: Vec::new(),
            reused: false,
            idle_since: Instant::now(),
            chunk: vec![0; READ_CHUNK],
        })
    }

    /// Sends `frame` and waits for one answer frame of at most `limit`
    /// bytes until `deadline`.
    fn ask(
        &mut self,
        frame: &[u8],
        deadline: Option<Instant>,
        limit: u64,
    ) -> Result<Vec<u8>, Ended> {
        let length = u32::try_from(frame.len())
            .map_err(|_| Ended::Broken(format!("a {}-byte request is too large", frame.len())))?;
        let mut message = Vec::with_capacity(4 + frame.len());
        message.extend_from_slice(&length.to_le_bytes());
        message.extend_from_slice(frame);
        self.stdin
            .write_all(&message)
            .map_err(|e| Ended::Broken(format!("writing to it: {e}")))?;
        self.receive(deadline, limit)
    }

    /// Sends `module` (serialized) and checks that the runner loaded it.
    fn load(&mut self, module: &CompiledModule, deadline: Option<Instant>) -> Result<(), Ended> {
        let serialized = module
            .module()
            .serialize()
            .map_err(|e| Ended::Broken(format!("serializing the module: {e:#}")))?;
        let mut frame = Writer::with_capacity(48 + serialized.len());
        frame.u8(b'L');
        frame.bytes(&module.hash());
        frame.u64(module.size() as u64);
        frame.bytes(&serialized);
        let answer = self.ask(&frame.0, deadline, ANSWER_SLACK)?;
        let mut reader = Reader(&answer);
        let decoded = (|| {
            if reader.u8()? != b'L' {
                return Err("expected the answer to a load".to_owned());
            }
            match reader.u8()? {
                0 => Ok(()),
                _ => Err(format!("it refused the module: {}", reader.string()?)),
            }
        })();
        decoded.map_err(Ended::Broken)
    }

    /// Reads until one whole frame of at most `limit` bytes is buffered,
    /// or `deadline` passes.
    fn receive(&mut self, deadline: Option<Instant>, limit: u64) -> Result<Vec<u8>, Ended> {
        loop {
            if let Some(length) = self
                .buffer
                .first_chunk::<4>()
                .map(|b| u32::from_le_bytes(*b))
            {
                if u64::from(length) > limit {
                    return Err(Ended::Broken(format!(
                        "it sent a {length}-byte answer (at most {limit} expected)"
                    )));
                }
                let end = 4 + length as usize;
                if self.buffer.len() >= end {
                    let frame = self.buffer[4..end].to_vec();
                    self.buffer.drain(..end);
                    return Ok(frame);
                }
            }
            if !wait_readable(&self.stdout, deadline).map_err(|e| Ended::Broken(e.to_string()))? {
                return Err(Ended::Deadline);
            }
            match self.stdout.read(&mut self.chunk) {
                Ok(0) => return Err(Ended::Broken("it closed its output".into())),
                Ok(n) => self.buffer.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Ended::Broken(format!("reading from it: {e}"))),
            }
        }
    }

    /// Kills and reaps the process; returns how it ended, for the log.
    fn kill(mut self) -> String {
        // Already exited (and so not killable) is fine: reap it anyway.
        let _ = self.child.kill();
        drop(self.stdin);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) => std::thread::sleep(REAP_POLL),
                Err(e) => return format!("cannot reap it: {e}"),
            }
        }
    }
}

/// Waits until `stdout` has bytes (or EOF) to read: `Ok(false)` when
/// `deadline` passed first.
#[cfg(unix)]
fn wait_readable(stdout: &ChildStdout, deadline: Option<Instant>) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    // Most jobs take microseconds: look without sleeping for a moment
    // first, which saves this thread a wake-up (tens of µs in a VM). One
    // thread at a time, and not right after a spin in vain, so that a busy
    // node does not burn the CPU its runners need.
    // A spin that finds nothing sets [`SPIN_SKIP`]: the next asks sleep
    // at once, then spinning is tried again.
    let skip = SPIN_SKIP
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if !skip
        && SPINNING
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    {
        let spin_until = Instant::now() + SPIN;
        let mut ready = false;
        while !ready && Instant::now() < spin_until {
            let mut fds = [PollFd::new(stdout, PollFlags::IN)];
            ready = poll(
                &mut fds,
                Some(&Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }),
            )
            .is_ok_and(|n| n > 0);
            std::hint::spin_loop();
        }
        SPINNING.store(false, Ordering::Release);
        if ready {
            return Ok(true);
        }
        SPIN_SKIP.store(SKIP_AFTER_MISS, Ordering::Relaxed);
    }
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                Some(Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                }))
            }
        };
        let mut fds = [PollFd::new(stdout, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Without `poll`, the deadline cannot be enforced while reading.
#[cfg(not(unix))]
fn wait_readable(_stdout: &ChildStdout, _deadline: Option<Instant>) -> io::Result<bool> {
    Err(io::Error::other(
        "supervised runners need poll(2), which this platform lacks",
    ))
}

/// The `R` frame for a job.
fn run_request(hash: ModuleHash, input: &JobInput, limits: &Limits) -> Vec<u8> {
    let mut frame = Writer::with_capacity(200 + input.stdin.len());
    frame.u8(b'R');
    frame.bytes(&hash);
    frame.bytes(&input.seed);
    frame.u64(input.clock_base_unix_ns);
    frame.u64(limits.memory_bytes);
    frame.u64(limits.max_output_bytes as u64);
    frame.u64(limits.max_stderr_bytes as u64);
    frame.u32(input.args.len() as u32);
    for arg in &input.args {
        frame.u32(arg.len() as u32);
        frame.bytes(arg.as_bytes());
    }
    frame.u64(input.stdin.len() as u64);
    frame.bytes(&input.stdin);
    frame.0
}

/// Decodes an `R` frame (after its kind byte).
fn decode_run(reader: &mut Reader<'_>) -> Result<(ModuleHash, JobInput, Limits), String> {
    let hash = reader.array::<32>()?;
    let seed = reader.array::<32>()?;
    let clock_base_unix_ns = reader.u64()?;
    let limits = Limits {
        fuel: 0,
        memory_bytes: reader.u64()?,
        // Unbounded in the runner: its parent keeps the deadline.
        wall_time: Duration::MAX,
        max_output_bytes: reader.size()?,
        max_stderr_bytes: reader.size()?,
    };
    let count = reader.u32()?;
    let mut args = Vec::new();
    for _ in 0..count {
        args.push(reader.string()?);
    }
    let length = reader.size()?;
    let stdin = reader.take(length)?.to_vec();
    Ok((
        hash,
        JobInput {
            args,
            stdin,
            seed,
            clock_base_unix_ns,
        },
        limits,
    ))
}

/// The `X` frame for an execution.
fn execution_answer(execution: &Execution) -> Vec<u8> {
    let mut frame = Writer::with_capacity(64 + execution.stdout.len() + execution.stderr.len());
    frame.u8(b'X');
    match &execution.result {
        Ok(()) => frame.u8(0),
        Err(ExecError::OutOfFuel) => frame.u8(1),
        Err(ExecError::MemoryLimit) => frame.u8(2),
        Err(ExecError::Timeout) => frame.u8(3),
        Err(ExecError::Trap(s)) => frame.tagged_string(4, s),
        Err(ExecError::InvalidModule(s)) => frame.tagged_string(5, s),
        Err(ExecError::CompileBudget(s)) => frame.tagged_string(6, s),
        Err(ExecError::OutputTooLarge) => frame.u8(7),
        Err(ExecError::ExitCode(code)) => {
            frame.u8(8);
            frame.u32(*code as u32);
        }
        Err(ExecError::Host(s)) => frame.tagged_string(9, s),
    }
    frame.u64(nanos(execution.elapsed));
    frame.u64(nanos(execution.cpu_time));
    frame.u64(execution.stdout.len() as u64);
    frame.bytes(&execution.stdout);
    frame.u64(execution.stderr.len() as u64);
    frame.bytes(&execution.stderr);
    frame.0
}

/// Decodes an `X` frame.
fn decode_execution(frame: &[u8]) -> Result<Execution, String> {
    let mut reader = Reader(frame);
    if reader.u8()? != b'X' {
        return Err("expected the answer to a run".into());
    }
    let result = match reader.u8()? {
        0 => Ok(()),
        1 => Err(ExecError::OutOfFuel),
        2 => Err(ExecError::MemoryLimit),
        3 => Err(ExecError::Timeout),
        4 => Err(ExecError::Trap(reader.string()?)),
        5 => Err(ExecError::InvalidModule(reader.string()?)),
        6 => Err(ExecError::CompileBudget(reader.string()?)),
        7 => Err(ExecError::OutputTooLarge),
        8 => Err(ExecError::ExitCode(reader.u32()? as i32)),
        9 => Err(ExecError::Host(reader.string()?)),
        kind => return Err(format!("unknown outcome kind {kind}")),
    };
    let elapsed = Duration::from_nanos(reader.u64()?);
    let cpu_time = Duration::from_nanos(reader.u64()?);
    let length = reader.size()?;
    let stdout = reader.take(length)?.to_vec();
    let length = reader.size()?;
    let stderr = reader.take(length)?.to_vec();
    Ok(Execution {
        result,
        stdout,
        stderr,
        fuel_used: 0,
        elapsed,
        cpu_time,
    })
}

/// A duration in whole nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Builds a frame.
struct Writer(Vec<u8>);

impl Writer {
    fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    /// A kind byte and a `u32`-length string (cut at 4 GiB, never reached:
    /// messages are short).
    fn tagged_string(&mut self, kind: u8, s: &str) {
        self.u8(kind);
        let length = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.u32(length);
        self.bytes(&s.as_bytes()[..length as usize]);
    }
}

/// Reads a frame; every read checks the length left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "the frame ends early ({} bytes left, {n} expected)",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn size(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|_| "a length does not fit in memory".to_owned())
    }
    fn string(&mut self) -> Result<String, String> {
        let length = self.u32()? as usize;
        String::from_utf8(self.take(length)?.to_vec()).map_err(|_| "a string is not UTF-8".into())
    }
}

/// The runner's `main`, entered from [`crate::compiler::child_main`] when
/// the first line is a runner header: builds an unbounded sandbox with the
/// header's compile settings and serves frames from `stdin` until it
/// closes.
pub(crate) fn child(header: &str, mut stdin: impl BufRead) -> Result<ExitCode, String> {
    let config = parse_header(header)?;
    disable_core_dumps()?;
    die_with_parent()?;
    let sandbox = crate::Sandbox::new(config).map_err(|e| format!("building the sandbox: {e}"))?;
    let mut modules: HashMap<ModuleHash, Arc<CompiledModule>> = HashMap::new();
    let mut order: VecDeque<ModuleHash> = VecDeque::new();
    let mut stdout = unbuffered_stdout()?;
    loop {
        let mut length = [0; 4];
        match stdin.read_exact(&mut length) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(format!("reading a request: {e}")),
        }
        let length = u64::from(u32::from_le_bytes(length));
        if length > MAX_REQUEST_BYTES {
            return Err(format!("a {length}-byte request is too large"));
        }
        let mut frame = Vec::new();
        (&mut stdin)
            .take(length)
            .read_to_end(&mut frame)
            .map_err(|e| format!("reading a request: {e}"))?;
        if frame.len() as u64 != length {
            return Err("a request ended early".into());
        }
        let mut reader = Reader(&frame);
        let answer = match reader.u8()? {
            b'R' => {
                let (hash, input, limits) = decode_run(&mut reader)?;
                match modules.get(&hash) {
                    None => vec![b'M'],
                    Some(module) => execution_answer(&sandbox.run(module, &input, &limits)),
                }
            }
            b'L' => {
                let hash = reader.array::<32>()?;
                let size = reader.size()?;
                let mut answer = Writer::with_capacity(64);
                answer.u8(b'L');
                match sandbox.load_from_runner_parent(hash, reader.0, size) {
                    Ok(module) => {
                        if modules.insert(hash, module).is_none() {
                            order.push_back(hash);
                        }
                        while order.len() > RUNNER_MODULES {
                            if let Some(old) = order.pop_front() {
                                modules.remove(&old);
                            }
                        }
                        answer.u8(0);
                    }
                    Err(problem) => answer.tagged_string(1, &problem),
                }
                answer.0
            }
            kind => return Err(format!("unknown request kind {kind}")),
        };
        let length = u32::try_from(answer.len()).map_err(|_| "an answer is too large")?;
        let mut message = Vec::with_capacity(4 + answer.len());
        message.extend_from_slice(&length.to_le_bytes());
        message.extend_from_slice(&answer);
        stdout
            .write_all(&message)
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("writing an answer: {e}"))?;
    }
}

/// Standard output without `io::stdout`'s line buffering, which would cut
/// an answer at its last newline byte into two writes (and wake the node
/// twice).
#[cfg(unix)]
fn unbuffered_stdout() -> Result<impl Write, String> {
    use std::os::fd::AsFd;
    let fd = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("duplicating stdout: {e}"))?;
    Ok(std::fs::File::from(fd))
}

/// Standard output (answers are written in one call and flushed).
#[cfg(not(unix))]
fn unbuffered_stdout() -> Result<impl Write, String> {
    Ok(io::stdout())
}

/// The runner's sandbox configuration from its header line.
fn parse_header(header: &str) -> Result<Config, String> {
    let mut words = header.trim_end_matches('\n').split(' ');
    if words.next() != Some(MAGIC) {
        return Err(format!("the header does not start with {MAGIC}"));
    }
    let mut config = Config {
        metering: Metering::Unbounded,
        // One job at a time: one pooled instance (a module too large for
        // it runs on demand, as in the node).
        pool: Some(PoolConfig::new(1)),
        ..Config::default()
    };
    let (mut deterministic, mut nans, mut stack) = (None, None, None);
    for word in words {
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| format!("malformed field {word:?}"))?;
        let value: usize = value
            .parse()
            .map_err(|_| format!("field {name} is not a number: {value:?}"))?;
        match name {
            "deterministic" => deterministic = Some(value != 0),
            "canonicalize_nans" => nans = Some(value != 0),
            "max_wasm_stack" => stack = Some(value),
            _ => return Err(format!("unknown field {name:?}")),
        }
    }
    config.deterministic = deterministic.ok_or("field deterministic is missing")?;
    config.canonicalize_nans = nans.ok_or("field canonicalize_nans is missing")?;
    config.max_wasm_stack = stack.ok_or("field max_wasm_stack is missing")?;
    Ok(config)
}

/// A crashing runner must not write the job's memory to disk.
#[cfg(unix)]
fn disable_core_dumps() -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| format!("setrlimit(core): {e}"))
}

/// A runner whose node died (even by `SIGKILL`, mid-job, in an endless
/// loop no one will ever kill) must not keep burning the machine: the
/// kernel sends it `SIGKILL` when the node's thread that started it ends.
/// A runner started from a thread that ends while the node lives on dies
/// too, which the node survives (see [`Runners::run`]); the node runs jobs
/// on long-lived pool threads.
#[cfg(target_os = "linux")]
fn die_with_parent() -> Result<(), String> {
    use rustix::process::{Signal, getppid, set_parent_process_death_signal};
    let parent = getppid();
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    if getppid() != parent {
        return Err("the node ended while this runner started".into());
    }
    Ok(())
}

/// Elsewhere a runner notices its node's end only when its stdin closes,
/// i.e. between jobs.
#[cfg(not(target_os = "linux"))]
fn die_with_parent() -> Result<(), String> {
    Ok(())
}

/// No core-dump limit to set here.
#[cfg(not(unix))]
fn disable_core_dumps() -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_run_request_round_trips() {
        let input = JobInput {
            args: vec!["a".into(), "ünï".into()],
            stdin: b"stdin bytes".to_vec(),
            seed: [7; 32],
            clock_base_unix_ns: 42,
        };
        let limits = Limits {
            memory_bytes: 1 << 20,
            max_output_bytes: 100,
            max_stderr_bytes: 10,
            ..Limits::default()
        };
        let frame = run_request([9; 32], &input, &limits);
        let mut reader = Reader(&frame[1..]);
        let (hash, decoded, decoded_limits) = decode_run(&mut reader).unwrap();
        assert_eq!(hash, [9; 32]);
        assert_eq!(decoded, input);
        assert_eq!(decoded_limits.memory_bytes, 1 << 20);
        assert_eq!(decoded_limits.max_output_bytes, 100);
        assert_eq!(decoded_limits.max_stderr_bytes, 10);
    }

    #[test]
    fn every_outcome_round_trips() {
        for result in [
            Ok(()),
            Err(ExecError::OutOfFuel),
            Err(ExecError::MemoryLimit),
            Err(ExecError::Timeout),
            Err(ExecError::Trap("unreachable".into())),
            Err(ExecError::InvalidModule("bad".into())),
            Err(ExecError::CompileBudget("slow".into())),
            Err(ExecError::OutputTooLarge),
            Err(ExecError::ExitCode(-3)),
            Err(ExecError::Host("disk".into())),
        ] {
            let execution = Execution {
                result,
                stdout: b"out".to_vec(),
                stderr: b"err".to_vec(),
                fuel_used: 0,
                elapsed: Duration::from_micros(5),
                cpu_time: Duration::from_micros(4),
            };
            assert_eq!(
                decode_execution(&execution_answer(&execution)).unwrap(),
                execution
            );
        }
    }

    #[test]
    fn truncated_and_unknown_answers_are_errors_not_panics() {
        let execution = Execution::failed(ExecError::Trap("x".into()));
        let frame = execution_answer(&execution);
        for end in 0..frame.len() {
            assert!(decode_execution(&frame[..end]).is_err(), "{end}");
        }
        assert!(decode_execution(b"X\xff").is_err());
        assert!(decode_execution(b"Q").is_err());
    }

    #[test]
    fn headers_parse_or_are_refused() {
        let config = parse_header(
            "peergrid-run/1 deterministic=0 canonicalize_nans=1 max_wasm_stack=4096\n",
        )
        .unwrap();
        assert!(!config.deterministic);
        assert!(config.canonicalize_nans);
        assert_eq!(config.max_wasm_stack, 4096);
        assert_eq!(config.metering, Metering::Unbounded);
        for bad in [
            "peergrid-run/2 deterministic=1 max_wasm_stack=1",
            "peergrid-run/1 deterministic=1 max_wasm_stack=1",
            "peergrid-run/1 deterministic=x max_wasm_stack=1",
            "peergrid-run/1 deterministic=1 max_wasm_stack=1 other=1",
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }
}

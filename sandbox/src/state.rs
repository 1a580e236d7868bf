//! [`JobState`], the data of one job's wasmtime `Store`: its WASI context,
//! its limiter and its virtual time.

use std::sync::Arc;

use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use crate::clock::{MonotonicClock, VirtualTime, WallClock};
use crate::limiter::JobLimiter;
use crate::output::{OutputCapture, Overflow};
use crate::{JobInput, Limits, random};

/// `argv[0]` of every job.
pub(crate) const ARGV0: &str = "job";

/// Largest `random_get` request served in one call (bigger ones trap).
const MAX_RANDOM_REQUEST: u64 = 16 * 1024 * 1024;

/// Store data of one job run.
pub(crate) struct JobState {
    /// WASI preview 1 context: stdio, args, clocks and randomness only.
    pub(crate) wasi: WasiP1Ctx,
    /// Memory and table limits.
    pub(crate) limiter: JobLimiter,
    /// Virtual time shared with the WASI clocks.
    pub(crate) time: Arc<VirtualTime>,
}

/// The host side of a job's stdio, read after the run.
pub(crate) struct Stdio {
    /// Guest stdout, trapping past its cap.
    pub(crate) stdout: OutputCapture,
    /// Guest stderr, truncated at its cap.
    pub(crate) stderr: OutputCapture,
}

impl JobState {
    /// The state for running `input` under `limits`. Grants nothing but
    /// stdio, arguments, virtual clocks and seeded randomness: no files, no
    /// environment variables, no network.
    pub(crate) fn new(input: &JobInput, limits: &Limits) -> (Self, Stdio) {
        let stdio = Stdio {
            stdout: OutputCapture::new(limits.max_output_bytes, Overflow::Trap),
            stderr: OutputCapture::new(limits.max_stderr_bytes, Overflow::Truncate),
        };
        let time = VirtualTime::new(input.clock_base_unix_ns);
        let mut argv = Vec::with_capacity(input.args.len() + 1);
        argv.push(ARGV0);
        argv.extend(input.args.iter().map(String::as_str));
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input.stdin.clone()))
            .stdout(stdio.stdout.clone())
            .stderr(stdio.stderr.clone())
            .args(&argv)
            .wall_clock(WallClock(time.clone()))
            .monotonic_clock(MonotonicClock(time.clone()))
            .secure_random(random::generator(&input.seed, b"secure"))
            // Not reachable from WASI preview 1, but never leave a real RNG in.
            .insecure_random(random::short_generator(&input.seed, b"insecure"))
            .insecure_random_seed(random::seed_u128(&input.seed, b"insecure-seed"))
            .max_random_size(MAX_RANDOM_REQUEST.min(limits.memory_bytes))
            .build_p1();
        let state = Self {
            wasi,
            limiter: JobLimiter::new(limits.memory_bytes),
            time,
        };
        (state, stdio)
    }
}

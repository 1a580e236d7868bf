//! `peergrid bench`, issue 6 row 1: WASM vs native for the example jobs.
//!
//! Each example job runs on an input that takes roughly 50–500 ms natively,
//! three ways: natively (the job crate's own `run`, the function its
//! `main.rs` calls, in this process, release build), as WASM in the
//! production sandbox ([`peergrid_sandbox::Sandbox`] with the node's
//! configuration: fuel, epoch deadline and NaN canonicalization), and as
//! WASM in plain wasmtime for reference (default Cranelift settings, no
//! fuel, no epochs, no NaN canonicalization, WASI preview 1 with stdin and
//! arguments wired and stdout captured in memory). Modules are compiled
//! before timing; the three ways alternate within each round so that load
//! from other processes falls on all of them alike. The WASM stdout must
//! equal the native output byte for byte, or the bench fails.

use std::time::{Duration, Instant};

use anyhow::Context;
use peergrid_jobs::ExampleJob;
use scheduler_lib::Limits;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

/// Timed runs of each way per job (after one untimed warm-up run).
const RUNS: usize = 7;

/// `argv[0]` given to the WASM jobs (which ignore it).
const ARGV0: &str = "job";

/// A job run natively: `(stdin, args)` to stdout, or the job's error.
type NativeRun = fn(&[u8], &[&str]) -> Result<Vec<u8>, String>;

/// One job and the input it is benchmarked on.
struct Case {
    /// The example job (its embedded `wasm32-wasip1` module).
    job: &'static ExampleJob,
    /// Program arguments after `argv[0]`.
    args: &'static [&'static str],
    /// The job's stdin.
    stdin: &'static [u8],
    /// The native run: what the job's `main.rs` writes to stdout.
    native: NativeRun,
}

/// The benchmarked inputs: each runs for 50–500 ms natively on the
/// project's 2-core VM and within the default fuel budget (10^10).
fn cases() -> [Case; 3] {
    [
        Case {
            job: &peergrid_jobs::PRIMES,
            args: &[],
            stdin: b"100000000",
            native: |stdin, _| {
                job_primes::run(stdin)
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string())
            },
        },
        Case {
            job: &peergrid_jobs::MANDELBROT,
            args: &[],
            stdin: b"640 480 1000",
            native: |stdin, args| {
                let format = job_mandelbrot::parse_format(args).map_err(|e| e.to_string())?;
                job_mandelbrot::run(stdin, format).map_err(|e| e.to_string())
            },
        },
        Case {
            job: &peergrid_jobs::HASHCHAIN,
            args: &[],
            stdin: b"1500000 peergrid",
            native: |stdin, _| {
                job_hashchain::run(stdin)
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string())
            },
        },
    ]
}

/// Plain wasmtime: one engine with default settings and a WASI preview 1
/// linker, as a reference for what the sandbox's settings cost.
struct Plain {
    engine: wasmtime::Engine,
    linker: wasmtime::Linker<WasiP1Ctx>,
}

impl Plain {
    fn new() -> wasmtime::Result<Self> {
        let engine = wasmtime::Engine::new(&wasmtime::Config::new())?;
        let mut linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |cx: &mut WasiP1Ctx| cx)?;
        Ok(Self { engine, linker })
    }

    /// Instantiates `module` and runs `_start`; returns its stdout.
    fn run(
        &self,
        module: &wasmtime::Module,
        args: &[&str],
        stdin: &[u8],
    ) -> wasmtime::Result<Vec<u8>> {
        let stdout = MemoryOutputPipe::new(usize::MAX);
        let mut argv = vec![ARGV0];
        argv.extend_from_slice(args);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(stdin.to_vec()))
            .stdout(stdout.clone())
            .args(&argv)
            .build_p1();
        let mut store = wasmtime::Store::new(&self.engine, wasi);
        let instance = self.linker.instantiate(&mut store, module)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        if let Err(e) = start.call(&mut store, ()) {
            match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(wasmtime_wasi::I32Exit(0)) => {}
                _ => return Err(e),
            }
        }
        drop(store);
        Ok(stdout.contents().to_vec())
    }
}

/// Times `f` once, returning its result and the elapsed time.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// The median of `samples` (the upper one for an even count).
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `d` in milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The geometric mean of positive `values`.
fn geomean(values: &[f64]) -> f64 {
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// Runs every example job natively, in the production sandbox and in plain
/// wasmtime, checks that the outputs are identical, and prints a table of
/// medians and ratios. Blocks for several seconds: call it off the async
/// runtime (e.g. with `spawn_blocking`).
pub fn run() -> anyhow::Result<()> {
    // The sandbox exactly as `peergrid node` builds it (`Config::default()`,
    // compiles in the budgeted child process), with the default job limits.
    let mut config = peergrid_sandbox::Config::default();
    config.compiler = Some(super::compiler_command()?);
    let sandbox = peergrid_sandbox::Sandbox::new(config)?;
    let limits = peergrid_worker::node::sandbox_limits(&Limits::default());
    let plain = Plain::new().map_err(|e| anyhow::anyhow!("plain wasmtime engine: {e:#}"))?;

    let section = Instant::now();
    let mut rows = Vec::new();
    for case in cases() {
        let name = case.job.name;
        let compiled = sandbox
            .compile(case.job.wasm)
            .with_context(|| format!("{name}: sandbox compile"))?;
        let plain_module = wasmtime::Module::new(&plain.engine, case.job.wasm)
            .map_err(|e| anyhow::anyhow!("{name}: plain wasmtime compile: {e:#}"))?;
        let input = peergrid_sandbox::JobInput {
            args: case.args.iter().map(|a| a.to_string()).collect(),
            stdin: case.stdin.to_vec(),
            ..Default::default()
        };
        let (mut native, mut boxed, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        let mut fuel = 0;
        for round in 0..=RUNS {
            let (out, t_native) = timed(|| {
                (case.native)(std::hint::black_box(case.stdin), case.args).map(std::hint::black_box)
            });
            let expected = out.map_err(|e| anyhow::anyhow!("{name}: native run failed: {e}"))?;
            let (execution, t_sandbox) = timed(|| sandbox.run(&compiled, &input, &limits));
            if let Err(e) = &execution.result {
                anyhow::bail!("{name}: sandbox run failed: {e}");
            }
            anyhow::ensure!(
                execution.stdout == expected,
                "{name}: sandbox output ({} bytes) differs from native ({} bytes)",
                execution.stdout.len(),
                expected.len()
            );
            let (out, t_plain) = timed(|| plain.run(&plain_module, case.args, case.stdin));
            let out = out.map_err(|e| anyhow::anyhow!("{name}: plain wasmtime run: {e:#}"))?;
            anyhow::ensure!(
                out == expected,
                "{name}: plain wasmtime output ({} bytes) differs from native ({} bytes)",
                out.len(),
                expected.len()
            );
            if round > 0 {
                native.push(t_native);
                boxed.push(t_sandbox);
                bare.push(t_plain);
            }
            fuel = execution.fuel_used;
        }
        rows.push((case, median(native), median(boxed), median(bare), fuel));
    }

    println!(
        "\nWASM vs native: example jobs, medians of {RUNS} runs (after a warm-up), \
         outputs equal byte for byte; release build, modules compiled before timing"
    );
    println!("sandbox = production configuration (fuel, epoch deadline, NaN canonicalization);");
    println!("plain = wasmtime defaults (no fuel, no epochs, no NaN canonicalization)\n");
    println!(
        "| job | input | fuel | native ms | sandbox ms | plain wasmtime ms | sandbox / native | plain / native |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let (mut boxed_ratios, mut bare_ratios) = (Vec::new(), Vec::new());
    for (case, native, boxed, bare, fuel) in &rows {
        let (rb, rp) = (
            boxed.as_secs_f64() / native.as_secs_f64(),
            bare.as_secs_f64() / native.as_secs_f64(),
        );
        boxed_ratios.push(rb);
        bare_ratios.push(rp);
        let mut input = String::from_utf8_lossy(case.stdin).into_owned();
        for arg in case.args {
            input = format!("{arg}, {input}");
        }
        println!(
            "| {} | `{input}` | {fuel} | {:.1} | {:.1} | {:.1} | {rb:.2}x | {rp:.2}x |",
            case.job.name,
            ms(*native),
            ms(*boxed),
            ms(*bare)
        );
    }
    println!(
        "| **geomean** | | | | | | **{:.2}x** | **{:.2}x** |",
        geomean(&boxed_ratios),
        geomean(&bare_ratios)
    );
    // The sha2 crate picks its backend at run time: natively that can be
    // the CPU's SHA instructions, in WASM it is always the portable code.
    #[cfg(target_arch = "x86_64")]
    println!(
        "\nnative hashchain uses the CPU's SHA extensions: {} (WASM: portable sha2 code)",
        if std::arch::is_x86_feature_detected!("sha") {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "WASM vs native section: {:.1} s",
        section.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `peergrid bench`, issue 6 row 1: WASM vs native for the example jobs.
//!
//! Each example job runs on an input that takes roughly 70–200 ms natively:
//! natively (the job crate's own `run`, the function its `main.rs` calls,
//! in this process, release build); as WASM in the sandbox with a node's
//! settings four ways — [`peergrid_sandbox::Metering::Fuel`] (fuel and
//! epoch checks, in process) with canonical NaNs, the cost of a fuel-budget
//! job; [`peergrid_sandbox::Metering::Supervised`] (no checks, a runner
//! process killed at the deadline) with canonical NaNs, what replicas on
//! mixed architectures would need; supervised with the CPU's NaNs, the
//! production configuration of a default (wall-time) job — and in plain
//! wasmtime (default Cranelift settings, no fuel, no epochs, no NaN
//! canonicalization, WASI preview 1 with stdin and arguments wired and
//! stdout captured in memory). Modules are compiled before timing; all
//! ways alternate within each round so that load from other processes
//! falls on all of them alike. Every WASM stdout must equal the native
//! output byte for byte, or the bench fails.

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
/// project's 2-core VM and within the default fuel budget (10^10). The six
/// jobs cover the suite's five standard kernels (matrix multiplication,
/// sieve, Mandelbrot, integer hash mixing, n-body) plus SHA-256; matmul's
/// input is sized by fuel (7.2·10^9, ~19 instructions per multiply-add in
/// WASM) rather than by native time.
fn cases() -> [Case; 6] {
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
        Case {
            job: &peergrid_jobs::MATMUL,
            args: &[],
            stdin: b"720",
            native: |stdin, _| {
                job_matmul::run(stdin)
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string())
            },
        },
        Case {
            job: &peergrid_jobs::NBODY,
            args: &[],
            stdin: b"2000000",
            native: |stdin, _| {
                job_nbody::run(stdin)
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string())
            },
        },
        Case {
            job: &peergrid_jobs::HASHMIX,
            args: &[],
            stdin: b"15000000 2026",
            native: |stdin, _| {
                job_hashmix::run(stdin)
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

/// One way of running the WASM jobs that the table times.
struct Way {
    /// Column heading.
    name: &'static str,
    /// The sandbox, or `None` for plain wasmtime.
    sandbox: Option<peergrid_sandbox::Sandbox>,
}

/// The sandbox as `peergrid node` builds it (its settings, the budgeted
/// compiler child process) with `metering`, and NaN canonicalization on or
/// off.
fn node_sandbox(
    metering: peergrid_sandbox::Metering,
    canonicalize_nans: bool,
) -> anyhow::Result<peergrid_sandbox::Sandbox> {
    let mut config = peergrid_worker::config::node_sandbox_config();
    config.compiler = Some(super::compiler_command()?);
    config.metering = metering;
    config.canonicalize_nans = canonicalize_nans;
    Ok(peergrid_sandbox::Sandbox::new(config)?)
}

/// Runs every example job natively, in the sandbox's configurations and in
/// plain wasmtime, checks that the outputs are identical, and prints a
/// table of medians and ratios. Blocks for tens of seconds: call it off the
/// async runtime (e.g. with `spawn_blocking`).
pub fn run() -> anyhow::Result<()> {
    use peergrid_sandbox::Metering;
    let ways = [
        Way {
            name: "fuel, canonical NaNs",
            sandbox: Some(node_sandbox(Metering::Fuel, true)?),
        },
        Way {
            name: "supervised, canonical NaNs",
            sandbox: Some(node_sandbox(Metering::Supervised, true)?),
        },
        Way {
            name: "production",
            sandbox: Some(node_sandbox(Metering::Supervised, false)?),
        },
        Way {
            name: "plain wasmtime",
            sandbox: None,
        },
    ];
    let limits = peergrid_worker::node::sandbox_limits(&Limits::default());
    let plain = Plain::new().map_err(|e| anyhow::anyhow!("plain wasmtime engine: {e:#}"))?;

    let section = Instant::now();
    let mut rows = Vec::new();
    for case in cases() {
        let name = case.job.name;
        let mut compiled = Vec::new();
        for way in &ways {
            if let Some(sandbox) = &way.sandbox {
                let module = sandbox
                    .compile(case.job.wasm)
                    .with_context(|| format!("{name}: compile for {}", way.name))?;
                compiled.push(Some(module));
            } else {
                compiled.push(None);
            }
        }
        let plain_module = wasmtime::Module::new(&plain.engine, case.job.wasm)
            .map_err(|e| anyhow::anyhow!("{name}: plain wasmtime compile: {e:#}"))?;
        let input = peergrid_sandbox::JobInput {
            args: case.args.iter().map(|a| a.to_string()).collect(),
            stdin: case.stdin.to_vec(),
            ..Default::default()
        };
        let mut native = Vec::new();
        let mut times = vec![Vec::new(); ways.len()];
        let mut fuel = 0;
        for round in 0..=RUNS {
            let (out, t_native) = timed(|| {
                (case.native)(std::hint::black_box(case.stdin), case.args).map(std::hint::black_box)
            });
            let expected = out.map_err(|e| anyhow::anyhow!("{name}: native run failed: {e}"))?;
            if round > 0 {
                native.push(t_native);
            }
            for (i, way) in ways.iter().enumerate() {
                let (stdout, elapsed) = match (&way.sandbox, &compiled[i]) {
                    (Some(sandbox), Some(module)) => {
                        let (execution, elapsed) = timed(|| sandbox.run(module, &input, &limits));
                        if let Err(e) = &execution.result {
                            anyhow::bail!("{name}: {} run failed: {e}", way.name);
                        }
                        fuel = fuel.max(execution.fuel_used);
                        (execution.stdout, elapsed)
                    }
                    _ => {
                        let (out, elapsed) =
                            timed(|| plain.run(&plain_module, case.args, case.stdin));
                        let out =
                            out.map_err(|e| anyhow::anyhow!("{name}: plain wasmtime: {e:#}"))?;
                        (out, elapsed)
                    }
                };
                anyhow::ensure!(
                    stdout == expected,
                    "{name}: {} output ({} bytes) differs from native ({} bytes)",
                    way.name,
                    stdout.len(),
                    expected.len()
                );
                if round > 0 {
                    times[i].push(elapsed);
                }
            }
        }
        let medians: Vec<Duration> = times.into_iter().map(median).collect();
        rows.push((case, median(native), medians, fuel));
    }

    println!(
        "\nWASM vs native: example jobs, medians of {RUNS} runs (after a warm-up), \
         outputs equal byte for byte; release build, modules compiled before timing"
    );
    println!(
        "fuel, canonical NaNs = Metering::Fuel (fuel, epoch deadline, in the node's process) with \
         NaN canonicalization: the sandbox before issue 6, and a Budget::Fuel job's cost;"
    );
    println!(
        "supervised, canonical NaNs = Metering::Supervised (no fuel or epoch checks, a runner \
         process killed at the deadline) with NaN canonicalization: replicas on any CPU agree;"
    );
    println!(
        "production = what a node runs a default (wall-time) job with: supervised, NaNs as the \
         CPU makes them, replicas of one job placed on one platform;"
    );
    println!("plain wasmtime = wasmtime defaults (no fuel, no epochs, no NaN canonicalization)\n");
    let mut heading = String::from("| job | input | fuel | native ms |");
    let mut rule = String::from("|---|---|---:|---:|");
    for way in &ways {
        heading.push_str(&format!(" {} ms |", way.name));
        rule.push_str("---:|");
    }
    for way in &ways {
        heading.push_str(&format!(" {} / native |", way.name));
        rule.push_str("---:|");
    }
    println!("{heading}\n{rule}");
    let mut ratios = vec![Vec::new(); ways.len()];
    for (case, native, medians, fuel) in &rows {
        let mut input = String::from_utf8_lossy(case.stdin).into_owned();
        for arg in case.args {
            input = format!("{arg}, {input}");
        }
        let mut line = format!(
            "| {} | `{input}` | {fuel} | {:.1} |",
            case.job.name,
            ms(*native)
        );
        for median in medians {
            line.push_str(&format!(" {:.1} |", ms(*median)));
        }
        for (i, median) in medians.iter().enumerate() {
            let ratio = median.as_secs_f64() / native.as_secs_f64();
            ratios[i].push(ratio);
            line.push_str(&format!(" {ratio:.2}x |"));
        }
        println!("{line}");
    }
    // Input, fuel, native and the times: empty in the geomean rows.
    let blanks = " |".repeat(3 + ways.len());
    let mut line = format!("| **geomean** |{blanks}");
    for column in &ratios {
        line.push_str(&format!(" **{:.2}x** |", geomean(column)));
    }
    println!("{line}");
    // Without hashchain: natively the sha2 crate may use the CPU's SHA
    // instructions, which WASM cannot (see below).
    let mut line = format!("| geomean of the five standard kernels (without hashchain) |{blanks}");
    for column in &ratios {
        let kept: Vec<f64> = rows
            .iter()
            .zip(column)
            .filter(|((case, ..), _)| case.job.name != "hashchain")
            .map(|(_, ratio)| *ratio)
            .collect();
        line.push_str(&format!(" {:.2}x |", geomean(&kept)));
    }
    println!("{line}");
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

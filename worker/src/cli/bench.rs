//! `peergrid bench`: what verification costs, as ratios measured in one run.
//!
//! Starts a local grid of real nodes (loopback gRPC, real signatures, real
//! wasmtime), warms it up so every node holds and has compiled the module,
//! then times submit→verified-result for a trivial job at fixed k=1 and
//! k=3, at k=3 with adaptive replication once the workers are trusted, and
//! the same job run locally in the sandbox as the baseline. Then, apart
//! from the grid, cold start vs warm ([`cold_start`]) and what one job's
//! instance costs with and without the pooling allocator
//! ([`instantiation`]).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use peergrid_proto::Identity;
use peergrid_worker::LocalGrid;
use scheduler_lib::{Job, Limits, Scheduler, SchedulerConfig};

use super::args::{BenchArgs, BenchSection};

/// Median, 99th percentile and mean of a set of samples.
struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let total: Duration = samples.iter().sum();
    Stats {
        p50: at(0.5),
        p99: at(0.99),
        mean: total / samples.len() as u32,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark and prints one table.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.jobs >= 10, "--jobs must be at least 10");
    let wanted = |section| args.only.is_empty() || args.only.contains(&section);
    if wanted(BenchSection::Latency) {
        latency(args.jobs).await?;
    }
    if wanted(BenchSection::Throughput) {
        println!("\n{}", super::bench_load::throughput(args.jobs).await?);
    }
    if wanted(BenchSection::Memory) {
        println!("{}", super::bench_load::memory().await?);
    }
    if wanted(BenchSection::Cold) {
        let cold = tokio::task::spawn_blocking(cold_start)
            .await
            .context("cold-start thread")??;
        println!("\n{cold}");
    }
    if wanted(BenchSection::Instantiation) {
        let instantiation = tokio::task::spawn_blocking(instantiation)
            .await
            .context("instantiation thread")??;
        println!("{instantiation}");
    }
    if wanted(BenchSection::Native) {
        tokio::task::spawn_blocking(super::bench_native::run)
            .await
            .context("WASM vs native thread")??;
    }
    Ok(ExitCode::SUCCESS)
}

/// Issue 6 row 2, per-job latency: `jobs` trivial jobs on a local grid at
/// k=1, k=3, adaptive k=3, with the ledger and in plaintext, against the
/// same job in this process's sandbox; prints the table and the ratios.
async fn latency(jobs: usize) -> anyhow::Result<()> {
    let trivial = || Job::new(peergrid_jobs::HASHCHAIN.wasm).stdin(b"1 x".to_vec());

    // Baseline: the same job in the sandbox of this process, module compiled once.
    let local_samples = tokio::task::spawn_blocking({
        move || -> anyhow::Result<Vec<Duration>> {
            let sandbox = peergrid_sandbox::Sandbox::new(peergrid_sandbox::Config::default())?;
            let module = sandbox.compile(peergrid_jobs::HASHCHAIN.wasm)?;
            let limits = peergrid_worker::node::sandbox_limits(&Limits::default());
            let input = peergrid_sandbox::JobInput {
                stdin: b"1 x".to_vec(),
                ..Default::default()
            };
            Ok((0..jobs)
                .map(|_| {
                    let start = Instant::now();
                    let _ = sandbox.run(&module, &input, &limits);
                    start.elapsed()
                })
                .collect())
        }
    })
    .await
    .context("local baseline thread")??;

    let configs = (0..3)
        .map(|_| {
            let mut c = super::local_node_config()?;
            c.slots = 1;
            Ok(c)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut grid = LocalGrid::start(configs).await?;
    let scheduler = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            ..SchedulerConfig::default()
        },
    );
    for _ in 0..10 {
        let report = scheduler.submit(&trivial().replicas(3)).await?;
        anyhow::ensure!(
            report.verdict.accepted().is_some(),
            "warm-up job not accepted"
        );
    }
    // Fixed k (adaptive replication off), then k=3 adaptive: by now the
    // warm-up and the fixed rows have made the three nodes established, so
    // most adaptive jobs run on one replica.
    let rows = [
        ("grid, k=1", 1usize, false),
        ("grid, k=3", 3, false),
        ("grid, k=3 adaptive, trusted workers", 3, true),
    ];
    let mut grid_samples = Vec::new();
    let mut adaptive_executions = 0;
    for (label, k, adaptive) in rows {
        let mut samples = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            let job = trivial().replicas(k).adaptive(adaptive);
            let report = scheduler.submit(&job).await?;
            anyhow::ensure!(
                report.verdict.accepted().is_some(),
                "{label}: job not accepted"
            );
            if adaptive {
                adaptive_executions += report.verdict.runs().count();
            }
            samples.push(report.elapsed);
        }
        grid_samples.push((label, stats(samples)));
    }
    // The same fixed k=3 with a ledger, as `peergrid submit` runs it: every
    // job, placement and verdict is a durable (fsync'd) redb transaction.
    let ledger_dir = tempfile::tempdir()?;
    let ledger =
        scheduler_lib::Ledger::open(ledger_dir.path().join(scheduler_lib::ledger::FILE_NAME))?;
    let with_ledger = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            ..SchedulerConfig::default()
        },
    )
    .with_ledger(ledger)?;
    let mut samples = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let report = with_ledger
            .submit(&trivial().replicas(3).adaptive(false))
            .await?;
        anyhow::ensure!(
            report.verdict.accepted().is_some(),
            "ledger job not accepted"
        );
        samples.push(report.elapsed);
    }
    grid_samples.push(("grid, k=3, with the redb ledger", stats(samples)));
    grid.stop().await;

    // The same fixed k=3 over plaintext (`--insecure`): what TLS costs.
    let configs = (0..3)
        .map(|_| {
            let mut c = super::local_node_config()?;
            c.slots = 1;
            c.insecure = true;
            Ok(c)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut plain_grid = LocalGrid::start(configs).await?;
    let plain = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: plain_grid.addrs(),
            insecure: true,
            ..SchedulerConfig::default()
        },
    );
    let mut samples = Vec::with_capacity(jobs);
    for i in 0..jobs + 10 {
        let report = plain.submit(&trivial().replicas(3).adaptive(false)).await?;
        anyhow::ensure!(
            report.verdict.accepted().is_some(),
            "plaintext job not accepted"
        );
        if i >= 10 {
            samples.push(report.elapsed);
        }
    }
    grid_samples.push(("grid, k=3, plaintext (--insecure)", stats(samples)));
    plain_grid.stop().await;

    let local = stats(local_samples);
    println!(
        "peergrid bench: trivial job (hashchain, 1 round), {} jobs per row, one at a time",
        jobs
    );
    println!("3 nodes on 127.0.0.1 in this process; times are submit -> verified result\n");
    println!("| what | p50 ms | p99 ms | mean ms | p50 vs local |");
    println!("|---|---|---|---|---|");
    println!(
        "| local sandbox run (baseline) | {} | {} | {} | 1.0x |",
        ms(local.p50),
        ms(local.p99),
        ms(local.mean)
    );
    for (label, s) in &grid_samples {
        println!(
            "| {label} | {} | {} | {} | {:.1}x |",
            ms(s.p50),
            ms(s.p99),
            ms(s.mean),
            s.p50.as_secs_f64() / local.p50.as_secs_f64()
        );
    }
    if let [(_, k1), (_, k3), (_, adaptive), _, (_, plain)] = grid_samples.as_slice() {
        println!(
            "\nTLS vs plaintext, k=3: p50 {:.2}x, p99 {:.2}x",
            k3.p50.as_secs_f64() / plain.p50.as_secs_f64(),
            k3.p99.as_secs_f64() / plain.p99.as_secs_f64(),
        );
        println!(
            "k=3 vs k=1: p50 {:.2}x, p99 {:.2}x; k=3 adaptive vs k=1: p50 {:.2}x, {:.2} executions per job",
            k3.p50.as_secs_f64() / k1.p50.as_secs_f64(),
            k3.p99.as_secs_f64() / k1.p99.as_secs_f64(),
            adaptive.p50.as_secs_f64() / k1.p50.as_secs_f64(),
            adaptive_executions as f64 / jobs as f64
        );
    }
    Ok(())
}

/// Issue 6 row 4, cold start vs warm: the Mandelbrot sample in the
/// production sandbox (compiled in the compiler child process, artifacts
/// on disk), timed compile-or-load + run: first run of a new module
/// (compile), the same module again (in-memory cache), and after a restart
/// (a fresh sandbox on the same artifact directory: disk cache). Medians;
/// returns the table as text. Blocks: call it off the async runtime.
fn cold_start() -> anyhow::Result<String> {
    use peergrid_sandbox::{Config, JobInput, Sandbox};
    const COLD: usize = 3;
    const WARM: usize = 20;
    const RESTARTS: usize = 5;
    let job = &peergrid_jobs::MANDELBROT;
    let input = JobInput {
        args: job.sample_args.iter().map(|a| a.to_string()).collect(),
        stdin: job.sample_stdin.to_vec(),
        ..JobInput::default()
    };
    let limits = peergrid_worker::node::sandbox_limits(&Limits::default());
    let compiler = super::compiler_command()?;
    let new_sandbox = |dir: &std::path::Path| -> anyhow::Result<Sandbox> {
        let mut config = Config::default();
        config.compiler = Some(compiler.clone());
        config.artifact_dir = Some(dir.to_path_buf());
        Ok(Sandbox::new(config)?)
    };
    // (compile or load, run) of one job.
    let once = |sandbox: &Sandbox| -> anyhow::Result<(Duration, Duration)> {
        let started = Instant::now();
        let module = sandbox.compile(job.wasm)?;
        let compiled = started.elapsed();
        let execution = sandbox.run(&module, &input, &limits);
        anyhow::ensure!(
            execution.result.is_ok(),
            "{}: {:?}",
            job.name,
            execution.result
        );
        Ok((compiled, started.elapsed() - compiled))
    };
    let median = |mut samples: Vec<(Duration, Duration)>| {
        samples.sort_by_key(|(c, r)| *c + *r);
        samples[samples.len() / 2]
    };
    let dir = tempfile::tempdir()?;
    let mut cold = Vec::new();
    for _ in 0..COLD {
        let fresh = tempfile::tempdir()?;
        cold.push(once(&new_sandbox(fresh.path())?)?);
    }
    let sandbox = new_sandbox(dir.path())?;
    once(&sandbox)?;
    let warm = (0..WARM)
        .map(|_| once(&sandbox))
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(sandbox);
    let mut restarted = Vec::new();
    for _ in 0..RESTARTS {
        let sandbox = new_sandbox(dir.path())?;
        restarted.push(once(&sandbox)?);
        let stats = sandbox.stats();
        anyhow::ensure!(
            stats.disk_hits == 1 && stats.compiles == 0,
            "after a restart the module was not loaded from disk: {stats:?}"
        );
    }
    let warm = median(warm);
    let total = |(c, r): (Duration, Duration)| c + r;
    let mut out = format!(
        "cold start vs warm: {} ({} bytes of wasm, sample input), production sandbox \
         (compiler child process, disk cache); medians of {COLD} / {WARM} / {RESTARTS}\n\n\
         | what | compile or load ms | run ms | total ms | total vs warm |\n|---|---|---|---|---|\n",
        job.name,
        job.wasm.len()
    );
    for (label, sample) in [
        ("first run, new module (compile)", median(cold)),
        ("same module again (memory cache)", warm),
        ("after a restart (disk cache)", median(restarted)),
    ] {
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {:.1}x |\n",
            ms(sample.0),
            ms(sample.1),
            ms(total(sample)),
            total(sample).as_secs_f64() / total(warm).as_secs_f64()
        ));
    }
    Ok(out)
}

/// `(module (memory 1) (func (export "_start")))`: the tiny module of the
/// instantiation rows (one page of memory, a `_start` that returns).
const TINY_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: [] -> []
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: an empty body
];

/// Issue 6, cheap instantiation: instantiate + call + drop of
/// [`TINY_MODULE`], on demand vs from wasmtime's pooling allocator, through
/// [`peergrid_sandbox::Sandbox::run`] (store, WASI context, limiter, fuel
/// and epoch deadline: what a job pays) and, for reference, in plain
/// wasmtime (`InstancePre::instantiate`, `_start`, drop the store; default
/// settings, no WASI). The pool is the one a node builds
/// ([`peergrid_sandbox::PoolConfig::for_slots`]). The four ways alternate
/// in blocks of 1,000 runs, so load from other processes falls on all of
/// them alike. Returns the table as text. Blocks: call it off the async
/// runtime.
fn instantiation() -> anyhow::Result<String> {
    use peergrid_sandbox::{Config, JobInput, PoolConfig, Sandbox};
    const RUNS: usize = 20_000;
    const BLOCK: usize = 1_000;
    let pool = PoolConfig::for_slots(2);

    type Run = Box<dyn FnMut() -> anyhow::Result<()>>;
    let plain_error = |e: wasmtime::Error| anyhow::anyhow!("plain wasmtime: {e:#}");
    let sandbox_way = |pool: Option<PoolConfig>, supervised: bool| -> anyhow::Result<Run> {
        let mut config = Config::default();
        config.pool = pool;
        if supervised {
            config.metering = peergrid_sandbox::Metering::Supervised;
            config.compiler = Some(super::compiler_command()?);
        }
        let sandbox = Sandbox::new(config)?;
        let module = sandbox.compile(TINY_MODULE)?;
        let limits = peergrid_worker::node::sandbox_limits(&Limits::default());
        let input = JobInput::default();
        Ok(Box::new(move || {
            let execution = sandbox.run(&module, &input, &limits);
            anyhow::ensure!(execution.result.is_ok(), "{:?}", execution.result);
            Ok(())
        }))
    };
    let plain_way = |pool: Option<PoolConfig>| -> anyhow::Result<Run> {
        let mut config = wasmtime::Config::new();
        if let Some(pool) = pool {
            let mut pooling = wasmtime::PoolingAllocationConfig::new();
            pooling
                .total_core_instances(pool.instances)
                .total_memories(pool.instances)
                .total_tables(pool.instances)
                .total_stacks(0)
                .linear_memory_keep_resident(pool.memory_keep_resident)
                .table_keep_resident(pool.table_keep_resident);
            config.allocation_strategy(pooling);
        }
        let engine = wasmtime::Engine::new(&config).map_err(plain_error)?;
        let module = wasmtime::Module::new(&engine, TINY_MODULE).map_err(plain_error)?;
        let pre = wasmtime::Linker::<()>::new(&engine)
            .instantiate_pre(&module)
            .map_err(plain_error)?;
        Ok(Box::new(move || {
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).map_err(plain_error)?;
            let start = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(plain_error)?;
            start.call(&mut store, ()).map_err(plain_error)?;
            drop(store);
            Ok(())
        }))
    };
    let mut ways: Vec<(&str, Run, Vec<Duration>)> = vec![
        (
            "sandbox `run`, on demand",
            sandbox_way(None, false)?,
            Vec::new(),
        ),
        (
            "sandbox `run`, pooled",
            sandbox_way(Some(pool), false)?,
            Vec::new(),
        ),
        ("plain wasmtime, on demand", plain_way(None)?, Vec::new()),
        ("plain wasmtime, pooled", plain_way(Some(pool))?, Vec::new()),
        // The round trip to a runner process (which runs pooled), against
        // the pooled run in this process.
        (
            "sandbox `run`, pooled, in process (fuel)",
            sandbox_way(Some(pool), false)?,
            Vec::new(),
        ),
        (
            "sandbox `run`, supervised (runner process)",
            sandbox_way(Some(pool), true)?,
            Vec::new(),
        ),
    ];
    for (_, run, samples) in &mut ways {
        for _ in 0..BLOCK {
            run()?; // warm-up: caches, lazily built state, pool slots
        }
        samples.reserve(RUNS);
    }
    for _ in 0..RUNS / BLOCK {
        for (_, run, samples) in &mut ways {
            for _ in 0..BLOCK {
                let started = Instant::now();
                run()?;
                samples.push(started.elapsed());
            }
        }
    }
    let us = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e6);
    let stats: Vec<(&str, Stats)> = ways
        .into_iter()
        .map(|(label, _, samples)| (label, stats(samples)))
        .collect();
    let mut out = format!(
        "instantiation: instantiate + call + drop of a tiny module (one memory page, `_start` \
         returns), {RUNS} runs each; pool of {} instances ({} KiB of memory and {} KiB of \
         tables kept resident per slot)\n\n\
         | what | p50 µs | p99 µs | mean µs | p50 vs the first of its pair | p99 vs the first of its pair |\n\
         |---|---|---|---|---|---|\n",
        pool.instances,
        pool.memory_keep_resident / 1024,
        pool.table_keep_resident / 1024,
    );
    for pair in stats.chunks(2) {
        let [(_, on_demand), _] = pair else { continue };
        for (label, s) in pair {
            out.push_str(&format!(
                "| {label} | {} | {} | {} | {:.2}x | {:.2}x |\n",
                us(s.p50),
                us(s.p99),
                us(s.mean),
                s.p50.as_secs_f64() / on_demand.p50.as_secs_f64(),
                s.p99.as_secs_f64() / on_demand.p99.as_secs_f64(),
            ));
        }
    }
    Ok(out)
}

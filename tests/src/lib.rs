//! Shared harness of the integration tests: start a grid of real nodes on
//! 127.0.0.1 ephemeral ports, make a scheduler for it, hostile modules, and a
//! raw gRPC client that sends bytes no well-behaved client would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod hostile;
pub mod raw;

use std::time::Duration;

use peergrid_proto::Identity;
use peergrid_sandbox::CompilerCommand;
use peergrid_worker::fault::Fault;
use peergrid_worker::{LocalGrid, NodeConfig};
use scheduler_lib::{Job, Limits, Scheduler, SchedulerConfig};

/// The compiler child process of the tests' nodes: this package's
/// `peergrid-test-compile` binary. Cargo builds it before the integration
/// tests and puts it in `target/<profile>/`, one level above the test
/// executables in `target/<profile>/deps/` (the `all` test checks this
/// against `CARGO_BIN_EXE_peergrid-test-compile`).
pub fn compiler() -> CompilerCommand {
    let name = format!("peergrid-test-compile{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} not found near {}", exe.display()));
    CompilerCommand::new(path)
}

/// [`NodeConfig::local`] compiling modules in the [`compiler`] child
/// process under the default compile budget, as `peergrid node` does.
pub fn node_config() -> NodeConfig {
    let mut c = NodeConfig::local();
    c.sandbox.compiler = Some(compiler());
    c
}

/// Starts one node per entry; `Some(fault)` makes that node misbehave.
/// Each node has two job slots.
pub async fn grid(faults: &[Option<Fault>]) -> LocalGrid {
    let configs = faults
        .iter()
        .map(|fault| {
            let mut c = node_config();
            c.slots = 2;
            c.fault = fault.clone();
            c
        })
        .collect();
    LocalGrid::start(configs).await.expect("start grid")
}

/// `n` honest nodes.
pub async fn honest_grid(n: usize) -> LocalGrid {
    grid(&vec![None; n]).await
}

/// A scheduler with a fresh identity that knows every node of `grid`.
pub fn scheduler(grid: &LocalGrid) -> Scheduler {
    Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            job_timeout: Duration::from_secs(60),
            ..SchedulerConfig::default()
        },
    )
}

/// A direct connection to one worker, authenticated over TLS as `identity`
/// (workers only run jobs signed by the identity the connection proves).
pub async fn connect_as(addr: &str, identity: &Identity) -> scheduler_lib::client::WorkerConn {
    let transport = peergrid_proto::tls::Transport::tls(identity).expect("tls");
    scheduler_lib::client::WorkerConn::connect(addr, Duration::from_secs(3), &transport, None)
        .await
        .expect("connect")
}

/// [`connect_as`], then uploads `job`'s module: ready for `execute`.
pub async fn uploaded(
    addr: &str,
    identity: &Identity,
    job: &Job,
) -> scheduler_lib::client::WorkerConn {
    let conn = connect_as(addr, identity).await;
    conn.put_module(job.module_hash(), job.module().clone())
        .await
        .expect("upload the module");
    conn
}

/// Limits small enough that hostile modules fail fast, under the default
/// wall-time budget (the fuel is for [`Budget::Fuel`](scheduler_lib::Budget)
/// variants: `Limits { budget: Budget::Fuel, ..tight_limits() }`).
pub fn tight_limits() -> Limits {
    Limits {
        budget: scheduler_lib::Budget::WallTime,
        fuel: 200_000_000,
        memory_bytes: 32 << 20,
        wall_time: Duration::from_secs(20),
        max_output_bytes: 64 << 10,
        max_stderr_bytes: 4 << 10,
    }
}

/// The sample run of an example job, as a [`Job`] with `k` replicas.
pub fn example_job(job: &peergrid_jobs::ExampleJob, k: usize) -> Job {
    Job::new(job.wasm)
        .stdin(job.sample_stdin)
        .args(job.sample_args.iter().copied())
        .replicas(k)
}

/// Opens the ledger at `path` that a just-dropped scheduler used: its
/// background ledger commits (lazy notes) may hold the file for a few more
/// milliseconds, so a `Locked` answer is retried for up to five seconds.
pub async fn reopen_ledger(path: &std::path::Path) -> scheduler_lib::Ledger {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match scheduler_lib::Ledger::open(path) {
            Err(scheduler_lib::ledger::LedgerError::Locked { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            opened => return opened.expect("reopen the ledger"),
        }
    }
}

//! `peergrid bench`, issue 6 rows 3 and 5: throughput of verified jobs with
//! 4 nodes (batch mode vs one job at a time), and the memory (RSS) of a
//! real `peergrid node` process, idle and with every slot running.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use peergrid_proto::Identity;
use peergrid_worker::LocalGrid;
use scheduler_lib::batch::{Batch, Task};
use scheduler_lib::{Job, Scheduler, SchedulerConfig};

/// Nodes of the throughput grid.
const NODES: usize = 4;
/// Job slots per node (2 cores here: more only queue).
const SLOTS: usize = 2;

/// Row 3: verified jobs per second, trivial job, fixed k=3, 4 in-process
/// nodes: `jobs` submitted one at a time, then as one batch (no ledger,
/// then with the redb ledger as `peergrid submit --inputs` keeps it, then
/// at chosen depths), with the signatures each mode made and checked per
/// job. Returns the table as text.
pub async fn throughput(jobs: usize) -> anyhow::Result<String> {
    let configs = (0..NODES)
        .map(|_| {
            let mut c = super::local_node_config()?;
            c.slots = SLOTS;
            Ok(c)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut grid = LocalGrid::start(configs).await?;
    let new_scheduler = || {
        Scheduler::new(
            Identity::generate(),
            SchedulerConfig {
                puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
                peers: grid.addrs(),
                ..SchedulerConfig::default()
            },
        )
    };
    let trivial = |i: usize| Job::new(peergrid_jobs::HASHCHAIN.wasm).stdin(format!("1 x{i}"));
    let scheduler = Arc::new(new_scheduler());
    // Warm-up: every node holds and has compiled the module.
    for i in 0..10 {
        scheduler.submit(&trivial(i).replicas(3)).await?;
    }

    // Each mode: its time and the ed25519 signatures made and checked
    // (by the submitter and the nodes: all in this process).
    let signatures = peergrid_proto::envelope::signature_counts;
    let mut rows: Vec<(String, Duration, (u64, u64))> = Vec::new();

    let before = signatures();
    let started = Instant::now();
    for i in 0..jobs {
        let report = scheduler
            .submit(&trivial(i).replicas(3).adaptive(false))
            .await?;
        anyhow::ensure!(
            report.verdict.accepted().is_some(),
            "one-at-a-time job not accepted"
        );
    }
    rows.push((
        "one at a time (submit)".into(),
        started.elapsed(),
        since(before, signatures()),
    ));

    let batch = |scheduler: Arc<Scheduler>, in_flight: Option<usize>| async move {
        let template = Job::new(peergrid_jobs::HASHCHAIN.wasm)
            .replicas(3)
            .adaptive(false);
        let tasks = (0..jobs).map(|i| Task::new(format!("1 y{i}")));
        let before = signatures();
        let started = Instant::now();
        let mut batch = Batch::new(template, tasks);
        batch.in_flight = in_flight;
        let mut run = scheduler.submit_batch(batch).await?;
        let in_flight = run.in_flight;
        while run.next().await.is_some() {}
        let elapsed = started.elapsed();
        let p = run.progress();
        anyhow::ensure!(
            p.accepted == jobs,
            "batch: only {} of {jobs} accepted: {p:?}",
            p.accepted
        );
        anyhow::Ok((elapsed, since(before, signatures()), in_flight))
    };
    let (batched, counts, in_flight) = batch(Arc::clone(&scheduler), None).await?;
    rows.push((
        format!(
            "batch (submit_batch, default depth: adapts up to {in_flight} in flight), no ledger"
        ),
        batched,
        counts,
    ));
    let ledger_dir = tempfile::tempdir()?;
    let ledger =
        scheduler_lib::Ledger::open(ledger_dir.path().join(scheduler_lib::ledger::FILE_NAME))?;
    let with_ledger = Arc::new(new_scheduler().with_ledger(ledger)?);
    let (ledgered, counts, _) = batch(with_ledger, None).await?;
    rows.push((
        "batch, default depth, with the redb ledger (as `submit --inputs`)".to_string(),
        ledgered,
        counts,
    ));
    for n in [16, 64, 256] {
        let (elapsed, counts, _) = batch(Arc::clone(&scheduler), Some(n)).await?;
        rows.push((format!("batch, {n} in flight, no ledger"), elapsed, counts));
    }
    grid.stop().await;

    let rate = |d: Duration| jobs as f64 / d.as_secs_f64();
    let sequential = rate(rows[0].1);
    let mut out = format!(
        "throughput: {jobs} trivial jobs (hashchain, 1 round), fixed k=3, {NODES} nodes x {SLOTS} \
         slots in this process, TLS; signatures: ed25519 signatures made / checked per verified \
         job, submitter and nodes together\n\n\
         | mode | verified jobs/s | executions/s | vs one at a time | signatures made / checked per job |\n\
         |---|---|---|---|---|\n"
    );
    for (label, d, (made, checked)) in rows {
        out.push_str(&format!(
            "| {label} | {:.0} | {:.0} | {:.2}x | {:.2} / {:.2} |\n",
            rate(d),
            rate(d) * 3.0,
            rate(d) / sequential,
            made as f64 / jobs as f64,
            checked as f64 / jobs as f64,
        ));
    }
    Ok(out)
}

/// Signatures (made, checked) between two readings of
/// [`peergrid_proto::envelope::signature_counts`].
fn since(before: (u64, u64), after: (u64, u64)) -> (u64, u64) {
    (after.0 - before.0, after.1 - before.1)
}

/// A `peergrid node` child process of this executable, killed on drop.
struct NodeProcess {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    fn start(slots: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut child = Command::new(exe)
            .args(["node", "--listen", "127.0.0.1:0", "--puzzle-bits", "8"])
            .args(["--slots", &slots.to_string(), "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a node process")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut addr = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(rest) = line.strip_prefix("listening on ") {
                addr = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        let addr = addr.context("the node never said where it listens")?;
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }

    /// Resident memory now, in bytes, of the node process and of its
    /// child processes (runners, a compiler) together (Linux: /proc;
    /// `None` elsewhere).
    fn rss(&self) -> Option<Rss> {
        let node = self.child.id();
        let mut children = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if parent_of(pid) == Some(node) {
                children += rss_of(pid).unwrap_or(0);
            }
        }
        Some(Rss {
            node: rss_of(node)?,
            children,
        })
    }
}

/// Resident memory of a node and of its child processes, in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    node: u64,
    children: u64,
}

impl Rss {
    /// Node and children together.
    fn total(self) -> u64 {
        self.node + self.children
    }
}

/// `VmRSS` of process `pid`, in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The parent of process `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Row 5: RSS of one `peergrid node` process and of its runner processes
/// idle (after start-up settles), their peaks while all its slots run the
/// Mandelbrot sample (sampled every 10 ms), and idle again after the jobs
/// (what the instance pool and the idle runners keep).
/// Returns the table as text, or a note where /proc is missing.
pub async fn memory() -> anyhow::Result<String> {
    let slots = 2;
    let node = NodeProcess::start(slots)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Some(idle) = node.rss() else {
        return Ok("memory: /proc/<pid>/status not readable here; RSS not measured\n".into());
    };
    let scheduler = Arc::new(Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: 8,
            peers: vec![node.addr.clone()],
            ..SchedulerConfig::default()
        },
    ));
    let job = &peergrid_jobs::MANDELBROT;
    let template = Job::new(job.wasm)
        .args(job.sample_args.iter().copied())
        .replicas(1)
        .adaptive(false);
    let tasks = (0..slots * 8).map(|_| Task::new(job.sample_stdin.to_vec()));
    let mut run = scheduler
        .submit_batch(Batch::new(template, tasks).in_flight(slots))
        .await?;
    let mut peak = idle;
    let mut peak_total = idle.total();
    let mut busy_samples = 0usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            next = run.next() => if next.is_none() { break },
            _ = ticker.tick() => {
                if run.progress().in_flight > 0 {
                    busy_samples += 1;
                }
                if let Some(rss) = node.rss() {
                    peak.node = peak.node.max(rss.node);
                    peak.children = peak.children.max(rss.children);
                    peak_total = peak_total.max(rss.total());
                }
            }
        }
    }
    let p = run.progress();
    anyhow::ensure!(
        p.accepted == slots * 8,
        "memory bench jobs not accepted: {p:?}"
    );
    // What the node keeps once the jobs are gone (with the instance pool:
    // each used slot's resident remainder, the rest was given back).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node.rss().unwrap_or_default();
    // Idle runners stop after `runner_idle_time` (30 s).
    tokio::time::sleep(Duration::from_secs(33)).await;
    let later = node.rss().unwrap_or_default();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(format!(
        "memory: one `peergrid node` process ({slots} slots, instance pool) and its runner \
         processes, RSS from /proc (peaks of each column taken separately)\n\n\
         | state | node MiB | runners MiB | total MiB |\n|---|---|---|---|\n\
         | idle, 2 s after start | {:.1} | {:.1} | {:.1} |\n\
         | peak while {slots} slots run {} ({} jobs, {busy_samples} samples) | {:.1} | {:.1} | {:.1} |\n\
         | idle again, 2 s after the jobs | {:.1} | {:.1} | {:.1} |\n\
         | idle, 35 s after the jobs (idle runners stopped) | {:.1} | {:.1} | {:.1} |\n",
        mib(idle.node),
        mib(idle.children),
        mib(idle.total()),
        job.name,
        slots * 8,
        mib(peak.node),
        mib(peak.children),
        mib(peak_total),
        mib(after.node),
        mib(after.children),
        mib(after.total()),
        mib(later.node),
        mib(later.children),
        mib(later.total())
    ))
}

//! `peergrid demo`: a local grid with one cheater. The example jobs are
//! verified by quorum, the cheater is caught by its own signature and
//! banned, and once the honest nodes have earned trust, jobs run on fewer
//! replicas. Everything is real: nodes on 127.0.0.1 ephemeral ports, gRPC,
//! signatures, wasmtime.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use peergrid_proto::{Identity, PeerId};
use peergrid_worker::fault::Fault;
use peergrid_worker::{GridNode, LocalGrid, NodeConfig};
use scheduler_lib::{Budget, Job, JobFailure, Limits, Scheduler, SchedulerConfig};

use super::args::DemoArgs;
use super::report;

/// Quick jobs run to show trust being earned.
const TRUST_JOBS: usize = 40;

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.honest >= 2, "--honest must be at least 2");
    anyhow::ensure!(
        args.replicas >= 1 && args.replicas <= args.honest + 1,
        "--replicas must be between 1 and the number of nodes ({})",
        args.honest + 1
    );
    let total = args.honest + 1;
    println!(
        "peergrid demo: {total} nodes on 127.0.0.1, one of them a cheater; jobs start on {} replicas\n",
        args.replicas
    );
    let compiler = super::compiler_command()?;
    let mut configs: Vec<NodeConfig> = (0..total)
        .map(|_| {
            let mut c = NodeConfig::local();
            c.slots = 1;
            // As `peergrid node`: compile in a budgeted child process.
            c.sandbox.compiler = Some(compiler.clone());
            c
        })
        .collect();
    let cheater_index = total - 1;
    configs[cheater_index].fault = Some(Fault::FlipLastByte);
    // Node 1 starts alone; every other node is given only node 1's address
    // and learns the rest by gossip.
    let mut nodes: Vec<GridNode> = Vec::with_capacity(total);
    for mut config in configs {
        config.gossip.bootstrap = nodes
            .first()
            .map(|n| n.addr.to_string())
            .into_iter()
            .collect();
        nodes.push(
            GridNode::start(config)
                .await
                .context("starting the local grid")?,
        );
    }
    let mut grid = LocalGrid { nodes };
    let started = std::time::Instant::now();
    while !grid.nodes.iter().all(|n| {
        n.node
            .gossip()
            .is_some_and(|g| g.members().len() == total - 1)
    }) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "the grid did not converge by gossip"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "gossip: every node learned the other {} from node-1's address alone in {:.1} s",
        total - 1,
        started.elapsed().as_secs_f64()
    );
    let names: HashMap<PeerId, String> = grid
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.peer_id(), format!("node-{}", i + 1)))
        .collect();
    let order: Vec<PeerId> = grid.nodes.iter().map(|n| n.peer_id()).collect();
    for (i, n) in grid.nodes.iter().enumerate() {
        let role = if i == cheater_index {
            "CHEATER: flips the last byte of every output, and signs it"
        } else {
            "honest"
        };
        println!(
            "  node-{}  {}  peer {}  {role}",
            i + 1,
            n.addr,
            n.peer_id().short()
        );
    }
    println!();

    let mut config = SchedulerConfig {
        puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
        // The submitter, too, is given only node-1's address.
        peers: vec![grid.nodes[0].addr.to_string()],
        job_timeout: Duration::from_secs(120),
        seed: Some(2026),
        ..SchedulerConfig::default()
    };
    // ε = 1e-3 lets trust be earned within a demo-sized run; the default is 1e-4.
    config.adaptive.epsilon = 1e-3;
    let scheduler = Scheduler::new(Identity::generate(), config);
    let name =
        |peer: &PeerId, _addr: &str| names.get(peer).cloned().unwrap_or_else(|| peer.short());

    println!("== 1. the example jobs, verified by quorum");
    let mut all_correct = true;
    for example in peergrid_jobs::all() {
        println!(
            "-- {}: {}",
            example.name,
            example.description.split(';').next().unwrap_or("")
        );
        let job = Job::new(example.wasm)
            .stdin(example.sample_stdin)
            .args(example.sample_args.iter().copied())
            .replicas(args.replicas);
        let report = scheduler.submit(&job).await?;
        print!("{}", report::summary(&report, &name));
        match report.verdict.accepted() {
            Some(output) => {
                for line in String::from_utf8_lossy(&output.stdout).lines().take(24) {
                    println!("  | {line}");
                }
                let correct = output.result.is_ok() && output.stdout == example.sample_stdout;
                all_correct &= correct;
                println!(
                    "  accepted output {} the known answer",
                    if correct { "matches" } else { "DOES NOT match" }
                );
            }
            None => all_correct = false,
        }
        println!("  trust now: {}\n", trust_line(&scheduler, &order, &names));
    }

    println!("== 2. trust is earned: {TRUST_JOBS} quick jobs (hash chains)");
    let mut executions = Vec::with_capacity(TRUST_JOBS);
    let mut cheater_placed_after_ban = 0;
    let cheater = order[cheater_index];
    for i in 0..TRUST_JOBS {
        let job = Job::new(peergrid_jobs::HASHCHAIN.wasm)
            .stdin(format!("1000 demo job {i}").into_bytes())
            .replicas(args.replicas);
        let report = scheduler.submit(&job).await?;
        all_correct &= report.verdict.accepted().is_some_and(|o| o.result.is_ok());
        let placed = report.verdict.involved_workers();
        if placed.contains(&cheater) && scheduler.is_banned(&cheater) {
            cheater_placed_after_ban += 1;
        }
        executions.push(placed.len());
    }
    for (n, chunk) in executions.chunks(10).enumerate() {
        let mean = chunk.iter().sum::<usize>() as f64 / chunk.len() as f64;
        println!(
            "  jobs {:>2}-{:<2}  {:.1} executions per job  {}",
            n * 10 + 1,
            n * 10 + chunk.len(),
            mean,
            "#".repeat((mean * 10.0).round() as usize)
        );
    }
    println!(
        "  (a job on trusted workers runs alone, except a random share re-verified in secret)"
    );
    println!("  trust now: {}\n", trust_line(&scheduler, &order, &names));

    println!("== 3. a job that cannot finish: primes below 2 billion on 50 million instructions");
    let job = Job::new(peergrid_jobs::PRIMES.wasm)
        .stdin(b"2000000000".to_vec())
        // A fuel budget (`--fuel`): deterministic, so the workers agree on
        // where it ran out. Under the default wall-time budget it would
        // simply run until its deadline.
        .limits(Limits {
            budget: Budget::Fuel,
            fuel: 50_000_000,
            ..Limits::default()
        })
        .replicas(args.replicas);
    let report = scheduler.submit(&job).await?;
    print!("{}", report::summary(&report, &name));
    if let Some(output) = report.verdict.accepted()
        && output.result == Err(JobFailure::OutOfFuel)
    {
        println!(
            "  | (no output: the job ran out of fuel at the same instruction wherever it ran)"
        );
    }
    println!();

    println!("== who is trusted, who was caught");
    for (peer, record) in scheduler.reputations() {
        let planted = if peer == cheater {
            "  (the planted cheater)"
        } else {
            ""
        };
        println!(
            "  {:<7} peer {}  trust {:.3}  agreed {:>2}  dissented {}  spot-checks {}/{}  {}{planted}",
            names.get(&peer).map_or("?", String::as_str),
            peer.short(),
            record.trust(),
            record.agreed,
            record.dissented,
            record.spot_passed,
            record.spot_passed + record.spot_failed,
            if record.banned { "BANNED" } else { "trusted" },
        );
    }
    grid.stop().await;
    let caught = scheduler.is_banned(&cheater) && cheater_placed_after_ban == 0;
    if all_correct && caught {
        println!(
            "\nevery accepted result is correct; the cheater was banned and got no work after it"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "\nsomething went wrong: see above (correct: {all_correct}, cheater banned: {caught})"
        );
        Ok(ExitCode::from(super::EXIT_ERROR))
    }
}

/// `node-1 0.912  node-2 …` in node order; `—` for a node not seen yet.
fn trust_line(scheduler: &Scheduler, order: &[PeerId], names: &HashMap<PeerId, String>) -> String {
    let records: HashMap<PeerId, _> = scheduler.reputations().into_iter().collect();
    order
        .iter()
        .map(|p| {
            let name = names.get(p).map_or("?", String::as_str);
            match records.get(p) {
                Some(r) if r.banned => format!("{name} {:.3} BANNED", r.trust()),
                Some(r) => format!("{name} {:.3}", r.trust()),
                None => format!("{name} —"),
            }
        })
        .collect::<Vec<_>>()
        .join("   ")
}

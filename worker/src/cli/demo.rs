//! `peergrid demo`: a local grid with one cheater, the example jobs, and the
//! verdicts that catch it. Everything is real: nodes on 127.0.0.1 ephemeral
//! ports, gRPC, signatures, wasmtime.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use peergrid_proto::{Identity, PeerId};
use peergrid_worker::fault::Fault;
use peergrid_worker::{LocalGrid, NodeConfig};
use scheduler_lib::{Job, JobFailure, Limits, Scheduler, SchedulerConfig, Verdict};

use super::args::DemoArgs;
use super::report;

/// Per-node tally of the demo.
#[derive(Default)]
struct Score {
    agreed: usize,
    dissented: usize,
}

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
        "peergrid demo: {total} nodes on 127.0.0.1, one of them a cheater; every job runs on {} of them\n",
        args.replicas
    );

    let mut configs: Vec<NodeConfig> = (0..total)
        .map(|_| {
            let mut c = NodeConfig::new("");
            c.slots = 1;
            c
        })
        .collect();
    let cheater_index = total - 1;
    configs[cheater_index].fault = Some(Fault::FlipLastByte);
    let mut grid = LocalGrid::start(configs)
        .await
        .context("starting the local grid")?;

    let names: HashMap<PeerId, String> = grid
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.peer_id(), format!("node-{}", i + 1)))
        .collect();
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

    let scheduler = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            peers: grid.addrs(),
            job_timeout: Duration::from_secs(120),
            ..SchedulerConfig::default()
        },
    );
    let name =
        |peer: &PeerId, _addr: &str| names.get(peer).cloned().unwrap_or_else(|| peer.short());

    let mut scores: HashMap<PeerId, Score> = HashMap::new();
    let mut all_correct = true;
    let mut jobs: Vec<(String, Job, Option<&[u8]>)> = peergrid_jobs::all()
        .iter()
        .map(|j| {
            (
                format!(
                    "{}: {}",
                    j.name,
                    j.description.split(';').next().unwrap_or(j.name)
                ),
                Job::new(j.wasm)
                    .stdin(j.sample_stdin)
                    .args(j.sample_args.iter().copied())
                    .replicas(args.replicas),
                Some(j.sample_stdout),
            )
        })
        .collect();
    jobs.push((
        "primes below 2 billion with a budget of only 50 million instructions".into(),
        Job::new(peergrid_jobs::PRIMES.wasm)
            .stdin(b"2000000000".to_vec())
            .limits(Limits {
                fuel: 50_000_000,
                ..Limits::default()
            })
            .replicas(args.replicas),
        None,
    ));

    for (title, job, expected) in &jobs {
        println!("== {title}");
        let report = scheduler.submit(job).await?;
        print!("{}", report::summary(&report, &name));
        match &report.verdict {
            Verdict::Accepted {
                output,
                agreeing_workers,
                dissenting_workers,
                ..
            } => {
                for r in agreeing_workers {
                    scores.entry(r.worker).or_default().agreed += 1;
                }
                for r in dissenting_workers {
                    scores.entry(r.worker).or_default().dissented += 1;
                }
                match &output.result {
                    Ok(()) => {
                        let text = String::from_utf8_lossy(&output.stdout);
                        for line in text.lines().take(24) {
                            println!("  | {line}");
                        }
                    }
                    Err(JobFailure::OutOfFuel) => {
                        println!(
                            "  | (no output: every agreeing worker ran out of fuel at the same instruction)"
                        )
                    }
                    Err(e) => println!("  | job failed: {e}"),
                }
                if let Some(expected) = expected {
                    let correct = output.result.is_ok() && output.stdout == *expected;
                    all_correct &= correct;
                    println!(
                        "  accepted output {} the known answer",
                        if correct { "matches" } else { "DOES NOT match" }
                    );
                }
            }
            Verdict::NoQuorum { .. } => all_correct = false,
        }
        println!();
    }

    println!("== who was caught");
    for (i, n) in grid.nodes.iter().enumerate() {
        let s = scores.remove(&n.peer_id()).unwrap_or_default();
        let verdict = if s.dissented > 0 {
            "CAUGHT CHEATING"
        } else if s.agreed + s.dissented == 0 {
            "not picked"
        } else {
            "honest"
        };
        println!(
            "  node-{}  peer {}  agreed {}  dissented {}  {verdict}{}",
            i + 1,
            n.peer_id().short(),
            s.agreed,
            s.dissented,
            if i == cheater_index {
                "  (the planted cheater)"
            } else {
                ""
            }
        );
    }
    grid.stop().await;
    if all_correct {
        println!("\nevery accepted result is correct, although one node lied on every job it ran");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nsome job was not accepted with the right answer (see above)");
        Ok(ExitCode::from(super::EXIT_ERROR))
    }
}

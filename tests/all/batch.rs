//! Batches through the library: one module, many inputs, pipelined over a
//! real 3-node grid; every input verified once, results streamed as they
//! finish, progress that adds up, and a finished batch resumed from the
//! ledger without running anything again.

use std::collections::HashSet;
use std::sync::Arc;

use peergrid_jobs::PRIMES;
use peergrid_tests::{honest_grid, scheduler};
use scheduler_lib::batch::{Batch, Task, TaskOutcome};
use scheduler_lib::{Job, JobFailure, Ledger};

/// What the primes job prints for `stdin` (its native build), or the exit
/// code it fails with.
fn expected(stdin: &str) -> Result<Vec<u8>, i32> {
    job_primes::run(stdin.as_bytes())
        .map(String::into_bytes)
        .map_err(|_| 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_verifies_every_input_once_and_resumes_from_the_ledger() {
    let grid = honest_grid(3).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.redb")).unwrap();
    let scheduler = Arc::new(scheduler(&grid).with_ledger(ledger.clone()).unwrap());
    // 23 numbers and one input the job rejects (exit code 2): a quorum
    // agrees on that failure too.
    let mut inputs: Vec<String> = (1..=23).map(|i| (i * 7919).to_string()).collect();
    inputs.insert(11, "not a number".into());
    let tasks = inputs.iter().map(|s| Task::new(s.clone().into_bytes()));
    let batch = Batch::new(Job::new(PRIMES.wasm).replicas(3), tasks).in_flight(3);

    let mut run = scheduler.submit_batch(batch).await.unwrap();
    assert_eq!((run.total, run.in_flight), (24, 3));
    let mut seen = HashSet::new();
    while let Some(result) = run.next().await {
        assert!(seen.insert(result.index), "input {} twice", result.index);
        assert!(!result.from_ledger);
        let p = run.progress();
        assert_eq!(p.total, p.done() + p.in_flight + p.queued, "{p:?}");
        assert!(p.in_flight <= 3, "{p:?}");
        match (expected(&inputs[result.index]), &result.outcome) {
            (
                Ok(out),
                TaskOutcome::Accepted {
                    result: Ok(()),
                    stdout,
                    fuel_used,
                    ..
                },
            ) => {
                assert_eq!(stdout, &out, "input {}", result.index);
                // The default wall-time budget counts no fuel.
                assert_eq!(*fuel_used, 0);
            }
            (
                Err(code),
                TaskOutcome::Accepted {
                    result: Err(failure),
                    stderr,
                    ..
                },
            ) => {
                assert_eq!(failure, &JobFailure::ExitCode(code));
                assert!(String::from_utf8_lossy(stderr).contains("job-primes"));
            }
            (want, got) => panic!("input {}: expected {want:?}, got {got:?}", result.index),
        }
        assert_eq!(result.label, result.index.to_string());
    }
    assert_eq!(seen.len(), 24);
    let p = run.progress();
    assert_eq!(
        (p.accepted, p.job_failed, p.in_flight, p.queued),
        (23, 1, 0, 0)
    );

    // The ledger lists the batch's jobs in input order, each decided.
    let record = ledger.batch(&run.id).unwrap().expect("batch recorded");
    assert_eq!(record.job_ids.len(), 24);
    let jobs = |ledger: &Ledger| -> Vec<peergrid_proto::pb::JobRecord> {
        record
            .job_ids
            .iter()
            .map(|id| {
                ledger
                    .job(&id.as_slice().try_into().unwrap())
                    .unwrap()
                    .unwrap()
            })
            .collect()
    };
    for job in jobs(&ledger) {
        assert_eq!(job.state(), peergrid_proto::pb::JobState::Accepted);
    }
    let placements: usize = jobs(&ledger).iter().map(|j| j.placements.len()).sum();

    // Resuming the finished batch reports every result from the ledger and
    // places nothing.
    let mut again = scheduler.resume_batch(run.id, None).await.unwrap();
    let mut resumed = 0;
    while let Some(result) = again.next().await {
        assert!(result.from_ledger, "input {} ran again", result.index);
        if let Ok(out) = expected(&inputs[result.index]) {
            assert!(
                matches!(&result.outcome, TaskOutcome::Accepted { stdout, .. } if *stdout == out)
            );
        }
        resumed += 1;
    }
    assert_eq!(resumed, 24);
    assert_eq!(again.progress().from_ledger, 24);
    let after: usize = jobs(&ledger).iter().map(|j| j.placements.len()).sum();
    assert_eq!(
        after, placements,
        "resuming a finished batch placed replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_batch_is_refused_before_anything_is_recorded() {
    let grid = honest_grid(1).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.redb")).unwrap();
    let scheduler = Arc::new(scheduler(&grid).with_ledger(ledger.clone()).unwrap());
    let err = scheduler
        .submit_batch(Batch::new(Job::new(PRIMES.wasm), Vec::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no inputs"), "{err}");
    assert!(ledger.batches().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_for_workers_to_appear_instead_of_failing() {
    use peergrid_worker::GridNode;
    use std::time::{Duration, Instant};
    // One node: a strict majority of 3 needs two. The batch starts anyway.
    let first = GridNode::start(peergrid_tests::node_config())
        .await
        .unwrap();
    let scheduler = Arc::new(scheduler_lib::Scheduler::new(
        peergrid_proto::Identity::generate(),
        scheduler_lib::SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: vec![first.addr.to_string()],
            job_timeout: Duration::from_secs(60),
            discovery_ttl: Duration::from_millis(100),
            ..scheduler_lib::SchedulerConfig::default()
        },
    ));
    let tasks = (1..=4).map(|n| Task::new((n * 1000).to_string().into_bytes()));
    let batch = Batch::new(Job::new(PRIMES.wasm).replicas(3), tasks).in_flight(2);
    let started = Instant::now();
    let mut run = scheduler.submit_batch(batch).await.unwrap();
    let mut progress = run.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        progress.wait_for(|p| p.waiting > 0),
    )
    .await
    .expect("the tasks wait for workers")
    .unwrap();
    // Two more nodes join through the first; gossip tells the scheduler.
    let mut more = Vec::new();
    for _ in 0..2 {
        let mut config = peergrid_tests::node_config();
        config.gossip.bootstrap = vec![first.addr.to_string()];
        more.push(GridNode::start(config).await.unwrap());
    }
    let mut accepted = 0;
    while let Some(result) = run.next().await {
        assert!(result.outcome.is_success(), "{:?}", result.outcome);
        accepted += 1;
    }
    assert_eq!(accepted, 4);
    assert_eq!(run.progress().waiting, 0);
    assert!(started.elapsed() > Duration::from_millis(100));
}

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
                assert!(*fuel_used > 0);
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

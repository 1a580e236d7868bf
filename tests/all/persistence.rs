//! The submitter's ledger: every job, placement, result and verdict lands in
//! redb, and a job whose submitter died mid-flight is resumed to a verdict.

use std::sync::Arc;
use std::time::Duration;

use peergrid_proto::{Identity, pb};
use peergrid_tests::{example_job, honest_grid};
use scheduler_lib::{Job, Ledger, Scheduler, SchedulerConfig, Verdict};

fn scheduler_with(
    grid: &peergrid_worker::LocalGrid,
    identity: Identity,
    ledger: Ledger,
) -> Scheduler {
    Scheduler::new(
        identity,
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            job_timeout: Duration::from_secs(60),
            ..SchedulerConfig::default()
        },
    )
    .with_ledger(ledger)
    .expect("load reputations")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_job_is_in_the_ledger_with_its_evidence() {
    let grid = honest_grid(3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(scheduler_lib::ledger::FILE_NAME);
    let sched = scheduler_with(&grid, Identity::generate(), Ledger::open(&path).unwrap());
    let report = sched
        .submit(&example_job(&peergrid_jobs::PRIMES, 3))
        .await
        .unwrap();
    assert!(report.verdict.accepted().is_some());
    drop(sched);

    let ledger = peergrid_tests::reopen_ledger(&path).await;
    let record = ledger.job(&report.job_id).unwrap().expect("job recorded");
    assert_eq!(record.state(), pb::JobState::Accepted);
    assert_eq!(record.placements.len(), 3);
    assert_eq!(record.results.len(), 3);
    let verdict = record.verdict.unwrap();
    assert_eq!(verdict.output, peergrid_jobs::PRIMES.sample_stdout);
    assert_eq!(verdict.agreeing_peers.len(), 3);
    let certificate =
        scheduler_lib::Certificate::decode(&verdict.certificate).expect("certificate stored");
    let checked = certificate
        .verify(&scheduler_lib::VerifyPolicy::default())
        .unwrap();
    assert_eq!(checked.signers.len(), 3);
    assert!(certificate.matches_output(&verdict.output));
    assert!(ledger.unfinished().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_submitter_died_mid_flight_is_resumed_to_a_verdict() {
    let grid = honest_grid(3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(scheduler_lib::ledger::FILE_NAME);
    let identity = Identity::generate();
    let sched = Arc::new(scheduler_with(
        &grid,
        identity.clone(),
        Ledger::open(&path).unwrap(),
    ));
    // About a second of work, so the submitter dies while replicas run.
    let job = Job::new(peergrid_jobs::HASHCHAIN.wasm)
        .stdin(b"1500000 resume me".to_vec())
        .replicas(3);
    let task = tokio::spawn({
        let sched = Arc::clone(&sched);
        async move { sched.submit(&job).await }
    });
    // Wait until the placements are recorded, then kill the submitter.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let busy: usize = grid
            .nodes
            .iter()
            .map(|n| n.node.total_slots() - n.node.free_slots())
            .sum();
        if busy == 3 {
            break;
        }
    }
    task.abort();
    let _ = task.await;
    drop(sched); // releases the ledger file

    let ledger = peergrid_tests::reopen_ledger(&path).await;
    let unfinished = ledger.unfinished().unwrap();
    assert_eq!(unfinished.len(), 1, "the interrupted job is not lost");
    assert_eq!(unfinished[0].state(), pb::JobState::Running);
    assert_eq!(unfinished[0].placements.len(), 3);

    let restarted = scheduler_with(&grid, identity, ledger);
    let resumed = restarted.resume_unfinished().await.unwrap();
    assert_eq!(resumed.len(), 1);
    let (job_id, report) = &resumed[0];
    let report = report.as_ref().unwrap();
    assert_eq!(*job_id, report.job_id, "same job id after the restart");
    let Verdict::Accepted { output, .. } = &report.verdict else {
        panic!("{:?}", report.verdict)
    };
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("rounds: 1500000"));
    let record = restarted.ledger().unwrap().job(job_id).unwrap().unwrap();
    assert_eq!(record.state(), pb::JobState::Accepted);
    assert!(
        record
            .failures
            .iter()
            .any(|f| f.error.contains("submitter stopped")),
        "{:?}",
        record.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_says_what_it_waits_for_in_the_ledger() {
    let grid = honest_grid(3).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join(scheduler_lib::ledger::FILE_NAME)).unwrap();
    let sched = Arc::new(scheduler_with(&grid, Identity::generate(), ledger.clone()));
    // Long enough (hundreds of ms per replica) to be seen while it runs.
    let job = Job::new(peergrid_jobs::PRIMES.wasm)
        .stdin(b"30000000".to_vec())
        .replicas(3)
        .adaptive(false);
    let running = tokio::spawn({
        let sched = Arc::clone(&sched);
        async move { sched.submit(&job).await }
    });
    let mut seen = Vec::new();
    while !running.is_finished() {
        for summary in ledger.jobs().unwrap() {
            let record = ledger.job(&summary.job_id).unwrap().unwrap();
            if matches!(
                record.state(),
                pb::JobState::Submitted | pb::JobState::Running
            ) && seen.last() != Some(&record.state_reason)
            {
                seen.push(record.state_reason.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = running.await.unwrap().unwrap();
    assert!(report.verdict.accepted().is_some());
    assert!(
        seen.iter()
            .any(|s| s == "3 replicas running; waiting for the first result"),
        "{seen:?}"
    );
    let record = ledger.job(&report.job_id).unwrap().unwrap();
    assert_eq!(record.state(), pb::JobState::Accepted);
    assert!(
        record.state_reason.contains("3 workers agreed"),
        "{}",
        record.state_reason
    );
}

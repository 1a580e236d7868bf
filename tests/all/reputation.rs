//! Reputation on the live grid: a cheater is caught and banned within a
//! bounded number of jobs and gets no more work; colluders that are a
//! minority of the placed replicas never win; a restarted submitter still
//! knows whom it banned; trusted workers run jobs on fewer replicas.

use std::time::Duration;

use peergrid_proto::Identity;
use peergrid_tests::{grid, scheduler};
use peergrid_worker::fault::Fault;
use scheduler_lib::{Job, Ledger, Scheduler, SchedulerConfig, Verdict};

/// A quick job with input `i`, so each job is a different computation.
fn quick_job(i: usize, k: usize) -> Job {
    Job::new(peergrid_jobs::HASHCHAIN.wasm)
        .stdin(format!("100 job {i}").into_bytes())
        .replicas(k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheater_is_banned_within_two_jobs_and_gets_no_more_work() {
    let grid = grid(&[None, None, None, Some(Fault::FlipLastByte)]).await;
    let cheater = grid.nodes[3].peer_id();
    let sched = scheduler(&grid);
    let mut banned_after = None;
    for i in 0..8 {
        let report = sched.submit(&quick_job(i, 3)).await.unwrap();
        let output = report.verdict.accepted().expect("accepted");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("rounds: 100\n"));
        assert!(
            !report
                .verdict
                .runs()
                .any(|r| r.worker == cheater && !report.verdict.dissenters().contains(&cheater)),
            "the cheater never agrees"
        );
        if let Some(at) = banned_after {
            assert!(i > at);
            assert!(
                !report.verdict.involved_workers().contains(&cheater),
                "job {i}: a banned peer got work"
            );
        } else if sched.is_banned(&cheater) {
            banned_after = Some(i);
        }
    }
    let at = banned_after.expect("the cheater was banned");
    assert!(at <= 1, "banned only after job {at}");
    let record = sched
        .reputations()
        .into_iter()
        .find(|(p, _)| *p == cheater)
        .unwrap()
        .1;
    assert!(record.banned);
    assert!(record.trust() < 0.1, "trust {}", record.trust());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colluders_that_are_a_minority_of_the_replicas_never_win() {
    let lie = Some(Fault::WrongOutput(b"rounds: 100\nsha256: 0000\n".to_vec()));
    let grid = grid(&[None, None, None, lie.clone(), lie]).await;
    let colluders = [grid.nodes[3].peer_id(), grid.nodes[4].peer_id()];
    let sched = scheduler(&grid);
    for i in 0..6 {
        let job = quick_job(i, 5);
        let report = sched.submit(&job).await.unwrap();
        let Verdict::Accepted {
            output,
            agreeing_workers,
            ..
        } = &report.verdict
        else {
            panic!("job {i}: {:?}", report.verdict);
        };
        assert_ne!(
            output.stdout, b"rounds: 100\nsha256: 0000\n",
            "job {i}: the colluders' answer won"
        );
        assert!(
            agreeing_workers
                .iter()
                .all(|r| !colluders.contains(&r.worker))
        );
    }
    for c in colluders {
        assert!(
            sched.is_banned(&c),
            "a colluder that signed wrong answers is banned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_submitter_remembers_whom_it_trusts_and_whom_it_banned() {
    let grid = grid(&[None, None, None, Some(Fault::FlipLastByte)]).await;
    let cheater = grid.nodes[3].peer_id();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(scheduler_lib::ledger::FILE_NAME);
    let identity = Identity::generate();
    let make = |ledger: Ledger| {
        Scheduler::new(
            identity.clone(),
            SchedulerConfig {
                puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
                peers: grid.addrs(),
                job_timeout: Duration::from_secs(60),
                ..SchedulerConfig::default()
            },
        )
        .with_ledger(ledger)
        .unwrap()
    };
    let before = {
        let sched = make(Ledger::open(&path).unwrap());
        for i in 0..4 {
            sched.submit(&quick_job(i, 3)).await.unwrap();
        }
        assert!(sched.is_banned(&cheater));
        sched.reputations()
    };
    // Dropped: the ledger file is closed, as after kill -9 (every verdict
    // and reputation change was committed before submit returned).
    let sched = make(peergrid_tests::reopen_ledger(&path).await);
    assert!(sched.is_banned(&cheater), "the ban survived the restart");
    assert_eq!(sched.reputations(), before, "every record survived");
    let report = sched.submit(&quick_job(99, 3)).await.unwrap();
    assert!(report.verdict.accepted().is_some());
    assert!(!report.verdict.involved_workers().contains(&cheater));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_workers_are_trusted_jobs_run_on_fewer_replicas() {
    let grid = grid(&[None, None, None]).await;
    // ε = 1e-2 so that trust is earned within a test-sized run (the default
    // 1e-4 needs tens of agreements per worker; see ALGORITHM.md).
    let mut config = SchedulerConfig {
        puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
        peers: grid.addrs(),
        job_timeout: Duration::from_secs(60),
        seed: Some(7),
        ..SchedulerConfig::default()
    };
    config.adaptive.epsilon = 1e-2;
    let sched = Scheduler::new(Identity::generate(), config);
    let mut executions = Vec::new();
    for i in 0..40 {
        let report = sched.submit(&quick_job(i, 3)).await.unwrap();
        assert!(report.verdict.accepted().is_some(), "job {i}");
        executions.push(report.verdict.involved_workers().len());
    }
    assert_eq!(executions[0], 3, "unknown workers: k=3 ({executions:?})");
    let last: usize = executions[30..].iter().sum();
    assert!(
        last <= 15,
        "trusted workers: most jobs on one replica ({executions:?})"
    );
    assert!(
        sched.reputations().iter().all(|(_, r)| !r.banned),
        "no honest worker banned"
    );
}

//! Workers that vanish: a node killed mid-job is replaced by another, and
//! an unreachable peer is reported, not fatal.

use std::time::Duration;

use peergrid_proto::Identity;
use peergrid_tests::{honest_grid, scheduler};
use scheduler_lib::{Job, Scheduler, SchedulerConfig, SchedulerError, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_job_is_replaced() {
    let mut grid = honest_grid(4).await;
    let sched = std::sync::Arc::new(scheduler(&grid));
    // About a second of work per replica.
    let job = Job::new(peergrid_jobs::HASHCHAIN.wasm)
        .stdin(b"1500000 slow".to_vec())
        .replicas(3);
    let submit = tokio::spawn({
        let sched = std::sync::Arc::clone(&sched);
        async move { sched.submit(&job).await }
    });
    // Wait until three nodes are busy, then kill two of them: the survivor
    // alone is no majority, so the job must be re-placed on the fourth node.
    let victims = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let busy: Vec<usize> = (0..4)
            .filter(|&i| {
                grid.nodes[i]
                    .node
                    .stats()
                    .jobs_run
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == 0
                    && busy_slots(&grid, i) > 0
            })
            .collect();
        if busy.len() == 3 {
            break [busy[0], busy[1]];
        }
    };
    let victim_ids = victims.map(|v| grid.nodes[v].peer_id());
    for v in victims {
        grid.nodes[v].kill();
    }
    let report = tokio::time::timeout(Duration::from_secs(60), submit)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Verdict::Accepted {
        output,
        agreeing_workers,
        failed_workers,
        ..
    } = &report.verdict
    else {
        panic!(
            "expected acceptance after replacement, got {:?}",
            report.verdict
        );
    };
    assert_eq!(output.result, Ok(()), "the job itself completes");
    assert_eq!(
        agreeing_workers.len(),
        2,
        "a replacement replica filled the slot"
    );
    for victim in victim_ids {
        assert!(agreeing_workers.iter().all(|r| r.worker != victim));
        assert!(failed_workers.iter().any(|f| f.worker == Some(victim)));
    }
}

fn busy_slots(grid: &peergrid_worker::LocalGrid, i: usize) -> usize {
    let node = &grid.nodes[i].node;
    node.total_slots() - node.free_slots()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_reachable_workers_is_a_clear_error() {
    let grid = honest_grid(2).await;
    let mut peers = grid.addrs();
    peers.push("127.0.0.1:1".into()); // nothing listens there
    let sched = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers,
            connect_timeout: Duration::from_secs(2),
            ..SchedulerConfig::default()
        },
    );
    let err = sched
        .submit(&Job::new(peergrid_jobs::PRIMES.wasm).replicas(5))
        .await
        .unwrap_err();
    let SchedulerError::NotEnoughWorkers {
        needed,
        usable,
        reasons,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*needed, *usable), (3, 2));
    assert!(reasons.iter().any(|r| r.contains("127.0.0.1:1")), "{err}");
}

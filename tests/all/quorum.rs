//! Quorum end to end: honest grids agree, one liar is outvoted and named,
//! two liars give no quorum.

use peergrid_tests::{example_job, grid, honest_grid, scheduler};
use peergrid_worker::fault::Fault;
use peergrid_worker::local_run::run_locally;
use scheduler_lib::{Budget, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_honest_nodes_agree_with_the_local_run() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    // Each example under both budget kinds: uninstrumented in runner
    // processes (the default) and counting fuel in the node's process.
    let budgets = [Budget::WallTime, Budget::Fuel];
    for (example, budget) in peergrid_jobs::all()
        .into_iter()
        .flat_map(|e| budgets.map(|b| (e, b)))
    {
        // A fixed k = 3: by the fourth example the nodes have earned enough
        // trust for adaptive replication to run a job on fewer replicas.
        let mut job = example_job(example, 3).adaptive(false);
        job.limits.budget = budget;
        let report = sched.submit(&job).await.unwrap();
        let Verdict::Accepted {
            output,
            agreeing_workers,
            dissenting_workers,
            failed_workers,
        } = &report.verdict
        else {
            panic!(
                "{}: expected acceptance, got {:?}",
                example.name, report.verdict
            );
        };
        assert_eq!(agreeing_workers.len(), 3, "{}", example.name);
        assert!(dissenting_workers.is_empty() && failed_workers.is_empty());
        assert_eq!(output.result, Ok(()));

        let (module, args, stdin, limits) = (
            job.module().to_vec(),
            job.args.clone(),
            job.stdin.clone(),
            job.limits,
        );
        let local = tokio::task::spawn_blocking(move || {
            run_locally(&module, args, stdin, &limits, &[0; 32], 0)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(local.result, Ok(()));
        assert_eq!(
            output.stdout, local.stdout,
            "{}: grid and local run differ",
            example.name
        );
        assert_eq!(output.stdout, example.sample_stdout, "{}", example.name);
        match budget {
            Budget::Fuel => {
                assert!(output.fuel_used > 0, "{}", example.name);
                assert_eq!(output.fuel_used, local.fuel_used, "fuel is deterministic");
            }
            Budget::WallTime => assert_eq!(output.fuel_used, 0, "no fuel is counted"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_liar_of_three_is_outvoted_and_reported() {
    let grid = grid(&[None, None, Some(Fault::FlipLastByte)]).await;
    let liar = grid.nodes[2].peer_id();
    let report = scheduler(&grid)
        .submit(&example_job(&peergrid_jobs::PRIMES, 3))
        .await
        .unwrap();
    let Verdict::Accepted {
        output,
        agreeing_workers,
        dissenting_workers,
        ..
    } = &report.verdict
    else {
        panic!("expected acceptance, got {:?}", report.verdict);
    };
    assert_eq!(output.stdout, peergrid_jobs::PRIMES.sample_stdout);
    assert_eq!(agreeing_workers.len(), 2);
    assert_eq!(dissenting_workers.len(), 1);
    assert_eq!(dissenting_workers[0].worker, liar);
    assert_eq!(report.verdict.dissenters(), vec![liar]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_liars_with_different_outputs_give_no_quorum() {
    let grid = grid(&[
        None,
        Some(Fault::WrongOutput(b"lie one\n".to_vec())),
        Some(Fault::WrongOutput(b"lie two\n".to_vec())),
    ])
    .await;
    let report = scheduler(&grid)
        .submit(&example_job(&peergrid_jobs::HASHCHAIN, 3))
        .await
        .unwrap();
    match &report.verdict {
        Verdict::NoQuorum { needed, runs, .. } => {
            assert_eq!(*needed, 2);
            assert_eq!(runs.len(), 3);
        }
        Verdict::Accepted { output, .. } => panic!("accepted {:?} without a quorum", output.stdout),
    }
    assert!(report.verdict.accepted().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_colluding_liars_win_only_what_they_agree_on_and_k5_outvotes_them() {
    // Two liars returning the *same* wrong answer out of three workers is
    // the limit of plain majority voting: with k=5 and two colluders the
    // honest majority still wins.
    let lie = Some(Fault::WrongOutput(b"colluded\n".to_vec()));
    let grid = grid(&[None, None, None, lie.clone(), lie]).await;
    let report = scheduler(&grid)
        .submit(&example_job(&peergrid_jobs::PRIMES, 5))
        .await
        .unwrap();
    let Verdict::Accepted {
        output,
        dissenting_workers,
        ..
    } = &report.verdict
    else {
        panic!("expected acceptance, got {:?}", report.verdict);
    };
    assert_eq!(output.stdout, peergrid_jobs::PRIMES.sample_stdout);
    assert_eq!(dissenting_workers.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_on_random_and_clock_derived_from_the_job() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let job = scheduler_lib::Job::new(peergrid_tests::hostile::random_and_clock()).replicas(3);
    let first = sched.submit(&job).await.unwrap();
    let agreed = first.verdict.accepted().expect("replicas must agree");
    assert_eq!(
        agreed.result,
        Ok(()),
        "{}",
        String::from_utf8_lossy(&agreed.stderr)
    );
    let out1 = agreed.stdout.clone();
    assert_eq!(out1.len(), 24);
    assert_eq!(first.verdict.dissenters(), vec![]);
    // Another submission is another job id: other random bytes.
    let second = sched.submit(&job).await.unwrap();
    let out2 = &second
        .verdict
        .accepted()
        .expect("replicas must agree")
        .stdout;
    assert_ne!(&out1[..16], &out2[..16]);
}

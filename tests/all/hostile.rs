//! Hostile modules: each gets a named error back to the submitter, agreed
//! on by every worker, and the workers keep serving.

use std::time::Duration;

use peergrid_tests::{example_job, honest_grid, hostile, scheduler, tight_limits};
use peergrid_worker::LocalGrid;
use scheduler_lib::{Budget, Job, JobFailure, Limits, Scheduler, Verdict, WorkerError};

/// Submits `module` with tight limits to k=3 and returns the agreed failure;
/// then checks the grid still runs a normal job.
async fn agreed_failure(
    grid: &LocalGrid,
    sched: &Scheduler,
    module: Vec<u8>,
    limits: Limits,
) -> JobFailure {
    let report = sched
        .submit(&Job::new(module).limits(limits).replicas(3))
        .await
        .unwrap();
    let Verdict::Accepted {
        output,
        agreeing_workers,
        ..
    } = &report.verdict
    else {
        panic!(
            "expected the workers to agree on the failure, got {:?}",
            report.verdict
        );
    };
    assert_eq!(agreeing_workers.len(), 3);
    let failure = output.result.clone().expect_err("the job must fail");
    still_serving(grid, sched).await;
    failure
}

async fn still_serving(grid: &LocalGrid, sched: &Scheduler) {
    let report = sched
        .submit(&example_job(&peergrid_jobs::PRIMES, 3))
        .await
        .unwrap();
    assert_eq!(
        report.verdict.accepted().map(|o| o.stdout.as_slice()),
        Some(peergrid_jobs::PRIMES.sample_stdout),
        "grid of {} nodes stopped serving",
        grid.nodes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_is_not_wasm_is_an_invalid_module() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let failure = agreed_failure(&grid, &sched, hostile::not_wasm(), tight_limits()).await;
    assert!(matches!(failure, JobFailure::InvalidModule(_)), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_an_ungranted_function_is_an_invalid_module_naming_it() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let failure = agreed_failure(&grid, &sched, hostile::imports_system(), tight_limits()).await;
    match failure {
        JobFailure::InvalidModule(why) => assert!(why.contains("system"), "{why}"),
        other => panic!("expected InvalidModule, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_runs_out_of_fuel_at_the_same_instruction_everywhere() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let limits = Limits {
        budget: Budget::Fuel,
        ..tight_limits()
    };
    let failure = agreed_failure(&grid, &sched, hostile::infinite_loop(), limits).await;
    assert_eq!(failure, JobFailure::OutOfFuel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_with_ample_fuel_hits_the_wall_clock_and_is_never_accepted() {
    let limits = Limits {
        budget: Budget::Fuel,
        fuel: 900_000_000_000,
        wall_time: Duration::from_millis(300),
        ..tight_limits()
    };
    an_infinite_loop_times_out_everywhere(limits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_under_a_wall_time_budget_is_killed_and_never_accepted() {
    // The default budget: uninstrumented code in runner processes, which
    // the workers kill at the deadline.
    let limits = Limits {
        wall_time: Duration::from_millis(300),
        ..tight_limits()
    };
    an_infinite_loop_times_out_everywhere(limits).await;
}

/// An endless loop on k=3 under `limits`: every worker times out, no vote,
/// and the grid keeps serving.
async fn an_infinite_loop_times_out_everywhere(limits: Limits) {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let report = sched
        .submit(
            &Job::new(hostile::infinite_loop())
                .limits(limits)
                .replicas(3),
        )
        .await
        .unwrap();
    let Verdict::NoQuorum { failed_workers, .. } = &report.verdict else {
        panic!(
            "a timeout is not deterministic and must not be a vote: {:?}",
            report.verdict
        );
    };
    assert_eq!(failed_workers.len(), 3);
    assert!(
        failed_workers
            .iter()
            .all(|f| f.error == WorkerError::WallClockTimeout)
    );
    still_serving(&grid, &sched).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let failure = agreed_failure(&grid, &sched, hostile::memory_bomb(), tight_limits()).await;
    assert_eq!(failure, JobFailure::MemoryLimit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let failure = agreed_failure(&grid, &sched, hostile::deep_recursion(), tight_limits()).await;
    match failure {
        JobFailure::Trap(what) => assert!(what.contains("stack"), "{what}"),
        other => panic!("expected a stack overflow trap, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_flood_is_output_too_large() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let failure = agreed_failure(&grid, &sched, hostile::output_flood(), tight_limits()).await;
    assert_eq!(failure, JobFailure::OutputTooLarge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_exit_is_reported_with_its_code() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    let failure = agreed_failure(&grid, &sched, hostile::exit_3(), tight_limits()).await;
    assert_eq!(failure, JobFailure::ExitCode(3));
}

#[test]
fn the_test_nodes_compiler_is_the_binary_cargo_built() {
    assert_eq!(
        peergrid_tests::compiler().program,
        std::path::Path::new(env!("CARGO_BIN_EXE_peergrid-test-compile"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_bomb_is_rejected_within_the_compile_budget_and_the_nodes_keep_serving() {
    // A tighter budget than the default (10 s + 5 s/MiB) so the test is
    // quick, still ample for the example jobs (~0.5 s in a debug build).
    let configs = (0..3)
        .map(|_| {
            let mut c = peergrid_tests::node_config();
            c.slots = 2;
            c.sandbox.compile_budget.base = Duration::from_secs(4);
            c.sandbox.compile_budget.per_mib = Duration::from_secs(2);
            c.sandbox.compile_budget.memory_bytes = 1 << 30;
            c
        })
        .collect();
    let grid = LocalGrid::start(configs).await.expect("start grid");
    let sched = scheduler(&grid);
    let bomb = hostile::compile_bomb(1 << 20);
    let started = std::time::Instant::now();
    let refusals = refused_everywhere(&sched, bomb.clone()).await;
    // Rejected within the budget (about 6.2 s), not after minutes.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    still_serving(&grid, &sched).await;
    // The refusal is cached: the same bomb again is answered at once.
    let again = std::time::Instant::now();
    assert_eq!(refused_everywhere(&sched, bomb).await, refusals);
    assert!(
        again.elapsed() < Duration::from_secs(5),
        "{:?}",
        again.elapsed()
    );
}

/// Submits `module` to k=3 and checks that no result was accepted because
/// every worker refused it over its compile budget: a budget is a node's
/// own (wall-clock time on its hardware), so it is a refusal, never a vote
/// against nodes that could compile the module. Returns the refusals.
async fn refused_everywhere(sched: &Scheduler, module: Vec<u8>) -> usize {
    let report = sched
        .submit(&Job::new(module).limits(tight_limits()).replicas(3))
        .await
        .unwrap();
    let Verdict::NoQuorum {
        failed_workers,
        runs,
        ..
    } = &report.verdict
    else {
        panic!("expected every worker to refuse, got {:?}", report.verdict);
    };
    assert!(runs.is_empty(), "a worker voted: {runs:?}");
    assert!(failed_workers.len() >= 3, "{failed_workers:?}");
    for f in failed_workers {
        let text = f.error.to_string();
        assert!(text.contains("compile budget exceeded"), "{text}");
    }
    failed_workers.len()
}

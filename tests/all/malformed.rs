//! Hostile requests that a generated client would never send: protobufs
//! with absurd lengths and values, a job signed by one key claiming
//! another, an expired job, a module over the size limit, a 1-byte module.
//! Each gets a named error and the node keeps serving.

use std::sync::Arc;
use std::time::Duration;

use peergrid_proto::{Domain, Identity, envelope, pb};
use peergrid_tests::{connect_as, example_job, honest_grid, raw, scheduler, uploaded};
use peergrid_worker::LocalGrid;
use prost::Message;
use scheduler_lib::job::Submission;
use scheduler_lib::{Job, JobFailure, Verdict};

const EXECUTE: &str = "/peergrid.v1.Worker/Execute";

async fn still_serving(grid: &LocalGrid) {
    let report = scheduler(grid)
        .submit(&example_job(&peergrid_jobs::PRIMES, 1))
        .await
        .unwrap();
    assert_eq!(
        report.verdict.accepted().map(|o| o.stdout.as_slice()),
        Some(peergrid_jobs::PRIMES.sample_stdout),
        "the node stopped serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobufs_with_absurd_lengths_and_values_get_named_errors() {
    let grid = honest_grid(1).await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();

    // Field 1 (the envelope) claiming 2^35 bytes in a 6-byte message.
    let status = raw::call(
        &addr,
        EXECUTE,
        vec![0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(status.message().contains("decode"), "{}", status.message());

    // A signed JobSpec whose payload claims more bytes than it has.
    let id = Identity::generate();
    let lying = pb::ExecuteRequest {
        job: Some(envelope::sign(
            &id,
            Domain::Job,
            vec![0x22, 0xff, 0xff, 0xff, 0x7f, 1, 2],
        )),
    };
    let status = raw::call(&addr, EXECUTE, lying.encode_to_vec())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("JobSpec"), "{}", status.message());

    // Well-formed, signed, and asking for u64::MAX of everything.
    let submitter = Identity::generate();
    let conn = connect_as(&addr, &submitter).await;
    let mut job = example_job(&peergrid_jobs::PRIMES, 1);
    job.limits.fuel = u64::MAX;
    job.limits.memory_bytes = u64::MAX;
    let submission = Submission::new(&job, Duration::from_secs(60));
    let (signed, _) = submission.envelope_for(&job, &submitter, worker);
    let status = conn
        .execute(signed)
        .await
        .expect_err("absurd limits were accepted");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("fuel") || status.message().contains("memory"),
        "{}",
        status.message()
    );

    // A module hash of 3 bytes.
    let mut spec_job = example_job(&peergrid_jobs::PRIMES, 1);
    spec_job.limits = scheduler_lib::Limits::default();
    let (signed, _) = Submission::new(&spec_job, Duration::from_secs(60))
        .envelope_for(&spec_job, &submitter, worker);
    let verified = envelope::verify(&signed, Domain::Job).unwrap();
    let mut spec = pb::JobSpec::decode(verified.payload).unwrap();
    spec.module_sha256 = vec![1, 2, 3];
    let resigned = envelope::sign(&submitter, Domain::Job, spec.encode_to_vec());
    let status = conn.execute(resigned).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("module_sha256"),
        "{}",
        status.message()
    );

    still_serving(&grid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_signed_by_one_key_but_claiming_another_is_unauthenticated() {
    let grid = honest_grid(1).await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    let (a, b) = (Identity::generate(), Identity::generate());
    // Connected as B, so only the signature stands between B and the job.
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    let conn = uploaded(&addr, &b, &job).await;
    let (mut signed, _) =
        Submission::new(&job, Duration::from_secs(60)).envelope_for(&job, &a, worker);
    signed.public_key = b.public_key().to_vec();
    let status = conn.execute(signed).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("signature"),
        "{}",
        status.message()
    );
    still_serving(&grid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_job_is_refused() {
    let grid = honest_grid(1).await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    let submitter = Identity::generate();
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    let conn = uploaded(&addr, &submitter, &job).await;
    let (signed, _) =
        Submission::new(&job, Duration::from_millis(1)).envelope_for(&job, &submitter, worker);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = conn.execute(signed).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("expired"), "{}", status.message());
    still_serving(&grid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_module_is_refused_by_size_before_its_bytes_are_read() {
    let grid = honest_grid(1).await;
    let addr = grid.nodes[0].addr.to_string();
    let limit = grid.nodes[0].node.config().max_module_bytes;
    assert!(
        limit < 100 << 20,
        "the default module limit is {limit} bytes"
    );
    let conn = connect_as(&addr, &Identity::generate()).await;
    let module: Arc<[u8]> = vec![0u8; 100 << 20].into();
    let hash = peergrid_proto::sha256(&module);
    let err = conn.put_module(hash, module).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("at most"), "{text}");
    still_serving(&grid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_byte_module_is_an_invalid_module_agreed_by_every_worker() {
    let grid = honest_grid(3).await;
    let report = scheduler(&grid)
        .submit(&Job::new(vec![0u8]).replicas(3))
        .await
        .unwrap();
    let Verdict::Accepted { output, .. } = &report.verdict else {
        panic!("{:?}", report.verdict);
    };
    let failure = output.result.clone().unwrap_err();
    assert!(matches!(failure, JobFailure::InvalidModule(_)), "{failure}");
    still_serving(&grid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_bomb_hits_the_table_limit_on_every_worker() {
    let grid = honest_grid(3).await;
    // A billion-entry table at instantiation, then a loop growing another.
    let module = peergrid_tests::hostile::wasm(
        r#"(module
             (table 1000000000 funcref)
             (func (export "_start")))"#,
    );
    let report = scheduler(&grid)
        .submit(&Job::new(module).replicas(3))
        .await
        .unwrap();
    let Verdict::Accepted { output, .. } = &report.verdict else {
        panic!("{:?}", report.verdict);
    };
    // Table elements count against the job's memory budget.
    let failure = output.result.clone().unwrap_err();
    assert!(matches!(failure, JobFailure::MemoryLimit), "{failure}");
    let grower = peergrid_tests::hostile::wasm(
        r#"(module
             (table $t 0 funcref)
             (func (export "_start")
               (loop $again
                 (drop (table.grow $t (ref.null func) (i32.const 1000000)))
                 (br_if $again (i32.ne (table.size $t) (i32.const -1))))))"#,
    );
    // Under a fuel budget: the loop below outlives the refused growth, and
    // under the default wall-time budget it would simply time out (no vote).
    let report = scheduler(&grid)
        .submit(
            &Job::new(grower)
                .limits(scheduler_lib::Limits {
                    budget: scheduler_lib::Budget::Fuel,
                    ..peergrid_tests::tight_limits()
                })
                .replicas(3),
        )
        .await
        .unwrap();
    let Verdict::Accepted { output, .. } = &report.verdict else {
        panic!("{:?}", report.verdict);
    };
    // table.grow returns -1 once the limit is reached and the loop spins
    // until its fuel is gone; the verdict names the denied growth, the
    // cause, and the table itself stayed bounded.
    let failure = output.result.clone().unwrap_err();
    assert!(matches!(failure, JobFailure::MemoryLimit), "{failure}");
    still_serving(&grid).await;
}

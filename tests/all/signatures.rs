//! Signatures on both sides: tampered or misaddressed jobs are refused by
//! the worker; tampered, forged or misattributed results by the submitter.

use peergrid_proto::{Domain, Identity, envelope, pb};
use peergrid_tests::{connect_as, example_job, grid, honest_grid, scheduler};
use peergrid_worker::fault::Fault;
use prost::Message;
use scheduler_lib::client::WorkerConn;
use scheduler_lib::job::Submission;
use scheduler_lib::result::{Expected, ResultRejected, verify_result};
use scheduler_lib::{Verdict, WorkerError};
use std::time::Duration;

/// Sends a job to one worker directly, uploading the module first.
async fn direct(
    grid_addr: std::net::SocketAddr,
    worker: peergrid_proto::PeerId,
) -> (WorkerConn, scheduler_lib::Job, Submission, Identity) {
    let submitter = Identity::generate();
    let c = connect_as(&grid_addr.to_string(), &submitter).await;
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    c.put_module(job.module_hash(), job.module().clone())
        .await
        .unwrap();
    let submission = Submission::new(&job, Duration::from_secs(60));
    let _ = worker;
    (c, job, submission, submitter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_job_bytes_are_refused_and_the_worker_keeps_serving() {
    let grid = honest_grid(1).await;
    let worker = grid.nodes[0].peer_id();
    let (c, job, submission, submitter) = direct(grid.nodes[0].addr, worker).await;

    let (mut env, _) = submission.envelope_for(&job, &submitter, worker);
    let n = env.payload.len();
    env.payload[n - 1] ^= 0x01; // e.g. change the expiry or the input
    let status = c.execute(env).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("signature"),
        "{}",
        status.message()
    );

    // A signature by one key presented with another key.
    let (mut env, _) = submission.envelope_for(&job, &submitter, worker);
    env.public_key = Identity::generate().public_key().to_vec();
    assert_eq!(
        c.execute(env).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    // A job addressed to another worker.
    let (env, _) = submission.envelope_for(&job, &submitter, Identity::generate().peer_id());
    let status = c.execute(env).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Still serving: a good envelope runs.
    let (env, _) = submission.envelope_for(&job, &submitter, worker);
    let reply = c.execute(env).await.unwrap();
    assert!(matches!(
        reply.reply,
        Some(pb::execute_response::Reply::Result(_))
    ));
    assert!(
        grid.nodes[0]
            .node
            .stats()
            .jobs_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_envelope_is_refused() {
    let grid = honest_grid(1).await;
    let worker = grid.nodes[0].peer_id();
    let (c, job, submission, submitter) = direct(grid.nodes[0].addr, worker).await;
    let (env, _) = submission.envelope_for(&job, &submitter, worker);
    c.execute(env.clone()).await.unwrap();
    let status = c.execute(env).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("replayed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_result_bytes_and_foreign_signatures_are_rejected() {
    let grid = honest_grid(1).await;
    let worker = grid.nodes[0].peer_id();
    let (c, job, submission, submitter) = direct(grid.nodes[0].addr, worker).await;
    let (env, nonce) = submission.envelope_for(&job, &submitter, worker);
    let reply = c.execute(env).await.unwrap();
    let Some(pb::execute_response::Reply::Result(signed)) = reply.reply else {
        panic!("no result")
    };
    let module_hash = job.module_hash();
    let expected = Expected {
        worker,
        job_id: &submission.job_id,
        nonce: &nonce,
        module_hash: &module_hash,
        input_hash: &submission.input_hash,
    };
    // Untouched, it verifies.
    verify_result(
        signed.clone(),
        reply.output.clone(),
        reply.stderr.clone(),
        &expected,
    )
    .unwrap();

    // Output changed in transit.
    let mut output = reply.output.clone();
    output[0] ^= 1;
    let err = verify_result(signed.clone(), output, reply.stderr.clone(), &expected).unwrap_err();
    assert_eq!(err, ResultRejected::HashMismatch("output"));

    // Claim bytes changed in transit.
    let mut tampered = signed.clone();
    tampered.payload[3] ^= 1;
    let err = verify_result(
        tampered,
        reply.output.clone(),
        reply.stderr.clone(),
        &expected,
    )
    .unwrap_err();
    assert!(matches!(err, ResultRejected::Signature(_)), "{err}");

    // The same claim re-signed by a different key.
    let claim = pb::ResultClaim::decode(signed.payload.as_slice()).unwrap();
    let forged = envelope::sign(&Identity::generate(), Domain::Result, claim.encode_to_vec());
    let err = verify_result(forged, reply.output, reply.stderr, &expected).unwrap_err();
    assert!(matches!(err, ResultRejected::WrongSigner { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_tampered_results_do_not_vote_and_are_replaced() {
    // Five nodes: three honest, one signing with a throwaway key, one
    // changing its output after signing. k=3 must still be accepted, on
    // honest votes only, with the two bad workers listed as failures.
    let grid = grid(&[
        None,
        None,
        None,
        Some(Fault::ForgeSignature),
        Some(Fault::TamperAfterSigning),
    ])
    .await;
    let bad = [grid.nodes[3].peer_id(), grid.nodes[4].peer_id()];
    let sched = scheduler(&grid);
    // Several jobs so that placement tries the bad nodes.
    let mut seen_bad = 0;
    for _ in 0..3 {
        let report = sched
            .submit(&example_job(&peergrid_jobs::HASHCHAIN, 3))
            .await
            .unwrap();
        let Verdict::Accepted {
            output,
            agreeing_workers,
            failed_workers,
            ..
        } = &report.verdict
        else {
            panic!("expected acceptance, got {:?}", report.verdict);
        };
        assert_eq!(output.stdout, peergrid_jobs::HASHCHAIN.sample_stdout);
        assert!(agreeing_workers.iter().all(|r| !bad.contains(&r.worker)));
        for f in failed_workers {
            assert!(
                matches!(f.error, WorkerError::RejectedResult(_)),
                "{:?}",
                f.error
            );
            assert!(bad.contains(&f.worker.unwrap()));
            seen_bad += 1;
        }
    }
    // Each bad node is caught the first time it answers, in a job or in a
    // spot-check, and banned: it gets no more work.
    for peer in bad {
        assert!(sched.is_banned(&peer), "{peer:?} was not banned");
    }
    assert!(seen_bad <= 2, "a banned node is never placed again");
}

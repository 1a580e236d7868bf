//! `ExecuteBatch` on the wire: many signed jobs in one call, answers
//! streamed back as each completes, each a claim that verifies on its own
//! (Merkle proofs under shared signatures), a bad job failing alone,
//! limits that name themselves, and a batch's many first jobs sharing one
//! module upload per worker.

use std::collections::HashMap;
use std::time::Duration;

use peergrid_proto::{Domain, Identity, envelope, pb};
use peergrid_tests::{example_job, honest_grid, uploaded};
use prost::Message;
use scheduler_lib::client::batch_answer;
use scheduler_lib::job::Submission;
use scheduler_lib::result::{Expected, verify_result};

/// One node, a submitter connected to it with `example`'s module uploaded,
/// and a submission of that job.
async fn one_worker(
    example: &peergrid_jobs::ExampleJob,
) -> (
    peergrid_worker::LocalGrid,
    peergrid_proto::PeerId,
    Identity,
    scheduler_lib::Job,
    scheduler_lib::client::WorkerConn,
    Submission,
) {
    let grid = honest_grid(1).await;
    let worker = grid.nodes[0].peer_id();
    let submitter = Identity::generate();
    let job = example_job(example, 1);
    let conn = uploaded(&grid.nodes[0].addr.to_string(), &submitter, &job).await;
    let submission = Submission::new(&job, Duration::from_secs(60));
    (grid, worker, submitter, job, conn, submission)
}

/// The answers of one `ExecuteBatch` stream, by job index.
async fn collect(
    mut stream: tonic::Streaming<pb::ExecuteBatchReply>,
) -> HashMap<u32, Result<pb::ExecuteResponse, tonic::Status>> {
    let mut answers = HashMap::new();
    while let Some(reply) = stream.message().await.expect("the stream stays healthy") {
        let index = reply.index;
        assert!(
            answers.insert(index, batch_answer(reply)).is_none(),
            "job {index} answered twice"
        );
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_runs_more_jobs_than_slots_and_every_claim_verifies_alone() {
    let (_grid, worker, submitter, job, conn, _) = one_worker(&peergrid_jobs::HASHCHAIN).await;

    // 40 replicas of distinct submissions, all under one signature: far
    // more than the node's slots, so jobs wait for a slot instead of being
    // refused as busy.
    let submissions: Vec<Submission> = (0..40)
        .map(|_| Submission::new(&job, Duration::from_secs(60)))
        .collect();
    let specs: Vec<(Vec<u8>, [u8; 16])> = submissions
        .iter()
        .map(|s| s.spec_for(&job, worker))
        .collect();
    let signed = envelope::sign_many(
        &submitter,
        specs
            .iter()
            .map(|(spec, _)| (Domain::Job, spec.clone()))
            .collect(),
    );
    assert!(signed.iter().all(|e| e.signature == signed[0].signature));
    let answers = collect(conn.execute_batch(signed).await.expect("call")).await;
    assert_eq!(answers.len(), 40, "every job answered once");
    for (i, (submission, (_, nonce))) in submissions.iter().zip(&specs).enumerate() {
        let reply = answers[&(i as u32)].as_ref().expect("job ran");
        let Some(pb::execute_response::Reply::Result(claim)) = reply.reply.clone() else {
            panic!("job {i}: no claim: {reply:?}");
        };
        // The claim stands alone: the same check a certificate reader makes.
        let encoded = claim.encode_to_vec();
        let decoded = pb::SignedEnvelope::decode(encoded.as_slice()).expect("decodes");
        let expected = Expected {
            worker,
            job_id: &submission.job_id,
            nonce,
            module_hash: &job.module_hash(),
            input_hash: &submission.input_hash,
        };
        let verified = verify_result(
            decoded,
            reply.output.clone(),
            reply.stderr.clone(),
            &expected,
        )
        .unwrap_or_else(|e| panic!("job {i}: {e}"));
        assert_eq!(verified.output, peergrid_jobs::HASHCHAIN.sample_stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_job_in_a_batch_fails_alone_with_the_reason_execute_gives() {
    let (_grid, worker, submitter, job, conn, submission) =
        one_worker(&peergrid_jobs::PRIMES).await;

    let (good, _) = submission.envelope_for(&job, &submitter, worker);
    let mut tampered = submission.envelope_for(&job, &submitter, worker).0;
    let last = tampered.payload.len() - 1;
    tampered.payload[last] ^= 1;
    let (elsewhere, _) = submission.envelope_for(&job, &submitter, Identity::generate().peer_id());
    let (also_good, _) = submission.envelope_for(&job, &submitter, worker);
    // A proof that leads nowhere under the batch's signature.
    let mut pair = envelope::sign_many(
        &submitter,
        vec![
            (Domain::Job, submission.spec_for(&job, worker).0),
            (Domain::Job, submission.spec_for(&job, worker).0),
        ],
    );
    if let Some(proof) = pair[0].proof.as_mut() {
        proof.siblings[0][0] ^= 1;
    }
    let bad_proof = pair.remove(0);
    let jobs = vec![
        good.clone(),
        tampered,
        elsewhere,
        good,
        also_good,
        bad_proof,
    ];

    let answers = collect(conn.execute_batch(jobs).await.expect("call")).await;
    let code = |i: u32| answers[&i].as_ref().err().map(tonic::Status::code);
    assert_eq!(
        code(1),
        Some(tonic::Code::Unauthenticated),
        "{:?}",
        answers[&1]
    );
    assert_eq!(
        code(2),
        Some(tonic::Code::PermissionDenied),
        "{:?}",
        answers[&2]
    );
    // The same envelope twice (jobs 0 and 3 run side by side): one runs,
    // the other is refused as a replay.
    let (ran, refused): (Vec<_>, Vec<_>) = [&answers[&0], &answers[&3]]
        .into_iter()
        .partition(|a| a.is_ok());
    assert_eq!((ran.len(), refused.len()), (1, 1), "{answers:?}");
    let replayed = refused[0].as_ref().expect_err("refused");
    assert!(replayed.message().contains("replayed"), "{replayed:?}");
    assert!(answers[&4].is_ok(), "{:?}", answers[&4]);
    assert_eq!(
        code(5),
        Some(tonic::Code::Unauthenticated),
        "{:?}",
        answers[&5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_is_refused_by_name_and_a_dropped_stream_harms_nothing() {
    let (grid, worker, submitter, job, conn, submission) = one_worker(&peergrid_jobs::PRIMES).await;
    let envelopes = |n: usize| -> Vec<pb::SignedEnvelope> {
        let specs = (0..n).map(|_| (Domain::Job, submission.spec_for(&job, worker).0));
        envelope::sign_many(&submitter, specs.collect())
    };

    let status = conn
        .execute_batch(envelopes(257))
        .await
        .expect_err("too many");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("at most 256"), "{status:?}");

    // A caller that hangs up after the first answer: the node stops its
    // batch (the job running then ends and frees the submitter's share)
    // and keeps serving.
    let mut stream = conn.execute_batch(envelopes(30)).await.expect("call");
    assert!(stream.message().await.expect("answer").is_some());
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let (alone, _) = submission.envelope_for(&job, &submitter, worker);
        match conn.execute_unary(alone).await {
            Ok(reply) => break reply,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still busy: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the node no longer serves: {status:?}"),
        }
    };
    assert!(matches!(
        reply.reply,
        Some(pb::execute_response::Reply::Result(_))
    ));
    let ran = grid.nodes[0]
        .node
        .stats()
        .jobs_run
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(ran < 30, "the abandoned batch ran on: {ran} jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_batch_sends_each_worker_the_module_once() {
    use scheduler_lib::batch::{Batch, Task};
    use std::sync::atomic::Ordering;
    let grid = honest_grid(3).await;
    let scheduler = std::sync::Arc::new(peergrid_tests::scheduler(&grid));
    // Every one of the first 60 jobs finds the workers without the module.
    let tasks = (0..60).map(|i| Task::new(format!("1 deep{i}")));
    let batch = Batch::new(
        scheduler_lib::Job::new(peergrid_jobs::HASHCHAIN.wasm).replicas(3),
        tasks,
    )
    .in_flight(60);
    let mut run = scheduler.submit_batch(batch).await.expect("batch");
    while run.next().await.is_some() {}
    assert_eq!(run.progress().accepted, 60, "{:?}", run.progress());
    for node in &grid.nodes {
        let stats = node.node.stats();
        assert_eq!(stats.modules_received.load(Ordering::Relaxed), 1);
        assert_eq!(stats.modules_refused.load(Ordering::Relaxed), 0);
    }
}

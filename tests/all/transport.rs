//! What crosses the wire: garbage and truncated protobufs, modules far over
//! gRPC's default 4 MiB message limit, and content addressing (a module is
//! sent and compiled once per node, and after a restart not compiled again:
//! loaded from the node's on-disk compiled-code cache).

use std::sync::atomic::Ordering;

use peergrid_proto::{Identity, pb};
use peergrid_tests::{example_job, honest_grid, hostile, raw, scheduler};
use prost::Message;
use scheduler_lib::{Job, Scheduler, SchedulerConfig};

const EXECUTE: &str = "/peergrid.v1.Worker/Execute";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_protobufs_get_a_named_error() {
    let grid = honest_grid(1).await;
    let addr = grid.nodes[0].addr.to_string();

    let garbage = raw::call(&addr, EXECUTE, vec![0xff; 64]).await.unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::Internal, "{garbage:?}");
    assert!(
        garbage.message().contains("decode"),
        "{}",
        garbage.message()
    );

    // A real request cut in half.
    let request = pb::ExecuteRequest {
        job: Some(pb::SignedEnvelope {
            payload: vec![7; 200],
            public_key: vec![1; 32],
            signature: vec![2; 64],
            proof: None,
        }),
    }
    .encode_to_vec();
    let truncated = raw::call(&addr, EXECUTE, request[..request.len() / 2].to_vec())
        .await
        .unwrap_err();
    assert_eq!(truncated.code(), tonic::Code::Internal, "{truncated:?}");

    // Well-formed envelope, payload that is not a JobSpec but is signed.
    let id = peergrid_proto::Identity::generate();
    let junk = pb::ExecuteRequest {
        job: Some(peergrid_proto::envelope::sign(
            &id,
            peergrid_proto::Domain::Job,
            vec![0xff; 9],
        )),
    };
    let status = raw::call(&addr, EXECUTE, junk.encode_to_vec())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("JobSpec"), "{}", status.message());

    // The node still serves a real job.
    let report = scheduler(&grid)
        .submit(&example_job(&peergrid_jobs::PRIMES, 1))
        .await
        .unwrap();
    assert!(report.verdict.accepted().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_24_mib_module_travels_in_chunks_and_runs() {
    let grid = honest_grid(3).await;
    let module = tokio::task::spawn_blocking(|| hostile::large_module(24))
        .await
        .unwrap();
    assert!(module.len() > 24 << 20);
    let report = scheduler(&grid)
        .submit(&Job::new(module).replicas(3))
        .await
        .unwrap();
    let output = report.verdict.accepted().expect("accepted");
    assert_eq!(output.stdout, b"BIG-END\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_is_uploaded_and_compiled_once_per_node() {
    let grid = honest_grid(3).await;
    let sched = scheduler(&grid);
    for _ in 0..3 {
        let report = sched
            .submit(&example_job(&peergrid_jobs::MANDELBROT, 3))
            .await
            .unwrap();
        assert!(report.verdict.accepted().is_some());
    }
    for node in &grid.nodes {
        assert_eq!(
            node.node.stats().modules_received.load(Ordering::Relaxed),
            1
        );
        assert_eq!(node.node.stats().jobs_run.load(Ordering::Relaxed), 3);
        assert_eq!(
            node.node.sandbox().stats().compiles,
            1,
            "compiled more than once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_loads_compiled_code_from_disk_instead_of_compiling() {
    let kept = tempfile::tempdir().unwrap();
    let localhost = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let start = |identity: Option<Identity>| {
        let mut config = peergrid_tests::node_config();
        config.data_dir = kept.path().to_path_buf();
        peergrid_worker::GridNode::start_on(config, localhost, identity)
    };
    let submit = |addr: std::net::SocketAddr| async move {
        let sched = Scheduler::new(
            Identity::generate(),
            SchedulerConfig {
                puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
                peers: vec![addr.to_string()],
                ..SchedulerConfig::default()
            },
        );
        let report = sched
            .submit(&example_job(&peergrid_jobs::MANDELBROT, 1))
            .await
            .unwrap();
        report.verdict.accepted().expect("accepted").stdout.clone()
    };

    let mut node = start(None).await.unwrap();
    let before = submit(node.addr).await;
    let stats = node.node.sandbox().stats();
    assert_eq!((stats.compiles, stats.disk_writes), (1, 1), "{stats:?}");
    let compiled = kept.path().join("compiled");
    assert_eq!(std::fs::read_dir(&compiled).unwrap().count(), 1);
    let identity = node.identity.clone();
    node.stop().await;
    drop(node);

    // Same identity and data directory: a restarted worker.
    let node = start(Some(identity)).await.unwrap();
    let after = submit(node.addr).await;
    assert_eq!(after, before);
    let stats = node.node.sandbox().stats();
    assert_eq!(
        (stats.compiles, stats.disk_hits),
        (0, 1),
        "the first job after the restart compiled: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_whose_bytes_do_not_match_its_hash_is_refused() {
    let grid = honest_grid(1).await;
    let conn =
        peergrid_tests::connect_as(&grid.nodes[0].addr.to_string(), &Identity::generate()).await;
    let module: std::sync::Arc<[u8]> = peergrid_jobs::PRIMES.wasm.into();
    let err = conn.put_module([9; 32], module).await.unwrap_err();
    assert!(err.to_string().contains("hash"), "{err}");
    assert_eq!(
        grid.nodes[0]
            .node
            .stats()
            .modules_received
            .load(Ordering::Relaxed),
        0
    );
}

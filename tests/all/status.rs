//! The `peergrid.v1.Node/Status` service and gRPC server reflection on real
//! nodes: a status counts the job the node just ran (from the same counters
//! the node keeps), status calls are rate-limited per IP, and reflection
//! lists every service a node serves. (The `peergrid status` command itself
//! is tested as a user runs it in `worker/tests/status.rs`, where cargo
//! provides the `peergrid` binary.)

use std::sync::atomic::Ordering;
use std::time::Duration;

use peergrid_proto::Identity;
use peergrid_proto::tls::Transport;
use peergrid_tests::{example_job, grid, honest_grid, node_config, scheduler};
use peergrid_worker::flood::{LimitKind, RateLimit};
use peergrid_worker::status::{StatusError, fetch};
use peergrid_worker::{GridNode, LocalGrid};
use tonic::transport::Endpoint;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

fn stranger() -> Transport {
    Transport::tls(&Identity::generate()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_the_job_each_node_ran() {
    let grid = honest_grid(3).await;
    let report = scheduler(&grid)
        .submit(&example_job(&peergrid_jobs::HASHCHAIN, 3))
        .await
        .unwrap();
    // The default wall-time budget: no fuel counted, the work is CPU time.
    let fuel = report.verdict.accepted().expect("accepted").fuel_used;
    assert_eq!(fuel, 0);
    for GridNode { node, addr, .. } in &grid.nodes {
        let status = fetch(&addr.to_string(), &stranger(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status.peer_id, node.peer_id());
        assert_eq!(status.version, peergrid_worker::VERSION);
        assert_eq!(status.listen_addr, Some(addr.to_string()));
        assert_eq!(status.advertised_addrs, vec![addr.to_string()]);
        assert!(status.tls);
        assert_eq!(status.jobs.run, 1, "{status:?}");
        assert_eq!(status.jobs.failed, 0);
        assert_eq!(status.jobs.fuel_used, fuel);
        assert!(status.jobs.cpu_time_us > 0, "{status:?}");
        assert_eq!(status.jobs.modules_received, 1);
        // The node's own counters, not a second count.
        let stats = node.stats();
        assert_eq!(status.jobs.run, stats.jobs_run.load(Ordering::Relaxed));
        assert_eq!(
            status.jobs.cpu_time_us,
            stats.cpu_time_us.load(Ordering::Relaxed)
        );
        assert_eq!(
            status.jobs.rejected,
            stats.jobs_refused.load(Ordering::Relaxed)
        );
        let by_reason: u64 = status.jobs.rejected_by.iter().map(|r| r.count).sum();
        assert_eq!(by_reason, status.jobs.rejected);
        assert_eq!(
            status.jobs.rejected_by.len(),
            peergrid_worker::metrics::Reason::ALL.len()
        );
        assert_eq!(status.slots.total, 2);
        assert_eq!(status.slots.in_use + status.slots.free, 2);
        assert!(status.uptime_ms > 0);
        assert!(
            status.peers.inbound_connections >= 1,
            "this call's own connection"
        );
        assert!(!status.reputation.known);
        assert!(!status.reputation.note.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_calls_are_rate_limited_per_ip() {
    let mut config = node_config();
    config.flood.status_per_ip = Some(RateLimit {
        burst: 2,
        per_sec: 0.01,
    });
    let grid = LocalGrid::start(vec![config]).await.unwrap();
    let addr = grid.addrs()[0].clone();
    let transport = stranger();
    for _ in 0..2 {
        fetch(&addr, &transport, Duration::from_secs(5))
            .await
            .unwrap();
    }
    match fetch(&addr, &transport, Duration::from_secs(5)).await {
        Err(StatusError::Refused { code, message, .. }) => {
            assert_eq!(code, tonic::Code::ResourceExhausted);
            assert!(message.contains("status_per_ip"), "{message}");
        }
        other => panic!("expected a rate-limit refusal, got {other:?}"),
    }
    let stats = grid.nodes[0].node.stats();
    assert_eq!(stats.rate_limited.get(LimitKind::StatusPerIp), 1);
    // Its own bucket: gossip and jobs from that address are untouched.
    assert_eq!(stats.rate_limited.get(LimitKind::GossipPerIp), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_closed_port_is_unreachable_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = fetch(&addr, &stranger(), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StatusError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&addr), "{error}");
}

/// Every service a node serves, as its reflection lists them.
async fn listed_services(addr: &str) -> Vec<String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(3));
    let channel = stranger().connect(endpoint, None).await.unwrap().channel;
    let mut client = ServerReflectionClient::new(channel);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("peergrid.v1.Node".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut services = Vec::new();
    let mut files = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                services.extend(list.service.into_iter().map(|s| s.name));
            }
            Some(MessageResponse::FileDescriptorResponse(fds)) => {
                files.extend(fds.file_descriptor_proto);
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }
    // The file describing `peergrid.v1.Node` is node.proto, its comments
    // included (an encoded FileDescriptorProto holds its strings as they are).
    assert_eq!(files.len(), 1);
    let file = String::from_utf8_lossy(&files[0]);
    assert!(file.contains("peergrid/v1/node.proto"), "{file}");
    assert!(file.contains("Who may call"), "no comments in {file}");
    services
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service_the_node_serves() {
    let grid = grid(&[None]).await;
    let services = listed_services(&grid.addrs()[0]).await;
    for expected in [
        "peergrid.v1.Worker",
        "peergrid.v1.Membership",
        "peergrid.v1.Node",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} missing from {services:?}"
        );
    }
    // And health says the status service is serving.
    let endpoint = Endpoint::from_shared(format!("http://{}", grid.addrs()[0])).unwrap();
    let channel = stranger().connect(endpoint, None).await.unwrap().channel;
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "peergrid.v1.Node".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

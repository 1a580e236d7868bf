//! Flood control, operator policy and monitoring on real nodes: a flooding
//! submitter is shed while another's job completes, denied submitters and
//! modules get PERMISSION_DENIED, slow-loris clients are cut off without
//! blocking anyone, and the metrics endpoint serves real figures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use peergrid_proto::tls::Transport;
use peergrid_proto::{Identity, pb};
use peergrid_tests::{example_job, raw, scheduler};
use peergrid_worker::flood::LimitKind;
use peergrid_worker::metrics::Reason;
use peergrid_worker::{LocalGrid, NodeConfig};
use scheduler_lib::client::WorkerConn;
use scheduler_lib::job::Submission;
use scheduler_lib::{Job, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// One node with two slots and `tweak` applied to its config.
async fn node(tweak: impl FnOnce(&mut NodeConfig)) -> LocalGrid {
    let mut config = NodeConfig::local();
    config.slots = 2;
    tweak(&mut config);
    LocalGrid::start(vec![config]).await.expect("start node")
}

/// A gRPC channel to `addr` as a throwaway identity.
async fn channel(addr: &str) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(3));
    Transport::tls(&Identity::generate())
        .unwrap()
        .connect(endpoint, None)
        .await
        .unwrap()
        .channel
}

/// A worker connection as a throwaway identity.
async fn conn(addr: &str) -> WorkerConn {
    peergrid_tests::connect_as(addr, &Identity::generate()).await
}

/// A job that burns fuel for a while (an infinite loop under a budget).
fn slow_job() -> Job {
    Job::new(peergrid_tests::hostile::infinite_loop()).limits(Limits {
        budget: scheduler_lib::Budget::Fuel,
        fuel: 1_000_000_000,
        memory_bytes: 16 << 20,
        wall_time: Duration::from_secs(20),
        max_output_bytes: 1 << 10,
        max_stderr_bytes: 1 << 10,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_submissions_from_one_peer_are_shed_while_another_peers_job_completes()
 {
    // A submitter bucket smaller than the flood, so both limits show.
    let grid = node(|c| {
        c.flood.execute_per_submitter = Some(peergrid_worker::flood::RateLimit {
            burst: 100,
            per_sec: 50.0,
        });
    })
    .await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    // The other peer has run here before (its module is compiled), so its
    // time under the flood is the flood's cost, not a compile's.
    let other = scheduler(&grid);
    let primes = example_job(&peergrid_jobs::PRIMES, 1);
    let warm_up = Instant::now();
    assert!(
        other
            .submit(&primes)
            .await
            .unwrap()
            .verdict
            .accepted()
            .is_some()
    );
    let unloaded = warm_up.elapsed();
    let flooder = Identity::generate();
    let job = slow_job();
    let c = peergrid_tests::connect_as(&addr, &flooder).await;
    c.put_module(job.module_hash(), job.module().clone())
        .await
        .unwrap();
    let submission = Submission::new(&job, Duration::from_secs(60));
    let envelopes: Vec<_> = (0..1000)
        .map(|_| submission.envelope_for(&job, &flooder, worker).0)
        .collect();

    // The flood: 1,000 signed submissions at once over four connections.
    let mut conns = vec![c];
    for _ in 0..3 {
        conns.push(peergrid_tests::connect_as(&addr, &flooder).await);
    }
    let mut flood = tokio::task::JoinSet::new();
    for (i, envelope) in envelopes.into_iter().enumerate() {
        let c = conns[i % conns.len()].clone();
        // Unary calls: each is shed on arrival (`execute` would batch
        // them, and a batch's jobs wait for slots instead).
        flood.spawn(async move { c.execute_unary(envelope).await });
    }
    // Meanwhile another peer's job goes through.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(20), other.submit(&primes))
        .await
        .expect("the other peer's job was starved")
        .unwrap();
    assert_eq!(
        report.verdict.accepted().map(|o| o.stdout.as_slice()),
        Some(peergrid_jobs::PRIMES.sample_stdout)
    );
    let honest_took = started.elapsed();

    let (mut ran, mut shed, mut other) = (0, 0, Vec::new());
    let mut messages = std::collections::BTreeSet::new();
    while let Some(answer) = flood.join_next().await {
        match answer.unwrap() {
            Ok(_) => ran += 1,
            Err(status) if status.code() == Code::ResourceExhausted => {
                shed += 1;
                let limit = status.message().split(':').next().unwrap_or("").to_string();
                messages.insert(limit.chars().take(40).collect::<String>());
            }
            Err(status) => other.push(status),
        }
    }
    assert!(
        other.is_empty(),
        "unexpected answers: {:?}",
        &other[..other.len().min(3)]
    );
    assert!(ran <= 2, "the flooder ran {ran} jobs");
    assert_eq!(ran + shed, 1000);
    let stats = grid.nodes[0].node.stats();
    let by_rate = stats.rate_limited.get(LimitKind::ExecutePerSubmitter);
    let by_cap = stats.rate_limited.get(LimitKind::JobsPerSubmitter);
    assert!(
        by_rate > 0 && by_cap > 0,
        "rate {by_rate}, cap {by_cap}: {messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("execute_per_submitter"))
            && messages
                .iter()
                .any(|m| m.contains("max_jobs_per_submitter")),
        "refusals must name the limit: {messages:?}"
    );
    // Past its refusals' threshold the flooder is scored down: shut out
    // before its signatures are even checked.
    let by_penalty = stats.rate_limited.get(LimitKind::PenaltyBox);
    assert!(by_penalty > 0, "the flooder was never shut out");
    assert_eq!(
        stats.refused_by.get(Reason::RateLimited),
        by_rate + by_cap + by_penalty
    );
    eprintln!(
        "flood: {ran} ran, {shed} shed; the other peer's job took {honest_took:?} \
         ({unloaded:?} with its first compile, before the flood)"
    );
    assert!(honest_took < Duration::from_secs(10), "{honest_took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_limits_shed_a_flood_before_its_signatures_are_checked() {
    use peergrid_worker::flood::RateLimit;
    let grid = node(|c| {
        let few = Some(RateLimit {
            burst: 3,
            per_sec: 0.1,
        });
        c.flood.execute_per_ip = few;
        c.flood.gossip_per_ip = few;
    })
    .await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    let submitter = Identity::generate();
    let c = peergrid_tests::connect_as(&addr, &submitter).await;
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    let submission = Submission::new(&job, Duration::from_secs(60));
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (mut envelope, _) = submission.envelope_for(&job, &submitter, worker);
        envelope.signature[0] ^= 1;
        let status = c.execute(envelope).await.unwrap_err();
        if status.code() == Code::ResourceExhausted {
            assert!(
                status.message().contains("execute_per_ip"),
                "{}",
                status.message()
            );
        }
        codes.push(status.code());
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    let stats = grid.nodes[0].node.stats();
    assert_eq!(stats.signature_failures.load(Ordering::Relaxed), 3);
    assert_eq!(stats.rate_limited.get(LimitKind::ExecutePerIp), 2);

    // Membership calls have their own per-IP bucket.
    let mut members = pb::membership_client::MembershipClient::new(channel(&addr).await);
    for _ in 0..3 {
        members.members(pb::MembersRequest {}).await.unwrap();
    }
    let status = members.members(pb::MembersRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("gossip_per_ip"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_submitter_and_a_denied_module_get_permission_denied() {
    let banned = Identity::generate();
    let primes = example_job(&peergrid_jobs::PRIMES, 1);
    let denied_module = primes.module_hash();
    let banned_id = banned.peer_id();
    let grid = node(|c| {
        c.policy.deny_submitters.insert(banned_id);
        c.policy.deny_modules.insert(denied_module);
    })
    .await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    let allowed = Identity::generate();
    let c = peergrid_tests::connect_as(&addr, &allowed).await;

    // The module is refused at upload already, naming the rule.
    let err = c
        .put_module(primes.module_hash(), primes.module().clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deny-module"), "{err}");

    // And at execution, even by an allowed submitter.
    let submission = Submission::new(&primes, Duration::from_secs(60));
    let (envelope, _) = submission.envelope_for(&primes, &allowed, worker);
    let status = c.execute(envelope).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("deny-module"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains(&hex_of(&denied_module)),
        "{}",
        status.message()
    );

    // A denied submitter, with any module.
    let other = example_job(&peergrid_jobs::HASHCHAIN, 1);
    let submission = Submission::new(&other, Duration::from_secs(60));
    let (envelope, _) = submission.envelope_for(&other, &banned, worker);
    let status = peergrid_tests::connect_as(&addr, &banned)
        .await
        .execute(envelope)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("deny-submitter"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains(&banned_id.to_string()),
        "{}",
        status.message()
    );

    // Everyone else is served.
    let report = scheduler(&grid).submit(&other).await.unwrap();
    assert!(report.verdict.accepted().is_some(), "{:?}", report.verdict);
    let stats = grid.nodes[0].node.stats();
    assert_eq!(stats.refused_by.get(Reason::Policy), 2);
    assert_eq!(stats.modules_refused.load(Ordering::Relaxed), 1);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_are_cut_off_and_never_block_others() {
    let grid = node(|c| {
        c.connections.first_byte_timeout = Duration::from_millis(800);
        c.connections.idle_timeout = Duration::from_secs(5);
        c.calls.request_body = Duration::from_millis(800);
        c.calls.upload_chunk = Duration::from_millis(800);
    })
    .await;
    let addr = grid.nodes[0].addr.to_string();

    // 1. Connections that connect and never send a byte.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // 2. A client that opens a unary call's stream and never sends the message.
    let ch = channel(&addr).await;
    let stalled_unary = tokio::spawn(async move {
        let mut grpc = tonic::client::Grpc::new(ch);
        grpc.ready().await.unwrap();
        let started = Instant::now();
        let status = grpc
            .client_streaming(
                tonic::Request::new(futures::stream::pending::<Vec<u8>>()),
                tonic::codegen::http::uri::PathAndQuery::from_static("/peergrid.v1.Worker/Execute"),
                raw::RawCodec,
            )
            .await
            .map(|_: tonic::Response<Vec<u8>>| ())
            .unwrap_err();
        (status, started.elapsed())
    });
    // 3. An upload stream that never sends its first chunk.
    let ch = channel(&addr).await;
    let stalled_upload = tokio::spawn(async move {
        let started = Instant::now();
        let status = pb::worker_client::WorkerClient::new(ch)
            .put_module(futures::stream::pending::<pb::ModuleChunk>())
            .await
            .unwrap_err();
        (status, started.elapsed())
    });

    // Others are served meanwhile, at once.
    let started = Instant::now();
    let info = conn(&addr).await.hello().await.unwrap();
    assert_eq!(info.peer, grid.nodes[0].peer_id());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let (status, took) = stalled_unary.await.unwrap();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("request_body"),
        "{}",
        status.message()
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    let (status, took) = stalled_upload.await.unwrap();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("upload_chunk"),
        "{}",
        status.message()
    );
    assert!(took < Duration::from_secs(4), "{took:?}");

    // The silent connections have been closed by the node.
    for mut s in silent {
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("a silent connection got {n} bytes"),
            Err(_) => panic!("a silent connection is still open"),
        }
    }
    let gate = grid.nodes[0].node.connection_gate();
    assert!(gate.timed_out() >= 20, "timed out: {}", gate.timed_out());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_cap_are_closed_at_once() {
    let grid = node(|c| {
        c.connections.max_connections_per_ip = 4;
        c.connections.first_byte_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = grid.nodes[0].addr.to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the fifth connection from one IP must be closed at once: {closed:?}"
    );
    assert!(grid.nodes[0].node.connection_gate().refused() >= 1);
    // Freeing a place lets the next one in.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = conn(&addr).await.hello().await.unwrap();
    assert_eq!(info.peer, grid.nodes[0].peer_id());
}

/// GET `path` from `addr` over HTTP/1.1; returns the status line and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample `name` (with its labels, e.g. `x{a="b"}`).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_real_figures_after_a_job() {
    let grid = node(|_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(peergrid_worker::metrics::serve_metrics(
        Arc::clone(&grid.nodes[0].node),
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let (status, before) = http_get(metrics, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(sample(&before, "peergrid_jobs_run_total"), Some(0.0));
    assert_eq!(sample(&before, "peergrid_slots"), Some(2.0));

    // Counting fuel, so that the fuel metric moves too.
    let mut counted = example_job(&peergrid_jobs::PRIMES, 1);
    counted.limits.budget = scheduler_lib::Budget::Fuel;
    let report = scheduler(&grid).submit(&counted).await.unwrap();
    assert!(report.verdict.accepted().is_some());
    // A refusal too: a job addressed to another worker.
    let submitter = Identity::generate();
    let c = peergrid_tests::connect_as(&grid.nodes[0].addr.to_string(), &submitter).await;
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    let (envelope, _) = Submission::new(&job, Duration::from_secs(60)).envelope_for(
        &job,
        &submitter,
        Identity::generate().peer_id(),
    );
    assert_eq!(
        c.execute(envelope).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let (_, after) = http_get(metrics, "/metrics").await;
    assert_eq!(
        sample(&after, "peergrid_jobs_run_total"),
        Some(1.0),
        "{after}"
    );
    assert!(
        sample(&after, "peergrid_fuel_used_total").unwrap() > 1e6,
        "{after}"
    );
    assert_eq!(sample(&after, "peergrid_modules_received_total"), Some(1.0));
    assert_eq!(
        sample(
            &after,
            "peergrid_jobs_rejected_total{reason=\"wrong_worker\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(sample(&after, "peergrid_slots_in_use"), Some(0.0));
    for family in [
        "peergrid_peers{state=\"alive\"}",
        "peergrid_signature_failures_total",
        "peergrid_rate_limit_hits_total{limit=\"execute_per_submitter\"}",
        "peergrid_connections_open",
    ] {
        assert!(
            sample(&after, family).is_some(),
            "{family} missing:\n{after}"
        );
    }
    assert!(after.contains("# TYPE peergrid_jobs_run_total counter"));

    let (status, _) = http_get(metrics, "/nope").await;
    assert!(status.contains("404"), "{status}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_that_ignores_refusals_is_shut_out_while_others_still_run() {
    let grid = node(|c| {
        c.flood.execute_per_submitter = Some(peergrid_worker::flood::RateLimit {
            burst: 2,
            per_sec: 0.5,
        });
        c.flood.penalty.strikes = 5;
        c.flood.penalty.first = Duration::from_secs(60);
    })
    .await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    let flooder = Identity::generate();
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    let c = peergrid_tests::uploaded(&addr, &flooder, &job).await;
    let submission = Submission::new(&job, Duration::from_secs(60));
    let mut messages = Vec::new();
    for _ in 0..12 {
        let (signed, _) = submission.envelope_for(&job, &flooder, worker);
        if let Err(status) = c.execute(signed).await {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            messages.push(status.message().to_string());
        }
    }
    assert!(
        messages.iter().any(|m| m.contains("execute_per_submitter")),
        "{messages:?}"
    );
    let last = messages.last().expect("the flood was never refused");
    assert!(last.contains("penalty_box"), "{last}");
    // Still shut out after its bucket would have refilled a token.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (signed, _) = submission.envelope_for(&job, &flooder, worker);
    let status = c.execute(signed).await.unwrap_err();
    assert!(status.message().contains("penalty_box"), "{status:?}");
    // Another submitter is unaffected.
    let report = scheduler(&grid).submit(&job).await.unwrap();
    assert!(report.verdict.accepted().is_some(), "{:?}", report.verdict);
    let stats = grid.nodes[0].node.stats();
    assert!(stats.rate_limited.get(LimitKind::PenaltyBox) > 0);
}

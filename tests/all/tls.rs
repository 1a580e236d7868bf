//! TLS 1.3 keyed by identity: the TLS peer *is* the peer id. A server that
//! proves another key than the one dialled for, a client without a
//! certificate, a plaintext client, and a job sent over a connection
//! authenticated as someone other than its signer are all refused; a grid
//! run entirely `insecure` still works.

use std::sync::Arc;
use std::time::Duration;

use peergrid_proto::tls::Transport;
use peergrid_proto::{Identity, envelope};
use peergrid_tests::{connect_as, example_job, honest_grid, scheduler, uploaded};
use peergrid_worker::{LocalGrid, NodeConfig};
use scheduler_lib::client::WorkerConn;
use scheduler_lib::job::Submission;
use scheduler_lib::{Scheduler, SchedulerConfig, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_proving_another_key_than_expected_is_refused() {
    let grid = honest_grid(2).await;
    let transport = Transport::tls(&Identity::generate()).unwrap();
    // Dial node 0's address expecting node 1's key.
    let err = WorkerConn::connect(
        &grid.nodes[0].addr.to_string(),
        Duration::from_secs(3),
        &transport,
        Some(grid.nodes[1].peer_id()),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("peer key mismatch"), "{text}");
    assert!(text.contains(&grid.nodes[1].peer_id().short()), "{text}");

    // Expecting the right key works, and Hello agrees with the handshake.
    let conn = WorkerConn::connect(
        &grid.nodes[0].addr.to_string(),
        Duration::from_secs(3),
        &transport,
        Some(grid.nodes[0].peer_id()),
    )
    .await
    .unwrap();
    assert_eq!(conn.tls_peer(), Some(grid.nodes[0].peer_id()));
    assert_eq!(conn.hello().await.unwrap().peer, grid.nodes[0].peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_gets_nothing_from_a_tls_node() {
    let grid = honest_grid(1).await;
    let err = WorkerConn::connect(
        &grid.nodes[0].addr.to_string(),
        Duration::from_secs(3),
        &Transport::Insecure,
        None,
    )
    .await;
    let failed = match err {
        Err(_) => true,
        Ok(conn) => conn.hello().await.is_err(),
    };
    assert!(failed, "a plaintext client was answered by a TLS node");
    // The node still serves TLS clients.
    let conn = connect_as(&grid.nodes[0].addr.to_string(), &Identity::generate()).await;
    conn.hello().await.unwrap();
}

/// Accepts any server certificate: for a client that skips verification
/// and offers no certificate of its own.
#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_closed() {
    let grid = honest_grid(1).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(grid.nodes[0].addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("peergrid.invalid").unwrap();
    let outcome = async {
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        // TLS 1.3: the server judges the client's (missing) certificate
        // after the client's side of the handshake; the refusal arrives as
        // an alert on the first read.
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await?;
        Ok::<usize, std::io::Error>(n)
    };
    let result = tokio::time::timeout(Duration::from_secs(5), outcome)
        .await
        .expect("the server neither answered nor closed");
    match result {
        Err(e) => {
            let text = e.to_string();
            assert!(text.to_lowercase().contains("certificate"), "{text}");
        }
        Ok(n) => assert_eq!(n, 0, "a client without a certificate got an answer"),
    }
    // Others are unaffected.
    let conn = connect_as(&grid.nodes[0].addr.to_string(), &Identity::generate()).await;
    conn.hello().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_sent_by_someone_other_than_its_signer_is_refused() {
    let grid = honest_grid(1).await;
    let addr = grid.nodes[0].addr.to_string();
    let worker = grid.nodes[0].peer_id();
    let sender = Identity::generate();
    let signer = Identity::generate();
    let job = example_job(&peergrid_jobs::PRIMES, 1);
    let conn = uploaded(&addr, &sender, &job).await;
    let submission = Submission::new(&job, Duration::from_secs(60));
    let (signed, _) = submission.envelope_for(&job, &signer, worker);
    let status = conn.execute(signed).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("authenticated as peer"),
        "{}",
        status.message()
    );
    // The same job signed by the connection's own identity runs.
    let (signed, _) = submission.envelope_for(&job, &sender, worker);
    let reply = conn.execute(signed).await.unwrap();
    let Some(peergrid_proto::pb::execute_response::Reply::Result(claim)) = reply.reply else {
        panic!("no result: {reply:?}");
    };
    envelope::verify(&claim, peergrid_proto::Domain::Result).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_grid_still_works_end_to_end() {
    let configs = (0..3)
        .map(|_| {
            let mut c = NodeConfig::local();
            c.slots = 2;
            c.insecure = true;
            c
        })
        .collect();
    let grid = LocalGrid::start(configs).await.unwrap();
    let insecure = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::config::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            insecure: true,
            ..SchedulerConfig::default()
        },
    );
    let report = insecure
        .submit(&example_job(&peergrid_jobs::PRIMES, 3))
        .await
        .unwrap();
    assert!(
        matches!(report.verdict, Verdict::Accepted { .. }),
        "{:?}",
        report.verdict
    );
    // A TLS scheduler finds no worker there.
    let err = scheduler(&grid)
        .submit(&example_job(&peergrid_jobs::PRIMES, 1))
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_plaintext_hello_still_proves_the_advertised_key() {
    let configs = (0..2)
        .map(|_| {
            let mut c = NodeConfig::local();
            c.insecure = true;
            c
        })
        .collect();
    let grid = LocalGrid::start(configs).await.unwrap();
    let conn = WorkerConn::connect(
        &grid.nodes[0].addr.to_string(),
        Duration::from_secs(3),
        &Transport::Insecure,
        Some(grid.nodes[1].peer_id()),
    )
    .await
    .unwrap();
    let err = conn.hello().await.unwrap_err();
    assert!(err.to_string().contains("proved peer"), "{err}");
}

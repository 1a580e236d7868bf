//! scheduler-lib's embedding example (`examples/embed_service.rs`), the very
//! code, serving HTTP in front of a real 3-node grid: one verified job, an
//! agreed program failure, a streamed batch, a typed error for no workers.

use std::sync::Arc;

use peergrid_tests::{honest_grid, scheduler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[allow(dead_code)] // its `main` is the example's, unused here
#[path = "../../scheduler-lib/examples/embed_service.rs"]
mod embed_service;

/// Sends one HTTP/1.1 POST and returns (status, body).
async fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// Undoes chunked transfer encoding (the batch answer streams).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

async fn start(scheduler: scheduler_lib::Scheduler) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Arc::new(embed_service::Service {
        scheduler: Arc::new(scheduler),
        module: peergrid_jobs::PRIMES.wasm.into(),
        replicas: 3,
    });
    tokio::spawn(embed_service::serve(listener, service));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_serves_verified_results() {
    let grid = honest_grid(3).await;
    let addr = start(scheduler(&grid)).await;

    let (status, body) = post(addr, "/run", b"1000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, job_primes::run(b"1000").unwrap());

    // The job rejects its input: every worker saw it fail, 422 with stderr.
    let (status, body) = post(addr, "/run", b"many").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("exit code 2") && body.contains("job-primes"),
        "{body}"
    );

    let (status, body) = post(addr, "/batch", b"10\n20\n30\n").await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<serde_json::Value> = dechunk(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for line in &lines[..3] {
        let n = [10, 20, 30][line["index"].as_u64().unwrap() as usize];
        assert_eq!(
            line["stdout"],
            job_primes::run(n.to_string().as_bytes()).unwrap()
        );
    }
    assert_eq!(lines[3]["verified"], 3);

    let (status, _) = post(addr, "/nothing", b"").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_maps_no_workers_to_503() {
    let grid = honest_grid(1).await;
    // One worker cannot give a strict majority of 3.
    let addr = start(scheduler(&grid)).await;
    let (status, body) = post(addr, "/run", b"10").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("need at least 2 distinct workers"), "{body}");
}

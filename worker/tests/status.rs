//! `peergrid status` as a user runs it: the real binary asking real nodes
//! (an in-process local grid that just ran a job) for their status, as JSON
//! and as text; the node found from `--node` or from the listen address of
//! the node's config file; and a clear error naming the address when no
//! node answers. Every run gets its own HOME and XDG dirs, so the user's own
//! config and identity never leak in.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};
use std::time::Duration;

use peergrid_proto::Identity;
use peergrid_worker::{LocalGrid, NodeConfig};
use scheduler_lib::{Job, Scheduler, SchedulerConfig};
use serde_json::Value;

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

/// Runs `peergrid ARGS...` in a throwaway home, off the async runtime.
async fn peergrid(home: &tempfile::TempDir, args: &[&str]) -> Output {
    let mut command = Command::new(PEERGRID);
    command
        .args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("PEERGRID_DATA_DIR");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_what_a_node_did_as_json_and_text() {
    let grid = LocalGrid::start(vec![NodeConfig::local(); 3])
        .await
        .unwrap();
    let scheduler = Scheduler::new(
        Identity::generate(),
        SchedulerConfig {
            puzzle_bits: peergrid_worker::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            job_timeout: Duration::from_secs(60),
            ..SchedulerConfig::default()
        },
    );
    let job = Job::new(peergrid_jobs::HASHCHAIN.wasm)
        .stdin(peergrid_jobs::HASHCHAIN.sample_stdin)
        .args(peergrid_jobs::HASHCHAIN.sample_args.iter().copied())
        .replicas(3);
    let report = scheduler.submit(&job).await.unwrap();
    assert!(report.verdict.accepted().is_some(), "{:?}", report.verdict);

    let home = tempfile::tempdir().unwrap();
    let node = &grid.nodes[0];
    let addr = node.addr.to_string();
    let status = json(&peergrid(&home, &["status", "--node", &addr, "--output", "json"]).await);
    assert_eq!(status["peer_id"], node.peer_id().to_string());
    assert_eq!(status["listen_addr"], addr);
    assert!(status["jobs"]["run"].as_u64().unwrap() >= 1, "{status}");
    // The default wall-time budget counts no fuel: the work is CPU time.
    assert!(
        status["jobs"]["cpu_time_us"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert_eq!(status["jobs"]["fuel_used"], 0, "{status}");
    assert_eq!(status["jobs"]["rejected_by"]["busy"], 0, "{status}");
    assert_eq!(status["slots"]["total"], node.node.total_slots());
    assert_eq!(status["tls"], true);
    assert_eq!(status["reputation"]["known"], false);
    assert!(status["peers"]["alive"].is_u64(), "{status}");
    assert!(status["version"].as_str().unwrap().starts_with("peergrid "));

    let out = peergrid(&home, &["status", "--node", &addr]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&node.peer_id().to_string()), "{shown}");
    assert!(shown.contains(&format!("at {addr}")), "{shown}");
    for label in [
        "uptime",
        "slots",
        "jobs",
        "work done",
        "peers",
        "reputation",
    ] {
        assert!(
            shown.lines().any(|l| l.starts_with(label)),
            "no {label} line:\n{shown}"
        );
    }
    assert!(shown.contains("1 run, 0 failed"), "{shown}");
    assert!(shown.contains("work done   CPU time "), "{shown}");

    // Without --node: the listen address of the config file, an
    // unspecified one asked on loopback.
    let file = home.path().join("node.toml");
    std::fs::write(
        &file,
        format!("listen = \"0.0.0.0:{}\"\n", node.addr.port()),
    )
    .unwrap();
    let status = json(
        &peergrid(
            &home,
            &[
                "status",
                "--config",
                file.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(status["peer_id"], node.peer_id().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_a_node_is_an_error_naming_the_address() {
    let home = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", closed_port());
    let out = peergrid(&home, &["status", "--node", &addr]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("peergrid node"), "{stderr}");
    assert!(out.stdout.is_empty());

    // The address from the config file is the one named.
    let port = closed_port();
    let file = home.path().join("node.toml");
    std::fs::write(&file, format!("listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let out = peergrid(&home, &["status", "--config", file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("start it with `peergrid node`"), "{stderr}");
}

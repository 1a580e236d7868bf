//! The `peergrid` binary end to end: real `peergrid node` processes on
//! 127.0.0.1 ephemeral ports, `peergrid submit` and `peergrid run` against
//! them, and `peergrid keygen`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

/// A `peergrid node` child process, killed on drop.
struct NodeProcess {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(PEERGRID)
            .args([
                "node",
                "--listen",
                "127.0.0.1:0",
                "--slots",
                "1",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut addr = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                addr = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        let addr = addr.expect("node printed its address");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peergrid(args: &[&str], data_dir: &Path) -> Output {
    Command::new(PEERGRID)
        .args(args)
        .env("PEERGRID_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

#[test]
fn keygen_creates_a_private_key_once_and_prints_the_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let first = peergrid(&["keygen", "--puzzle-bits", "8"], dir.path());
    assert!(first.status.success());
    let id = String::from_utf8(first.stdout).unwrap();
    assert_eq!(id.trim().len(), 64, "{id}");
    let second = peergrid(&["keygen", "--puzzle-bits", "8"], dir.path());
    assert_eq!(
        String::from_utf8(second.stdout).unwrap(),
        id,
        "same identity on the second run"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn submit_to_three_node_processes_prints_the_verified_output() {
    let nodes: Vec<NodeProcess> = (0..3).map(|_| NodeProcess::start()).collect();
    let work = tempfile::tempdir().unwrap();
    let module = work.path().join("primes.wasm");
    std::fs::write(&module, peergrid_jobs::PRIMES.wasm).unwrap();
    let input = work.path().join("input.txt");
    std::fs::write(&input, peergrid_jobs::PRIMES.sample_stdin).unwrap();

    let mut args = vec![
        "submit",
        module.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--puzzle-bits",
        "8",
    ];
    for n in &nodes {
        args.extend(["--peer", n.addr.as_str()]);
    }
    let out = peergrid(&args, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(out.stdout, peergrid_jobs::PRIMES.sample_stdout);
    assert!(stderr.contains("ACCEPTED by 3 of 3"), "{stderr}");

    // The ledger in the data dir kept the verdict: --resume replays it.
    let short_id = stderr
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .expect("summary names the job")
        .trim_end_matches(':')
        .to_string();
    let resumed = peergrid(
        &["submit", "--resume", &short_id, "--peer", &nodes[0].addr],
        work.path(),
    );
    let resumed_err = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{resumed_err}");
    assert_eq!(resumed.stdout, peergrid_jobs::PRIMES.sample_stdout);
    assert!(resumed_err.contains("already finished"), "{resumed_err}");

    let local = peergrid(
        &[
            "run",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        work.path(),
    );
    assert!(local.status.success());
    assert_eq!(
        local.stdout, out.stdout,
        "peergrid run gives the reference result"
    );

    // A module that is not WASM: the quorum agrees the job is invalid; exit 4.
    let bad = work.path().join("bad.wasm");
    std::fs::write(&bad, b"not a module").unwrap();
    args[1] = bad.to_str().unwrap();
    let out = peergrid(&args, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("invalid module"), "{stderr}");

    // More replicas than workers: a clear error, exit 1.
    args.extend(["--replicas", "9"]);
    let out = peergrid(&args, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("need at least 5 distinct workers"),
        "{stderr}"
    );
}

#[test]
fn run_reports_a_missing_file_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = peergrid(&["run", "/nonexistent/job.wasm"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading module /nonexistent/job.wasm"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_an_idle_node_cleanly_and_at_once() {
    let mut node = NodeProcess::start();
    let pid = node.child.id().to_string();
    let started = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = node.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the node did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

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

fn peergrid<S: AsRef<std::ffi::OsStr>>(args: &[S], data_dir: &Path) -> Output {
    Command::new(PEERGRID)
        .args(args)
        .env("PEERGRID_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

/// `peergrid submit` arguments: `args`, then the test network's puzzle and
/// every node as a peer.
fn submit_args(args: &[&str], nodes: &[NodeProcess]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--puzzle-bits".into(), "8".into()]);
    for n in nodes {
        all.extend(["--peer".into(), n.addr.clone()]);
    }
    all
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

    let mut args = submit_args(
        &[
            "submit",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        &nodes,
    );
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
    args[1] = bad.to_str().unwrap().to_string();
    let out = peergrid(&args, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("invalid module"), "{stderr}");

    // More replicas than workers: a clear error, exit 1.
    args.extend(["--replicas".to_string(), "9".to_string()]);
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

/// Writes `n` JSON lines asking the primes job for primes up to
/// `base`, `base + 1`, … and returns the path and the inputs.
fn inputs_file(dir: &Path, n: usize, base: u64) -> (std::path::PathBuf, Vec<String>) {
    let inputs: Vec<String> = (0..n as u64).map(|i| (base + i).to_string()).collect();
    let lines: String = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{{\"stdin\": \"{s}\", \"id\": \"n{i}\"}}\n"))
        .collect();
    let path = dir.join("inputs.jsonl");
    std::fs::write(&path, lines).unwrap();
    (path, inputs)
}

/// The results file of a batch, parsed.
fn results(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_batch_writes_every_verified_result_and_no_progress_when_not_a_terminal() {
    let nodes: Vec<NodeProcess> = (0..3).map(|_| NodeProcess::start()).collect();
    let work = tempfile::tempdir().unwrap();
    let module = work.path().join("primes.wasm");
    std::fs::write(&module, peergrid_jobs::PRIMES.wasm).unwrap();
    let (inputs, numbers) = inputs_file(work.path(), 12, 1000);
    // A 13th input the job rejects: a quorum agrees the program failed.
    let mut lines = std::fs::read_to_string(&inputs).unwrap();
    lines.push_str("\"not a number\"\n");
    std::fs::write(&inputs, lines).unwrap();
    let out_path = work.path().join("results.jsonl");
    let args = submit_args(
        &[
            "submit",
            module.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
        ],
        &nodes,
    );
    let out = peergrid(&args, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    // stderr is a pipe: no bar, no carriage returns or escape codes; the
    // batch id and the summary only.
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    assert!(
        stderr.contains("13 inputs: 13 verified (1 of them a program failure)"),
        "{stderr}"
    );
    assert!(stderr.contains("--resume"), "{stderr}");
    let rows = results(&out_path);
    assert_eq!(rows.len(), 13);
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let index = row["index"].as_u64().unwrap() as usize;
        assert!(seen.insert(index));
        if index == 12 {
            assert_eq!(row["label"], "line 13");
            assert_eq!(row["outcome"], "exit code 2");
            assert!(row["stderr"].as_str().unwrap().contains("job-primes"));
            continue;
        }
        assert_eq!(row["label"], format!("n{index}"));
        assert_eq!(row["state"], "accepted");
        assert_eq!(row["outcome"], "success");
        let want = job_primes::run(numbers[index].as_bytes()).unwrap();
        assert_eq!(row["stdout"].as_str().unwrap(), want);
    }

    // `peergrid jobs`: the batch is one line; its jobs only with --all.
    let batch = batch_id(&stderr);
    let out = peergrid(&["jobs"], work.path());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        listing.contains(&format!("batch {batch}"))
            && listing.contains("13 inputs: 12 ok, 1 program failed"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 1, "{listing}");
    let out = peergrid(&["jobs", "--all"], work.path());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1 + 1 + 1 + 13
    );
    let out = peergrid(&["jobs", "--output", "json"], work.path());
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 13);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["batch_id"].as_str().unwrap().starts_with(&batch))
    );
    // `peergrid job BATCH`: the input that failed, and why.
    let out = peergrid(&["job", &batch], work.path());
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        explained.contains("input 12 (line 13): accepted") && explained.contains("exit code 2"),
        "{explained}"
    );
    let out = peergrid(&["job", &batch, "--output", "json"], work.path());
    let explained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(explained["succeeded"], 12);
    assert_eq!(explained["problems"][0]["index"], 12);
}

/// The batch id prefix a `submit --inputs` printed in its resume hint.
fn batch_id(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .skip_while(|w| *w != "--resume")
        .nth(1)
        .expect("the batch id was printed")
        .trim_end_matches(['`', ')'])
        .to_string()
}

#[test]
fn a_batch_killed_midway_resumes_without_losing_or_repeating_verified_work() {
    let nodes: Vec<NodeProcess> = (0..3).map(|_| NodeProcess::start()).collect();
    let work = tempfile::tempdir().unwrap();
    let module = work.path().join("primes.wasm");
    std::fs::write(&module, peergrid_jobs::PRIMES.wasm).unwrap();
    // Big enough that the batch takes seconds with one slot per node.
    let total = 40;
    let (inputs, numbers) = inputs_file(work.path(), total, 3_000_000);
    let first = work.path().join("first.jsonl");
    let args = submit_args(
        &[
            "submit",
            module.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            first.to_str().unwrap(),
        ],
        &nodes,
    );
    let mut child = Command::new(PEERGRID)
        .args(&args)
        .env("PEERGRID_DATA_DIR", work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while results(&first).len() < 5 {
        assert!(std::time::Instant::now() < deadline, "no results in time");
        assert!(child.try_wait().unwrap().is_none(), "the batch ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    child.wait().unwrap();
    let before = results(&first);
    assert!(before.len() < total, "the batch finished before the kill");
    let batch = batch_id(&stderr);
    // Interrupted: `peergrid jobs` says so and how to finish it.
    let out = peergrid(&["jobs"], work.path());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("unfinished") && listing.contains(&format!("--resume {batch}")),
        "{listing}"
    );

    // What the ledger holds for the results written before the kill.
    let placements = |job: &str| -> usize {
        let ledger = scheduler_lib::Ledger::open(work.path().join("ledger.redb")).unwrap();
        let id: [u8; 32] = hex::decode(job).unwrap().try_into().unwrap();
        ledger.job(&id).unwrap().unwrap().placements.len()
    };
    let placed_before: Vec<(String, usize)> = before
        .iter()
        .map(|r| {
            let job = r["job_id"].as_str().unwrap().to_string();
            let n = placements(&job);
            (job, n)
        })
        .collect();

    let second = work.path().join("second.jsonl");
    let resume = submit_args(
        &[
            "submit",
            "--resume",
            &batch,
            "--out",
            second.to_str().unwrap(),
        ],
        &nodes,
    );
    let out = peergrid(&resume, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let after = results(&second);
    assert_eq!(after.len(), total, "{stderr}");
    let mut seen = std::collections::HashSet::new();
    for row in &after {
        let index = row["index"].as_u64().unwrap() as usize;
        assert!(seen.insert(index), "input {index} reported twice");
        let want = job_primes::run(numbers[index].as_bytes()).unwrap();
        assert_eq!(row["stdout"].as_str().unwrap(), want, "input {index}");
    }
    // Every result verified before the kill came from the ledger, and its
    // job was not placed again.
    for (job, placed) in placed_before {
        let row = after.iter().find(|r| r["job_id"] == job.as_str()).unwrap();
        assert_eq!(row["from_ledger"], true, "{row}");
        assert_eq!(placements(&job), placed, "job {job} ran again");
    }
    // (A job may have been decided between its ledger write and the kill,
    // before its line was written: it too comes from the ledger.)
    let from_ledger = after.iter().filter(|r| r["from_ledger"] == true).count();
    assert!(
        from_ledger >= before.len() && from_ledger < total,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{from_ledger} already decided")),
        "{stderr}"
    );
}

/// `(module (func (export "_start") (loop (br 0))))`, assembled by hand.
const ENDLESS_LOOP: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
    0x03, 0x02, 0x01, 0x00, // function section: one of type 0
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export
    0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop { br 0 }
];

/// A work directory holding [`ENDLESS_LOOP`] and the `peergrid submit`
/// arguments that run it on `node` alone under a `wall_time` budget.
fn endless_loop_submission(
    node: &NodeProcess,
    wall_time: &str,
) -> (tempfile::TempDir, Vec<String>) {
    let work = tempfile::tempdir().unwrap();
    let module = work.path().join("loop.wasm");
    std::fs::write(&module, ENDLESS_LOOP).unwrap();
    let args = submit_args(
        &[
            "submit",
            module.to_str().unwrap(),
            "--replicas",
            "1",
            "--wall-time",
            wall_time,
        ],
        std::slice::from_ref(node),
    );
    (work, args)
}

/// The state letter of process `pid` (`R`, `S`, `Z`, ...), `None` once gone.
#[cfg(target_os = "linux")]
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The children of process `pid`.
#[cfg(target_os = "linux")]
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

#[cfg(target_os = "linux")]
#[test]
fn a_node_killed_mid_job_takes_its_runner_process_with_it() {
    // A wall-time job runs in a runner process the node kills at the
    // deadline. If the node itself is killed first, the kernel must kill the
    // runner: otherwise an endless loop would burn the volunteer's CPU
    // with no one left to stop it.
    let mut node = NodeProcess::start();
    let (work, args) = endless_loop_submission(&node, "120s");
    let mut submit = Command::new(PEERGRID)
        .args(&args)
        .env("PEERGRID_DATA_DIR", work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node_pid = node.child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // The runner: a child of the node that keeps running (the compiler
    // child of this tiny module is gone within milliseconds).
    let busy = || -> Vec<u32> {
        children(node_pid)
            .into_iter()
            .filter(|&pid| process_state(pid) == Some('R'))
            .collect()
    };
    let runner = loop {
        let first = busy();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let still = busy();
        if let Some(&pid) = first.iter().find(|pid| still.contains(pid)) {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no runner process appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // Gone, or a zombie waiting for init to reap it: no longer running.
    while matches!(process_state(runner), Some(state) if state != 'Z') {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner {runner} outlived its node: {:?}",
            process_state(runner)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = submit.kill();
    let _ = submit.wait();
}

#[test]
fn a_job_that_runs_out_of_wall_time_everywhere_says_what_to_change() {
    let node = NodeProcess::start();
    let (work, args) = endless_loop_submission(&node, "300ms");
    let out = peergrid(&args, work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("NO QUORUM"), "{stderr}");
    assert!(stderr.contains("wall-clock limit"), "{stderr}");
    assert!(
        stderr.contains("raise --wall-time, or give the job a fuel budget (--fuel N)"),
        "{stderr}"
    );
}

//! `peergrid jobs` and `peergrid job ID` end to end, as a user runs them:
//! `peergrid submit` against an in-process local grid fills the ledger, then
//! the listing and the explanation are read back (text and `--output json`);
//! an interrupted job written straight into a ledger says how to resume it;
//! unknown and ambiguous ids exit 1 naming them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use peergrid_proto::{PeerId, pb, sha256};
use peergrid_worker::{LocalGrid, NodeConfig};
use scheduler_lib::job::{Job, Submission};
use scheduler_lib::ledger::{self, Ledger};
use serde_json::Value;

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

/// Runs `peergrid ARGS...` with `--data-dir`-equivalent `PEERGRID_DATA_DIR`.
fn peergrid(args: &[&str], data_dir: &Path) -> Output {
    Command::new(PEERGRID)
        .args(args)
        .env("PEERGRID_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_lists_and_job_explains_what_submit_did_on_a_local_grid() {
    let grid = LocalGrid::start(vec![NodeConfig::local(); 3])
        .await
        .unwrap();
    let mut workers: Vec<String> = grid.nodes.iter().map(|n| n.peer_id().to_string()).collect();
    workers.sort();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let module = dir.join("primes.wasm");
    std::fs::write(&module, peergrid_jobs::PRIMES.wasm).unwrap();
    let good = dir.join("good.txt");
    std::fs::write(&good, b"10000\n").unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"oops\n").unwrap();

    let submit = |input: &Path| {
        let mut args = vec![
            "submit",
            module.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--puzzle-bits",
            "8",
            "--fixed-replicas",
        ];
        let addrs = grid.addrs();
        for addr in &addrs {
            args.extend(["--peer", addr.as_str()]);
        }
        peergrid(&args, dir)
    };
    let ok = submit(&good);
    assert!(ok.status.success(), "{}", text(&ok));
    // The job itself fails (exit code 2, a message on stderr), and all three
    // workers agree that it does: submit exits 4.
    let failed = submit(&bad);
    assert_eq!(failed.status.code(), Some(4), "{}", text(&failed));

    // The listing: newest first, both accepted.
    let rows = json(&peergrid(&["jobs", "--output", "json"], dir));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0]["submitted_at_unix_ms"].as_u64() >= rows[1]["submitted_at_unix_ms"].as_u64());
    let (failed_row, ok_row) = (&rows[0], &rows[1]);
    for row in rows {
        assert_eq!(row["state"], "accepted", "{row}");
        assert_eq!(row["replicas"], 3);
        assert_eq!(row["agreeing"], 3);
        assert_eq!(row["interrupted"], false);
        assert_eq!(
            row["module_sha256"],
            hex::encode(sha256(peergrid_jobs::PRIMES.wasm))
        );
    }
    assert!(
        failed_row["summary"]
            .as_str()
            .unwrap()
            .contains("exit code 2"),
        "{failed_row}"
    );
    let job_id = ok_row["job_id"].as_str().unwrap().to_string();
    assert_eq!(job_id.len(), 64);

    let listing = peergrid(&["jobs"], dir);
    let listing_text = text(&listing);
    assert!(listing.status.success(), "{listing_text}");
    let lines: Vec<&str> = listing_text.lines().collect();
    assert_eq!(lines.len(), 3, "{listing_text}");
    assert!(lines[0].starts_with("job "), "{listing_text}");
    assert!(lines[2].starts_with(&job_id[..12]), "{listing_text}");
    assert!(lines[2].contains("accepted"), "{listing_text}");
    assert!(lines[2].contains("ok, 3 of 3 agree"), "{listing_text}");

    // One job in full, named by a prefix.
    let prefix = &job_id[..10];
    let job = json(&peergrid(&["job", prefix, "--output", "json"], dir));
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["state"], "accepted");
    assert_eq!(job["replicas"], 3);
    let output_hash = hex::encode(sha256(&ok.stdout));
    let ran = job["workers"].as_array().unwrap();
    assert_eq!(ran.len(), 3, "{job}");
    let mut ran_on: Vec<String> = Vec::new();
    for w in ran {
        assert_eq!(w["role"], "agreed", "{w}");
        assert_eq!(w["output_sha256"], output_hash.as_str(), "{w}");
        assert_eq!(w["outcome"], "success", "{w}");
        assert_eq!(w["signature"], "valid", "{w}");
        // The default wall-time budget counts CPU time, not fuel.
        assert_eq!(w["fuel_used"].as_u64(), Some(0), "{w}");
        assert!(w["cpu_time_us"].as_u64().unwrap() > 0, "{w}");
        assert!(
            w["address"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{w}"
        );
        ran_on.push(w["peer_id"].as_str().unwrap().to_string());
    }
    ran_on.sort();
    assert_eq!(ran_on, workers);
    let verdict = &job["verdict"];
    assert_eq!(verdict["output_sha256"], output_hash.as_str());
    assert_eq!(
        verdict["output"],
        String::from_utf8_lossy(&ok.stdout).as_ref()
    );
    let mut agreeing: Vec<String> = verdict["agreeing_workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    agreeing.sort();
    assert_eq!(agreeing, workers);
    assert!(verdict["dissenting_workers"].as_array().unwrap().is_empty());
    assert_eq!(job["certificate"]["valid"], true, "{job}");
    assert_eq!(job["certificate"]["signatures"], 3);

    // The failed run: every worker's stderr is kept and shown.
    let failed_id = failed_row["job_id"].as_str().unwrap();
    let out = peergrid(&["job", failed_id], dir);
    let explained = text(&out);
    assert!(out.status.success(), "{explained}");
    assert!(explained.contains("exit code 2"), "{explained}");
    assert_eq!(
        explained.matches("| job-primes: expected one").count(),
        4,
        "three workers' stderr and the verdict's:\n{explained}"
    );
    let failed_job = json(&peergrid(&["job", failed_id, "--output", "json"], dir));
    for w in failed_job["workers"].as_array().unwrap() {
        assert_eq!(w["outcome"], "exit code 2", "{w}");
        assert!(w["stderr"].as_str().unwrap().contains("job-primes:"), "{w}");
    }

    // The stored certificate can be written out and verified offline.
    let cert = dir.join("job.cert");
    let out = peergrid(
        &["job", prefix, "--certificate", cert.to_str().unwrap()],
        dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = peergrid(&["verify", cert.to_str().unwrap()], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // An id that is not in the ledger: exit 1, named.
    let unknown = "0123456789abcdef";
    let out = peergrid(&["job", unknown], dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("no job in the ledger starts with {unknown}")),
        "{}",
        text(&out)
    );
    let out = peergrid(&["job", "not-hex"], dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a job id"), "{}", text(&out));
}

/// A record as `peergrid submit` leaves it when killed after placing two of
/// three replicas.
fn interrupted_record(created_ms: u64) -> pb::JobRecord {
    let job = Job::new(b"\0asm interrupted".to_vec()).replicas(3);
    let submission = Submission::new(&job, Duration::from_secs(60));
    let mut record = ledger::new_job_record(&job, &submission, created_ms);
    for (i, port) in [(1u8, 7401), (2, 7402)] {
        record.placements.push(ledger::placement_record(
            PeerId::from_bytes([i; 32]),
            &format!("10.0.0.{i}:{port}"),
            &[i; 16],
            created_ms + 5,
        ));
    }
    record.set_state(pb::JobState::Running);
    record.state_reason = "replicas running".into();
    record
}

#[test]
fn an_interrupted_job_says_how_far_it_got_and_how_to_resume() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let record = interrupted_record(1_700_000_000_000);
    let id = hex::encode(&record.job_id);
    {
        let ledger = Ledger::open(dir.join(ledger::FILE_NAME)).unwrap();
        ledger.insert_job(&record).unwrap();
    }

    let out = peergrid(&["jobs"], dir);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(listing.contains("2023-11-14 22:13:20Z"), "{listing}");
    assert!(listing.contains("interrupted"), "{listing}");
    assert!(listing.contains("placed on 2 of 3"), "{listing}");
    assert!(
        listing.contains(&format!("peergrid submit --resume {}", &id[..12])),
        "{listing}"
    );

    let job = json(&peergrid(
        &["job", &id[..12], "--output-format", "json"],
        dir,
    ));
    assert_eq!(job["state"], "running");
    assert_eq!(job["interrupted"], true);
    assert_eq!(
        job["resume_command"],
        format!("peergrid submit --resume {id}")
    );
    assert!(job["verdict"].is_null());
    let workers = job["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["role"], "no_answer");
    assert_eq!(workers[0]["address"], "10.0.0.1:7401");
    assert_eq!(workers[0]["peer_id"], hex::encode([1u8; 32]));

    let out = peergrid(&["job", &id], dir);
    let explained = text(&out);
    assert!(out.status.success(), "{explained}");
    assert!(
        explained.contains("no verdict yet: interrupted"),
        "{explained}"
    );
    assert!(
        explained.contains("no result or failure recorded"),
        "{explained}"
    );
}

#[test]
fn an_ambiguous_prefix_and_an_empty_data_dir_are_clear() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    let out = peergrid(&["jobs"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).starts_with("no jobs submitted yet"),
        "{}",
        text(&out)
    );
    assert_eq!(
        json(&peergrid(&["jobs", "--output", "json"], dir)),
        Value::Array(vec![])
    );
    let out = peergrid(&["job", "abc"], dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("abc"), "{}", text(&out));
    assert!(
        !dir.join(ledger::FILE_NAME).exists(),
        "reading must not create a ledger"
    );

    // 17 random ids: two share a first hex digit.
    let ids: Vec<String> = {
        let ledger = Ledger::open(dir.join(ledger::FILE_NAME)).unwrap();
        (0..17)
            .map(|i| {
                let record = interrupted_record(1_000 + i);
                ledger.insert_job(&record).unwrap();
                hex::encode(&record.job_id)
            })
            .collect()
    };
    let digit = ids
        .iter()
        .map(|id| &id[..1])
        .find(|d| ids.iter().filter(|id| id.starts_with(*d)).count() > 1)
        .unwrap();
    let out = peergrid(&["job", digit], dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("give more digits"), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("start with {digit}")),
        "{}",
        text(&out)
    );

    // A ledger held by another process (a running submit) is named as such.
    let _held = Ledger::open(dir.join(ledger::FILE_NAME)).unwrap();
    let out = peergrid(&["jobs"], dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("in use by another peergrid process"),
        "{}",
        text(&out)
    );
}

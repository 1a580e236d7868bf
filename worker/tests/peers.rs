//! `peergrid peers` end to end: reputation records written straight into a
//! ledger are listed most trusted first, `--banned` filters, JSON carries
//! the full ids, and an empty or locked data directory says so clearly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

use peergrid_proto::PeerId;
use scheduler_lib::ledger::{self, Ledger};
use scheduler_lib::{Observation, Reputation, ReputationConfig, reputation_store};

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

/// Runs `peergrid peers --data-dir DIR ARGS...`.
fn peers(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(PEERGRID)
        .arg("peers")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("PEERGRID_DATA_DIR")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A ledger in `dir` holding two peers: `honest` agreed 5 times, `cheater`
/// sent an invalid result and was banned.
fn write_two_peers(dir: &Path) -> (PeerId, PeerId) {
    let (honest, cheater) = (
        PeerId::from_bytes([0xaa; 32]),
        PeerId::from_bytes([0x11; 32]),
    );
    let now = ledger::unix_ms(SystemTime::now());
    let mut reputation = Reputation::new(ReputationConfig::default());
    for i in 0..5 {
        reputation.observe(honest, Observation::Agreed, now - 90_000 + i);
    }
    reputation.observe(cheater, Observation::InvalidResult, now - 3 * 60_000);
    assert!(reputation.is_banned(&cheater));
    let ledger = Ledger::open(dir.join(ledger::FILE_NAME)).unwrap();
    for (peer, bytes) in reputation_store::encoded(&reputation, [honest, cheater]) {
        ledger.put_peer(&peer, &bytes).unwrap();
    }
    (honest, cheater)
}

#[test]
fn lists_peers_most_trusted_first_with_the_banned_one_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (honest, cheater) = write_two_peers(dir.path());

    let out = peers(dir.path(), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{:?}", out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two peers:\n{text}");
    assert!(lines[0].starts_with("peer "), "{text}");
    assert!(lines[1].starts_with(&honest.short()), "{text}");
    assert!(!lines[1].contains("banned"), "{text}");
    assert!(lines[1].contains("1m ago"), "{text}");
    assert!(lines[2].starts_with(&cheater.short()), "{text}");
    assert!(lines[2].contains(" banned "), "{text}");
    assert!(lines[2].contains("3m ago"), "{text}");

    let out = peers(dir.path(), &["--banned"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&cheater.short()), "{text}");
    assert!(!text.contains(&honest.short()), "{text}");

    let out = peers(dir.path(), &["--output-format", "json"]);
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["peer_id"], honest.to_string());
    assert_eq!(rows[0]["agreed"], 5);
    assert_eq!(rows[0]["banned"], false);
    assert_eq!(rows[1]["peer_id"], cheater.to_string());
    assert_eq!(rows[1]["banned"], true);
    assert_eq!(rows[1]["state"], "banned");
    assert_eq!(rows[1]["invalid"], 1);
    assert_eq!(rows[1]["times_banned"], 1);
    assert!(rows[0]["trust"].as_f64().unwrap() > rows[1]["trust"].as_f64().unwrap());
}

#[test]
fn an_empty_data_dir_has_no_peers_and_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = peers(dir.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("no peers observed yet"), "{text}");
    assert!(text.contains(ledger::FILE_NAME), "{text}");
    assert!(
        !dir.path().join(ledger::FILE_NAME).exists(),
        "listing must not create a ledger"
    );

    let out = peers(dir.path(), &["--output-format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows.is_empty());
}

#[test]
fn a_ledger_held_by_another_process_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Ledger::open(dir.path().join(ledger::FILE_NAME)).unwrap();
    let out = peers(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another peergrid process"),
        "{stderr}"
    );
}

//! `peergrid submit --certificate` and `peergrid verify` end to end: the
//! binary submits to a local grid, writes the certificate, and `verify`
//! checks it offline with every flag, exiting 0 when valid and 5 when not.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use peergrid_worker::{LocalGrid, NodeConfig};

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

fn peergrid(args: &[&str], data_dir: &Path) -> Output {
    Command::new(PEERGRID)
        .args(args)
        .env("PEERGRID_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

/// Runs `peergrid verify CERT ARGS...`; returns (exit code, stdout).
fn verify(cert: &Path, args: &[&str], data_dir: &Path) -> (Option<i32>, String) {
    let mut all = vec!["verify", cert.to_str().unwrap()];
    all.extend(args);
    let out = peergrid(&all, data_dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_writes_a_certificate_that_verify_checks_offline() {
    let grid = LocalGrid::start(vec![NodeConfig::local(); 3])
        .await
        .unwrap();
    let peers: Vec<String> = grid.nodes.iter().map(|n| n.peer_id().to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let module = dir.join("primes.wasm");
    std::fs::write(&module, peergrid_jobs::PRIMES.wasm).unwrap();
    let input = dir.join("input.txt");
    std::fs::write(&input, peergrid_jobs::PRIMES.sample_stdin).unwrap();
    let cert = dir.join("primes.cert");

    let mut args = vec![
        "submit",
        module.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--certificate",
        cert.to_str().unwrap(),
        "--puzzle-bits",
        "8",
    ];
    let addrs = grid.addrs();
    for addr in &addrs {
        args.extend(["--peer", addr.as_str()]);
    }
    let out = peergrid(&args, dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(out.stdout, peergrid_jobs::PRIMES.sample_stdout);
    assert!(stderr.contains("certificate: 3 signatures"), "{stderr}");
    let output = dir.join("output.txt");
    std::fs::write(&output, &out.stdout).unwrap();

    // Valid, and every signer listed.
    let (code, text) = verify(&cert, &[], dir);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("VALID: 3 distinct signers agree (2 needed)"),
        "{text}"
    );
    for peer in &peers {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("valid") && l.contains(peer.as_str())),
            "{peer} not listed as valid: {text}"
        );
    }

    // The output file is the certified one; another is not.
    let (code, text) = verify(&cert, &["--output", output.to_str().unwrap()], dir);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(": matches"), "{text}");
    let (code, text) = verify(&cert, &["--output", input.to_str().unwrap()], dir);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("is not the certified output"), "{text}");

    // More signers than agreed.
    let (code, text) = verify(&cert, &["--min-signatures", "4"], dir);
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("INVALID: too few valid signatures: got 3, need 4"),
        "{text}"
    );

    // A banned signer is listed as not counted.
    let (code, text) = verify(
        &cert,
        &["--min-signatures", "3", "--banned-peer", &peers[0]],
        dir,
    );
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("not counted"), "{text}");
    assert!(
        text.contains(&format!("is signed by banned peer {}", peers[0])),
        "{text}"
    );

    // Only known peers count: two known are enough for the default of 2.
    let (code, text) = verify(
        &cert,
        &["--known-peer", &peers[0], "--known-peer", &peers[1]],
        dir,
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("not a known peer"), "{text}");

    // JSON for machines.
    let (code, text) = verify(&cert, &["--output-format", "json"], dir);
    assert_eq!(code, Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["counted_signatures"], 3);
    assert_eq!(report["claims"].as_array().unwrap().len(), 3);
    assert_eq!(report["outcome"], "success");

    // A flipped bit in the last claim's signature.
    let mut bytes = std::fs::read(&cert).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    let tampered = dir.join("tampered.cert");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, text) = verify(&tampered, &[], dir);
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("INVALID: claim 2 has a bad signature"),
        "{text}"
    );

    // Not a certificate at all; no file; a bad peer id.
    let (code, text) = verify(&input, &[], dir);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("INVALID: malformed certificate"), "{text}");
    let (code, text) = verify(&dir.join("missing.cert"), &[], dir);
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = verify(&cert, &["--known-peer", "abc"], dir);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("peer id must be 64 hex digits"), "{text}");
}

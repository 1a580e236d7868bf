//! `peergrid demo`, the README's first command, end to end: the real
//! binary starts its local grid, every example job is verified, the planted
//! cheater is caught and banned, and the fuel-budget job ends in an agreed
//! "out of fuel".
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

#[test]
fn the_demo_catches_the_cheater_and_agrees_on_running_out_of_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(PEERGRID)
        .arg("demo")
        .env("PEERGRID_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for job in peergrid_jobs::all() {
        assert!(stdout.contains(&format!("-- {}:", job.name)), "{stdout}");
    }
    assert_eq!(
        stdout
            .matches("accepted output matches the known answer")
            .count(),
        peergrid_jobs::all().len(),
        "{stdout}"
    );
    assert!(!stdout.contains("DOES NOT match"), "{stdout}");
    // Where the cheater is caught depends on the run's random identities
    // (outvoted on a job, or by a secret spot-check): that it ends banned
    // does not.
    assert!(stdout.contains("(the planted cheater)"), "{stdout}");
    let cheater = stdout
        .lines()
        .find(|l| l.contains("(the planted cheater)"))
        .unwrap();
    assert!(cheater.contains("BANNED"), "{cheater}");
    assert!(
        stdout.contains("the job ran out of fuel at the same instruction wherever it ran"),
        "{stdout}"
    );
    // Default jobs count CPU time, not fuel.
    assert!(stdout.contains(", cpu "), "{stdout}");
}

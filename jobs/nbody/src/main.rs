//! `job-nbody`: reads `STEPS` from stdin, simulates the Sun and the four
//! Jovian planets for `STEPS` steps and prints the total energy before and
//! after.
//!
//! Exit codes: 0 on success, 2 on invalid input, 1 on an I/O error.

use std::io::{self, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
        return fail(1, &format!("cannot read stdin: {e}"));
    }
    match job_nbody::run(&input) {
        Ok(report) => match io::stdout().lock().write_all(report.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &format!("cannot write stdout: {e}")),
        },
        Err(e) => fail(2, &e.to_string()),
    }
}

/// Reports `message` on stderr and returns exit code `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "job-nbody: {message}");
    ExitCode::from(code)
}

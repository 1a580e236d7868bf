//! `job-matmul`: reads `N [SEED]` from stdin, multiplies two pseudo-random
//! `N x N` `f64` matrices and prints the product's trace, the sum of its
//! entries and a hash of its bits.
//!
//! Exit codes: 0 on success, 2 on invalid input, 1 on an I/O error.

use std::io::{self, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
        return fail(1, &format!("cannot read stdin: {e}"));
    }
    match job_matmul::run(&input) {
        Ok(report) => match io::stdout().lock().write_all(report.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &format!("cannot write stdout: {e}")),
        },
        Err(e) => fail(2, &e.to_string()),
    }
}

/// Reports `message` on stderr and returns exit code `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "job-matmul: {message}");
    ExitCode::from(code)
}

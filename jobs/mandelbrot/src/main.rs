//! `job-mandelbrot`: reads `WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]` from stdin and
//! writes the Mandelbrot set as a binary PGM image, or as ASCII art when the
//! first argument is `ascii`.
//!
//! Exit codes: 0 on success, 2 on invalid input or arguments, 1 on an I/O error.

use std::io::{self, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Option<Vec<String>> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.into_string().ok())
        .collect();
    let Some(args) = args else {
        return fail(2, "arguments must be UTF-8");
    };
    let format = match job_mandelbrot::parse_format(&args) {
        Ok(format) => format,
        Err(e) => return fail(2, &e.to_string()),
    };
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
        return fail(1, &format!("cannot read stdin: {e}"));
    }
    match job_mandelbrot::run(&input, format) {
        Ok(image) => match io::stdout().lock().write_all(&image) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &format!("cannot write stdout: {e}")),
        },
        Err(e) => fail(2, &e.to_string()),
    }
}

/// Reports `message` on stderr and returns exit code `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "job-mandelbrot: {message}");
    ExitCode::from(code)
}

//! The example peergrid jobs, compiled to `wasm32-wasip1` and embedded.
//!
//! Three small, deterministic WASI command modules, built from the sources in
//! `jobs/primes`, `jobs/mandelbrot` and `jobs/hashchain` by this crate's build
//! script during the normal cargo build (no manual step), each with a sample
//! input and the exact output that input must produce:
//!
//! | job          | stdin                                   | output                         |
//! |--------------|-----------------------------------------|--------------------------------|
//! | `primes`     | `N` (`<= 2_000_000_000`)                | count, largest and sum of primes `<= N` |
//! | `mandelbrot` | `WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]`   | binary PGM, or ASCII art with the `ascii` argument |
//! | `hashchain`  | `ROUNDS SEED...`                        | hex digest of `ROUNDS` + 1 chained SHA-256 |
//!
//! Every job reads all of stdin, writes its result to stdout and exits with
//! 0; on invalid input it writes a message to stderr and exits with 2
//! (1 for an I/O error). None reads the clock, randomness, the environment or
//! files, so output is byte-for-byte reproducible.
//!
//! ```
//! let job = peergrid_jobs::by_name("primes").unwrap();
//! assert!(job.wasm.starts_with(b"\0asm"));
//! assert_eq!(job.sample_stdout, b"primes<=2000000: 148933\nlargest: 1999993\nsum: 142913828922\n");
//! ```

/// One example job: its name, what it does, its WASM module and a sample run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleJob {
    /// Short unique name, e.g. `"primes"`.
    pub name: &'static str,
    /// One-line description, including the stdin format.
    pub description: &'static str,
    /// The `wasm32-wasip1` command module (a `_start`-exporting binary).
    pub wasm: &'static [u8],
    /// A sample stdin that runs in tens of milliseconds natively.
    pub sample_stdin: &'static [u8],
    /// Program arguments for the sample run, after `argv[0]` (which the job
    /// ignores).
    pub sample_args: &'static [&'static str],
    /// The exact stdout the sample run must produce.
    pub sample_stdout: &'static [u8],
}

/// Counts and sums the primes up to `N` with a segmented sieve.
pub const PRIMES: ExampleJob = ExampleJob {
    name: "primes",
    description: "primes <= N: count, largest and sum (segmented sieve of Eratosthenes); \
                  stdin: `N`, at most 2000000000",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/job-primes.wasm")),
    sample_stdin: include_bytes!("../primes/sample/stdin.txt"),
    sample_args: &[],
    sample_stdout: include_bytes!("../primes/sample/stdout.txt"),
};

/// Renders the Mandelbrot set; the sample draws 64x24 ASCII art.
pub const MANDELBROT: ExampleJob = ExampleJob {
    name: "mandelbrot",
    description: "Mandelbrot set (f64 escape time) as binary PGM, or ASCII art with argument \
                  `ascii`; stdin: `WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]`, at most 16Mi pixels",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/job-mandelbrot.wasm")),
    sample_stdin: include_bytes!("../mandelbrot/sample/stdin.txt"),
    sample_args: &["ascii"],
    sample_stdout: include_bytes!("../mandelbrot/sample/stdout.txt"),
};

/// Iterates SHA-256 over a seed.
pub const HASHCHAIN: ExampleJob = ExampleJob {
    name: "hashchain",
    description: "SHA-256 chain h0 = sha256(seed), h(i+1) = sha256(h(i)); prints h(ROUNDS); \
                  stdin: `ROUNDS SEED...` (seed = every byte after the first separator)",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/job-hashchain.wasm")),
    sample_stdin: include_bytes!("../hashchain/sample/stdin.txt"),
    sample_args: &[],
    sample_stdout: include_bytes!("../hashchain/sample/stdout.txt"),
};

/// All example jobs, in a fixed order: primes, mandelbrot, hashchain.
pub fn all() -> [&'static ExampleJob; 3] {
    [&PRIMES, &MANDELBROT, &HASHCHAIN]
}

/// The example job called `name`, if there is one.
pub fn by_name(name: &str) -> Option<&'static ExampleJob> {
    all().into_iter().find(|job| job.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_wasm() {
        for job in all() {
            assert!(
                job.wasm.starts_with(b"\0asm\x01\0\0\0"),
                "{} is not a WASM module",
                job.name
            );
            assert!(job.wasm.len() > 1024, "{} is suspiciously small", job.name);
        }
    }

    #[test]
    fn lookup_by_name() {
        for job in all() {
            assert_eq!(by_name(job.name), Some(job));
        }
        assert_eq!(by_name("nope"), None);
        assert_eq!(
            by_name("mandelbrot").map(|j| j.sample_args),
            Some(&["ascii"][..])
        );
    }

    #[test]
    fn samples_are_present() {
        for job in all() {
            assert!(!job.sample_stdin.is_empty(), "{}", job.name);
            assert!(!job.sample_stdout.is_empty(), "{}", job.name);
            assert!(!job.description.is_empty(), "{}", job.name);
        }
    }
}

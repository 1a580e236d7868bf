//! The example peergrid jobs, compiled to `wasm32-wasip1` and embedded.
//!
//! Six small, deterministic WASI command modules, built from the sources in
//! `jobs/<name>` by this crate's build script during the normal cargo build
//! (no manual step), each with a sample input and the exact output that
//! input must produce. Together with the SHA-256 chain they cover the five
//! standard compute kernels of the benchmark suite: matrix multiplication,
//! a sieve, Mandelbrot, integer hash mixing and n-body.
//!
//! | job          | stdin                                       | output                         |
//! |--------------|---------------------------------------------|--------------------------------|
//! | `primes`     | `N` (`<= 2_000_000_000`)                    | count, largest and sum of primes `<= N` |
//! | `mandelbrot` | `WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]`       | binary PGM, or ASCII art with the `ascii` argument |
//! | `hashchain`  | `ROUNDS SEED...`                            | hex digest of `ROUNDS` + 1 chained SHA-256 |
//! | `matmul`     | `N [SEED]` (`N <= 2048`)                    | trace, sum and FNV-1a hash of the product of two seeded random `N x N` f64 matrices |
//! | `nbody`      | `STEPS` (`<= 100_000_000`)                  | energy before and after `STEPS` steps of the 5-body (Sun and Jovian planets) simulation |
//! | `hashmix`    | `ROUNDS SEED` (`ROUNDS <= 1_000_000_000`)   | eight 64-bit lanes in hex after `ROUNDS` rounds of an integer mixer (no floats) |
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

/// Multiplies two pseudo-random matrices (i-k-j triple loop over `f64`).
pub const MATMUL: ExampleJob = ExampleJob {
    name: "matmul",
    description: "dense matrix product C = A B of two N x N f64 matrices filled from splitmix64 \
                  (plain i-k-j triple loop); prints the trace, the sum and an FNV-1a hash of C; \
                  stdin: `N [SEED]`, N at most 2048, SEED 0 by default",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/job-matmul.wasm")),
    sample_stdin: include_bytes!("../matmul/sample/stdin.txt"),
    sample_args: &[],
    sample_stdout: include_bytes!("../matmul/sample/stdout.txt"),
};

/// Simulates the Sun and the Jovian planets (the Benchmarks Game's n-body).
pub const NBODY: ExampleJob = ExampleJob {
    name: "nbody",
    description: "the Sun and the four Jovian planets under gravity (the Benchmarks Game's \
                  n-body, scalar f64); prints the energy before and after; \
                  stdin: `STEPS`, at most 100000000",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/job-nbody.wasm")),
    sample_stdin: include_bytes!("../nbody/sample/stdin.txt"),
    sample_args: &[],
    sample_stdout: include_bytes!("../nbody/sample/stdout.txt"),
};

/// Iterates a 64-bit integer hash mixer over eight lanes of state.
pub const HASHMIX: ExampleJob = ExampleJob {
    name: "hashmix",
    description: "integer hash mixing: ROUNDS rounds of the MurmurHash3 finalizer over eight \
                  u64 lanes seeded by splitmix64, no floats; prints the lanes in hex; \
                  stdin: `ROUNDS SEED`, ROUNDS at most 1000000000",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/job-hashmix.wasm")),
    sample_stdin: include_bytes!("../hashmix/sample/stdin.txt"),
    sample_args: &[],
    sample_stdout: include_bytes!("../hashmix/sample/stdout.txt"),
};

/// All example jobs, in a fixed order: primes, mandelbrot, hashchain,
/// matmul, nbody, hashmix.
pub fn all() -> [&'static ExampleJob; 6] {
    [&PRIMES, &MANDELBROT, &HASHCHAIN, &MATMUL, &NBODY, &HASHMIX]
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

//! SHA-256 hash-chain kernel for the `job-hashchain` example job.
//!
//! The chain is `h0 = sha256(seed)`, `h(i+1) = sha256(h(i))`; the job reports
//! `h(ROUNDS)`, i.e. `ROUNDS + 1` SHA-256 applications in total. This is an
//! inherently sequential workload, useful as a CPU benchmark and as a
//! result-verification example (anyone can recompute the digest).
//! [`run`] is the whole job: parse stdin, hash, format the report.

use sha2::{Digest, Sha256};
use std::fmt;

/// The largest `ROUNDS` the job accepts.
pub const MAX_ROUNDS: u64 = 1_000_000_000;

/// Why the job's input was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// The job's parameters, borrowed from its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    /// How many times to re-hash after the initial `sha256(seed)`.
    pub rounds: u64,
    /// The seed bytes, verbatim.
    pub seed: &'a [u8],
}

/// Parses the job's stdin: `ROUNDS SEED...`.
///
/// Leading whitespace is skipped, then `ROUNDS` is read as a decimal `u64`
/// (at most [`MAX_ROUNDS`]). Exactly one whitespace byte after it is a
/// separator; every byte after that is the seed, verbatim and binary-safe
/// (so a trailing newline, e.g. from `echo`, is part of the seed). The seed
/// may be empty.
pub fn parse_input(input: &[u8]) -> Result<Params<'_>, InputError> {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or_else(|| InputError("empty input; expected ROUNDS SEED...".into()))?;
    let rest = &input[start..];
    let token_len = rest
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(rest.len());
    let (token, after) = rest.split_at(token_len);
    let rounds = std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| {
            InputError(format!(
                "ROUNDS must be a non-negative integer, got {:?}",
                String::from_utf8_lossy(&token[..token.len().min(40)])
            ))
        })?;
    if rounds > MAX_ROUNDS {
        return Err(InputError(format!(
            "ROUNDS = {rounds} is too large (maximum {MAX_ROUNDS})"
        )));
    }
    let seed = after.get(1..).unwrap_or_default();
    Ok(Params { rounds, seed })
}

/// Computes `h(rounds)` where `h0 = sha256(seed)` and `h(i+1) = sha256(h(i))`.
pub fn chain(seed: &[u8], rounds: u64) -> [u8; 32] {
    let mut digest: [u8; 32] = Sha256::digest(seed).into();
    for _ in 0..rounds {
        digest = Sha256::digest(digest).into();
    }
    digest
}

/// Lower-case hexadecimal encoding of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// Formats the job's stdout, e.g. `rounds: 0\nsha256: ba78...15ad\n`.
pub fn render(rounds: u64, digest: &[u8; 32]) -> String {
    format!("rounds: {rounds}\nsha256: {}\n", to_hex(digest))
}

/// Runs the whole job: parses `stdin`, hashes and returns the report for stdout.
pub fn run(stdin: &[u8]) -> Result<String, InputError> {
    let params = parse_input(stdin)?;
    Ok(render(params.rounds, &chain(params.seed, params.rounds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const SHA256_SHA256_ABC: &str =
        "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358";

    #[test]
    fn known_chains() {
        assert_eq!(to_hex(&chain(b"abc", 0)), SHA256_ABC);
        assert_eq!(to_hex(&chain(b"abc", 1)), SHA256_SHA256_ABC);
        assert_eq!(
            to_hex(&chain(b"", 0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn chain_is_iterated() {
        let two = chain(b"peergrid", 2);
        let by_hand: [u8; 32] = Sha256::digest(chain(b"peergrid", 1)).into();
        assert_eq!(two, by_hand);
    }

    #[test]
    fn parses_input() {
        let p = parse_input(b"  7 hello world\n");
        assert_eq!(
            p,
            Ok(Params {
                rounds: 7,
                seed: b"hello world\n"
            })
        );
        assert_eq!(
            parse_input(b"3\n\tx"),
            Ok(Params {
                rounds: 3,
                seed: b"\tx"
            })
        );
        assert_eq!(
            parse_input(b"5"),
            Ok(Params {
                rounds: 5,
                seed: b""
            })
        );
        assert_eq!(
            parse_input(b"5 \xff\x00"),
            Ok(Params {
                rounds: 5,
                seed: b"\xff\x00"
            })
        );
        assert_eq!(
            run(b"0 abc"),
            Ok(format!("rounds: 0\nsha256: {SHA256_ABC}\n"))
        );
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &b""[..],
            b" \n ",
            b"-1 abc",
            b"x abc",
            b"1000000001 abc",
            b"99999999999999999999999 abc",
            b"\xff abc",
        ] {
            assert!(
                parse_input(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn sample_matches_expected_output() {
        let out = run(include_bytes!("../sample/stdin.txt"));
        assert_eq!(
            out.as_deref().map(str::as_bytes),
            Ok(&include_bytes!("../sample/stdout.txt")[..])
        );
    }
}

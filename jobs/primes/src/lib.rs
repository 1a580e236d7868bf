//! Prime counting kernel for the `job-primes` example job.
//!
//! [`sieve`] runs a segmented sieve of Eratosthenes over the odd numbers, so
//! memory stays at one fixed-size segment plus the base primes up to `sqrt(N)`
//! (a few hundred KiB at most), whatever `N` is. [`run`] is the whole job:
//! parse stdin, sieve, format the report.

use std::fmt;

/// The largest `N` the job accepts (larger inputs are rejected, not truncated).
pub const MAX_N: u64 = 2_000_000_000;

/// Number of odd candidates per sieve segment (64 KiB of flags).
const SEGMENT_LEN: usize = 1 << 16;

/// Why the job's input was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// What the sieve found among the integers `0..=n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimeSummary {
    /// The upper bound (inclusive) that was sieved.
    pub n: u64,
    /// How many primes are `<= n`.
    pub count: u64,
    /// The largest prime `<= n`, if there is one (`None` for `n < 2`).
    pub largest: Option<u64>,
    /// The sum of all primes `<= n`.
    pub sum: u128,
}

impl PrimeSummary {
    fn record(&mut self, p: u64) {
        self.count += 1;
        self.sum += u128::from(p);
        self.largest = Some(p);
    }
}

/// Parses the job's stdin: one decimal integer `N` (surrounding whitespace is
/// ignored), `0 <= N <= MAX_N`.
pub fn parse_input(input: &[u8]) -> Result<u64, InputError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| InputError("input is not UTF-8 text; expected one integer N".into()))?
        .trim();
    if text.is_empty() {
        return Err(InputError("empty input; expected one integer N".into()));
    }
    let n: u64 = text.parse().map_err(|_| {
        InputError(format!(
            "expected one non-negative integer N, got {:?}",
            truncate(text)
        ))
    })?;
    if n > MAX_N {
        return Err(InputError(format!(
            "N = {n} is too large (maximum {MAX_N})"
        )));
    }
    Ok(n)
}

/// Sieves `0..=n` and summarises the primes found.
///
/// Time is `O(n log log n)`; memory is `O(sqrt(n))` plus one 64 KiB segment.
/// Intended for `n <= MAX_N` (what [`parse_input`] accepts); far larger `n`
/// need about `sqrt(n)` bytes for the base primes and a very long time.
pub fn sieve(n: u64) -> PrimeSummary {
    sieve_segmented(n, SEGMENT_LEN)
}

/// [`sieve`] with an explicit segment length (number of odd candidates).
fn sieve_segmented(n: u64, segment_len: usize) -> PrimeSummary {
    let mut summary = PrimeSummary {
        n,
        count: 0,
        largest: None,
        sum: 0,
    };
    if n < 2 {
        return summary;
    }
    summary.record(2);

    let base = odd_primes_up_to(n.isqrt());
    let mut is_prime = vec![true; segment_len.max(1)];
    // Each segment holds the odd numbers lo, lo + 2, ..., hi.
    let mut lo = 3u64;
    while lo <= n {
        let len = ((n - lo) / 2 + 1).min(is_prime.len() as u64) as usize;
        let flags = &mut is_prime[..len];
        flags.fill(true);
        let hi = lo + 2 * (len as u64 - 1);
        for &p in &base {
            let square = p * p;
            if square > hi {
                break;
            }
            // First odd multiple of p that is >= max(p*p, lo).
            let mut m = if square >= lo {
                square
            } else {
                let k = lo.div_ceil(p) * p;
                if k % 2 == 0 { k + p } else { k }
            };
            while m <= hi {
                flags[((m - lo) / 2) as usize] = false;
                m += 2 * p;
            }
        }
        for (i, _) in flags.iter().enumerate().filter(|(_, is_p)| **is_p) {
            summary.record(lo + 2 * i as u64);
        }
        match hi.checked_add(2) {
            Some(next) => lo = next,
            None => break,
        }
    }
    summary
}

/// The odd primes `<= limit`, by a plain (unsegmented) sieve.
fn odd_primes_up_to(limit: u64) -> Vec<u64> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    for i in (3..=limit).step_by(2) {
        if !composite[i] {
            primes.push(i as u64);
            let Some(square) = i.checked_mul(i) else {
                continue;
            };
            for m in (square..=limit).step_by(2 * i) {
                composite[m] = true;
            }
        }
    }
    primes
}

/// Formats a summary as the job's stdout, e.g.
/// `primes<=100: 25\nlargest: 97\nsum: 1060\n`.
pub fn render(summary: &PrimeSummary) -> String {
    let largest = summary
        .largest
        .map_or_else(|| "none".to_string(), |p| p.to_string());
    format!(
        "primes<={}: {}\nlargest: {}\nsum: {}\n",
        summary.n, summary.count, largest, summary.sum
    )
}

/// Runs the whole job: parses `stdin`, sieves and returns the report for stdout.
pub fn run(stdin: &[u8]) -> Result<String, InputError> {
    parse_input(stdin).map(|n| render(&sieve(n)))
}

/// Shortens user input quoted in error messages.
fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(n: u64) -> PrimeSummary {
        let mut s = PrimeSummary {
            n,
            count: 0,
            largest: None,
            sum: 0,
        };
        for k in 2..=n {
            if (2..k).take_while(|d| d * d <= k).all(|d| k % d != 0) {
                s.record(k);
            }
        }
        s
    }

    #[test]
    fn primes_up_to_100() {
        let s = sieve(100);
        assert_eq!((s.count, s.largest, s.sum), (25, Some(97), 1060));
        assert_eq!(render(&s), "primes<=100: 25\nlargest: 97\nsum: 1060\n");
    }

    #[test]
    fn tiny_bounds() {
        assert_eq!(render(&sieve(0)), "primes<=0: 0\nlargest: none\nsum: 0\n");
        assert_eq!(sieve(1).count, 0);
        assert_eq!((sieve(2).count, sieve(2).largest), (1, Some(2)));
        assert_eq!((sieve(3).count, sieve(3).sum), (2, 5));
        assert_eq!((sieve(4).count, sieve(4).largest), (2, Some(3)));
    }

    #[test]
    fn segment_boundaries_match_naive() {
        for n in [0, 1, 2, 3, 9, 10, 11, 25, 49, 50, 121, 997, 1000, 2027] {
            for seg in [1, 2, 3, 7, 64] {
                assert_eq!(sieve_segmented(n, seg), naive(n), "n={n} seg={seg}");
            }
        }
        assert_eq!(sieve(20_000), naive(20_000));
    }

    #[test]
    fn two_million() {
        // Project Euler 10: the sum of the primes below two million.
        let s = sieve(2_000_000);
        assert_eq!(s.count, 148_933);
        assert_eq!(s.largest, Some(1_999_993));
        assert_eq!(s.sum, 142_913_828_922);
    }

    #[test]
    fn parses_and_rejects_input() {
        assert_eq!(parse_input(b"  100\n"), Ok(100));
        assert_eq!(parse_input(b"2000000000"), Ok(MAX_N));
        assert!(parse_input(b"2000000001").is_err());
        assert!(parse_input(b"").is_err());
        assert!(parse_input(b" \n").is_err());
        assert!(parse_input(b"-5").is_err());
        assert!(parse_input(b"12 13").is_err());
        assert!(parse_input(b"abc").is_err());
        assert!(parse_input(b"\xff\xfe").is_err());
        assert!(parse_input(b"99999999999999999999999").is_err());
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

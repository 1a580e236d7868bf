//! Dense matrix multiplication kernel for the `job-matmul` example job.
//!
//! [`random_matrices`] fills two `N x N` row-major `f64` matrices `A` and `B`
//! from one splitmix64 stream seeded with `SEED` (entries in `[-1, 1)`, each
//! exactly a multiple of 2^-52); [`multiply`] computes `C = A B` with the
//! plain cache-friendly triple loop in i-k-j order, and [`summarize`] reduces
//! `C` to its trace, the sum of its entries and an FNV-1a hash of the bits of
//! every entry. [`run`] is the whole job: parse stdin, multiply, format the
//! report.
//!
//! Determinism: every entry `C[i][j]` is accumulated from `0.0` over `k =
//! 0, 1, ..., N - 1` in that order, with separate (correctly rounded)
//! multiplications and additions — no fused multiply-add, no reassociation,
//! no `unsafe` or SIMD intrinsics — and the reductions run in row-major
//! order, so the result is bit for bit the same natively (even where the
//! compiler vectorizes the `j` loop) and in WASM. The FNV-1a line pins those
//! bits exactly; the decimal lines are for people.

use std::fmt;

/// The largest `N` the job accepts (three `N x N` matrices take 96 MiB).
pub const MAX_N: usize = 2048;

/// `SEED` when stdin gives only `N`.
pub const DEFAULT_SEED: u64 = 0;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Why the job's input was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// The job's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The matrices' order (`1..=MAX_N`).
    pub n: usize,
    /// The seed of the matrices' entries.
    pub seed: u64,
}

/// What the product reduces to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// `C[0][0] + C[1][1] + ...`, summed in that order.
    pub trace: f64,
    /// The sum of all entries, in row-major order.
    pub sum: f64,
    /// FNV-1a (64-bit) over the little-endian bytes of every entry's bits,
    /// in row-major order.
    pub fnv1a: u64,
}

/// One step of Vigna's splitmix64 generator: advances `state` and returns the
/// next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps 64 random bits to `[-1, 1)`: the top 53 bits times 2^-52, minus one.
/// Every step is exact, so no rounding mode or platform can change it.
pub fn to_unit(bits: u64) -> f64 {
    const TWO_POW_MINUS_52: f64 = 1.0 / 4_503_599_627_370_496.0;
    (bits >> 11) as f64 * TWO_POW_MINUS_52 - 1.0
}

/// `A` and `B`, `n x n` and row-major: the first `n * n` values of the
/// splitmix64 stream seeded with `seed` fill `A`, the next `n * n` fill `B`.
pub fn random_matrices(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut state = seed;
    let mut next = || to_unit(splitmix64(&mut state));
    let a = (0..n * n).map(|_| next()).collect();
    let b = (0..n * n).map(|_| next()).collect();
    (a, b)
}

/// `C = A B` for `n x n` row-major matrices, by the i-k-j triple loop:
/// `C[i][j] += A[i][k] * B[k][j]` for `k` ascending, `j` innermost.
///
/// # Panics
///
/// If `a` or `b` does not hold exactly `n * n` entries.
pub fn multiply(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n, "A is not {n} x {n}");
    assert_eq!(b.len(), n * n, "B is not {n} x {n}");
    let mut c = vec![0.0; n * n];
    if n == 0 {
        return c;
    }
    for (c_row, a_row) in c.chunks_exact_mut(n).zip(a.chunks_exact(n)) {
        for (&a_ik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            for (c_ij, &b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij += a_ik * b_kj;
            }
        }
    }
    c
}

/// FNV-1a (64-bit) of `bytes`.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// Reduces the `n x n` row-major matrix `c` to its trace, sum and hash.
pub fn summarize(c: &[f64], n: usize) -> Summary {
    Summary {
        trace: (0..n).map(|i| c[i * n + i]).sum(),
        sum: c.iter().sum(),
        fnv1a: fnv1a(c.iter().flat_map(|x| x.to_bits().to_le_bytes())),
    }
}

/// Parses the job's stdin: `N [SEED]`, decimal integers separated by
/// whitespace (surrounding whitespace is ignored), `1 <= N <= MAX_N`,
/// `SEED < 2^64` (default [`DEFAULT_SEED`]).
pub fn parse_input(input: &[u8]) -> Result<Params, InputError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| InputError("input is not UTF-8 text; expected N [SEED]".into()))?;
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let (n, seed) = match fields[..] {
        [n] => (n, None),
        [n, seed] => (n, Some(seed)),
        _ => {
            return Err(InputError(format!(
                "expected N [SEED] (one or two integers), got {} fields",
                fields.len()
            )));
        }
    };
    let n = match n.parse::<usize>() {
        Ok(n) if (1..=MAX_N).contains(&n) => n,
        _ => {
            return Err(InputError(format!(
                "N must be an integer from 1 to {MAX_N}, got {:?}",
                truncate(n)
            )));
        }
    };
    let seed = match seed {
        None => DEFAULT_SEED,
        Some(seed) => seed.parse().map_err(|_| {
            InputError(format!(
                "SEED must be an integer from 0 to {}, got {:?}",
                u64::MAX,
                truncate(seed)
            ))
        })?,
    };
    Ok(Params { n, seed })
}

/// Formats the job's stdout, e.g.
/// `n: 2\nseed: 0\ntrace: 6.900000000e1\nsum: 1.340000000e2\nfnv1a: ...\n`
/// (`{:.9e}`: ten significant digits).
pub fn render(params: Params, summary: &Summary) -> String {
    format!(
        "n: {}\nseed: {}\ntrace: {:.9e}\nsum: {:.9e}\nfnv1a: {:016x}\n",
        params.n, params.seed, summary.trace, summary.sum, summary.fnv1a
    )
}

/// Runs the whole job: parses `stdin`, multiplies and returns the report for
/// stdout.
pub fn run(stdin: &[u8]) -> Result<String, InputError> {
    let params = parse_input(stdin)?;
    let (a, b) = random_matrices(params.n, params.seed);
    let c = multiply(&a, &b, params.n);
    Ok(render(params, &summarize(&c, params.n)))
}

/// Shortens user input quoted in error messages.
fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook i-j-k product, summing over `k` ascending from `0.0`.
    fn naive(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for k in 0..n {
                    s += a[i * n + k] * b[k * n + j];
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    fn bits(m: &[f64]) -> Vec<u64> {
        m.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn two_by_two() {
        let c = multiply(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        let s = summarize(&c, 2);
        assert_eq!((s.trace, s.sum), (69.0, 134.0));
        assert!(
            render(Params { n: 2, seed: 0 }, &s)
                .starts_with("n: 2\nseed: 0\ntrace: 6.900000000e1\nsum: 1.340000000e2\nfnv1a: ")
        );
    }

    #[test]
    fn identity_is_neutral() {
        let n = 7;
        let (a, _) = random_matrices(n, 3);
        let id: Vec<f64> = (0..n * n)
            .map(|x| if x % (n + 1) == 0 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(bits(&multiply(&a, &id, n)), bits(&a));
        assert_eq!(bits(&multiply(&id, &a, n)), bits(&a));
    }

    #[test]
    fn matches_the_textbook_loop_bit_for_bit() {
        for n in 1..=12 {
            let (a, b) = random_matrices(n, n as u64);
            assert_eq!(bits(&multiply(&a, &b, n)), bits(&naive(&a, &b, n)), "n={n}");
        }
    }

    #[test]
    fn entries_are_in_range_and_seeded() {
        let (a, b) = random_matrices(16, 9);
        assert!(a.iter().chain(&b).all(|x| (-1.0..1.0).contains(x)));
        assert_ne!(a, b);
        assert_eq!(random_matrices(16, 9), (a.clone(), b));
        assert_ne!(random_matrices(16, 10).0, a);
        assert_eq!(
            (to_unit(0), to_unit(u64::MAX)),
            (-1.0, 1.0 - 2f64.powi(-52))
        );
        assert_eq!(to_unit(1 << 63), 0.0);
    }

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(*b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn parses_and_rejects_input() {
        assert_eq!(parse_input(b" 64\n"), Ok(Params { n: 64, seed: 0 }));
        assert_eq!(
            parse_input(b"2048 18446744073709551615\n"),
            Ok(Params {
                n: MAX_N,
                seed: u64::MAX
            })
        );
        for bad in [
            &b""[..],
            b" \n",
            b"0",
            b"2049",
            b"-3",
            b"8 -1",
            b"8 1 2",
            b"8 x",
            b"eight",
            b"99999999999999999999999",
            b"\xff",
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

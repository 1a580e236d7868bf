//! Integer hash-mixing kernel for the `job-hashmix` example job.
//!
//! The state is [`LANES`] 64-bit words, filled from `SEED` by splitmix64.
//! Each of `ROUNDS` rounds ([`mix_round`]) replaces every lane, in order, by
//! the MurmurHash3 finalizer ([`fmix64`]) of itself xor its (already updated,
//! for the last lane) right neighbour rotated, xor a per-round key. Only
//! wrapping integer multiplication, xor, shifts and rotations are used — no
//! floating point at all — so the output is the same natively and in WASM on
//! every platform. A round is a bijection of the state (every step can be
//! undone; the tests do), so the state never collapses. The lanes of one
//! round are mostly independent, which gives a CPU some instruction-level
//! parallelism, while the rounds form one long dependency chain.
//! [`run`] is the whole job: parse stdin, mix, format the report.

use std::fmt;

/// The largest `ROUNDS` the job accepts.
pub const MAX_ROUNDS: u64 = 1_000_000_000;

/// Number of 64-bit lanes of state.
pub const LANES: usize = 8;

/// The splitmix64 increment (2^64 / golden ratio), also the round-key step.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Left rotation applied to lane `i`'s neighbour before it is mixed in.
const ROTATIONS: [u32; LANES] = [7, 13, 19, 23, 29, 37, 43, 53];

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
    /// How many rounds of [`mix_round`] to apply.
    pub rounds: u64,
    /// The seed of the initial state.
    pub seed: u64,
}

/// One step of Vigna's splitmix64 generator: advances `state` and returns the
/// next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit finalizer of MurmurHash3 (a bijection of `u64`).
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The initial state: the first [`LANES`] outputs of splitmix64 seeded with
/// `seed`.
pub fn initial_state(seed: u64) -> [u64; LANES] {
    let mut s = seed;
    std::array::from_fn(|_| splitmix64(&mut s))
}

/// The key mixed into every lane in round `round` (counted from 0).
fn round_key(round: u64) -> u64 {
    round.wrapping_add(1).wrapping_mul(GOLDEN)
}

/// Applies round number `round` (counted from 0) to `state`:
/// `state[i] = fmix64(state[i] ^ rotl(state[i + 1 mod LANES], ROT[i]) ^ key)`
/// for `i = 0, 1, ..., LANES - 1` in that order, so the last lane sees the
/// new value of lane 0.
pub fn mix_round(state: &mut [u64; LANES], round: u64) {
    let key = round_key(round);
    for i in 0..LANES {
        let next = state[(i + 1) % LANES].rotate_left(ROTATIONS[i]);
        state[i] = fmix64(state[i] ^ next ^ key);
    }
}

/// The state after `rounds` rounds from [`initial_state`]`(seed)`.
pub fn mix(seed: u64, rounds: u64) -> [u64; LANES] {
    let mut state = initial_state(seed);
    for round in 0..rounds {
        mix_round(&mut state, round);
    }
    state
}

/// Parses the job's stdin: `ROUNDS SEED`, two decimal integers separated by
/// whitespace (surrounding whitespace is ignored), `ROUNDS <= MAX_ROUNDS`,
/// `SEED < 2^64`.
pub fn parse_input(input: &[u8]) -> Result<Params, InputError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| InputError("input is not UTF-8 text; expected ROUNDS SEED".into()))?;
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [rounds, seed] = fields[..] else {
        return Err(InputError(format!(
            "expected two integers ROUNDS SEED, got {} fields",
            fields.len()
        )));
    };
    let rounds: u64 = rounds.parse().map_err(|_| {
        InputError(format!(
            "ROUNDS must be a non-negative integer, got {:?}",
            truncate(rounds)
        ))
    })?;
    if rounds > MAX_ROUNDS {
        return Err(InputError(format!(
            "ROUNDS = {rounds} is too large (maximum {MAX_ROUNDS})"
        )));
    }
    let seed: u64 = seed.parse().map_err(|_| {
        InputError(format!(
            "SEED must be an integer from 0 to {}, got {:?}",
            u64::MAX,
            truncate(seed)
        ))
    })?;
    Ok(Params { rounds, seed })
}

/// Formats the job's stdout: the parameters, then the lanes in hex, e.g.
/// `rounds: 0\nseed: 0\nstate: e220a8397b1dcdaf 6e789e6aa1b965f4 ...\n`.
pub fn render(params: Params, state: &[u64; LANES]) -> String {
    let lanes: Vec<String> = state.iter().map(|lane| format!("{lane:016x}")).collect();
    format!(
        "rounds: {}\nseed: {}\nstate: {}\n",
        params.rounds,
        params.seed,
        lanes.join(" ")
    )
}

/// Runs the whole job: parses `stdin`, mixes and returns the report for
/// stdout.
pub fn run(stdin: &[u8]) -> Result<String, InputError> {
    let params = parse_input(stdin)?;
    Ok(render(params, &mix(params.seed, params.rounds)))
}

/// Shortens user input quoted in error messages.
fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of an odd `a` modulo 2^64, by Newton's iteration.
    fn inverse(a: u64) -> u64 {
        let mut x = a; // correct to 3 bits for odd a
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        assert_eq!(a.wrapping_mul(x), 1);
        x
    }

    fn unfmix64(mut k: u64) -> u64 {
        // `k ^= k >> 33` is its own inverse (33 >= 64 / 2).
        k ^= k >> 33;
        k = k.wrapping_mul(inverse(0xc4ce_b9fe_1a85_ec53));
        k ^= k >> 33;
        k = k.wrapping_mul(inverse(0xff51_afd7_ed55_8ccd));
        k ^ (k >> 33)
    }

    fn unmix_round(state: &mut [u64; LANES], round: u64) {
        let key = round_key(round);
        for i in (0..LANES).rev() {
            let next = state[(i + 1) % LANES].rotate_left(ROTATIONS[i]);
            state[i] = unfmix64(state[i]) ^ next ^ key;
        }
    }

    #[test]
    fn splitmix64_reference_values() {
        // Vigna's splitmix64.c from state 0.
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut s), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn fmix64_is_a_bijection() {
        assert_eq!(fmix64(0), 0);
        let mut s = 7;
        for _ in 0..1000 {
            let x = splitmix64(&mut s);
            assert_eq!(unfmix64(fmix64(x)), x);
        }
    }

    #[test]
    fn rounds_can_be_undone() {
        for seed in [0, 1, 42, u64::MAX] {
            let mut state = mix(seed, 50);
            for round in (0..50).rev() {
                unmix_round(&mut state, round);
            }
            assert_eq!(state, initial_state(seed), "seed {seed}");
        }
    }

    #[test]
    fn one_flipped_bit_reaches_every_lane() {
        for lane in 0..LANES {
            for bit in [0, 31, 63] {
                let (mut a, mut b) = (initial_state(5), initial_state(5));
                b[lane] ^= 1 << bit;
                for round in 0..LANES as u64 {
                    mix_round(&mut a, round);
                    mix_round(&mut b, round);
                }
                for i in 0..LANES {
                    assert_ne!(a[i], b[i], "flipped lane {lane} bit {bit}: lane {i}");
                }
            }
        }
    }

    #[test]
    fn zero_rounds_is_the_seeded_state() {
        assert_eq!(
            run(b"0 0"),
            Ok(format!(
                "rounds: 0\nseed: 0\nstate: {}\n",
                [
                    "e220a8397b1dcdaf",
                    "6e789e6aa1b965f4",
                    "06c45d188009454f",
                    "f88bb8a8724c81ec",
                    "1b39896a51a8749b",
                    "53cb9f0c747ea2ea",
                    "2c829abe1f4532e1",
                    "c584133ac916ab3c",
                ]
                .join(" ")
            ))
        );
    }

    #[test]
    fn parses_and_rejects_input() {
        assert_eq!(
            parse_input(b"  12\t34\n"),
            Ok(Params {
                rounds: 12,
                seed: 34
            })
        );
        assert_eq!(
            parse_input(b"1000000000 18446744073709551615"),
            Ok(Params {
                rounds: MAX_ROUNDS,
                seed: u64::MAX
            })
        );
        for bad in [
            &b""[..],
            b" \n",
            b"5",
            b"5 6 7",
            b"1000000001 1",
            b"-1 1",
            b"1 -1",
            b"1 18446744073709551616",
            b"x 1",
            b"1 0x10",
            b"\xff 1",
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

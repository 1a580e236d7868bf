//! N-body kernel for the `job-nbody` example job.
//!
//! The classic n-body program of the Computer Language Benchmarks Game: the
//! Sun and the four Jovian planets (Jupiter, Saturn, Uranus, Neptune) under
//! Newtonian gravity, advanced by [`advance`] in steps of [`DT`] `= 0.01`
//! (the benchmark's units: AU, years, and masses with `G = 1`, so the Sun's
//! mass is `4 * pi^2`), velocities first, then positions. The job reports
//! the system's total energy before and after `STEPS` steps, to nine decimal
//! places; the numbers are those of the Benchmarks Game's reference output
//! (`-0.169075164` and `-0.169087605` for 1000 steps).
//!
//! Only plain scalar `f64` arithmetic and `sqrt` are used, in a fixed order,
//! all of which IEEE 754 defines exactly (correctly rounded), so the output is
//! the same natively and in WASM on every platform: no fused multiply-add, no
//! `powi`, no transcendental functions. [`run`] is the whole job: parse stdin,
//! simulate, format the report.

use std::f64::consts::PI;
use std::fmt;

/// The largest `STEPS` the job accepts.
pub const MAX_STEPS: u64 = 100_000_000;

/// The time step, in the benchmark's units.
pub const DT: f64 = 0.01;

const SOLAR_MASS: f64 = 4.0 * PI * PI;
const DAYS_PER_YEAR: f64 = 365.24;

/// Number of bodies in the system.
pub const BODIES: usize = 5;

/// Why the job's input was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// One body: position, velocity and mass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Body {
    /// Position `[x, y, z]`.
    pub pos: [f64; 3],
    /// Velocity `[vx, vy, vz]`.
    pub vel: [f64; 3],
    /// Mass (`G = 1` units).
    pub mass: f64,
}

/// A planet from the benchmark's table: velocities per day, mass in solar
/// masses.
const fn planet(pos: [f64; 3], vel_per_day: [f64; 3], solar_masses: f64) -> Body {
    Body {
        pos,
        vel: [
            vel_per_day[0] * DAYS_PER_YEAR,
            vel_per_day[1] * DAYS_PER_YEAR,
            vel_per_day[2] * DAYS_PER_YEAR,
        ],
        mass: solar_masses * SOLAR_MASS,
    }
}

/// The initial system, before the Sun's momentum is offset: Sun, Jupiter,
/// Saturn, Uranus, Neptune. The digits are the benchmark's, verbatim (more
/// than an `f64` holds; each literal rounds to the same `f64` as the
/// reference programs').
#[allow(clippy::excessive_precision)]
const INITIAL: [Body; BODIES] = [
    Body {
        pos: [0.0; 3],
        vel: [0.0; 3],
        mass: SOLAR_MASS,
    },
    planet(
        [
            4.841_431_442_464_720_90e+00,
            -1.160_320_044_027_428_39e+00,
            -1.036_220_444_711_231_09e-01,
        ],
        [
            1.660_076_642_744_036_94e-03,
            7.699_011_184_197_404_25e-03,
            -6.904_600_169_720_630_23e-05,
        ],
        9.547_919_384_243_266_09e-04,
    ),
    planet(
        [
            8.343_366_718_244_579_87e+00,
            4.124_798_564_124_304_79e+00,
            -4.035_234_171_143_213_81e-01,
        ],
        [
            -2.767_425_107_268_624_11e-03,
            4.998_528_012_349_172_38e-03,
            2.304_172_975_737_639_29e-05,
        ],
        2.858_859_806_661_308_12e-04,
    ),
    planet(
        [
            1.289_436_956_213_913_10e+01,
            -1.511_115_140_169_863_12e+01,
            -2.233_075_788_926_557_34e-01,
        ],
        [
            2.964_601_375_647_616_18e-03,
            2.378_471_739_594_809_50e-03,
            -2.965_895_685_402_375_56e-05,
        ],
        4.366_244_043_351_562_98e-05,
    ),
    planet(
        [
            1.537_969_711_485_091_65e+01,
            -2.591_931_460_998_796_41e+01,
            1.792_587_729_503_711_81e-01,
        ],
        [
            2.680_677_724_903_893_22e-03,
            1.628_241_700_382_422_95e-03,
            -9.515_922_545_197_158_70e-05,
        ],
        5.151_389_020_466_114_51e-05,
    ),
];

/// The starting system: [`INITIAL`] with the Sun's velocity set so that the
/// total momentum is zero.
pub fn initial_system() -> [Body; BODIES] {
    let mut bodies = INITIAL;
    let mut momentum = [0.0; 3];
    for body in &bodies {
        for (p, v) in momentum.iter_mut().zip(body.vel) {
            *p += v * body.mass;
        }
    }
    for (v, p) in bodies[0].vel.iter_mut().zip(momentum) {
        *v = -p / SOLAR_MASS;
    }
    bodies
}

/// Total energy: kinetic minus the pairwise gravitational potentials.
pub fn energy(bodies: &[Body; BODIES]) -> f64 {
    let mut e = 0.0;
    for (i, a) in bodies.iter().enumerate() {
        let [vx, vy, vz] = a.vel;
        e += 0.5 * a.mass * (vx * vx + vy * vy + vz * vz);
        for b in &bodies[i + 1..] {
            let [dx, dy, dz] = sub(a.pos, b.pos);
            e -= (a.mass * b.mass) / (dx * dx + dy * dy + dz * dz).sqrt();
        }
    }
    e
}

/// Advances the system by one step of [`DT`]: every pair's velocity kicks
/// first, then every position drifts.
pub fn advance(bodies: &mut [Body; BODIES]) {
    for i in 0..BODIES {
        let (left, right) = bodies.split_at_mut(i + 1);
        let a = &mut left[i];
        for b in right {
            let d = sub(a.pos, b.pos);
            let d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            let mag = DT / (d2 * d2.sqrt());
            let (mass_a, mass_b) = (a.mass, b.mass);
            for ((va, vb), dk) in a.vel.iter_mut().zip(&mut b.vel).zip(d) {
                *va -= dk * mass_b * mag;
                *vb += dk * mass_a * mag;
            }
        }
    }
    for body in bodies.iter_mut() {
        for (x, v) in body.pos.iter_mut().zip(body.vel) {
            *x += DT * v;
        }
    }
}

/// `a - b`, componentwise.
fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// Simulates `steps` steps from [`initial_system`]; returns the energy before
/// and after.
pub fn simulate(steps: u64) -> (f64, f64) {
    let mut bodies = initial_system();
    let before = energy(&bodies);
    for _ in 0..steps {
        advance(&mut bodies);
    }
    (before, energy(&bodies))
}

/// Parses the job's stdin: one decimal integer `STEPS` (surrounding
/// whitespace is ignored), `0 <= STEPS <= MAX_STEPS`.
pub fn parse_input(input: &[u8]) -> Result<u64, InputError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| InputError("input is not UTF-8 text; expected one integer STEPS".into()))?
        .trim();
    if text.is_empty() {
        return Err(InputError("empty input; expected one integer STEPS".into()));
    }
    let steps: u64 = text.parse().map_err(|_| {
        InputError(format!(
            "expected one non-negative integer STEPS, got {:?}",
            truncate(text)
        ))
    })?;
    if steps > MAX_STEPS {
        return Err(InputError(format!(
            "STEPS = {steps} is too large (maximum {MAX_STEPS})"
        )));
    }
    Ok(steps)
}

/// Formats the job's stdout, e.g.
/// `steps: 1000\nenergy before: -0.169075164\nenergy after: -0.169087605\n`.
pub fn render(steps: u64, before: f64, after: f64) -> String {
    format!("steps: {steps}\nenergy before: {before:.9}\nenergy after: {after:.9}\n")
}

/// Runs the whole job: parses `stdin`, simulates and returns the report for
/// stdout.
pub fn run(stdin: &[u8]) -> Result<String, InputError> {
    let steps = parse_input(stdin)?;
    let (before, after) = simulate(steps);
    Ok(render(steps, before, after))
}

/// Shortens user input quoted in error messages.
fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_game_reference_output() {
        // The Benchmarks Game's nbody-output.txt, for n = 1000.
        let (before, after) = simulate(1000);
        assert_eq!(format!("{before:.9}"), "-0.169075164");
        assert_eq!(format!("{after:.9}"), "-0.169087605");
    }

    #[test]
    fn zero_steps_keeps_the_energy() {
        let (before, after) = simulate(0);
        assert_eq!(before.to_bits(), after.to_bits());
        assert_eq!(
            render(0, before, after),
            "steps: 0\nenergy before: -0.169075164\nenergy after: -0.169075164\n"
        );
    }

    #[test]
    fn momentum_is_offset() {
        let bodies = initial_system();
        for k in 0..3 {
            let p: f64 = bodies.iter().map(|b| b.vel[k] * b.mass).sum();
            assert!(p.abs() < 1e-15, "axis {k}: momentum {p}");
        }
    }

    #[test]
    fn energy_is_nearly_conserved() {
        let (before, after) = simulate(20_000);
        assert!(((after - before) / before).abs() < 1e-3, "{before} {after}");
    }

    #[test]
    fn is_deterministic_bit_for_bit() {
        let a = simulate(777);
        let b = simulate(777);
        assert_eq!(
            (a.0.to_bits(), a.1.to_bits()),
            (b.0.to_bits(), b.1.to_bits())
        );
    }

    #[test]
    fn parses_and_rejects_input() {
        assert_eq!(parse_input(b"  1000\n"), Ok(1000));
        assert_eq!(parse_input(b"0"), Ok(0));
        assert_eq!(parse_input(b"100000000"), Ok(MAX_STEPS));
        for bad in [
            &b"100000001"[..],
            b"",
            b" \n",
            b"-5",
            b"1e6",
            b"12 13",
            b"abc",
            b"\xff\xfe",
            b"99999999999999999999999",
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

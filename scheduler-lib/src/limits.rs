//! Resource limits a submitter sets for one job, as the scheduler sees them.
//!
//! All replicas of a job run with the same limits, so a worker never clamps
//! them: a worker that cannot honour a job's limits refuses it, and placement
//! only picks workers whose advertised maxima admit the job.

use std::time::Duration;

use peergrid_proto::pb;

/// How a job's run time is bounded. Every replica of a job runs under the
/// job's budget, so their verdicts stay comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Budget {
    /// The job's code runs uninstrumented, at the speed of plain wasmtime,
    /// in a process the worker kills at [`Limits::wall_time`]. Running out
    /// is a timeout, never a vote. [`Limits::fuel`] is ignored and no fuel
    /// is counted; the work is reported as CPU time. The default.
    #[default]
    WallTime,
    /// The job's code counts fuel: [`Limits::fuel`] is a deterministic
    /// instruction budget (running out is a verdict every replica agrees
    /// on) and the fuel used is the job's unit of work. Slower: 1.5–3× on
    /// tight loops. [`Limits::wall_time`] stays a backstop.
    Fuel,
}

impl Budget {
    /// The wire form.
    pub fn to_pb(self) -> pb::Budget {
        match self {
            Budget::WallTime => pb::Budget::WallTime,
            Budget::Fuel => pb::Budget::Fuel,
        }
    }

    /// Reads the wire form: `None` when unset or unknown.
    pub fn from_pb(value: i32) -> Option<Self> {
        match pb::Budget::try_from(value) {
            Ok(pb::Budget::WallTime) => Some(Budget::WallTime),
            Ok(pb::Budget::Fuel) => Some(Budget::Fuel),
            Ok(pb::Budget::Unspecified) | Err(_) => None,
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Budget::WallTime => "wall time",
            Budget::Fuel => "fuel",
        })
    }
}

/// Resource limits for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How the run time is bounded: by the wall clock (fast, the default)
    /// or by fuel (deterministic). See [`Budget`].
    pub budget: Budget,
    /// Instruction budget (wasmtime fuel), with [`Budget::Fuel`] only.
    /// Deterministic: every replica stops at the same instruction, and the
    /// fuel used is the job's unit of work.
    pub fuel: u64,
    /// Linear-memory cap in bytes.
    pub memory_bytes: u64,
    /// Wall-clock backstop per run. Not deterministic; a run that hits it is
    /// a worker failure, never a vote.
    pub wall_time: Duration,
    /// Largest stdout a run may produce, in bytes.
    pub max_output_bytes: u64,
    /// Largest stderr a worker keeps, in bytes.
    pub max_stderr_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            budget: Budget::WallTime,
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            wall_time: Duration::from_secs(60),
            max_output_bytes: 1 << 20,
            max_stderr_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// The wire form.
    pub fn to_pb(&self) -> pb::JobLimits {
        pb::JobLimits {
            fuel: self.fuel,
            memory_bytes: self.memory_bytes,
            wall_time_ms: u64::try_from(self.wall_time.as_millis()).unwrap_or(u64::MAX),
            max_output_bytes: self.max_output_bytes,
            max_stderr_bytes: self.max_stderr_bytes,
            budget: self.budget.to_pb() as i32,
        }
    }

    /// Reads the wire form; zero fields take the values of `defaults`.
    pub fn from_pb(limits: &pb::JobLimits, defaults: &Limits) -> Self {
        let or = |v: u64, d: u64| if v == 0 { d } else { v };
        Self {
            budget: Budget::from_pb(limits.budget).unwrap_or(defaults.budget),
            fuel: or(limits.fuel, defaults.fuel),
            memory_bytes: or(limits.memory_bytes, defaults.memory_bytes),
            wall_time: if limits.wall_time_ms == 0 {
                defaults.wall_time
            } else {
                Duration::from_millis(limits.wall_time_ms)
            },
            max_output_bytes: or(limits.max_output_bytes, defaults.max_output_bytes),
            max_stderr_bytes: or(limits.max_stderr_bytes, defaults.max_stderr_bytes),
        }
    }

    /// The first limit of `self` that exceeds `max`, named, or `None` if all fit.
    /// Fuel counts only with [`Budget::Fuel`].
    pub fn exceeds(&self, max: &Limits) -> Option<String> {
        let fuel = match self.budget {
            Budget::Fuel => self.fuel,
            Budget::WallTime => 0,
        };
        let checks = [
            ("fuel", fuel, max.fuel),
            ("memory_bytes", self.memory_bytes, max.memory_bytes),
            (
                "wall_time_ms",
                u64::try_from(self.wall_time.as_millis()).unwrap_or(u64::MAX),
                u64::try_from(max.wall_time.as_millis()).unwrap_or(u64::MAX),
            ),
            (
                "max_output_bytes",
                self.max_output_bytes,
                max.max_output_bytes,
            ),
            (
                "max_stderr_bytes",
                self.max_stderr_bytes,
                max.max_stderr_bytes,
            ),
        ];
        checks
            .iter()
            .find(|(_, want, allowed)| want > allowed)
            .map(|(name, want, allowed)| format!("{name} {want} exceeds the allowed {allowed}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fills_zero_fields() {
        let l = Limits {
            fuel: 5,
            ..Limits::default()
        };
        assert_eq!(Limits::from_pb(&l.to_pb(), &Limits::default()), l);
        let partial = pb::JobLimits {
            fuel: 7,
            ..Default::default()
        };
        let got = Limits::from_pb(&partial, &Limits::default());
        assert_eq!(got.fuel, 7);
        assert_eq!(got.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn exceeds_names_the_limit() {
        let max = Limits::default();
        let big = Limits {
            memory_bytes: max.memory_bytes + 1,
            ..max
        };
        assert!(big.exceeds(&max).unwrap().starts_with("memory_bytes"));
        assert_eq!(max.exceeds(&max), None);
    }
}

//! How one run of a job ended, as a worker reports it, and the key by which
//! replicas' reports are compared.

use std::fmt;

use peergrid_proto::{Sha256Hash, pb, sha256};

/// Why a run of a job failed. Every kind but [`JobFailure::Timeout`] is
/// deterministic: honest workers running the same job report the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobFailure {
    /// The fuel budget ran out.
    OutOfFuel,
    /// The job tried to grow memory past its limit.
    MemoryLimit,
    /// The worker's wall-clock backstop fired (not deterministic).
    Timeout,
    /// The job trapped; the text names the trap.
    Trap(String),
    /// The module is not valid WASM or imports something not granted.
    InvalidModule(String),
    /// The job wrote more stdout than its limit allows.
    OutputTooLarge,
    /// The job exited with this non-zero code.
    ExitCode(i32),
}

impl JobFailure {
    /// False only for [`JobFailure::Timeout`], which depends on the machine.
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, JobFailure::Timeout)
    }
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobFailure::OutOfFuel => f.write_str("out of fuel"),
            JobFailure::MemoryLimit => f.write_str("memory limit exceeded"),
            JobFailure::Timeout => f.write_str("wall-clock timeout"),
            JobFailure::Trap(t) => write!(f, "trap: {t}"),
            JobFailure::InvalidModule(m) => write!(f, "invalid module: {m}"),
            JobFailure::OutputTooLarge => f.write_str("output too large"),
            JobFailure::ExitCode(c) => write!(f, "exit code {c}"),
        }
    }
}

/// Converts a claim's outcome fields into `Ok(())` (success) or the failure,
/// or `None` when the outcome field is unset or unknown.
pub fn outcome_from_claim(claim: &pb::ResultClaim) -> Option<Result<(), JobFailure>> {
    outcome_from_fields(claim.outcome, claim.exit_code, &claim.detail)
}

/// Converts wire fields (`outcome`, `exit_code`, `detail`, as in a claim or
/// a ledger verdict) into `Ok(())` or the failure; `None` when the outcome
/// is unset or unknown.
pub fn outcome_from_fields(
    outcome: i32,
    exit_code: i32,
    detail: &str,
) -> Option<Result<(), JobFailure>> {
    use pb::Outcome as O;
    Some(match O::try_from(outcome).ok()? {
        O::Unspecified => return None,
        O::Success => Ok(()),
        O::OutOfFuel => Err(JobFailure::OutOfFuel),
        O::MemoryLimit => Err(JobFailure::MemoryLimit),
        O::Timeout => Err(JobFailure::Timeout),
        O::Trap => Err(JobFailure::Trap(detail.to_string())),
        O::InvalidModule => Err(JobFailure::InvalidModule(detail.to_string())),
        O::OutputTooLarge => Err(JobFailure::OutputTooLarge),
        O::ExitCode => Err(JobFailure::ExitCode(exit_code)),
    })
}

/// The wire fields (`outcome`, `exit_code`, `detail`) for a run's result.
pub fn outcome_to_claim_fields(result: &Result<(), JobFailure>) -> (pb::Outcome, i32, String) {
    use pb::Outcome as O;
    match result {
        Ok(()) => (O::Success, 0, String::new()),
        Err(JobFailure::OutOfFuel) => (O::OutOfFuel, 0, String::new()),
        Err(JobFailure::MemoryLimit) => (O::MemoryLimit, 0, String::new()),
        Err(JobFailure::Timeout) => (O::Timeout, 0, String::new()),
        Err(JobFailure::Trap(t)) => (O::Trap, 0, t.clone()),
        Err(JobFailure::InvalidModule(m)) => (O::InvalidModule, 0, m.clone()),
        Err(JobFailure::OutputTooLarge) => (O::OutputTooLarge, 0, String::new()),
        Err(JobFailure::ExitCode(c)) => (O::ExitCode, *c, String::new()),
    }
}

/// What replicas must agree on: how the run ended and the exact stdout.
///
/// Two honest workers running the same job produce the same key. Fuel and
/// wall time are reported but not compared (fuel counts could differ between
/// wasmtime versions; time always differs), and stderr is diagnostic only.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoteKey(pub Sha256Hash);

impl VoteKey {
    /// The key of a verified claim.
    pub fn of(claim: &pb::ResultClaim) -> Self {
        let mut bytes = Vec::with_capacity(48 + claim.detail.len());
        bytes.extend_from_slice(&claim.outcome.to_le_bytes());
        bytes.extend_from_slice(&claim.exit_code.to_le_bytes());
        bytes.extend_from_slice(&(claim.detail.len() as u64).to_le_bytes());
        bytes.extend_from_slice(claim.detail.as_bytes());
        bytes.extend_from_slice(&claim.output_sha256);
        Self(sha256(&bytes))
    }
}

impl fmt::Debug for VoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VoteKey({})", hex::encode(&self.0[..6]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_fields_round_trip() {
        let cases = [
            Ok(()),
            Err(JobFailure::OutOfFuel),
            Err(JobFailure::MemoryLimit),
            Err(JobFailure::Timeout),
            Err(JobFailure::Trap("unreachable".into())),
            Err(JobFailure::InvalidModule("bad magic".into())),
            Err(JobFailure::OutputTooLarge),
            Err(JobFailure::ExitCode(3)),
        ];
        for case in cases {
            let (outcome, exit_code, detail) = outcome_to_claim_fields(&case);
            let claim = pb::ResultClaim {
                outcome: outcome as i32,
                exit_code,
                detail,
                ..Default::default()
            };
            assert_eq!(outcome_from_claim(&claim), Some(case));
        }
        assert_eq!(outcome_from_claim(&pb::ResultClaim::default()), None);
    }

    #[test]
    fn vote_key_separates_outputs_and_outcomes() {
        let base = pb::ResultClaim {
            outcome: pb::Outcome::Success as i32,
            output_sha256: vec![1; 32],
            fuel_used: 10,
            ..Default::default()
        };
        let same_but_fuel = pb::ResultClaim {
            fuel_used: 99,
            wall_time_us: 5,
            ..base.clone()
        };
        assert_eq!(VoteKey::of(&base), VoteKey::of(&same_but_fuel));
        let other_output = pb::ResultClaim {
            output_sha256: vec![2; 32],
            ..base.clone()
        };
        assert_ne!(VoteKey::of(&base), VoteKey::of(&other_output));
        let exit = pb::ResultClaim {
            outcome: pb::Outcome::ExitCode as i32,
            exit_code: 1,
            ..base.clone()
        };
        assert_ne!(VoteKey::of(&base), VoteKey::of(&exit));
    }
}

//! The verdict on a job: what a quorum of independent workers agreed on, who
//! dissented, and who failed to answer.

use std::time::Duration;

use peergrid_proto::{PeerId, Sha256Hash, pb};

use crate::certificate::Certificate;
use crate::error::WorkerError;
use crate::outcome::JobFailure;

/// The result a quorum agreed on.
#[derive(Debug, Clone)]
pub struct AgreedOutput {
    /// How the job ended on the agreeing workers: `Ok` when it succeeded,
    /// or the deterministic failure they all saw (e.g. out of fuel).
    pub result: Result<(), JobFailure>,
    /// The agreed stdout.
    pub stdout: Vec<u8>,
    /// Stderr as one agreeing worker returned it (diagnostic, not compared).
    pub stderr: Vec<u8>,
    /// Fuel the job used (the smallest value among agreeing workers).
    pub fuel_used: u64,
}

/// One worker's verified run of the job.
#[derive(Debug, Clone)]
pub struct WorkerRun {
    /// The worker.
    pub worker: PeerId,
    /// Its address.
    pub addr: String,
    /// How the run ended there.
    pub result: Result<(), JobFailure>,
    /// SHA-256 of the stdout it returned.
    pub output_sha256: Sha256Hash,
    /// Fuel it says the run used (0 under [`Budget::WallTime`](crate::Budget)).
    pub fuel_used: u64,
    /// CPU time it says the run used (the work of a wall-time job).
    pub cpu_time: Duration,
    /// Run time it reported.
    pub wall_time: Duration,
    /// Time from sending the job to the verified answer, as seen here.
    pub round_trip: Duration,
    /// Its signed claim, exactly as received: evidence of what it said.
    pub signed_claim: pb::SignedEnvelope,
}

/// A replica slot that ended without a usable result.
#[derive(Debug, Clone)]
pub struct WorkerFailure {
    /// The worker, when it was known.
    pub worker: Option<PeerId>,
    /// Its address.
    pub addr: String,
    /// What went wrong.
    pub error: WorkerError,
}

/// What the submitter concludes about a job.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// A strict majority of the replicas agreed on this result.
    Accepted {
        /// The agreed result.
        output: AgreedOutput,
        /// Workers whose result matched.
        agreeing_workers: Vec<WorkerRun>,
        /// Workers that returned a different (signed, so attributable) result.
        dissenting_workers: Vec<WorkerRun>,
        /// Workers that failed to return a usable result.
        failed_workers: Vec<WorkerFailure>,
    },
    /// No result reached a strict majority: nothing is accepted.
    NoQuorum {
        /// Agreeing votes a result needed.
        needed: usize,
        /// Every verified run, grouped by nothing: they disagree.
        runs: Vec<WorkerRun>,
        /// Workers that failed to return a usable result.
        failed_workers: Vec<WorkerFailure>,
    },
}

impl Verdict {
    /// For [`Verdict::NoQuorum`]: how the votes fell, for people (what the
    /// ledger records as the job's state reason); `None` when accepted.
    pub fn no_quorum_reason(&self) -> Option<String> {
        let Verdict::NoQuorum {
            needed,
            runs,
            failed_workers,
        } = self
        else {
            return None;
        };
        let distinct: std::collections::HashSet<_> = runs.iter().map(|r| r.output_sha256).collect();
        Some(format!(
            "no result reached the {needed} agreeing votes needed: {} results in {} \
             different outputs, {} replicas failed",
            runs.len(),
            distinct.len(),
            failed_workers.len()
        ))
    }

    /// The agreed output, if a quorum was reached.
    pub fn accepted(&self) -> Option<&AgreedOutput> {
        match self {
            Verdict::Accepted { output, .. } => Some(output),
            Verdict::NoQuorum { .. } => None,
        }
    }

    /// Workers that returned a result other than the accepted one.
    pub fn dissenters(&self) -> Vec<PeerId> {
        match self {
            Verdict::Accepted {
                dissenting_workers, ..
            } => dissenting_workers.iter().map(|r| r.worker).collect(),
            Verdict::NoQuorum { .. } => Vec::new(),
        }
    }

    /// Every verified run: agreeing and dissenting, or all votes without a
    /// quorum.
    pub fn runs(&self) -> impl Iterator<Item = &WorkerRun> {
        let (a, b): (&[WorkerRun], &[WorkerRun]) = match self {
            Verdict::Accepted {
                agreeing_workers,
                dissenting_workers,
                ..
            } => (agreeing_workers, dissenting_workers),
            Verdict::NoQuorum { runs, .. } => (runs, &[]),
        };
        a.iter().chain(b)
    }

    /// Every worker the job was placed on: those that answered and those
    /// that failed (when known).
    pub fn involved_workers(&self) -> std::collections::HashSet<PeerId> {
        self.runs()
            .map(|r| r.worker)
            .chain(self.failures().iter().filter_map(|f| f.worker))
            .collect()
    }

    /// Workers that failed to return a usable result.
    pub fn failures(&self) -> &[WorkerFailure] {
        match self {
            Verdict::Accepted { failed_workers, .. } | Verdict::NoQuorum { failed_workers, .. } => {
                failed_workers
            }
        }
    }
}

/// A finished submission.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The submission's job id.
    pub job_id: Sha256Hash,
    /// The verdict.
    pub verdict: Verdict,
    /// Time from submit to verdict.
    pub elapsed: Duration,
}

impl JobReport {
    /// The certificate of an accepted result: the agreeing workers' signed
    /// claims, checkable offline ([`Certificate::verify`]). `None` without a
    /// quorum.
    pub fn certificate(&self) -> Option<Certificate> {
        Certificate::from_report(self)
    }
}

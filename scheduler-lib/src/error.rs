//! Errors of the scheduler: why a submission could not be carried out, and
//! why one worker's attempt failed.

use std::time::Duration;

use crate::result::ResultRejected;

/// Why `submit` could not produce a verdict at all.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The job itself is unusable (e.g. zero replicas, empty module).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// Fewer usable workers than the job has replicas.
    #[error(
        "need at least {needed} distinct workers that accept this job (a strict majority of its replicas), found {usable} (of {known} known peers){}",
        if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) }
    )]
    NotEnoughWorkers {
        /// Workers needed: a strict majority of the replicas requested.
        needed: usize,
        /// Workers that answered and admit the job.
        usable: usize,
        /// Peers configured or known.
        known: usize,
        /// Why the others were not usable, one line per peer.
        reasons: Vec<String>,
    },
    /// The job ledger could not record or find something.
    #[error("job ledger: {0}")]
    Ledger(String),
}

/// Why one worker did not return a usable result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// Could not connect, or the connection broke.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The worker refused the request with a gRPC error.
    #[error("refused ({code}): {message}")]
    Refused {
        /// The gRPC status code name.
        code: String,
        /// The worker's message.
        message: String,
    },
    /// The worker stayed busy (no free slots) until the deadline.
    #[error("busy: no free job slots before the deadline")]
    Busy,
    /// No answer before the job's deadline.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The run hit the worker's wall-clock backstop (not a deterministic
    /// outcome, so it is not a vote).
    #[error("the run hit its wall-clock limit on this worker")]
    WallClockTimeout,
    /// The answer came back but failed verification.
    #[error("result rejected: {0}")]
    RejectedResult(#[from] ResultRejected),
    /// The answer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl WorkerError {
    /// Converts a gRPC status from a worker.
    pub fn from_status(status: &tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                WorkerError::Unreachable(status.message().to_string())
            }
            tonic::Code::DeadlineExceeded => WorkerError::TimedOut(Duration::ZERO),
            code => WorkerError::Refused {
                code: format!("{code:?}"),
                message: status.message().to_string(),
            },
        }
    }
}

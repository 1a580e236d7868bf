//! CPU time of the calling thread: the unit of work of jobs that do not
//! count fuel ([`crate::Execution::cpu_time`]).

use std::time::Duration;

/// CPU time the calling thread has used so far (zero where the platform
/// cannot say).
#[cfg(unix)]
pub(crate) fn thread() -> Duration {
    use rustix::time::{ClockId, clock_gettime};
    Duration::try_from(clock_gettime(ClockId::ThreadCPUTime)).unwrap_or(Duration::ZERO)
}

/// CPU time is not measured on this platform.
#[cfg(not(unix))]
pub(crate) fn thread() -> Duration {
    Duration::ZERO
}

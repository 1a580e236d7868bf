//! What a node did lately, in memory and bounded: [`Activity`] keeps the
//! last [`RECENT_JOBS`] jobs it ran (when, for whom, which module, how the
//! run ended, CPU time, fuel, wall time) and the work done per minute over
//! the last [`WORK_MINUTES`] minutes. The status page ([`crate::ui`]) shows
//! both.
//!
//! The work is CPU time: jobs under the default wall-time budget
//! ([`Budget::WallTime`](scheduler_lib::Budget::WallTime)) run
//! uninstrumented and count no fuel, so fuel (kept beside it) is the work
//! of [`Budget::Fuel`](scheduler_lib::Budget::Fuel) jobs only.
//!
//! Nothing here is persisted or sent to peers: it is the operator's view of
//! the node since it started, like the counters of
//! [`NodeStats`](crate::NodeStats), only with detail. Every entry has a fixed
//! size (text from the module, such as a trap message, is cut to
//! [`MAX_OUTCOME_CHARS`]), so a flood of jobs cannot grow it. The clock is
//! passed in, so the bookkeeping is tested without waiting.

use std::collections::VecDeque;
use std::sync::Mutex;

use peergrid_proto::{PeerId, Sha256Hash};
use serde::{Serialize, Serializer};

/// Jobs kept in the ring of recent jobs.
pub const RECENT_JOBS: usize = 50;

/// Minutes of work kept in the time series.
pub const WORK_MINUTES: u64 = 60;

/// The longest outcome text kept, in characters (the rest is cut with `…`).
pub const MAX_OUTCOME_CHARS: usize = 200;

const MINUTE_MS: u64 = 60_000;

/// How a job this node took ended, as far as this node knows. The verdict
/// on the result is the submitter's (it compares results from several
/// workers); a worker knows only what it computed and signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEnd {
    /// Ran to completion and exited 0: a signed result was returned.
    Success,
    /// Ran and ended in a deterministic failure (out of fuel, trap, exit
    /// code…): that failure was signed and returned as the result.
    Failed,
    /// Took a slot but returned no result: the node could not run it (a
    /// host failure, or the module was over this node's compile budget).
    NotRun,
}

/// One job this node took a slot for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentJob {
    /// When the run ended, in ms since the Unix epoch.
    pub finished_at_unix_ms: u64,
    /// The job id (sha256 of its signed spec).
    #[serde(serialize_with = "hex32")]
    pub job_id: Sha256Hash,
    /// Who submitted it.
    #[serde(serialize_with = "display")]
    pub submitter: PeerId,
    /// The module's sha256.
    #[serde(serialize_with = "hex32")]
    pub module: Sha256Hash,
    /// How it ended.
    pub end: JobEnd,
    /// The outcome in words ("success", "out of fuel", "trap: …"); text
    /// from the module is cut to [`MAX_OUTCOME_CHARS`].
    pub outcome: String,
    /// CPU time the run used, in microseconds: the work done, whatever
    /// the job's budget kind.
    pub cpu_time_us: u64,
    /// Fuel spent; 0 for a job that counted none (a wall-time budget).
    pub fuel: u64,
    /// Wall time of the run, in milliseconds.
    pub wall_time_ms: u64,
}

/// Work done in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkMinute {
    /// When the minute started, in ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Jobs whose run ended in it (any outcome, not-run ones excluded).
    pub jobs: u64,
    /// CPU time they used, in microseconds: the work done.
    pub cpu_time_us: u64,
    /// Fuel they spent (only jobs under a fuel budget count any).
    pub fuel: u64,
}

/// The node's recent jobs and its work per minute (see the module docs).
#[derive(Debug, Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Oldest first.
    jobs: VecDeque<RecentJob>,
    /// Minutes with work, oldest first, keyed by `unix_ms / MINUTE_MS`.
    minutes: VecDeque<(u64, WorkMinute)>,
}

impl Activity {
    /// Records a job whose run ended at `job.finished_at_unix_ms`.
    pub fn record(&self, mut job: RecentJob) {
        job.outcome = cut(&job.outcome, MAX_OUTCOME_CHARS);
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if job.end != JobEnd::NotRun {
            let minute = job.finished_at_unix_ms / MINUTE_MS;
            match inner.minutes.iter_mut().rev().find(|(m, _)| *m == minute) {
                Some((_, work)) => {
                    work.jobs += 1;
                    work.cpu_time_us = work.cpu_time_us.saturating_add(job.cpu_time_us);
                    work.fuel = work.fuel.saturating_add(job.fuel);
                }
                None => {
                    // Runs end in nearly time order; keep the deque sorted.
                    let at = inner.minutes.partition_point(|(m, _)| *m < minute);
                    let work = WorkMinute {
                        start_unix_ms: minute * MINUTE_MS,
                        jobs: 1,
                        cpu_time_us: job.cpu_time_us,
                        fuel: job.fuel,
                    };
                    inner.minutes.insert(at, (minute, work));
                }
            }
            prune(&mut inner.minutes, minute);
        }
        if inner.jobs.len() == RECENT_JOBS {
            inner.jobs.pop_front();
        }
        inner.jobs.push_back(job);
    }

    /// The recent jobs, newest first (at most [`RECENT_JOBS`]).
    pub fn recent(&self) -> Vec<RecentJob> {
        self.inner
            .lock()
            .map(|inner| inner.jobs.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// The work done in each of the last [`WORK_MINUTES`] minutes up to
    /// `now_unix_ms`, oldest first, minutes without work included as zeros.
    pub fn work(&self, now_unix_ms: u64) -> Vec<WorkMinute> {
        let now = now_unix_ms / MINUTE_MS;
        let first = (now + 1).saturating_sub(WORK_MINUTES);
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        prune(&mut inner.minutes, now);
        (first..=now)
            .map(|minute| {
                inner.minutes.iter().find(|(m, _)| *m == minute).map_or(
                    WorkMinute {
                        start_unix_ms: minute * MINUTE_MS,
                        ..WorkMinute::default()
                    },
                    |(_, work)| *work,
                )
            })
            .collect()
    }
}

/// Drops minutes older than the window ending at `now` (a minute index).
fn prune(minutes: &mut VecDeque<(u64, WorkMinute)>, now: u64) {
    let first = (now + 1).saturating_sub(WORK_MINUTES);
    while minutes.front().is_some_and(|(m, _)| *m < first) {
        minutes.pop_front();
    }
    // A clock stepped backwards leaves "future" minutes; the window bounds
    // them all the same.
    while minutes.len() > WORK_MINUTES as usize {
        minutes.pop_front();
    }
}

/// `text` cut to `max` characters, with `…` if anything was cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn hex32<S: Serializer>(value: &Sha256Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that used `cpu_ms` of CPU and `fuel` fuel.
    fn job(at_ms: u64, cpu_ms: u64, fuel: u64, end: JobEnd) -> RecentJob {
        RecentJob {
            finished_at_unix_ms: at_ms,
            job_id: [1; 32],
            submitter: PeerId::from_bytes([2; 32]),
            module: [3; 32],
            end,
            outcome: "success".into(),
            cpu_time_us: cpu_ms * 1000,
            fuel,
            wall_time_ms: 5,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_jobs_newest_first() {
        let activity = Activity::default();
        for i in 0..(RECENT_JOBS as u64 + 7) {
            activity.record(job(1_000 + i, 1, i, JobEnd::Success));
        }
        let recent = activity.recent();
        assert_eq!(recent.len(), RECENT_JOBS);
        assert_eq!(recent[0].fuel, RECENT_JOBS as u64 + 6, "newest first");
        assert_eq!(recent[RECENT_JOBS - 1].fuel, 7, "the oldest 7 dropped");
    }

    #[test]
    fn work_is_summed_per_minute_over_the_last_hour() {
        let activity = Activity::default();
        let t0 = 1_700_000_000_000 / MINUTE_MS * MINUTE_MS;
        // Wall-time jobs (no fuel) and fuel jobs mixed.
        activity.record(job(t0 + 1_000, 10, 0, JobEnd::Success));
        activity.record(job(t0 + 59_000, 5, 500, JobEnd::Failed));
        activity.record(job(t0 + 61_000, 7, 0, JobEnd::Success));
        activity.record(job(t0 + 62_000, 1_000, 1_000, JobEnd::NotRun));
        let work = activity.work(t0 + 90_000);
        assert_eq!(work.len(), WORK_MINUTES as usize);
        let last = work[work.len() - 1];
        let before = work[work.len() - 2];
        assert_eq!(
            (before.jobs, before.cpu_time_us, before.fuel),
            (2, 15_000, 500)
        );
        assert_eq!(before.start_unix_ms, t0);
        assert_eq!(
            (last.jobs, last.cpu_time_us, last.fuel),
            (1, 7_000, 0),
            "not-run jobs do no work"
        );
        assert_eq!(work.iter().map(|w| w.cpu_time_us).sum::<u64>(), 22_000);
        assert_eq!(work.iter().map(|w| w.fuel).sum::<u64>(), 500);
        // An hour later the minutes have left the window.
        let later = activity.work(t0 + (WORK_MINUTES + 2) * MINUTE_MS);
        assert!(
            later
                .iter()
                .all(|w| w.jobs == 0 && w.cpu_time_us == 0 && w.fuel == 0)
        );
        assert_eq!(later.len(), WORK_MINUTES as usize);
        assert_eq!(activity.recent().len(), 4, "the ring is not time-bound");
    }

    #[test]
    fn long_outcomes_are_cut_on_a_character_boundary() {
        let activity = Activity::default();
        let mut long = job(1, 1, 1, JobEnd::Failed);
        long.outcome = "é".repeat(MAX_OUTCOME_CHARS + 10);
        activity.record(long);
        let kept = &activity.recent()[0].outcome;
        assert_eq!(kept.chars().count(), MAX_OUTCOME_CHARS + 1);
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn json_names_ids_in_hex() {
        let value = serde_json::to_value(job(1, 2, 0, JobEnd::NotRun)).unwrap();
        assert_eq!(value["submitter"], "02".repeat(32));
        assert_eq!(value["cpu_time_us"], 2_000);
        assert_eq!(value["module"], "03".repeat(32));
        assert_eq!(value["end"], "not_run");
    }
}

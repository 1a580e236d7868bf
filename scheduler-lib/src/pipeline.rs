//! How many of a batch's jobs to keep in flight: a pure controller fed the
//! time each finished job took.
//!
//! Workers queue a batch's jobs for their slots, so a deep pipeline keeps
//! every slot busy and lets jobs, answers and signatures travel in batches:
//! trivial jobs need hundreds in flight to reach thousands per second. For
//! long jobs the same depth would only queue them at the workers for
//! minutes, past their deadline. So a default batch starts at one job per
//! free slot and adapts: while jobs come back (submit to verdict) faster
//! than [`TARGET_LATENCY`], the depth grows by an eighth; slower, it
//! shrinks by a quarter, never below where it started.

use std::time::Duration;

/// A job's time from submit to verdict that the adaptive depth aims at:
/// long enough to fill the pipeline with short jobs, short enough that a
/// job waits at most a fraction of a second at a worker.
pub const TARGET_LATENCY: Duration = Duration::from_millis(250);

/// Weight of the newest job's time in the moving average.
const ALPHA: f64 = 0.125;

/// The depth of one batch's pipeline.
#[derive(Debug, Clone)]
pub struct Depth {
    current: usize,
    floor: usize,
    ceiling: usize,
    adaptive: bool,
    /// Moving average of the jobs' times, in seconds.
    average: Option<f64>,
}

impl Depth {
    /// Always `n` (at least 1): a depth the caller chose.
    pub fn fixed(n: usize) -> Self {
        let n = n.max(1);
        Self {
            current: n,
            floor: n,
            ceiling: n,
            adaptive: false,
            average: None,
        }
    }

    /// Starts at `floor` and adapts between `floor` and `ceiling`.
    pub fn adaptive(floor: usize, ceiling: usize) -> Self {
        let floor = floor.max(1);
        Self {
            current: floor,
            floor,
            ceiling: ceiling.max(floor),
            adaptive: true,
            average: None,
        }
    }

    /// Jobs to keep in flight now.
    pub fn limit(&self) -> usize {
        self.current
    }

    /// The most jobs it may keep in flight.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// Notes that a job took `took` from submit to verdict.
    pub fn observe(&mut self, took: Duration) {
        if !self.adaptive {
            return;
        }
        let took = took.as_secs_f64();
        let average = match self.average {
            None => took,
            Some(a) => a + ALPHA * (took - a),
        };
        self.average = Some(average);
        self.current = if average < TARGET_LATENCY.as_secs_f64() {
            (self.current + (self.current / 8).max(1)).min(self.ceiling)
        } else {
            (self.current * 3 / 4).max(self.floor)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jobs_deepen_the_pipeline_to_its_ceiling() {
        let mut depth = Depth::adaptive(2, 256);
        assert_eq!(depth.limit(), 2);
        let mut steps = 0;
        while depth.limit() < 256 {
            depth.observe(Duration::from_millis(5));
            steps += 1;
            assert!(steps < 100, "stuck at {}", depth.limit());
        }
        depth.observe(Duration::from_millis(5));
        assert_eq!(depth.limit(), 256, "never past the ceiling");
    }

    #[test]
    fn long_jobs_keep_it_at_the_floor_and_a_slowdown_shrinks_it() {
        let mut depth = Depth::adaptive(3, 300);
        for _ in 0..50 {
            depth.observe(Duration::from_secs(60));
        }
        assert_eq!(depth.limit(), 3);
        let mut depth = Depth::adaptive(3, 300);
        for _ in 0..60 {
            depth.observe(Duration::from_millis(10));
        }
        assert_eq!(depth.limit(), 300);
        for _ in 0..40 {
            depth.observe(Duration::from_secs(5));
        }
        assert_eq!(depth.limit(), 3, "back to the floor once jobs are slow");
    }

    #[test]
    fn a_chosen_depth_does_not_move() {
        let mut depth = Depth::fixed(7);
        depth.observe(Duration::from_millis(1));
        depth.observe(Duration::from_secs(100));
        assert_eq!((depth.limit(), depth.ceiling()), (7, 7));
        assert_eq!(Depth::fixed(0).limit(), 1);
    }
}

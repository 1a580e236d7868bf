//! What a [`Scheduler`](crate::Scheduler) remembers between jobs to decide
//! whom to trust: the reputation book, the spot-check policy, a few jobs
//! whose answers it knows (to spot-check with), and a random source for the
//! policies' draws. No I/O; the scheduler persists what changes.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use peergrid_proto::PeerId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::adaptive::WorkerStanding;
use crate::job::{Job, Submission};
use crate::outcome::VoteKey;
use crate::reputation::{Change, Observation, Reputation, ReputationConfig};
use crate::spot_check::{SpotCheckConfig, SpotChecks};

/// A job whose answer is known: accepted with the agreement of at least two
/// independent workers. Re-sent as a spot-check to workers that did not run
/// it, with its original job id and clock so the answer is reproducible.
#[derive(Debug, Clone)]
pub(crate) struct KnownAnswer {
    pub job: Arc<Job>,
    pub submission: Submission,
    pub key: VoteKey,
    pub ran_on: HashSet<PeerId>,
}

/// The scheduler's trust state.
#[derive(Debug)]
pub(crate) struct TrustState {
    pub reputation: Reputation,
    pub spot: SpotChecks,
    known: VecDeque<KnownAnswer>,
    capacity: usize,
    rng: StdRng,
}

impl TrustState {
    pub fn new(
        reputation: ReputationConfig,
        spot: SpotCheckConfig,
        capacity: usize,
        seed: Option<u64>,
    ) -> Self {
        Self {
            reputation: Reputation::new(reputation),
            spot: SpotChecks::new(spot),
            known: VecDeque::new(),
            capacity: capacity.max(1),
            rng: seed.map_or_else(StdRng::from_entropy, StdRng::seed_from_u64),
        }
    }

    /// A uniform draw in [0, 1) for the policies.
    pub fn draw(&mut self) -> f64 {
        self.rng.r#gen::<f64>()
    }

    /// What the adaptive policy should assume of `peer`: unknown (so strict
    /// majority decides) until this node has a record of it.
    pub fn standing(&self, peer: &PeerId) -> WorkerStanding {
        if self.reputation.get(peer).is_some() {
            self.reputation.standing(peer)
        } else {
            WorkerStanding::unknown()
        }
    }

    /// Records an observation; logs bans and un-bans, and warns when the
    /// peer's disagreement or error rate turns anomalous.
    pub fn observe(&mut self, peer: PeerId, observation: Observation, now_ms: u64) {
        let before = self.reputation.get(&peer).map(Rates::of);
        if let Some(change) = self.reputation.observe(peer, observation, now_ms) {
            log_change(peer, change, observation);
            return;
        }
        if let Some(after) = self.reputation.get(&peer).map(Rates::of) {
            log_anomaly(peer, before.unwrap_or_default(), after);
        }
    }

    /// Remembers an accepted job as a spot-check question.
    pub fn remember(&mut self, answer: KnownAnswer) {
        if self.known.len() == self.capacity {
            self.known.pop_front();
        }
        self.known.push_back(answer);
    }

    /// A known job `peer` has not run, newest first.
    pub fn question_for(&self, peer: &PeerId) -> Option<KnownAnswer> {
        self.known
            .iter()
            .rev()
            .find(|k| !k.ran_on.contains(peer))
            .cloned()
    }

    /// Scores a spot-check answer.
    pub fn score_spot_check(&mut self, peer: PeerId, matched: bool, now_ms: u64) {
        if let Some(change) =
            self.spot
                .score_spot_check(&mut self.reputation, peer, matched, now_ms)
        {
            let observation = if matched {
                Observation::SpotCheckPassed
            } else {
                Observation::SpotCheckFailed
            };
            log_change(peer, change, observation);
        }
    }
}

/// A peer's disagreement and error counts, for anomaly warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Rates {
    /// Verified answers: agreed, dissented, invalid, spot-checks.
    verified: u64,
    /// Proven faults among them: dissents, invalid results, failed checks.
    faults: u64,
    /// Every request sent: verified answers plus timeouts.
    asked: u64,
    /// Timeouts.
    timeouts: u64,
}

/// Past this share of proven faults (over at least
/// [`MIN_VERIFIED_FOR_ANOMALY`] verified answers) a peer is anomalous.
const DISAGREEMENT_ANOMALY: f64 = 0.10;
/// Past this share of timeouts (over at least [`MIN_ASKED_FOR_ANOMALY`]
/// requests) a peer is anomalous.
const ERROR_ANOMALY: f64 = 0.25;
const MIN_VERIFIED_FOR_ANOMALY: u64 = 5;
const MIN_ASKED_FOR_ANOMALY: u64 = 8;

impl Rates {
    fn of(p: &crate::reputation::PeerReputation) -> Self {
        let faults = p.dissented + p.invalid + p.spot_failed;
        let verified = p.agreed + p.spot_passed + faults;
        Self {
            verified,
            faults,
            asked: verified + p.timeouts,
            timeouts: p.timeouts,
        }
    }

    fn disagreement(&self) -> Option<f64> {
        (self.verified >= MIN_VERIFIED_FOR_ANOMALY)
            .then(|| self.faults as f64 / self.verified as f64)
    }

    fn errors(&self) -> Option<f64> {
        (self.asked >= MIN_ASKED_FOR_ANOMALY).then(|| self.timeouts as f64 / self.asked as f64)
    }
}

/// Which rates crossed into anomalous territory between two observations.
fn anomalies(before: Rates, after: Rates) -> (bool, bool) {
    let crossed = |b: Option<f64>, a: Option<f64>, limit: f64| {
        a.is_some_and(|a| a >= limit) && !b.is_some_and(|b| b >= limit)
    };
    (
        crossed(
            before.disagreement(),
            after.disagreement(),
            DISAGREEMENT_ANOMALY,
        ),
        crossed(before.errors(), after.errors(), ERROR_ANOMALY),
    )
}

/// Warns, once per crossing, when a peer's disagreement or error rate
/// becomes anomalous (a ban is logged on its own).
fn log_anomaly(peer: PeerId, before: Rates, after: Rates) {
    let (disagrees, errs) = anomalies(before, after);
    if disagrees {
        tracing::warn!(
            peer = %peer,
            faults = after.faults,
            verified = after.verified,
            "anomaly: peer disagrees with accepted results at {:.0}% (threshold {:.0}%)",
            after.disagreement().unwrap_or(0.0) * 100.0,
            DISAGREEMENT_ANOMALY * 100.0
        );
    }
    if errs {
        tracing::warn!(
            peer = %peer,
            timeouts = after.timeouts,
            asked = after.asked,
            "anomaly: peer fails to answer at {:.0}% (threshold {:.0}%)",
            after.errors().unwrap_or(0.0) * 100.0,
            ERROR_ANOMALY * 100.0
        );
    }
}

fn log_change(peer: PeerId, change: Change, cause: Observation) {
    match change {
        Change::Banned => {
            tracing::warn!(peer = %peer.short(), ?cause, "peer banned: it gets no work and its results are ignored")
        }
        Change::Unbanned => {
            tracing::info!(peer = %peer.short(), ?cause, "peer un-banned after passing spot-checks")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(verified: u64, faults: u64, timeouts: u64) -> Rates {
        Rates {
            verified,
            faults,
            asked: verified + timeouts,
            timeouts,
        }
    }

    #[test]
    fn an_anomaly_is_reported_once_when_a_rate_crosses_its_threshold() {
        // Too little evidence: nothing.
        assert_eq!(anomalies(rates(2, 0, 0), rates(3, 1, 0)), (false, false));
        // 1 fault in 10 verified answers crosses 10%.
        assert_eq!(anomalies(rates(9, 0, 0), rates(10, 1, 0)), (true, false));
        // Still above: no second warning.
        assert_eq!(anomalies(rates(10, 1, 0), rates(11, 2, 0)), (false, false));
        // Timeouts: 2 of 8 requests is 25%.
        assert_eq!(anomalies(rates(6, 0, 1), rates(6, 0, 2)), (false, true));
        // Honest peers never trip it.
        assert_eq!(anomalies(rates(99, 0, 1), rates(100, 0, 1)), (false, false));
    }

    #[test]
    fn observing_a_peer_that_times_out_counts_its_timeouts() {
        let mut trust = TrustState::new(
            ReputationConfig::default(),
            SpotCheckConfig::default(),
            8,
            Some(1),
        );
        let peer = PeerId::from_bytes([4; 32]);
        for t in 0..8 {
            trust.observe(peer, Observation::Agreed, t);
        }
        trust.observe(peer, Observation::TimedOut, 9);
        trust.observe(peer, Observation::TimedOut, 10);
        trust.observe(peer, Observation::TimedOut, 11);
        let rec = trust.reputation.get(&peer).unwrap();
        assert_eq!(Rates::of(rec).timeouts, 3);
    }
}

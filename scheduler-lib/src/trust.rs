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

    /// Records an observation; logs bans and un-bans.
    pub fn observe(&mut self, peer: PeerId, observation: Observation, now_ms: u64) {
        if let Some(change) = self.reputation.observe(peer, observation, now_ms) {
            log_change(peer, change, observation);
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

//! Spot-checks: when to send a worker a job whose answer this node already
//! knows, and how to score the answer. Pure; the random draw is passed in.
//!
//! A spot-check is indistinguishable from ordinary work to the worker: a
//! re-run of a job this node accepted with replicated agreement, or a cheap
//! quiz job it computed itself. Unlike a vote, a spot-check needs no other
//! worker and its verdict is absolute — a wrong answer to a deterministic job
//! with a known result is proof — so a failure bans at once, and spot-checks
//! are the only way out of a ban (see [`crate::reputation`]).
//!
//! Sarmenta: spot-checking at rate `q` catches a saboteur in proportion to
//! the work it does, at a cost of `q` extra executions per job, and it
//! catches colluders as easily as lone liars (they cannot agree on a quiz
//! answer they do not know).

use peergrid_proto::PeerId;

use crate::reputation::{Change, Observation, Reputation};

/// Knobs of spot-checking.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotCheckConfig {
    /// Probability that a worker about to get work gets a spot-check as
    /// well. Banned workers get nothing but spot-checks.
    pub probability: f64,
    /// The same for a newcomer: a peer none of whose results has been
    /// verified yet. 1 makes a new identity's first work an admission quiz,
    /// so a peer that always lies is banned before it ever votes.
    pub newcomer_probability: f64,
}

impl Default for SpotCheckConfig {
    fn default() -> Self {
        Self {
            probability: 0.02,
            newcomer_probability: 1.0,
        }
    }
}

/// The spot-check policy.
#[derive(Debug, Clone, Default)]
pub struct SpotChecks {
    config: SpotCheckConfig,
}

impl SpotChecks {
    /// A policy with these knobs.
    pub fn new(config: SpotCheckConfig) -> Self {
        Self { config }
    }

    /// The knobs.
    pub fn config(&self) -> &SpotCheckConfig {
        &self.config
    }

    /// Should `peer`, about to be given work, be sent a spot-check? For a
    /// banned peer (checks are the only work it can get, and its only way
    /// back) with probability `1 / (1 + spot-checks it has failed)`: a peer
    /// that keeps failing is asked ever more rarely (about `sqrt(2n)` checks
    /// in `n` chances), one that passes keeps being asked until it recovers.
    /// Otherwise when the uniform `draw` in [0, 1) falls below the
    /// configured probability (the newcomer one for a peer with no verified
    /// result yet).
    pub fn should_spot_check(&self, reputation: &Reputation, peer: &PeerId, draw: f64) -> bool {
        let Some(record) = reputation.get(peer) else {
            return draw < self.config.newcomer_probability;
        };
        if record.banned {
            return draw < 1.0 / (1.0 + record.spot_failed as f64);
        }
        let newcomer = record.agreed == 0 && record.spot_passed == 0;
        let p = if newcomer {
            self.config.newcomer_probability
        } else {
            self.config.probability
        };
        draw < p
    }

    /// Scores `peer`'s answer to a spot-check: `matched` says whether it
    /// equals the known result. Returns the ban change it caused, if any.
    pub fn score_spot_check(
        &self,
        reputation: &mut Reputation,
        peer: PeerId,
        matched: bool,
        now_ms: u64,
    ) -> Option<Change> {
        let obs = if matched {
            Observation::SpotCheckPassed
        } else {
            Observation::SpotCheckFailed
        };
        reputation.observe(peer, obs, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reputation::{Observation as Obs, ReputationConfig};

    #[test]
    fn banned_peers_get_ever_rarer_spot_checks_others_by_draw() {
        let checks = SpotChecks::new(SpotCheckConfig {
            probability: 0.1,
            newcomer_probability: 1.0,
        });
        let mut rep = Reputation::new(ReputationConfig::default());
        let p = PeerId::from_bytes([1; 32]);
        assert!(checks.should_spot_check(&rep, &p, 0.99), "admission quiz");
        rep.observe(p, Obs::Agreed, 0);
        assert!(checks.should_spot_check(&rep, &p, 0.05));
        assert!(!checks.should_spot_check(&rep, &p, 0.5));
        assert_eq!(
            checks.score_spot_check(&mut rep, p, false, 0),
            Some(Change::Banned)
        );
        // One failed check: asked half the time; three: a quarter.
        assert!(checks.should_spot_check(&rep, &p, 0.49));
        assert!(!checks.should_spot_check(&rep, &p, 0.51));
        checks.score_spot_check(&mut rep, p, false, 1);
        checks.score_spot_check(&mut rep, p, false, 2);
        assert!(checks.should_spot_check(&rep, &p, 0.24));
        assert!(!checks.should_spot_check(&rep, &p, 0.26));
    }

    #[test]
    fn passing_checks_is_the_way_back() {
        let checks = SpotChecks::default();
        let mut rep = Reputation::new(ReputationConfig::default());
        let p = PeerId::from_bytes([2; 32]);
        checks.score_spot_check(&mut rep, p, false, 0);
        let needed = rep.config().recovery_passes;
        let changes: Vec<_> = (0..needed)
            .filter_map(|t| checks.score_spot_check(&mut rep, p, true, u64::from(t)))
            .collect();
        assert_eq!(changes, vec![Change::Unbanned]);
        assert!(!checks.should_spot_check(&rep, &p, 0.5));
    }

    #[test]
    fn a_newcomer_stays_one_until_a_result_is_verified() {
        let checks = SpotChecks::default();
        let mut rep = Reputation::new(ReputationConfig::default());
        let p = PeerId::from_bytes([3; 32]);
        rep.observe(p, Obs::TimedOut, 0);
        assert!(checks.should_spot_check(&rep, &p, 0.99));
        checks.score_spot_check(&mut rep, p, true, 1);
        assert!(!checks.should_spot_check(&rep, &p, 0.99));
    }
}

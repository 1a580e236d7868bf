//! Adaptive replication and credibility-based acceptance for one job: pure
//! bookkeeping, no I/O, randomness passed in.
//!
//! This combines BOINC's adaptive replication with Sarmenta's
//! credibility-based fault tolerance (`ALGORITHM.md` has the whole story):
//!
//! * **How many replicas first** ([`JobVerification::plan`]). A *trusted*
//!   worker ([`AdaptiveConfig::is_trusted`]: a long verified streak, high
//!   trust, and credibility ≥ 1 − ε on its own) runs the job alone — except
//!   that, with probability `max(1/CV, min_reverify)` decided by a draw the
//!   caller passes in, the job is replicated anyway so that the worker cannot
//!   tell which of its jobs are checked. Untrusted workers are always
//!   replicated: as many as it takes for their agreement to reach 1 − ε.
//! * **When to accept** ([`JobVerification::decide`]). Each vote carries its
//!   worker's credibility `c` (probability its result is right). Votes are
//!   grouped by [`VoteKey`]; under the worst case that wrong answers collude,
//!   the credibility of group `g` is
//!   `Cr(g) = O_g / (1 + Σ_h O_h)`, `O_g = Π_{w∈g} c_w/(1−c_w)`
//!   (log-odds add up). A key is accepted when `Cr ≥ 1 − ε` **and** it has a
//!   strict majority of the replicas that answered or are still running, so
//!   a minority is never accepted however credible. Where some credibility
//!   is unknown, a strict majority of the planned replicas decides, as in
//!   [`crate::quorum`].
//! * **Escalation.** On disagreement or too little credibility the policy
//!   says [`Decision::NeedMore`]: place that many more replicas on workers
//!   not yet used for this job; at `max_replicas` it says
//!   [`Decision::NoQuorum`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use peergrid_proto::PeerId;

use crate::outcome::VoteKey;
use crate::reputation::Observation;

/// What the policy needs to know about one worker (see
/// [`Reputation::standing`](crate::reputation::Reputation::standing)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerStanding {
    /// Probability that its next result is right, or `None` when unknown
    /// (then acceptance falls back to strict majority).
    pub credibility: Option<f64>,
    /// Its beta-reputation trust, in (0, 1).
    pub trust: f64,
    /// Verified good results since its last proven fault (BOINC's CV).
    pub consecutive_valid: u64,
    /// Long verified streak and high trust: may run jobs alone if credible.
    pub established: bool,
    /// How often established workers have lately been caught lying (see
    /// [`Reputation::established_fault_rate`](crate::reputation::Reputation::established_fault_rate)).
    pub established_fault_rate: f64,
    /// Banned workers get no work and their votes are ignored.
    pub banned: bool,
}

impl WorkerStanding {
    /// A worker nothing is known about, with no credibility: strict
    /// majority decides, as without reputation.
    pub fn unknown() -> Self {
        Self {
            credibility: None,
            trust: 0.5,
            consecutive_valid: 0,
            established: false,
            established_fault_rate: 0.0,
            banned: false,
        }
    }
}

/// Knobs of the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// ε: a result is accepted at credibility ≥ 1 − ε.
    pub epsilon: f64,
    /// Most replicas one job may use, failed ones included.
    pub max_replicas: usize,
    /// Replicas placed, and strict majority of them required, when
    /// credibility is unknown.
    pub majority_replicas: usize,
    /// Floor of the probability that a trusted worker's job is re-verified.
    pub min_reverify: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            epsilon: 1e-4,
            max_replicas: 9,
            majority_replicas: 3,
            min_reverify: 0.06,
        }
    }
}

impl AdaptiveConfig {
    /// May this worker run a job alone? Not banned, established (a long
    /// verified streak and high trust, as the reputation judges), and its own
    /// credibility ≥ 1 − ε.
    pub fn is_trusted(&self, worker: &WorkerStanding) -> bool {
        !worker.banned
            && worker.established
            && worker.credibility.is_some_and(|c| c >= 1.0 - self.epsilon)
    }

    /// Probability that a job given to this trusted worker is replicated
    /// anyway to check it: the largest of BOINC's `1/CV`, `min_reverify`, and
    /// the audit rate `1 − ε/f_t` that keeps the expected share of wrong
    /// results accepted unchecked, `f_t·(1 − q)`, at ε when established
    /// workers have lately been caught lying at rate `f_t`. 1 for a worker
    /// that is not established.
    pub fn reverify_probability(&self, worker: &WorkerStanding) -> f64 {
        if !worker.established || worker.consecutive_valid == 0 {
            return 1.0;
        }
        let audit = if worker.established_fault_rate > self.epsilon {
            1.0 - self.epsilon / worker.established_fault_rate
        } else {
            0.0
        };
        (1.0 / worker.consecutive_valid as f64)
            .max(self.min_reverify)
            .max(audit)
            .min(1.0)
    }

    /// The smallest number `n ≥ 2` of the first candidates whose agreement
    /// alone would reach 1 − ε (capped by `max_replicas` and the number of
    /// candidates).
    pub fn replicas_to_convince(&self, candidates: &[WorkerStanding]) -> usize {
        let cap = self.max_replicas.min(candidates.len());
        let mut log_odds = 0.0;
        for (i, c) in candidates.iter().take(cap).enumerate() {
            log_odds += c.credibility.map_or(0.0, log_odds_of);
            if i >= 1 && credibility_from(log_odds, &[]) >= 1.0 - self.epsilon {
                return i + 1;
            }
        }
        cap
    }
}

/// Why a plan places what it places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanReason {
    /// The first candidate is trusted and the draw spared it a check.
    TrustedAlone,
    /// The first candidate is trusted but this job was drawn for a check.
    Reverify,
    /// The first candidate is not trusted: replicate until convincing.
    Untrusted,
    /// Some credibility is unknown: strict majority of `majority_replicas`.
    Majority,
}

/// How many replicas to place first: on the first `replicas` candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// How many of the candidates, in the order given, to use.
    pub replicas: usize,
    /// Why.
    pub reason: PlanReason,
}

/// What the caller should do next with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Accept this result.
    Accept(VoteKey),
    /// Replicas are still running; wait for them.
    Wait,
    /// Place this many more replicas, each on a worker not yet used for
    /// this job.
    NeedMore(usize),
    /// `max_replicas` are used up and nothing is acceptable.
    NoQuorum,
}

/// One worker's verified result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vote {
    /// The worker.
    pub peer: PeerId,
    /// What it returned.
    pub key: VoteKey,
    /// Its credibility when it voted (`None`: unknown).
    pub credibility: Option<f64>,
}

/// The verification state of one job.
#[derive(Debug, Clone)]
pub struct JobVerification {
    config: AdaptiveConfig,
    target: usize,
    placed: Vec<PeerId>,
    failed: Vec<PeerId>,
    votes: Vec<Vote>,
}

/// Votes for one key.
struct Group {
    key: VoteKey,
    count: usize,
    log_odds: f64,
}

impl JobVerification {
    /// A job nothing has been placed for yet.
    pub fn new(config: AdaptiveConfig) -> Self {
        let target = config.majority_replicas.max(1);
        Self {
            config,
            target,
            placed: Vec::new(),
            failed: Vec::new(),
            votes: Vec::new(),
        }
    }

    /// The knobs.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// Decides the first placement, given the standing of the candidate
    /// workers in the order placement prefers them, and a uniform `draw` in
    /// [0, 1) for the re-verification lottery. Place on the first
    /// `plan.replicas` candidates (fewer if some cannot be used; `decide`
    /// asks for more).
    pub fn plan(&mut self, candidates: &[WorkerStanding], draw: f64) -> Plan {
        let candidates: Vec<_> = candidates.iter().copied().filter(|c| !c.banned).collect();
        let plan = match candidates.first() {
            _ if candidates.iter().any(|c| c.credibility.is_none()) => Plan {
                replicas: self.config.majority_replicas.max(1),
                reason: PlanReason::Majority,
            },
            Some(first) if self.config.is_trusted(first) => {
                if draw < self.config.reverify_probability(first) {
                    Plan {
                        replicas: self.config.replicas_to_convince(&candidates).max(2),
                        reason: PlanReason::Reverify,
                    }
                } else {
                    Plan {
                        replicas: 1,
                        reason: PlanReason::TrustedAlone,
                    }
                }
            }
            _ => Plan {
                replicas: self.config.replicas_to_convince(&candidates).max(2),
                reason: PlanReason::Untrusted,
            },
        };
        self.target = plan.replicas.max(1);
        plan
    }

    /// Records that a replica was placed on `peer`. Returns false (and
    /// records nothing) if `peer` already has one: never the same peer twice.
    pub fn placed(&mut self, peer: PeerId) -> bool {
        if self.placed.contains(&peer) {
            return false;
        }
        self.placed.push(peer);
        true
    }

    /// Whether `peer` already has a replica of this job.
    pub fn is_placed(&self, peer: &PeerId) -> bool {
        self.placed.contains(peer)
    }

    /// Records `peer`'s verified result, with its standing now. A vote from
    /// a peer without a replica, or a second vote, is ignored; a banned
    /// peer's vote counts as a failed replica.
    pub fn vote(&mut self, peer: PeerId, key: VoteKey, standing: &WorkerStanding) {
        if !self.placed.contains(&peer) || self.has_ended(&peer) {
            return;
        }
        if standing.banned {
            self.failed.push(peer);
            return;
        }
        self.votes.push(Vote {
            peer,
            key,
            credibility: standing.credibility,
        });
    }

    /// Records that `peer`'s replica ended without a usable vote (timeout,
    /// unreachable, invalid result).
    pub fn failed(&mut self, peer: PeerId) {
        if self.placed.contains(&peer) && !self.has_ended(&peer) {
            self.failed.push(peer);
        }
    }

    /// Replicas placed and not yet ended.
    pub fn pending(&self) -> usize {
        self.placed.len() - self.votes.len() - self.failed.len()
    }

    /// Replicas placed so far (failed ones included).
    pub fn placed_count(&self) -> usize {
        self.placed.len()
    }

    /// The votes so far.
    pub fn votes(&self) -> &[Vote] {
        &self.votes
    }

    /// Credibility of `key` given the votes so far, or `None` when some
    /// voter's credibility is unknown.
    pub fn credibility(&self, key: &VoteKey) -> Option<f64> {
        if self.majority_mode() {
            return None;
        }
        let groups = self.groups();
        let own = groups
            .iter()
            .find(|g| g.key == *key)
            .map_or(0.0, |g| g.log_odds);
        let others: Vec<f64> = groups
            .iter()
            .filter(|g| g.key != *key)
            .map(|g| g.log_odds)
            .collect();
        Some(credibility_from(own, &others))
    }

    /// What to do now.
    pub fn decide(&self) -> Decision {
        let groups = self.groups();
        let best = groups.iter().max_by(|a, b| {
            a.count
                .cmp(&b.count)
                .then(a.log_odds.total_cmp(&b.log_odds))
                .then(b.key.cmp(&a.key))
        });
        let pending = self.pending();
        let active = self.votes.len() + pending;
        let mut more = self.target.saturating_sub(active).max(1);
        if let Some(best) = best {
            // A strict majority of the replicas that answered or still run,
            // and, when the plan asked for a check, a second opinion.
            let settled = best.count * 2 > active && best.count >= self.target.min(2);
            let accept = if self.majority_mode() {
                best.count > self.target / 2 && settled
            } else {
                settled
                    && self
                        .credibility(&best.key)
                        .is_some_and(|c| c >= 1.0 - self.config.epsilon)
            };
            if accept {
                return Decision::Accept(best.key);
            }
            // Enough agreeing newcomers to give `best` a strict majority.
            more = more.max((self.votes.len() + 1).saturating_sub(2 * best.count));
            if self.majority_mode() {
                more = more.max((self.target / 2 + 1).saturating_sub(best.count));
            }
        }
        if pending > 0 {
            return Decision::Wait;
        }
        let room = self.config.max_replicas.saturating_sub(self.placed.len());
        if room == 0 {
            return Decision::NoQuorum;
        }
        Decision::NeedMore(more.min(room))
    }

    /// The reputation observations an accepted `key` implies: agreeing
    /// voters [`Observation::Agreed`], others [`Observation::Dissented`].
    /// A result accepted on a single worker's word verifies nothing, so it
    /// yields no observation. Failures are the caller's to report (it knows
    /// whether they were timeouts or invalid results).
    pub fn observations(&self, key: &VoteKey) -> Vec<(PeerId, Observation)> {
        let agreeing = self.votes.iter().filter(|v| v.key == *key).count();
        if agreeing < 2 {
            return Vec::new();
        }
        self.votes
            .iter()
            .map(|v| {
                let obs = if v.key == *key {
                    Observation::Agreed
                } else {
                    Observation::Dissented
                };
                (v.peer, obs)
            })
            .collect()
    }

    fn has_ended(&self, peer: &PeerId) -> bool {
        self.failed.contains(peer) || self.votes.iter().any(|v| v.peer == *peer)
    }

    fn majority_mode(&self) -> bool {
        self.votes.iter().any(|v| v.credibility.is_none())
    }

    fn groups(&self) -> Vec<Group> {
        let mut groups: BTreeMap<VoteKey, Group> = BTreeMap::new();
        for v in &self.votes {
            let g = groups.entry(v.key).or_insert(Group {
                key: v.key,
                count: 0,
                log_odds: 0.0,
            });
            g.count += 1;
            g.log_odds += v.credibility.map_or(0.0, log_odds_of);
        }
        groups.into_values().collect()
    }
}

/// `ln(c / (1 − c))`, with `c` kept away from 0 and 1.
fn log_odds_of(c: f64) -> f64 {
    let c = c.clamp(1e-12, 1.0 - 1e-12);
    (c / (1.0 - c)).ln()
}

/// `O / (1 + O + Σ O_h)` from log-odds, computed without overflow.
fn credibility_from(own: f64, others: &[f64]) -> f64 {
    let rest: f64 = others.iter().map(|l| (l - own).exp()).sum();
    let denominator = 1.0 + (-own).exp() + rest;
    match denominator.partial_cmp(&f64::INFINITY) {
        Some(Ordering::Less) => 1.0 / denominator,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn peer(n: u16) -> PeerId {
        let mut b = [0u8; 32];
        b[..2].copy_from_slice(&n.to_le_bytes());
        PeerId::from_bytes(b)
    }
    fn key(b: u8) -> VoteKey {
        VoteKey([b; 32])
    }
    fn standing(credibility: f64, cv: u64) -> WorkerStanding {
        WorkerStanding {
            credibility: Some(credibility),
            trust: 0.97,
            consecutive_valid: cv,
            established: cv >= 10,
            established_fault_rate: 0.0,
            banned: false,
        }
    }
    fn trusted() -> WorkerStanding {
        standing(1.0 - 1e-6, 40)
    }
    fn stranger() -> WorkerStanding {
        standing(0.8, 0)
    }

    #[test]
    fn a_trusted_worker_runs_alone_and_is_accepted() {
        let mut job = JobVerification::new(AdaptiveConfig::default());
        let plan = job.plan(&[trusted(), stranger()], 0.99);
        assert_eq!(plan.reason, PlanReason::TrustedAlone);
        assert_eq!(plan.replicas, 1);
        assert!(job.placed(peer(1)));
        assert_eq!(job.decide(), Decision::Wait);
        job.vote(peer(1), key(7), &trusted());
        assert_eq!(job.decide(), Decision::Accept(key(7)));
        assert!(job.observations(&key(7)).is_empty(), "alone proves nothing");
    }

    #[test]
    fn trusted_jobs_are_reverified_by_the_draw() {
        let config = AdaptiveConfig::default();
        let w = trusted();
        assert_eq!(config.reverify_probability(&w), 0.06, "1/40 < floor");
        let mut job = JobVerification::new(config.clone());
        let plan = job.plan(&[w, trusted(), trusted()], 0.01);
        assert_eq!(plan.reason, PlanReason::Reverify);
        assert_eq!(plan.replicas, 2);
        let young = standing(1.0 - 1e-5, 12);
        assert!((config.reverify_probability(&young) - 1.0 / 12.0).abs() < 1e-12);
        // Once established workers have been caught lying one time in a
        // thousand, nine jobs in ten are checked: 1e-3 × 0.1 = ε.
        let alarmed = WorkerStanding {
            established_fault_rate: 1e-3,
            ..w
        };
        assert!((config.reverify_probability(&alarmed) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn a_check_is_not_skipped_because_the_checker_failed() {
        let mut job = JobVerification::new(AdaptiveConfig::default());
        let plan = job.plan(&[trusted(), trusted()], 0.0);
        assert_eq!(plan.reason, PlanReason::Reverify);
        job.placed(peer(1));
        job.placed(peer(2));
        job.vote(peer(1), key(1), &trusted());
        job.failed(peer(2));
        assert_eq!(job.decide(), Decision::NeedMore(1));
        job.placed(peer(3));
        job.vote(peer(3), key(1), &trusted());
        assert_eq!(job.decide(), Decision::Accept(key(1)));
    }

    #[test]
    fn strangers_are_always_replicated_until_convincing() {
        let config = AdaptiveConfig::default();
        assert!(!config.is_trusted(&stranger()));
        // Odds 4 each: 4^7 > 10^4 is the first to reach 1 − 1e-4.
        assert_eq!(config.replicas_to_convince(&[stranger(); 12]), 7);
        let mut job = JobVerification::new(config);
        let plan = job.plan(&[stranger(); 12], 0.99);
        assert_eq!((plan.replicas, plan.reason), (7, PlanReason::Untrusted));
        for i in 0..7 {
            job.placed(peer(i));
            job.vote(peer(i), key(1), &stranger());
        }
        assert_eq!(job.decide(), Decision::Accept(key(1)));
        let obs = job.observations(&key(1));
        assert_eq!(obs.len(), 7);
        assert!(obs.iter().all(|(_, o)| *o == Observation::Agreed));
    }

    #[test]
    fn disagreement_escalates_and_the_dissenter_is_named() {
        let mut job = JobVerification::new(AdaptiveConfig::default());
        let w = standing(0.999, 20);
        job.plan(&[w, w], 0.5);
        job.placed(peer(1));
        job.placed(peer(2));
        job.vote(peer(1), key(1), &w);
        job.vote(peer(2), key(2), &w);
        assert_eq!(job.decide(), Decision::NeedMore(1));
        job.placed(peer(3));
        job.vote(peer(3), key(1), &w);
        // 2 against 1: a majority, but the dissenter's odds weigh: not yet.
        assert_eq!(job.decide(), Decision::NeedMore(1));
        job.placed(peer(4));
        job.vote(peer(4), key(1), &w);
        assert_eq!(job.decide(), Decision::Accept(key(1)));
        let obs = job.observations(&key(1));
        assert!(obs.contains(&(peer(2), Observation::Dissented)));
        assert_eq!(
            obs.iter()
                .filter(|(_, o)| *o == Observation::Agreed)
                .count(),
            3
        );
    }

    #[test]
    fn a_minority_is_never_accepted_however_credible() {
        let mut job = JobVerification::new(AdaptiveConfig::default());
        let star = standing(1.0 - 1e-9, 500);
        let weak = standing(0.6, 0);
        for i in 0..3 {
            job.placed(peer(i));
        }
        job.vote(peer(0), key(1), &star);
        job.vote(peer(1), key(2), &weak);
        job.vote(peer(2), key(2), &weak);
        assert_ne!(job.decide(), Decision::Accept(key(1)));
        assert_ne!(job.decide(), Decision::Accept(key(2)));
        // Even while the others are still running.
        let mut early = JobVerification::new(AdaptiveConfig::default());
        for i in 0..3 {
            early.placed(peer(i));
        }
        early.vote(peer(0), key(1), &star);
        assert_eq!(early.decide(), Decision::Wait);
    }

    #[test]
    fn no_quorum_at_max_replicas() {
        let config = AdaptiveConfig {
            max_replicas: 4,
            ..AdaptiveConfig::default()
        };
        let mut job = JobVerification::new(config);
        let w = standing(0.999, 20);
        job.plan(&[w, w], 0.5);
        for i in 0..4u8 {
            job.placed(peer(u16::from(i)));
            job.vote(peer(u16::from(i)), key(i), &w);
        }
        assert_eq!(job.decide(), Decision::NoQuorum);
    }

    #[test]
    fn failures_are_replaced_and_count_toward_the_limit() {
        let config = AdaptiveConfig {
            max_replicas: 3,
            ..AdaptiveConfig::default()
        };
        let mut job = JobVerification::new(config);
        job.plan(&[trusted()], 0.99);
        job.placed(peer(1));
        job.failed(peer(1));
        assert_eq!(job.decide(), Decision::NeedMore(1));
        job.placed(peer(2));
        job.failed(peer(2));
        job.placed(peer(3));
        job.failed(peer(3));
        assert_eq!(job.decide(), Decision::NoQuorum);
    }

    #[test]
    fn same_peer_twice_is_refused_and_banned_votes_ignored() {
        let mut job = JobVerification::new(AdaptiveConfig::default());
        assert!(job.placed(peer(1)));
        assert!(!job.placed(peer(1)));
        let banned = WorkerStanding {
            banned: true,
            ..trusted()
        };
        job.vote(peer(1), key(1), &banned);
        assert!(job.votes().is_empty());
        assert_eq!(job.pending(), 0);
        job.vote(peer(9), key(1), &trusted());
        assert!(job.votes().is_empty(), "never placed");
    }

    #[test]
    fn unknown_credibility_falls_back_to_strict_majority() {
        let mut job = JobVerification::new(AdaptiveConfig::default());
        let plan = job.plan(&[WorkerStanding::unknown(); 3], 0.0);
        assert_eq!((plan.replicas, plan.reason), (3, PlanReason::Majority));
        for i in 0..3 {
            job.placed(peer(i));
        }
        job.vote(peer(0), key(1), &WorkerStanding::unknown());
        assert_eq!(job.decide(), Decision::Wait);
        job.vote(peer(1), key(2), &WorkerStanding::unknown());
        job.vote(peer(2), key(1), &WorkerStanding::unknown());
        assert_eq!(job.decide(), Decision::Accept(key(1)));
        assert_eq!(job.credibility(&key(1)), None);
    }

    /// Untrusted colluders that all return the same wrong key, placed as a
    /// minority of a job's replicas (in any order, with any credibility up
    /// to 1 − 1e-6, any ε and replica limit), never get their key accepted.
    /// When some honest replicas fail, the wrong key can win only if it has
    /// a strict majority of the replicas that answered or are running.
    #[test]
    fn colluding_minority_is_never_accepted_randomized() {
        let mut rng = StdRng::seed_from_u64(3);
        let wrong = key(0xEE);
        for _ in 0..20_000 {
            let config = AdaptiveConfig {
                epsilon: 10f64.powf(-rng.gen_range(1.0..8.0)),
                max_replicas: rng.gen_range(3..12),
                ..AdaptiveConfig::default()
            };
            let total = rng.gen_range(1..=config.max_replicas);
            let colluders = rng.gen_range(0..=(total - 1) / 2);
            let mut roles: Vec<bool> = (0..total).map(|i| i < colluders).collect();
            for i in (1..roles.len()).rev() {
                roles.swap(i, rng.gen_range(0..=i));
            }
            let failures = rng.gen_bool(0.3);
            let mut job = JobVerification::new(config);
            for i in 0..total {
                job.placed(peer(i as u16));
            }
            for (i, &colluder) in roles.iter().enumerate() {
                let p = peer(i as u16);
                let max_credibility = if colluder { 1.0 - 1e-6 } else { 1.0 };
                let s = standing(rng.gen_range(0.0..max_credibility), rng.gen_range(0..5));
                if colluder {
                    job.vote(p, wrong, &s);
                } else if failures && rng.gen_bool(0.3) {
                    job.failed(p);
                } else {
                    job.vote(p, key(rng.gen_range(0..3)), &s);
                }
                if job.decide() == Decision::Accept(wrong) {
                    assert!(failures, "a colluding minority was accepted");
                    let backing = job.votes().iter().filter(|v| v.key == wrong).count();
                    assert!(backing * 2 > job.votes().len() + job.pending());
                }
            }
        }
    }

    #[test]
    fn credibility_matches_the_closed_form() {
        // Two agreeing at c = 0.9 against one at 0.9: O = 81 vs 9.
        let cr = credibility_from(2.0 * log_odds_of(0.9), &[log_odds_of(0.9)]);
        assert!((cr - 81.0 / 91.0).abs() < 1e-12);
        // A single vote's credibility is its own.
        assert!((credibility_from(log_odds_of(0.7), &[]) - 0.7).abs() < 1e-12);
        // Extreme odds do not overflow.
        assert!(credibility_from(1e4, &[]) > 0.999_999);
        assert_eq!(credibility_from(-1e4, &[1e4]), 0.0);
    }
}

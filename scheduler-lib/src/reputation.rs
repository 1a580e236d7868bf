//! Per-peer reputation, from this node's own observations. Pure: no I/O, the
//! clock is passed in as `now_ms`.
//!
//! # The model
//!
//! Each peer has a *beta reputation* (Jøsang & Ismail 2002): two decayed
//! evidence counts, `good` (r) and `bad` (s), and an expected trust
//! `E = (r + 1) / (r + s + 2)`. A peer never seen has `r = s = 0`, so
//! `E = 1/2`: no evidence either way, which is *not* trusted enough to run a
//! job alone (see [`crate::adaptive`]).
//!
//! * **Decay per observation, not per second.** Before each new observation
//!   of a peer, its counts are multiplied by λ ([`ReputationConfig::decay`]).
//!   Old outcomes fade as the peer does more work, so no history is long
//!   enough to be "spent" on a cheating spree (`r` never exceeds
//!   `1 / (1 − λ)`), and a peer that goes quiet keeps exactly the record it
//!   had: time alone neither forgives a liar nor erodes an honest record.
//! * **Asymmetric weights.** Agreeing with an accepted result adds 1 to `r`;
//!   a proven dissent adds [`ReputationConfig::dissent_weight`] (25) to `s`.
//!   One lie costs about as much as 25 agreements: trust is lost fast and
//!   earned slowly.
//! * **BOINC's consecutive-valid count** (CV): verified good results since the
//!   last proven fault. Credibility (Sarmenta) and the "may run alone" rule
//!   use it.
//!
//! # Bans
//!
//! A failed spot-check or an invalid (unverifiable, forged) result bans at
//! once: an honest worker never produces either, because jobs are
//! deterministic and results are signed. A dissent bans only when it leaves
//! `E` below [`ReputationConfig::ban_below`]: the accepted result it dissented
//! from was decided by other workers and could, rarely, be the wrong one, so an
//! established honest peer survives an unlucky vote while a new identity that
//! lies is banned at its first lie. Many timeouts ban the same way (a node
//! that keeps failing is useless), with a small weight each.
//!
//! A banned peer gets no work and its results are ignored; only spot-check
//! observations are scored while it is banned. The ban is lifted after
//! [`ReputationConfig::recovery_passes`] consecutive passed spot-checks (times
//! the number of bans so far, capped), never by time.
//!
//! # The population's fault rate
//!
//! Sarmenta's credibility needs `f`, the share of faulty answers to expect.
//! This node estimates it from its own verified observations (agreements,
//! dissents, spot-checks, invalid results of unbanned peers), decayed per
//! observation, starting from a pessimistic prior
//! ([`ReputationConfig::fault_prior`]). See [`Reputation::fault_estimate`].

use std::collections::HashMap;

use peergrid_proto::PeerId;

use crate::adaptive::WorkerStanding;

/// Something this node saw a peer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observation {
    /// Voted with the accepted result of a replicated job.
    Agreed,
    /// Signed a different result than the accepted one.
    Dissented,
    /// Did not answer in time (or at all).
    TimedOut,
    /// Sent a result that does not verify: bad signature, forged, tampered.
    InvalidResult,
    /// Answered a job whose result this node already knew, correctly.
    SpotCheckPassed,
    /// Answered a job whose result this node already knew, wrongly.
    SpotCheckFailed,
}

impl Observation {
    /// True for outcomes that prove the peer returned a wrong or forged
    /// result (a timeout proves nothing about honesty).
    pub fn is_proven_fault(self) -> bool {
        matches!(
            self,
            Observation::Dissented | Observation::InvalidResult | Observation::SpotCheckFailed
        )
    }

    /// True for outcomes that verified a result as right.
    pub fn is_verified_good(self) -> bool {
        matches!(self, Observation::Agreed | Observation::SpotCheckPassed)
    }
}

/// A change of ban state caused by an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The peer is now banned: no work, results ignored.
    Banned,
    /// The peer passed enough spot-checks and may get work again.
    Unbanned,
}

/// Knobs of the reputation model. The defaults are the values the
/// simulation (`examples/simulate.rs`) was tuned with; `ALGORITHM.md` says
/// why each is what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ReputationConfig {
    /// λ: weight kept by old evidence at each new observation of the peer.
    pub decay: f64,
    /// Added to `good` when the peer agreed with an accepted result.
    pub agreed_weight: f64,
    /// Added to `good` when the peer passed a spot-check.
    pub spot_passed_weight: f64,
    /// Added to `bad` when the peer dissented from an accepted result.
    pub dissent_weight: f64,
    /// Added to `bad` when the peer timed out.
    pub timeout_weight: f64,
    /// Added to `bad` when the peer sent an invalid result (also bans).
    pub invalid_weight: f64,
    /// Added to `bad` when the peer failed a spot-check (also bans).
    pub spot_failed_weight: f64,
    /// A dissent or timeout that leaves trust below this bans the peer.
    pub ban_below: f64,
    /// Consecutive passed spot-checks that lift a first ban (a peer's n-th
    /// ban needs n times as many, up to 8 times).
    pub recovery_passes: u32,
    /// Prior share of faulty answers, before this node has seen any.
    pub fault_prior: f64,
    /// How many observations the prior is worth.
    pub fault_prior_weight: f64,
    /// λ of the population's fault-rate estimate, per verified observation.
    pub population_decay: f64,
    /// Consecutive verified results that make a peer *established*, i.e.
    /// eligible to run jobs alone (BOINC's threshold: 10).
    pub established_streak: u64,
    /// Minimum trust of an established peer.
    pub established_trust: f64,
    /// λ of the established peers' fault-rate estimate, per verified
    /// observation of an established peer.
    pub established_decay: f64,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        Self {
            decay: 0.98,
            agreed_weight: 1.0,
            spot_passed_weight: 2.0,
            dissent_weight: 25.0,
            timeout_weight: 0.25,
            invalid_weight: 50.0,
            spot_failed_weight: 50.0,
            ban_below: 0.3,
            recovery_passes: 3,
            fault_prior: 0.2,
            fault_prior_weight: 5.0,
            population_decay: 0.999,
            established_streak: 10,
            established_trust: 0.9,
            established_decay: 0.9999,
        }
    }
}

/// Everything this node knows about one peer: plain data, so the caller can
/// persist it and hand it back with [`Reputation::restore`].
#[derive(Debug, Clone, PartialEq)]
pub struct PeerReputation {
    /// Decayed weight of good outcomes (r).
    pub good: f64,
    /// Decayed weight of bad outcomes (s).
    pub bad: f64,
    /// Verified good results since the last proven fault (BOINC's CV).
    pub consecutive_valid: u64,
    /// Times it agreed with an accepted result.
    pub agreed: u64,
    /// Times it dissented from an accepted result.
    pub dissented: u64,
    /// Times it timed out.
    pub timeouts: u64,
    /// Times it sent a result that did not verify.
    pub invalid: u64,
    /// Spot-checks passed.
    pub spot_passed: u64,
    /// Spot-checks failed.
    pub spot_failed: u64,
    /// When it was first observed (ms, caller's clock).
    pub first_seen_ms: u64,
    /// When it was last observed (ms, caller's clock).
    pub last_seen_ms: u64,
    /// Whether it is banned now.
    pub banned: bool,
    /// When the current (or last) ban started.
    pub banned_at_ms: Option<u64>,
    /// How many times it has been banned.
    pub times_banned: u32,
    /// Consecutive spot-checks passed during the current ban.
    pub recovery_progress: u32,
}

impl PeerReputation {
    /// The record of a peer first seen at `now_ms`: no evidence at all.
    pub fn new(now_ms: u64) -> Self {
        Self {
            good: 0.0,
            bad: 0.0,
            consecutive_valid: 0,
            agreed: 0,
            dissented: 0,
            timeouts: 0,
            invalid: 0,
            spot_passed: 0,
            spot_failed: 0,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            banned: false,
            banned_at_ms: None,
            times_banned: 0,
            recovery_progress: 0,
        }
    }

    /// Expected trust `E = (r + 1) / (r + s + 2)`, in (0, 1).
    pub fn trust(&self) -> f64 {
        (self.good + 1.0) / (self.good + self.bad + 2.0)
    }

    /// Whether the peer is established under `config`: not banned, a long
    /// enough verified streak and high enough trust.
    pub fn is_established(&self, config: &ReputationConfig) -> bool {
        !self.banned
            && self.consecutive_valid >= config.established_streak
            && self.trust() >= config.established_trust
    }
}

/// The decayed counts behind [`Reputation::fault_estimate`] and
/// [`Reputation::established_fault_rate`]: plain data, to persist next to
/// the peers' records.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultCounts {
    /// Decayed number of verified observations that proved a fault.
    pub faults: f64,
    /// Decayed number of verified observations.
    pub checks: f64,
    /// The same, counting only observations of established peers.
    pub established_faults: f64,
    /// Verified observations of established peers.
    pub established_checks: f64,
}

/// Another peer's opinion of a third, as gossiped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opinion {
    /// Who says it.
    pub reporter: PeerId,
    /// The trust it claims, in [0, 1] (clamped).
    pub trust: f64,
}

/// This node's reputation table.
#[derive(Debug, Clone, Default)]
pub struct Reputation {
    config: ReputationConfig,
    peers: HashMap<PeerId, PeerReputation>,
    population: FaultCounts,
}

impl Reputation {
    /// An empty table.
    pub fn new(config: ReputationConfig) -> Self {
        Self {
            config,
            peers: HashMap::new(),
            population: FaultCounts::default(),
        }
    }

    /// The knobs.
    pub fn config(&self) -> &ReputationConfig {
        &self.config
    }

    /// Scores one observation of `peer` at `now_ms`; returns a ban change if
    /// it caused one.
    pub fn observe(&mut self, peer: PeerId, obs: Observation, now_ms: u64) -> Option<Change> {
        let config = &self.config;
        let rec = self
            .peers
            .entry(peer)
            .or_insert_with(|| PeerReputation::new(now_ms));
        rec.last_seen_ms = rec.last_seen_ms.max(now_ms);
        if rec.banned {
            return score_while_banned(config, rec, obs);
        }
        if obs.is_verified_good() || obs.is_proven_fault() {
            let fault = if obs.is_proven_fault() { 1.0 } else { 0.0 };
            let counts = &mut self.population;
            let lambda = config.population_decay;
            counts.faults = counts.faults * lambda + fault;
            counts.checks = counts.checks * lambda + 1.0;
            if rec.is_established(config) {
                let lambda = config.established_decay;
                counts.established_faults = counts.established_faults * lambda + fault;
                counts.established_checks = counts.established_checks * lambda + 1.0;
            }
        }
        score(config, rec, obs);
        let ban = match obs {
            Observation::InvalidResult | Observation::SpotCheckFailed => true,
            Observation::Dissented | Observation::TimedOut => rec.trust() < config.ban_below,
            Observation::Agreed | Observation::SpotCheckPassed => false,
        };
        if ban {
            rec.banned = true;
            rec.banned_at_ms = Some(now_ms);
            rec.times_banned += 1;
            rec.recovery_progress = 0;
            return Some(Change::Banned);
        }
        None
    }

    /// Expected trust of `peer`; 1/2 (no evidence) for a peer never seen.
    pub fn trust(&self, peer: &PeerId) -> f64 {
        self.peers.get(peer).map_or(0.5, PeerReputation::trust)
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|r| r.banned)
    }

    /// The record of `peer`, if it was ever observed.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerReputation> {
        self.peers.get(peer)
    }

    /// Every known peer and its record (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &PeerReputation)> {
        self.peers.iter()
    }

    /// How many peers have a record.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no peer has a record.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Puts back a persisted record (replacing any in memory).
    pub fn restore(&mut self, peer: PeerId, record: PeerReputation) {
        self.peers.insert(peer, record);
    }

    /// The counts behind [`Reputation::fault_estimate`], to persist.
    pub fn fault_counts(&self) -> FaultCounts {
        self.population
    }

    /// Puts back persisted fault counts.
    pub fn restore_fault_counts(&mut self, counts: FaultCounts) {
        self.population = counts;
    }

    /// f̂: the share of verified answers from unbanned peers that proved a
    /// fault, `(faults + f₀·w) / (checks + w)` with the pessimistic prior
    /// `f₀` worth `w` observations. Recent observations dominate (decay per
    /// observation), so it rises within a few hundred checks when cheaters
    /// appear and falls once they are banned.
    pub fn fault_estimate(&self) -> f64 {
        let w = self.config.fault_prior_weight;
        let f =
            (self.population.faults + self.config.fault_prior * w) / (self.population.checks + w);
        f.clamp(1e-9, 0.5)
    }

    /// The share of verified results of *established* peers that proved a
    /// fault, lately (decayed; 0 before any). This is the direct estimate of
    /// how often an established peer lies — what a peer that behaves until
    /// trusted and then cheats makes non-zero — and it sets how often their
    /// jobs must be re-verified ([`crate::adaptive`]).
    pub fn established_fault_rate(&self) -> f64 {
        let c = &self.population;
        c.established_faults / c.established_checks.max(1.0)
    }

    /// Sarmenta's credibility of `peer`'s next result: the probability that
    /// it is right. With `f` the [fault estimate](Reputation::fault_estimate)
    /// and `k` the peer's consecutive verified results, a saboteur that lies
    /// at any constant rate `q` and survived `k` checks gives a wrong result
    /// with probability at most `f/(1−f) · max_q q(1−q)^k`, and
    /// `max_q q(1−q)^k = kᵏ/(k+1)^(k+1) ≈ 1/(e(k+1))`. A peer with no record
    /// gets `1 − f`; a banned peer 0.
    pub fn credibility(&self, peer: &PeerId) -> f64 {
        let Some(rec) = self.peers.get(peer) else {
            return 1.0 - self.fault_estimate();
        };
        if rec.banned {
            return 0.0;
        }
        1.0 - sarmenta_error(self.fault_estimate(), rec.consecutive_valid)
    }

    /// What the adaptive policy needs to know about `peer`.
    pub fn standing(&self, peer: &PeerId) -> WorkerStanding {
        let rec = self.peers.get(peer);
        WorkerStanding {
            credibility: Some(self.credibility(peer)),
            trust: rec.map_or(0.5, PeerReputation::trust),
            consecutive_valid: rec.map_or(0, |r| r.consecutive_valid),
            established: rec.is_some_and(|r| r.is_established(&self.config)),
            established_fault_rate: self.established_fault_rate(),
            banned: rec.is_some_and(|r| r.banned),
        }
    }

    /// EigenTrust-style blend of this node's own trust in `about` with other
    /// peers' opinions of it. Each reporter's opinion is weighted by this
    /// node's *own* evidence for that reporter, `max(good − bad, 0)` (EigenTrust's
    /// local trust `max(sat − unsat, 0)`); this node's own opinion is weighted
    /// by its evidence about `about` plus the prior's 2. A reporter this node
    /// has no good record of — every fresh identity — has weight 0, so a crowd
    /// of new identities cannot vouch for each other or for anyone. Banned
    /// reporters and self-reports count for nothing. Advisory only: bans and
    /// credibility use first-hand observations alone.
    pub fn merged_trust(&self, about: &PeerId, opinions: &[Opinion]) -> f64 {
        let (own_weight, own_trust) = self
            .peers
            .get(about)
            .map_or((2.0, 0.5), |r| (r.good + r.bad + 2.0, r.trust()));
        let mut weight = own_weight;
        let mut sum = own_weight * own_trust;
        for opinion in opinions {
            if opinion.reporter == *about {
                continue;
            }
            let w = match self.peers.get(&opinion.reporter) {
                Some(r) if !r.banned => (r.good - r.bad).max(0.0),
                _ => 0.0,
            };
            weight += w;
            sum += w * opinion.trust.clamp(0.0, 1.0);
        }
        sum / weight
    }
}

/// Sarmenta's bound on the chance that a peer's next result is wrong, given
/// the fault estimate `f` and `k` consecutive verified results.
fn sarmenta_error(f: f64, k: u64) -> f64 {
    if k == 0 {
        return f;
    }
    let k = k as f64;
    // max over q of q(1-q)^k, at q = 1/(k+1).
    let worst = (k * (k / (k + 1.0)).ln()).exp() / (k + 1.0);
    (f / (1.0 - f) * worst).min(f)
}

/// Updates counters, evidence and CV for one observation of an unbanned peer.
fn score(config: &ReputationConfig, rec: &mut PeerReputation, obs: Observation) {
    rec.good *= config.decay;
    rec.bad *= config.decay;
    match obs {
        Observation::Agreed => {
            rec.agreed += 1;
            rec.good += config.agreed_weight;
        }
        Observation::SpotCheckPassed => {
            rec.spot_passed += 1;
            rec.good += config.spot_passed_weight;
        }
        Observation::Dissented => {
            rec.dissented += 1;
            rec.bad += config.dissent_weight;
        }
        Observation::TimedOut => {
            rec.timeouts += 1;
            rec.bad += config.timeout_weight;
        }
        Observation::InvalidResult => {
            rec.invalid += 1;
            rec.bad += config.invalid_weight;
        }
        Observation::SpotCheckFailed => {
            rec.spot_failed += 1;
            rec.bad += config.spot_failed_weight;
        }
    }
    if obs.is_verified_good() {
        rec.consecutive_valid += 1;
    } else if obs.is_proven_fault() {
        rec.consecutive_valid = 0;
    }
}

/// While banned only spot-checks count, and only they can lift the ban.
fn score_while_banned(
    config: &ReputationConfig,
    rec: &mut PeerReputation,
    obs: Observation,
) -> Option<Change> {
    match obs {
        Observation::SpotCheckPassed => {
            score(config, rec, obs);
            rec.recovery_progress += 1;
            let needed = config.recovery_passes * rec.times_banned.clamp(1, 8);
            if rec.recovery_progress >= needed {
                rec.banned = false;
                rec.recovery_progress = 0;
                // On probation: nothing from before the ban counts as a
                // verified streak.
                rec.consecutive_valid = 0;
                return Some(Change::Unbanned);
            }
            None
        }
        Observation::SpotCheckFailed => {
            score(config, rec, obs);
            rec.recovery_progress = 0;
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    fn rep() -> Reputation {
        Reputation::new(ReputationConfig::default())
    }

    #[test]
    fn new_peers_are_untrusted() {
        let r = rep();
        assert_eq!(r.trust(&peer(1)), 0.5);
        assert!(!r.is_banned(&peer(1)));
        let s = r.standing(&peer(1));
        assert_eq!(s.consecutive_valid, 0);
        assert!(!s.established);
        assert!(!crate::adaptive::AdaptiveConfig::default().is_trusted(&s));
        // The pessimistic prior: a stranger is wrong one time in five.
        assert!((r.credibility(&peer(1)) - 0.8).abs() < 1e-9);
    }

    #[test]
    fn trust_is_lost_fast_and_earned_slowly() {
        let mut r = rep();
        let p = peer(1);
        for t in 0..20 {
            r.observe(p, Observation::Agreed, t);
        }
        let earned = r.trust(&p);
        assert!(earned > 0.9, "20 agreements: {earned}");
        assert_eq!(r.observe(p, Observation::Dissented, 20), None);
        let after = r.trust(&p);
        assert!(after < 0.5, "one dissent undoes 20 agreements: {after}");
        assert_eq!(r.get(&p).map(|r| r.consecutive_valid), Some(0));
        // Climbing back to 0.9 takes far more than 20 agreements.
        let mut n = 0;
        while r.trust(&p) < earned {
            r.observe(p, Observation::Agreed, 21 + n);
            n += 1;
        }
        assert!(n > 60, "took {n} agreements to recover");
    }

    #[test]
    fn a_new_identity_that_lies_is_banned_at_once() {
        let mut r = rep();
        assert_eq!(
            r.observe(peer(2), Observation::Dissented, 0),
            Some(Change::Banned)
        );
        assert!(r.is_banned(&peer(2)));
        assert_eq!(r.credibility(&peer(2)), 0.0);
    }

    #[test]
    fn failed_spot_check_and_invalid_result_ban_even_a_trusted_peer() {
        for bad in [Observation::SpotCheckFailed, Observation::InvalidResult] {
            let mut r = rep();
            for t in 0..100 {
                r.observe(peer(1), Observation::Agreed, t);
            }
            assert_eq!(r.observe(peer(1), bad, 100), Some(Change::Banned));
        }
    }

    #[test]
    fn honest_peer_survives_an_unlucky_dissent_and_rare_timeouts() {
        let mut r = rep();
        let p = peer(3);
        for t in 0..50 {
            r.observe(p, Observation::Agreed, t);
        }
        assert_eq!(r.observe(p, Observation::Dissented, 50), None);
        for t in 0..1000 {
            let obs = if t % 100 == 0 {
                Observation::TimedOut
            } else {
                Observation::Agreed
            };
            assert_eq!(r.observe(p, obs, 51 + t), None);
        }
    }

    #[test]
    fn a_peer_that_always_times_out_is_banned() {
        let mut r = rep();
        let changes: Vec<_> = (0..30)
            .filter_map(|t| r.observe(peer(4), Observation::TimedOut, t))
            .collect();
        assert_eq!(changes, vec![Change::Banned]);
    }

    #[test]
    fn ban_is_lifted_only_by_spot_checks() {
        let mut r = rep();
        let p = peer(5);
        r.observe(p, Observation::SpotCheckFailed, 0);
        assert!(r.is_banned(&p));
        // Time alone, and ordinary results while banned, change nothing.
        for t in 1..100 {
            assert_eq!(r.observe(p, Observation::Agreed, t * 86_400_000), None);
        }
        assert!(r.is_banned(&p));
        assert_eq!(r.get(&p).map(|r| r.agreed), Some(0), "results ignored");
        // A failed check resets progress.
        r.observe(p, Observation::SpotCheckPassed, 10_000_000_000);
        r.observe(p, Observation::SpotCheckPassed, 10_000_000_001);
        r.observe(p, Observation::SpotCheckFailed, 10_000_000_002);
        assert!(r.is_banned(&p));
        r.observe(p, Observation::SpotCheckPassed, 10_000_000_003);
        r.observe(p, Observation::SpotCheckPassed, 10_000_000_004);
        assert_eq!(
            r.observe(p, Observation::SpotCheckPassed, 10_000_000_005),
            Some(Change::Unbanned)
        );
        assert!(!r.is_banned(&p));
        assert_eq!(r.get(&p).map(|r| r.consecutive_valid), Some(0));
        // On probation: the next lie bans again, and the second ban needs
        // twice the passes.
        assert_eq!(
            r.observe(p, Observation::Dissented, 10_000_000_006),
            Some(Change::Banned)
        );
        for t in 0..5 {
            assert_eq!(r.observe(p, Observation::SpotCheckPassed, t), None);
        }
        assert_eq!(
            r.observe(p, Observation::SpotCheckPassed, 6),
            Some(Change::Unbanned)
        );
    }

    #[test]
    fn counters_and_times_are_kept_for_display() {
        let mut r = rep();
        let p = peer(6);
        r.observe(p, Observation::Agreed, 10);
        r.observe(p, Observation::TimedOut, 20);
        r.observe(p, Observation::SpotCheckPassed, 30);
        let rec = r.get(&p).cloned().expect("known");
        assert_eq!((rec.agreed, rec.timeouts, rec.spot_passed), (1, 1, 1));
        assert_eq!((rec.first_seen_ms, rec.last_seen_ms), (10, 30));
        assert_eq!(rec.consecutive_valid, 2, "a timeout proves nothing");
        let mut restored = rep();
        restored.restore(p, rec.clone());
        restored.restore_fault_counts(r.fault_counts());
        assert_eq!(restored.get(&p), Some(&rec));
        assert_eq!(restored.standing(&p), r.standing(&p));
    }

    #[test]
    fn fault_estimate_follows_what_is_seen() {
        let mut r = rep();
        assert!((r.fault_estimate() - 0.2).abs() < 1e-9, "pessimistic prior");
        for t in 0..2000 {
            r.observe(peer((t % 200) as u8), Observation::Agreed, t);
        }
        assert!(r.fault_estimate() < 0.002, "{}", r.fault_estimate());
        for n in 0..50u8 {
            r.observe(peer(n), Observation::Dissented, 3000);
        }
        assert!(r.fault_estimate() > 0.04, "{}", r.fault_estimate());
    }

    #[test]
    fn credibility_grows_with_verified_streak() {
        let mut r = rep();
        let p = peer(7);
        let mut last = r.credibility(&p);
        for t in 0..30 {
            r.observe(p, Observation::Agreed, t);
            let c = r.credibility(&p);
            assert!(c >= last, "monotone while the streak lasts");
            last = c;
        }
        r.observe(p, Observation::Dissented, 30);
        assert!(r.credibility(&p) < last);
    }

    #[test]
    fn sarmenta_worst_case_rate() {
        // k^k/(k+1)^(k+1) at k = 1, 2, 10.
        let f = 0.5; // f/(1-f) = 1
        assert!((sarmenta_error(f, 1) - 0.25).abs() < 1e-12);
        assert!((sarmenta_error(f, 2) - 4.0 / 27.0).abs() < 1e-12);
        let e10 = sarmenta_error(f, 10);
        assert!(
            (e10 - 1.0 / (std::f64::consts::E * 11.0)).abs() < 2e-3,
            "{e10}"
        );
        assert_eq!(sarmenta_error(0.1, 0), 0.1);
    }

    #[test]
    fn new_identities_cannot_vouch_for_each_other() {
        let mut r = rep();
        let sybils: Vec<_> = (100..200).map(peer).collect();
        let opinions: Vec<_> = sybils
            .iter()
            .map(|&reporter| Opinion {
                reporter,
                trust: 1.0,
            })
            .collect();
        assert_eq!(r.merged_trust(&sybils[0], &opinions), 0.5);
        // A peer this node trusts first-hand does move the estimate.
        let friend = peer(1);
        for t in 0..40 {
            r.observe(friend, Observation::Agreed, t);
        }
        let vouched = r.merged_trust(
            &sybils[0],
            &[Opinion {
                reporter: friend,
                trust: 1.0,
            }],
        );
        assert!(vouched > 0.9, "{vouched}");
        // A banned reporter counts for nothing.
        r.observe(friend, Observation::SpotCheckFailed, 50);
        let after = r.merged_trust(
            &sybils[0],
            &[Opinion {
                reporter: friend,
                trust: 1.0,
            }],
        );
        assert_eq!(after, 0.5);
    }
}

//! The quorum tally of one job: pure bookkeeping, no I/O.
//!
//! A job has `k` replica slots. Each slot ends either with a *vote* (a
//! verified result whose [`VoteKey`] says how the run ended and what it
//! printed) or with a *failure* (the worker was unreachable, refused, timed
//! out, or sent a result that did not verify). A failed slot may be retried on
//! another worker while the attempt budget lasts.
//!
//! The verdict is decided by strict majority of `k`: a key is accepted when
//! more than `k / 2` workers voted for it. Votes for other keys are dissent.
//! When every slot has ended and no key has a majority, there is no quorum —
//! a wrong result is never accepted for lack of a right one.

use std::collections::BTreeMap;

use peergrid_proto::PeerId;

use crate::outcome::VoteKey;

/// What the tally says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TallyState {
    /// Slots are still running; nothing decided.
    Pending,
    /// A key has a strict majority of `k` (more slots may still report,
    /// and their votes will count as agreement or dissent).
    Majority(VoteKey),
    /// Every slot has ended and no key reached a majority.
    NoQuorum,
}

/// Votes and failures of one job's replicas.
#[derive(Debug, Clone)]
pub struct Tally {
    replicas: usize,
    votes: Vec<(PeerId, VoteKey)>,
    failed_slots: usize,
}

impl Tally {
    /// A tally for a job that needs `replicas` results (at least 1).
    pub fn new(replicas: usize) -> Self {
        Self {
            replicas: replicas.max(1),
            votes: Vec::new(),
            failed_slots: 0,
        }
    }

    /// How many agreeing votes accept a key: a strict majority of `k`.
    pub fn needed(&self) -> usize {
        self.replicas / 2 + 1
    }

    /// Records a verified vote. A second vote from the same worker is ignored.
    pub fn vote(&mut self, worker: PeerId, key: VoteKey) {
        if !self.votes.iter().any(|(w, _)| *w == worker) {
            self.votes.push((worker, key));
        }
    }

    /// Records that a slot ended without a vote (after all its retries).
    pub fn slot_failed(&mut self) {
        self.failed_slots += 1;
    }

    /// Slots that have not ended yet.
    pub fn open_slots(&self) -> usize {
        self.replicas
            .saturating_sub(self.votes.len() + self.failed_slots)
    }

    /// Votes per key, most first (ties broken by key for determinism).
    pub fn counts(&self) -> Vec<(VoteKey, usize)> {
        let mut counts: BTreeMap<VoteKey, usize> = BTreeMap::new();
        for (_, key) in &self.votes {
            *counts.entry(*key).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
    }

    /// The current state.
    pub fn state(&self) -> TallyState {
        if let Some((key, n)) = self.counts().first()
            && *n >= self.needed()
        {
            return TallyState::Majority(*key);
        }
        if self.open_slots() == 0 {
            TallyState::NoQuorum
        } else {
            TallyState::Pending
        }
    }

    /// True when nothing more can change the verdict's membership: every slot
    /// has ended.
    pub fn is_complete(&self) -> bool {
        self.open_slots() == 0
    }

    /// Workers that voted for `key`, and those that voted otherwise.
    pub fn split(&self, key: &VoteKey) -> (Vec<PeerId>, Vec<PeerId>) {
        let (agree, dissent): (Vec<_>, Vec<_>) = self.votes.iter().partition(|(_, k)| k == key);
        (
            agree.into_iter().map(|(w, _)| w).collect(),
            dissent.into_iter().map(|(w, _)| w).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peergrid_proto::Identity;

    fn peer() -> PeerId {
        Identity::generate().peer_id()
    }
    fn key(b: u8) -> VoteKey {
        VoteKey([b; 32])
    }

    #[test]
    fn three_honest_agree() {
        let mut t = Tally::new(3);
        let (a, b, c) = (peer(), peer(), peer());
        t.vote(a, key(1));
        assert_eq!(t.state(), TallyState::Pending);
        t.vote(b, key(1));
        assert_eq!(t.state(), TallyState::Majority(key(1)));
        t.vote(c, key(1));
        assert!(t.is_complete());
        assert_eq!(t.split(&key(1)).0.len(), 3);
    }

    #[test]
    fn one_liar_is_outvoted_and_named() {
        let mut t = Tally::new(3);
        let (a, b, liar) = (peer(), peer(), peer());
        t.vote(liar, key(9));
        t.vote(a, key(1));
        assert_eq!(t.state(), TallyState::Pending);
        t.vote(b, key(1));
        assert_eq!(t.state(), TallyState::Majority(key(1)));
        assert_eq!(t.split(&key(1)), (vec![a, b], vec![liar]));
    }

    #[test]
    fn two_different_liars_give_no_quorum() {
        let mut t = Tally::new(3);
        t.vote(peer(), key(1));
        t.vote(peer(), key(2));
        t.vote(peer(), key(3));
        assert_eq!(t.state(), TallyState::NoQuorum);
    }

    #[test]
    fn failures_shrink_the_chance_of_quorum() {
        let mut t = Tally::new(3);
        t.vote(peer(), key(1));
        t.slot_failed();
        assert_eq!(t.state(), TallyState::Pending);
        t.slot_failed();
        assert_eq!(t.state(), TallyState::NoQuorum, "1 of 3 is no majority");
    }

    #[test]
    fn duplicate_votes_from_one_worker_count_once() {
        let mut t = Tally::new(3);
        let a = peer();
        t.vote(a, key(1));
        t.vote(a, key(1));
        assert_eq!(t.state(), TallyState::Pending);
        assert_eq!(t.open_slots(), 2);
    }

    #[test]
    fn even_k_needs_strict_majority() {
        let mut t = Tally::new(4);
        assert_eq!(t.needed(), 3);
        t.vote(peer(), key(1));
        t.vote(peer(), key(1));
        t.vote(peer(), key(2));
        t.vote(peer(), key(2));
        assert_eq!(t.state(), TallyState::NoQuorum);
    }

    #[test]
    fn k1_accepts_the_single_vote() {
        let mut t = Tally::new(1);
        t.vote(peer(), key(5));
        assert_eq!(t.state(), TallyState::Majority(key(5)));
    }
}

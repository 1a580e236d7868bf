//! The [`Membership`] state machine: its table, seeds and anchors, timers,
//! probes and the admission of every advert it receives. The gossip
//! exchange itself is in [`super::gossip`].

use std::collections::HashMap;
use std::sync::Arc;

use peergrid_proto::{PeerId, pb, sha256};
use rand::Rng;

use super::MembershipConfig;
use super::advert::{AdvertError, VerifiedAdvert, Verifier, VerifyAdvert};
use super::anchor::Anchor;
use super::detector::{self, Freshness, PeerState};
use super::event::{Event, Member, Relayer, Stats, Target};
use super::limiter::{KeyedLimiter, Penalties};
use super::table::{Entry, Offer, Refusal, Swept, Table};

/// How many refused adverts are remembered (so that they are neither
/// verified nor asked for again until their peer publishes a newer one).
const REFUSED_MEMORY: usize = 8192;

/// A bootstrap address or a restored anchor.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    pub peer: Option<PeerId>,
    pub addr: String,
    pub anchor: bool,
    pub failures: u8,
    /// Whether it has answered a call yet.
    pub answered: bool,
}

/// One node's view of the grid. See the [module doc](super) for how to
/// drive it. Not thread-safe by itself: wrap it in a mutex and keep each
/// call short (they never block).
pub struct Membership<V = Verifier> {
    pub(super) config: MembershipConfig,
    pub(super) me: Arc<VerifiedAdvert>,
    pub(super) table: Table,
    pub(super) seeds: Vec<Seed>,
    anchor_turn: usize,
    pub(super) limiter: KeyedLimiter<(PeerId, String)>,
    pub(super) penalties: Penalties,
    probes: Vec<(PeerId, u64)>,
    sweep_cursor: u64,
    probe_cursor: u64,
    last_tick_ms: Option<u64>,
    pub(super) listing_cursor: usize,
    pub(super) stats: Stats,
    /// The adverts the table refused lately, by peer.
    refused: HashMap<PeerId, Arc<VerifiedAdvert>>,
    verifier: V,
}

/// Why the node's own advert was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// It does not verify (signature, puzzle, bounds).
    #[error("own advert does not verify: {0}")]
    BadAdvert(#[from] AdvertError),
    /// It is signed by another key than the node's.
    #[error("advert is signed by another peer")]
    NotMine,
    /// Its sequence number is not above the current one.
    #[error("advert seq {new} is not above the current {current}")]
    NotNewer {
        /// The current seq.
        current: u64,
        /// The refused one.
        new: u64,
    },
}

impl Membership<Verifier> {
    /// A membership for the node whose signed advert is `me`, bucketing its
    /// table with the 32-byte `secret` (random, kept private; persist it to
    /// keep bucket placement across restarts).
    pub fn new(
        config: MembershipConfig,
        me: pb::SignedEnvelope,
        secret: [u8; 32],
        now_ms: u64,
    ) -> Result<Self, MembershipError> {
        Self::with_verifier(config, me, secret, now_ms, Verifier)
    }
}

impl<V: VerifyAdvert> Membership<V> {
    /// [`Membership::new`] with another advert verifier (a simulation
    /// sharing one memo between thousands of nodes).
    pub fn with_verifier(
        config: MembershipConfig,
        me: pb::SignedEnvelope,
        secret: [u8; 32],
        now_ms: u64,
        mut verifier: V,
    ) -> Result<Self, MembershipError> {
        let me = verifier.verify(&me, config.puzzle_bits)?;
        let mut table = Table::new(&config, secret);
        table.set_self(Arc::clone(&me), now_ms);
        Ok(Self {
            limiter: KeyedLimiter::new(config.inbound, config.limiter_capacity),
            penalties: Penalties::new(
                config.max_bad_adverts,
                config.graylist_ms,
                config.limiter_capacity,
            ),
            config,
            me,
            table,
            seeds: Vec::new(),
            anchor_turn: 0,
            probes: Vec::new(),
            sweep_cursor: 0,
            probe_cursor: 0,
            last_tick_ms: None,
            listing_cursor: 0,
            stats: Stats::default(),
            refused: HashMap::new(),
            verifier,
        })
    }

    /// The knobs.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.me.peer
    }

    /// This node's current advert.
    pub fn my_advert(&self) -> &Arc<VerifiedAdvert> {
        &self.me
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Replaces this node's advert (a refresh, new free slots, new
    /// addresses): it must be signed by this node with a higher seq.
    pub fn update_self(
        &mut self,
        envelope: pb::SignedEnvelope,
        now_ms: u64,
    ) -> Result<(), MembershipError> {
        let advert = self.verifier.verify(&envelope, self.config.puzzle_bits)?;
        if advert.peer != self.me.peer {
            return Err(MembershipError::NotMine);
        }
        if advert.advert.seq <= self.me.advert.seq {
            return Err(MembershipError::NotNewer {
                current: self.me.advert.seq,
                new: advert.advert.seq,
            });
        }
        self.table.set_self(Arc::clone(&advert), now_ms);
        self.me = advert;
        Ok(())
    }

    /// Adds a bootstrap address: called every round until it answers once,
    /// and again whenever the table holds fewer than `fanout` peers.
    pub fn add_bootstrap(&mut self, addr: String) {
        if !self.seeds.iter().any(|s| s.addr == addr) {
            self.seeds.push(Seed {
                peer: None,
                addr,
                anchor: false,
                failures: 0,
                answered: false,
            });
        }
    }

    /// Restores anchors saved by [`Membership::anchors`] before a restart:
    /// one is called every round, and an anchor's advert is admitted as
    /// verified while it names the anchored address.
    pub fn restore_anchors(&mut self, anchors: Vec<Anchor>) {
        for anchor in anchors.into_iter().take(self.config.max_anchors) {
            if anchor.peer != self.me.peer
                && !self.seeds.iter().any(|s| s.peer == Some(anchor.peer))
            {
                self.seeds.push(Seed {
                    peer: Some(anchor.peer),
                    addr: anchor.addr,
                    anchor: true,
                    failures: 0,
                    answered: false,
                });
            }
        }
    }

    /// Up to `max_anchors` peers to persist: verified, Alive, longest
    /// verified first, one per network group.
    pub fn anchors(&self, now_ms: u64) -> Vec<Anchor> {
        let mut candidates: Vec<&Entry> = self
            .table
            .entries()
            .filter(|e| !e.is_self() && e.verified_since_ms > 0)
            .filter(|e| self.state_of(e, now_ms) == PeerState::Alive)
            .collect();
        candidates.sort_by_key(|e| (e.verified_since_ms, e.advert.peer));
        let mut groups = Vec::new();
        let mut anchors = Vec::new();
        for e in candidates {
            let group = self.table.group_of(e);
            if anchors.len() < self.config.max_anchors && !groups.contains(&group) {
                groups.push(group);
                anchors.push(Anchor {
                    peer: e.advert.peer,
                    addr: e.advert.primary_addr().to_string(),
                });
            }
        }
        anchors
    }

    pub(super) fn state_of(&self, entry: &Entry, now_ms: u64) -> PeerState {
        detector::state(&self.config, entry.timestamp(), entry.failures, now_ms)
    }

    /// The peers to gossip with this round: one restored anchor (in turn),
    /// the bootstrap addresses that never answered (all of them while the
    /// table holds fewer than `fanout` peers), then random peers (a random non-empty bucket, a random entry)
    /// that are not Dead, not failing, not graylisted, and in network groups
    /// not picked yet.
    pub fn gossip_targets(&mut self, rng: &mut impl Rng, now_ms: u64) -> Vec<Target> {
        let fanout = self.config.fanout.max(1);
        let mut targets: Vec<Target> = Vec::with_capacity(fanout);
        let mut groups = Vec::with_capacity(fanout);
        let anchors: Vec<usize> = (0..self.seeds.len())
            .filter(|&i| self.seeds[i].anchor)
            .collect();
        if !anchors.is_empty() {
            let seed = &self.seeds[anchors[self.anchor_turn % anchors.len()]];
            self.anchor_turn = self.anchor_turn.wrapping_add(1);
            let addr = seed
                .peer
                .and_then(|p| self.table.get(&p))
                .map_or(seed.addr.clone(), |e| e.advert.primary_addr().to_string());
            targets.push(Target {
                peer: seed.peer,
                addr,
            });
        }
        let few = self.table.len() <= fanout;
        for seed in self
            .seeds
            .iter()
            .filter(|s| !s.anchor && (few || !s.answered))
        {
            if targets.len() < fanout && !targets.iter().any(|t| t.addr == seed.addr) {
                targets.push(Target {
                    peer: None,
                    addr: seed.addr.clone(),
                });
            }
        }
        let nonempty = self.table.nonempty_buckets();
        let mut tries = fanout * 8;
        while targets.len() < fanout && tries > 0 {
            tries -= 1;
            let Some(e) = self.table.random(rng, &nonempty) else {
                break;
            };
            let peer = e.advert.peer;
            let group = self.table.group_of(e);
            let eligible = e.failures == 0
                && e.relayed()
                && self.state_of(e, now_ms) != PeerState::Dead
                && !self.penalties.graylisted(&peer, now_ms)
                && !groups.contains(&group)
                && !targets.iter().any(|t| t.peer == Some(peer));
            if eligible {
                groups.push(group);
                targets.push(Target {
                    peer: Some(peer),
                    addr: e.advert.primary_addr().to_string(),
                });
            }
        }
        targets
    }

    /// Receives one advert envelope handed over by `relayer`: skips exact
    /// duplicates, verifies (charging failures to the relayer), and offers
    /// fresh ones to the table. Returns the verified advert.
    pub(super) fn receive(
        &mut self,
        envelope: &pb::SignedEnvelope,
        relayer: &Relayer,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<Arc<VerifiedAdvert>, AdvertError> {
        self.stats.adverts_received += 1;
        let peer = (envelope.public_key.len() == 32)
            .then(|| PeerId::from_bytes(sha256(&envelope.public_key)));
        if let Some(held) = peer.and_then(|p| self.held_copy(&p, envelope)) {
            self.stats.duplicates += 1;
            return Ok(held);
        }
        if let Some(refused) = peer.and_then(|p| self.refused_copy(&p, envelope)) {
            self.stats.refused_again += 1;
            return Ok(refused);
        }
        match self.verifier.verify(envelope, self.config.puzzle_bits) {
            Ok(advert) => {
                self.admit(Arc::clone(&advert), now_ms, events);
                Ok(advert)
            }
            Err(error) => {
                self.stats.bad += 1;
                if let Relayer::Peer(peer) = relayer
                    && let Some(until_ms) = self.penalties.charge(*peer, now_ms)
                {
                    events.push(Event::Graylisted {
                        peer: *peer,
                        until_ms,
                    });
                }
                events.push(Event::BadAdvert {
                    relayer: relayer.clone(),
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    /// The advert held for `peer` (the envelope's key's id), if it is
    /// byte-identical to the envelope.
    fn held_copy(
        &self,
        peer: &PeerId,
        envelope: &pb::SignedEnvelope,
    ) -> Option<Arc<VerifiedAdvert>> {
        let held = self.table.get(peer)?;
        (held.advert.envelope == *envelope).then(|| Arc::clone(&held.advert))
    }

    /// The advert of this envelope (whose key's id is `peer`) if the table
    /// refused exactly it lately.
    fn refused_copy(
        &self,
        peer: &PeerId,
        envelope: &pb::SignedEnvelope,
    ) -> Option<Arc<VerifiedAdvert>> {
        let refused = self.refused.get(peer)?;
        (refused.envelope == *envelope).then(|| Arc::clone(refused))
    }

    /// Whether the table refused `peer`'s advert at `seq` or later lately.
    pub(super) fn recently_refused(&self, peer: &PeerId, seq: u64) -> bool {
        self.refused.get(peer).is_some_and(|a| a.advert.seq >= seq)
    }

    fn remember_refusal(&mut self, advert: Arc<VerifiedAdvert>) {
        if self.refused.len() >= REFUSED_MEMORY {
            self.refused.clear();
        }
        self.refused.insert(advert.peer, advert);
    }

    /// Offers a verified advert to the table.
    pub(super) fn admit(
        &mut self,
        advert: Arc<VerifiedAdvert>,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) {
        let peer = advert.peer;
        if peer == self.me.peer {
            return;
        }
        match detector::freshness(&self.config, advert.advert.timestamp_unix_ms, now_ms) {
            Freshness::Fresh => {}
            Freshness::Stale | Freshness::Future => {
                self.stats.stale += 1;
                return;
            }
        }
        let anchored = self
            .seeds
            .iter()
            .any(|s| s.anchor && s.peer == Some(peer) && advert.advert.addrs.contains(&s.addr));
        match self
            .table
            .offer(Arc::clone(&advert), anchored, &self.config, now_ms)
        {
            Offer::Inserted => {
                self.refused.remove(&peer);
                self.stats.inserted += 1;
                events.push(Event::Discovered { peer });
                if anchored {
                    events.push(Event::Verified { peer });
                }
            }
            Offer::Updated { previous } => {
                self.stats.updated += 1;
                let state = self
                    .table
                    .get(&peer)
                    .map_or(PeerState::Alive, |e| self.state_of(e, now_ms));
                if let Some(entry) = self.table.get_mut(&peer) {
                    entry.reported = state;
                }
                if previous != PeerState::Alive && state == PeerState::Alive {
                    events.push(Event::Revived { peer });
                }
            }
            Offer::Older => self.stats.older += 1,
            Offer::Refused(why) => {
                match why {
                    Refusal::BucketFull => self.stats.refused_bucket_full += 1,
                    Refusal::GroupFull => self.stats.refused_group_full += 1,
                    Refusal::Collision => self.stats.refused_collision += 1,
                }
                self.remember_refusal(advert);
            }
        }
    }

    /// Reports the outcome of a probe of `peer`'s primary address (or of any
    /// other contact that proved, or failed to prove, that the endpoint holds
    /// `peer`'s key — an authenticated gossip call counts).
    pub fn probe_result(&mut self, peer: &PeerId, ok: bool, now_ms: u64) -> Vec<Event> {
        self.probes.retain(|(p, _)| p != peer);
        let mut events = Vec::new();
        let config = self.config.clone();
        let Some(entry) = self.table.get_mut(peer) else {
            return events;
        };
        if ok {
            entry.failures = 0;
            if entry.verified_since_ms == 0 {
                entry.verified_since_ms = now_ms.max(1);
                events.push(Event::Verified { peer: *peer });
            }
        } else {
            entry.failures = entry.failures.saturating_add(1);
        }
        let state = detector::state(&config, entry.timestamp(), entry.failures, now_ms);
        if state != entry.reported {
            entry.reported = state;
            events.push(state_event(*peer, state));
        }
        events
    }

    /// Timers, every gossip interval: asks for a refreshed own advert when
    /// due, re-checks part of the table (Suspect, Dead, forgotten: every
    /// entry at least every `sweep_interval_ms`), expires probes that were
    /// never reported and starts new ones.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        if now_ms.saturating_sub(self.me.advert.timestamp_unix_ms)
            >= self.config.refresh_interval_ms
        {
            events.push(Event::RefreshAdvert);
        }
        let elapsed = self.last_tick_ms.map_or(0, |t| now_ms.saturating_sub(t));
        self.last_tick_ms = Some(now_ms);
        let share = (self.table.len() as u128 * u128::from(elapsed))
            .div_ceil(u128::from(self.config.sweep_interval_ms.max(1)));
        let count = usize::try_from(share).unwrap_or(usize::MAX).max(32);
        self.sweep_cursor = self.table.sweep(
            self.sweep_cursor,
            count,
            &self.config,
            now_ms,
            |entry, swept| match swept {
                Swept::Forgotten => events.push(Event::Removed {
                    peer: entry.advert.peer,
                }),
                Swept::Changed { before } => {
                    let state = entry.reported;
                    if !(before == PeerState::Dead && state == PeerState::Suspect) {
                        events.push(state_event(entry.advert.peer, state));
                    }
                }
            },
        );
        self.run_probes(now_ms, &mut events);
        events
    }

    fn run_probes(&mut self, now_ms: u64, events: &mut Vec<Event>) {
        let expired: Vec<PeerId> = self
            .probes
            .iter()
            .filter(|(_, deadline)| *deadline <= now_ms)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            events.extend(self.probe_result(&peer, false, now_ms));
        }
        let wanted = self
            .config
            .probes_per_tick
            .saturating_sub(self.probes.len());
        if wanted == 0 {
            return;
        }
        let max_failures = self.config.max_failures;
        let in_flight: Vec<PeerId> = self.probes.iter().map(|(p, _)| *p).collect();
        let (found, cursor) = self.table.scan_from(self.probe_cursor, 256, wanted, |e| {
            !e.is_self()
                && e.verified_since_ms == 0
                && e.failures < max_failures
                && e.relayed()
                && !in_flight.contains(&e.advert.peer)
        });
        self.probe_cursor = cursor;
        for entry in found {
            let peer = entry.peer;
            self.probes
                .push((peer, now_ms.saturating_add(self.config.probe_timeout_ms)));
            events.push(Event::Probe {
                peer,
                addr: entry.primary_addr().to_string(),
            });
        }
    }

    /// Every peer held (not this node), in peer-id order, with its state
    /// at `now_ms`.
    pub fn members(&self, now_ms: u64) -> Vec<Member> {
        self.table
            .entries()
            .filter(|e| !e.is_self())
            .map(|e| self.member_of(e, now_ms))
            .collect()
    }

    /// One peer, if held.
    pub fn member(&self, peer: &PeerId, now_ms: u64) -> Option<Member> {
        self.table
            .get(peer)
            .filter(|e| !e.is_self())
            .map(|e| self.member_of(e, now_ms))
    }

    /// Number of peers held (not counting this node).
    pub fn len(&self) -> usize {
        self.table.len().saturating_sub(1)
    }

    /// Whether no peer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn member_of(&self, e: &Entry, now_ms: u64) -> Member {
        let a = &e.advert.advert;
        Member {
            peer: e.advert.peer,
            addrs: a.addrs.clone(),
            free_slots: a.free_slots,
            total_slots: a.total_slots,
            cores: a.cores,
            seq: a.seq,
            last_seen_ms: a.timestamp_unix_ms,
            state: self.state_of(e, now_ms),
            verified_since_ms: (e.verified_since_ms > 0).then_some(e.verified_since_ms),
            advert: Arc::clone(&e.advert),
        }
    }
}

pub(super) fn state_event(peer: PeerId, state: PeerState) -> Event {
    match state {
        PeerState::Alive => Event::Revived { peer },
        PeerState::Suspect => Event::Suspected { peer },
        PeerState::Dead => Event::Dead { peer },
    }
}

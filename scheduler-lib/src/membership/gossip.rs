//! The gossip exchange: scuttlebutt-style push-pull anti-entropy over
//! signed adverts, in one or two `Gossip` calls.
//!
//! 1. The initiator A sends its own advert and its 1024 range sums
//!    ([`Membership::make_request`]). The responder B admits A's advert and
//!    compares sums; for the ranges that differ (from a rotating start, up
//!    to `max_digest_entries` entries) it answers with its complete listing
//!    — (peer id, seq) of every advert it relays there — except where A's
//!    sum is 0 (A holds nothing there): those adverts it sends at once.
//!    Equal sums: an empty answer, and the exchange is over.
//! 2. From B's listing A knows, range by range, what B lacks and what it
//!    lacks itself. If anything differs, [`Membership::on_response`]
//!    returns a follow-up call: the adverts B lacks (push) and A's wants —
//!    (peer id, the seq A holds or 0) for each advert B listed newer; B
//!    answers with those adverts (pull).
//!
//! Every advert is verified by its receiver before it counts, and a bad one
//! is charged to whoever handed it over (the requester, or the responder
//! the initiator called). Messages are bounded: `max_digest_entries` digest
//! entries and `max_adverts_per_message` adverts, a receiver reads no more.
//! Whatever did not fit is reconciled by a later exchange, since its range
//! sums still differ. With `fanout` calls a round from every node, an advert
//! spreads like push-pull rumour mongering: O(log N) rounds to reach all N.

use std::net::SocketAddr;

use peergrid_proto::{PeerId, pb, sha256};

use super::advert::VerifyAdvert;
use super::detector::{self, Freshness};
use super::event::{Event, Inbound, Outbound, Reject, Relayer, Target};
use super::state::{Membership, state_event};
use super::table::{RANGES, range_of};

/// A digest as received: (peer id, seq), sorted by peer id.
struct Listing(Vec<([u8; 32], u64)>);

impl Listing {
    fn parse(entries: &[pb::DigestEntry], cap: usize) -> Self {
        let mut list: Vec<([u8; 32], u64)> = entries
            .iter()
            .take(cap)
            .filter_map(|e| Some((e.peer_id.as_slice().try_into().ok()?, e.seq)))
            .collect();
        list.sort_unstable();
        list.dedup_by(|a, b| a.0 == b.0);
        Self(list)
    }

    /// The entries whose peer id falls in `range`.
    fn in_range(&self, range: usize) -> &[([u8; 32], u64)] {
        let first = |r: usize| {
            self.0
                .partition_point(|(id, _)| range_of(&PeerId::from_bytes(*id)) < r)
        };
        &self.0[first(range)..first(range + 1)]
    }
}

/// The valid, distinct ranges of a digest, in the sender's order.
fn parse_ranges(ranges: &[u32]) -> Vec<usize> {
    let mut seen = vec![false; RANGES];
    ranges
        .iter()
        .take(RANGES)
        .filter_map(|&r| usize::try_from(r).ok())
        .filter(|&r| r < RANGES && !std::mem::replace(&mut seen[r], true))
        .collect()
}

fn digest_entry(peer: &PeerId, seq: u64) -> pb::DigestEntry {
    pb::DigestEntry {
        peer_id: peer.as_bytes().to_vec(),
        seq,
    }
}

/// The rate-limit key part of a caller's address: its IP.
fn source_ip(from_addr: &str) -> String {
    match from_addr.parse::<SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => from_addr
            .rsplit_once(':')
            .map_or(from_addr, |(host, _)| host)
            .to_string(),
    }
}

impl<V: VerifyAdvert> Membership<V> {
    /// The first call of an exchange with any target: this node's advert
    /// and its range sums (about 8 KiB).
    pub fn make_request(&self) -> pb::GossipRequest {
        pb::GossipRequest {
            from_advert: Some(self.me.envelope.clone()),
            digest: Some(pb::GossipDigest {
                entries: Vec::new(),
                ranges: Vec::new(),
                range_sums: self.table.sums().to_vec(),
            }),
            adverts: Vec::new(),
        }
    }

    /// Serves an inbound `Gossip` call from the socket address `from_addr`.
    /// In order: the sender's advert must be present; its claimed peer must
    /// not be graylisted; the (peer, source IP) token bucket must have a
    /// token; the advert must verify and be fresh. Then pushed adverts are
    /// received (charged to the sender if bad) and the digest answered.
    pub fn on_request(
        &mut self,
        from_addr: &str,
        request: pb::GossipRequest,
        now_ms: u64,
    ) -> Inbound {
        let mut events = Vec::new();
        let reply = self.serve(from_addr, request, now_ms, &mut events);
        if reply.is_err() {
            self.stats.requests_rejected += 1;
        }
        Inbound { reply, events }
    }

    fn serve(
        &mut self,
        from_addr: &str,
        request: pb::GossipRequest,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<pb::GossipResponse, Reject> {
        let from = request.from_advert.ok_or(Reject::MissingAdvert)?;
        let claimed = PeerId::from_bytes(sha256(&from.public_key));
        if self.penalties.graylisted(&claimed, now_ms) {
            return Err(Reject::Graylisted);
        }
        if !self.limiter.allow(&(claimed, source_ip(from_addr)), now_ms) {
            return Err(Reject::RateLimited);
        }
        let sender = self
            .receive(
                &from,
                &Relayer::Address(from_addr.to_string()),
                now_ms,
                events,
            )
            .map_err(Reject::BadAdvert)?;
        let ts = sender.advert.timestamp_unix_ms;
        if detector::freshness(&self.config, ts, now_ms) != Freshness::Fresh {
            return Err(Reject::Stale);
        }
        let relayer = Relayer::Peer(sender.peer);
        for envelope in request
            .adverts
            .iter()
            .take(self.config.max_adverts_per_message)
        {
            // Bad pushed adverts are charged and reported inside; go on.
            let _ = self.receive(envelope, &relayer, now_ms, events);
        }
        let digest = request.digest.unwrap_or_default();
        if digest.range_sums.len() == RANGES {
            return Ok(self.listing(&digest.range_sums));
        }
        Ok(pb::GossipResponse {
            digest: None,
            adverts: self.wanted(&digest.entries),
        })
    }

    /// The answer to a first call: for the ranges whose sums differ from
    /// `theirs` (from a rotating start), this node's adverts where the caller
    /// holds nothing (sum 0), and its complete listing of the others, within
    /// `max_adverts_per_message` and `max_digest_entries`.
    fn listing(&mut self, theirs: &[u64]) -> pb::GossipResponse {
        let mine = self.table.sums();
        let (cap, advert_cap) = (
            self.config.max_digest_entries,
            self.config.max_adverts_per_message,
        );
        let mut digest = pb::GossipDigest::default();
        let mut adverts = Vec::new();
        let start = self.listing_cursor;
        self.listing_cursor = (start + 1) % RANGES;
        for r in (0..RANGES).map(|i| (start + i) % RANGES) {
            if mine[r] == theirs[r] {
                continue;
            }
            if theirs[r] == 0 {
                let before = adverts.len();
                adverts.extend(self.table.range(r).map(|e| e.advert.envelope.clone()));
                if adverts.len() <= advert_cap {
                    continue; // the caller lacks them all: no listing needed
                }
                adverts.truncate(before);
            }
            let before = digest.entries.len();
            digest.entries.extend(
                self.table
                    .range(r)
                    .map(|e| digest_entry(&e.advert.peer, e.seq())),
            );
            if digest.entries.len() > cap {
                digest.entries.truncate(before);
                if digest.ranges.is_empty() {
                    continue; // a range larger than a whole message: skip it
                }
                self.listing_cursor = r;
                break;
            }
            digest.ranges.push(r as u32);
        }
        pb::GossipResponse {
            digest: Some(digest),
            adverts,
        }
    }

    /// The adverts a follow-up call wants: each (peer, seq) held newer.
    fn wanted(&self, wants: &[pb::DigestEntry]) -> Vec<pb::SignedEnvelope> {
        wants
            .iter()
            .take(self.config.max_digest_entries)
            .filter_map(|w| {
                let peer = PeerId::from_slice(&w.peer_id)?;
                let e = self.table.get(&peer)?;
                (e.relayed() && e.seq() > w.seq).then(|| e.advert.envelope.clone())
            })
            .take(self.config.max_adverts_per_message)
            .collect()
    }

    /// Handles the response of `target` to a call this node made. Returns
    /// the follow-up call to make to the same target, if any.
    pub fn on_response(
        &mut self,
        target: &Target,
        response: pb::GossipResponse,
        now_ms: u64,
    ) -> Outbound {
        let mut events = Vec::new();
        let relayer = target
            .peer
            .map_or_else(|| Relayer::Address(target.addr.clone()), Relayer::Peer);
        for envelope in response
            .adverts
            .iter()
            .take(self.config.max_adverts_per_message)
        {
            let _ = self.receive(envelope, &relayer, now_ms, &mut events);
        }
        self.contact_succeeded(target, now_ms, &mut events);
        let follow_up = response
            .digest
            .filter(|d| !d.ranges.is_empty())
            .and_then(|d| self.follow_up(&d));
        Outbound { follow_up, events }
    }

    /// The second call: the adverts the responder lacks in the ranges it
    /// listed (push), and the ones it listed newer (wants); `None` if the
    /// listings agree. Peers the table refused lately are not wanted again.
    ///
    /// Both sides of a range are in peer-id order (the table's keys are the
    /// ids' first 64 bits, unique in the table), so each side is matched
    /// against the other by one merge walk.
    fn follow_up(&self, theirs: &pb::GossipDigest) -> Option<pb::GossipRequest> {
        let listing = Listing::parse(&theirs.entries, self.config.max_digest_entries);
        let cap = self.config.max_adverts_per_message;
        let mut wants = Vec::new();
        let mut pushes = Vec::new();
        for r in parse_ranges(&theirs.ranges) {
            let listed = listing.in_range(r);
            let held = self.table.range_entries(r);
            // Push what they list older or not at all.
            let mut j = 0;
            for e in held.iter().filter(|e| e.relayed()) {
                let id = e.advert.peer.as_bytes();
                while listed.get(j).is_some_and(|(l, _)| l < id) {
                    j += 1;
                }
                let theirs = listed.get(j).filter(|(l, _)| l == id).map(|(_, s)| *s);
                if pushes.len() < cap && theirs.is_none_or(|s| s < e.seq()) {
                    pushes.push(e.advert.envelope.clone());
                }
            }
            // Want what they list newer than what is held (relayed or not).
            let mut i = 0;
            for (id, seq) in listed {
                while held.get(i).is_some_and(|e| e.advert.peer.as_bytes() < id) {
                    i += 1;
                }
                let peer = PeerId::from_bytes(*id);
                let mine = held
                    .get(i)
                    .filter(|e| e.advert.peer.as_bytes() == id)
                    .map_or(0, |e| e.seq());
                if mine < *seq && wants.len() < cap && !self.recently_refused(&peer, *seq) {
                    wants.push(digest_entry(&peer, mine));
                }
            }
        }
        (!wants.is_empty() || !pushes.is_empty()).then(|| pb::GossipRequest {
            from_advert: Some(self.me.envelope.clone()),
            digest: Some(pb::GossipDigest {
                entries: wants,
                ranges: Vec::new(),
                range_sums: Vec::new(),
            }),
            adverts: pushes,
        })
    }

    fn contact_succeeded(&mut self, target: &Target, now_ms: u64, events: &mut Vec<Event>) {
        for seed in self.seeds.iter_mut().filter(|s| s.addr == target.addr) {
            seed.failures = 0;
            seed.answered = true;
        }
        let Some(peer) = target.peer else {
            return;
        };
        let config = self.config.clone();
        if let Some(entry) = self.table.get_mut(&peer)
            && entry.failures > 0
        {
            entry.failures = 0;
            let state = detector::state(&config, entry.timestamp(), 0, now_ms);
            if state != entry.reported {
                entry.reported = state;
                events.push(state_event(peer, state));
            }
        }
    }

    /// Reports that a call to `target` failed (unreachable, timed out, or
    /// answered with an error): the peer is Suspect here and not called
    /// again until it succeeds or publishes a newer advert; an anchor that
    /// fails `max_failures` times in a row is dropped.
    pub fn on_failure(&mut self, target: &Target, now_ms: u64) -> Vec<Event> {
        let max = self.config.max_failures;
        for seed in self.seeds.iter_mut().filter(|s| s.addr == target.addr) {
            seed.failures = seed.failures.saturating_add(1);
        }
        self.seeds.retain(|s| !(s.anchor && s.failures >= max));
        let mut events = Vec::new();
        let Some(peer) = target.peer else {
            return events;
        };
        let config = self.config.clone();
        if let Some(entry) = self.table.get_mut(&peer) {
            entry.failures = entry.failures.saturating_add(1);
            let state = detector::state(&config, entry.timestamp(), entry.failures, now_ms);
            if state != entry.reported {
                entry.reported = state;
                events.push(state_event(peer, state));
            }
        }
        events
    }

    /// The answer to a `Members` call: this node's advert and the adverts
    /// of Alive peers, verified ones first, at most `max_digest_entries`.
    pub fn members_response(&self, now_ms: u64) -> pb::MembersResponse {
        let mut alive: Vec<(bool, &pb::SignedEnvelope)> = self
            .table
            .entries()
            .filter(|e| e.is_self() || self.state_of(e, now_ms) == super::PeerState::Alive)
            .map(|e| (e.verified_since_ms == 0, &e.advert.envelope))
            .collect();
        alive.sort_by_key(|(unverified, _)| *unverified);
        pb::MembersResponse {
            adverts: alive
                .into_iter()
                .take(self.config.max_digest_entries)
                .map(|(_, env)| env.clone())
                .collect(),
        }
    }

    /// Admits the adverts of a `Members` answer from `target`.
    pub fn on_members_response(
        &mut self,
        target: &Target,
        response: pb::MembersResponse,
        now_ms: u64,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let relayer = target
            .peer
            .map_or_else(|| Relayer::Address(target.addr.clone()), Relayer::Peer);
        for envelope in response.adverts.iter().take(self.config.max_digest_entries) {
            let _ = self.receive(envelope, &relayer, now_ms, &mut events);
        }
        self.contact_succeeded(target, now_ms, &mut events);
        events
    }
}

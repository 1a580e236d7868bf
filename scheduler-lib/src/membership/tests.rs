//! Tests of the [`Membership`] state machine, one rule each, driven through
//! its public API with no sockets.

use peergrid_proto::envelope;
use peergrid_proto::{Domain, Identity, PeerId, pb, puzzle};
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const T0: u64 = 1_800_000_000_000;

fn config() -> MembershipConfig {
    MembershipConfig {
        puzzle_bits: 0,
        ..MembershipConfig::default()
    }
}

fn id(n: u8) -> Identity {
    Identity::from_secret([n; 32])
}

fn signed(id: &Identity, addr: &str, at: u64) -> pb::SignedEnvelope {
    sign_advert(id, &Advert::new(vec![addr.into()], None, at))
}

fn node(n: u8, now: u64) -> Membership {
    let me = signed(&id(n), &addr(n), now);
    Membership::new(config(), me, [n; 32], now).unwrap()
}

fn addr(n: u8) -> String {
    format!("{}.0.0.{n}:7400", 20 + u32::from(n))
}

/// A request from `from` carrying pushed adverts.
fn push(from: &Membership, adverts: Vec<pb::SignedEnvelope>) -> pb::GossipRequest {
    pb::GossipRequest {
        adverts,
        ..from.make_request()
    }
}

/// One full exchange from `a` to `b` (one or two calls).
fn exchange(a: &mut Membership, a_addr: &str, b: &mut Membership, b_addr: &str, now: u64) {
    let target = Target {
        peer: Some(b.peer_id()),
        addr: b_addr.into(),
    };
    let mut request = a.make_request();
    loop {
        let response = b.on_request(a_addr, request, now).reply.unwrap();
        match a.on_response(&target, response, now).follow_up {
            Some(next) => request = next,
            None => return,
        }
    }
}

#[test]
fn twenty_nodes_converge_and_then_exchange_one_call() {
    let mut nodes: Vec<Membership> = (1..=20).map(|n| node(n, T0)).collect();
    for (n, node) in nodes.iter_mut().enumerate().skip(1) {
        node.add_bootstrap(addr(n as u8)); // node n+1's bootstrap is node n
    }
    let mut rng = StdRng::seed_from_u64(1);
    let by_addr = |a: &str| (1..=20u8).position(|n| addr(n) == a);
    for round in 1..=10 {
        let now = T0 + round * 1000;
        for i in 0..nodes.len() {
            for t in nodes[i].gossip_targets(&mut rng, now) {
                let j = by_addr(&t.addr).unwrap();
                let (a, b) = if i < j {
                    let (l, r) = nodes.split_at_mut(j);
                    (&mut l[i], &mut r[0])
                } else {
                    let (l, r) = nodes.split_at_mut(i);
                    (&mut r[0], &mut l[j])
                };
                exchange(a, &addr(i as u8 + 1), b, &t.addr, now);
            }
        }
    }
    assert!(
        nodes.iter().all(|n| n.len() == 19),
        "{:?}",
        nodes.iter().map(|n| n.len()).collect::<Vec<_>>()
    );
    // Converged: the range sums agree, so a call is answered with nothing.
    let request = nodes[0].make_request();
    let response = nodes[1]
        .on_request(&addr(1), request, T0 + 11_000)
        .reply
        .unwrap();
    assert!(response.digest.unwrap().entries.is_empty());
    assert!(response.adverts.is_empty());
}

#[test]
fn stale_seq_is_ignored() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    let c = id(3);
    let newer = signed(&c, &addr(3), T0 + 500);
    let older = signed(&c, &addr(3), T0);
    a.on_request(&addr(2), push(&b, vec![newer]), T0 + 500);
    let inbound = a.on_request(&addr(2), push(&b, vec![older]), T0 + 600);
    assert!(inbound.reply.is_ok());
    assert_eq!(a.member(&c.peer_id(), T0 + 600).unwrap().seq, T0 + 500);
    assert_eq!(a.stats().older, 1);
}

#[test]
fn forged_advert_is_dropped_and_its_relayer_graylisted() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    let c = id(3);
    let mut forged = signed(&c, &addr(3), T0);
    forged.payload[5] ^= 1;
    for i in 0..3 {
        let inbound = a.on_request(&addr(2), push(&b, vec![forged.clone()]), T0 + i);
        assert!(inbound.reply.is_ok(), "the call itself is fine");
        assert!(inbound.events.iter().any(|e| matches!(
            e,
            Event::BadAdvert { relayer: Relayer::Peer(p), error: AdvertError::Envelope(_) } if *p == b.peer_id()
        )));
        if i == 2 {
            assert!(
                inbound
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Graylisted { peer, .. } if *peer == b.peer_id()))
            );
        }
    }
    assert!(a.member(&c.peer_id(), T0).is_none());
    let refused = a.on_request(&addr(2), b.make_request(), T0 + 10);
    assert_eq!(refused.reply.unwrap_err(), Reject::Graylisted);
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..20 {
        assert!(
            a.gossip_targets(&mut rng, T0 + 10)
                .iter()
                .all(|t| t.peer != Some(b.peer_id()))
        );
    }
}

#[test]
fn forged_advert_in_a_response_is_charged_to_the_responder() {
    let mut a = node(1, T0);
    let b = id(2);
    let mut forged = signed(&id(3), &addr(3), T0);
    forged.signature[0] ^= 1;
    let target = Target {
        peer: Some(b.peer_id()),
        addr: addr(2),
    };
    let response = pb::GossipResponse {
        digest: None,
        adverts: vec![forged],
    };
    let out = a.on_response(&target, response, T0);
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::BadAdvert { relayer: Relayer::Peer(p), .. } if *p == b.peer_id()
    )));
}

#[test]
fn advert_naming_another_key_is_refused() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    let (signer, named) = (id(3), id(4));
    let mut advert = pb::Advert::decode(signed(&named, &addr(4), T0).payload.as_slice()).unwrap();
    advert.seq += 1;
    let envelope = envelope::sign(&signer, Domain::Advert, advert.encode_to_vec());
    let inbound = a.on_request(&addr(2), push(&b, vec![envelope]), T0);
    assert!(inbound.events.iter().any(|e| matches!(
        e,
        Event::BadAdvert {
            error: AdvertError::KeyMismatch,
            ..
        }
    )));
    assert!(a.is_empty() || a.member(&named.peer_id(), T0).is_none());
    assert!(a.member(&signer.peer_id(), T0).is_none());
}

#[test]
fn keys_that_do_not_solve_the_puzzle_are_refused() {
    let strict = MembershipConfig {
        puzzle_bits: 8,
        ..config()
    };
    let weak = (0u8..=255)
        .map(|n| Identity::from_secret([n; 32]))
        .find(|i| puzzle::difficulty(&i.public_key()) < 8)
        .unwrap();
    let err = Membership::new(strict.clone(), signed(&weak, &addr(9), T0), [0; 32], T0);
    assert!(matches!(
        err,
        Err(MembershipError::BadAdvert(AdvertError::WeakPuzzle { .. }))
    ));
    let good = puzzle::grind_with(8, &mut StdRng::seed_from_u64(4), |_| {});
    let mut m = Membership::new(strict, signed(&good, &addr(1), T0), [0; 32], T0).unwrap();
    let inbound = m.on_request(&addr(9), push(&m_request(&weak), vec![]), T0);
    assert!(matches!(
        inbound.reply,
        Err(Reject::BadAdvert(AdvertError::WeakPuzzle {
            required: 8,
            ..
        }))
    ));
    assert!(m.is_empty());
}

/// A request as sent by `id` (whatever its puzzle).
fn m_request(id: &Identity) -> Membership {
    Membership::new(config(), signed(id, &addr(9), T0), [0; 32], T0).unwrap()
}

#[test]
fn one_network_group_gets_only_its_cap() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    let flood: Vec<pb::SignedEnvelope> = (0..100u8)
        .map(|n| {
            signed(
                &Identity::from_secret([n; 32]),
                &format!("203.0.{n}.7:7400"),
                T0,
            )
        })
        .collect();
    a.on_request(&addr(2), push(&b, flood), T0);
    let from_group = a
        .members(T0)
        .iter()
        .filter(|m| m.addrs[0].starts_with("203.0."))
        .count();
    assert_eq!(from_group, config().max_per_group);
    assert!(a.stats().refused_group_full > 0);
}

#[test]
fn suspect_then_dead_then_removed_on_time() {
    let c = config();
    let (mut a, b) = (node(1, T0), node(2, T0));
    a.on_request(&addr(2), b.make_request(), T0);
    let peer = b.peer_id();
    let has = |events: &[Event], f: &dyn Fn(&Event) -> bool| events.iter().any(f);
    assert!(a.tick(T0).contains(&Event::Probe {
        peer,
        addr: addr(2)
    }));
    a.probe_result(&peer, true, T0);
    let before = a.tick(T0 + c.suspect_after_ms - 1);
    assert!(!has(&before, &|e| matches!(e, Event::Suspected { .. })));
    let events = a.tick(T0 + c.suspect_after_ms);
    assert!(has(&events, &|e| *e == Event::Suspected { peer }));
    assert_eq!(
        a.member(&peer, T0 + c.suspect_after_ms).unwrap().state,
        PeerState::Suspect
    );
    let events = a.tick(T0 + c.dead_after_ms);
    assert!(has(&events, &|e| *e == Event::Dead { peer }));
    let events = a.tick(T0 + c.dead_after_ms + c.forget_after_ms);
    assert!(has(&events, &|e| *e == Event::Removed { peer }));
    assert!(
        a.member(&peer, T0 + c.dead_after_ms + c.forget_after_ms)
            .is_none()
    );
}

#[test]
fn restarted_node_rejoins_with_a_higher_seq_and_replays_stay_dead() {
    let c = config();
    let (mut a, b) = (node(1, T0), node(2, T0));
    let old = b.my_advert().envelope.clone();
    a.on_request(&addr(2), b.make_request(), T0);
    let dead_at = T0 + c.dead_after_ms;
    a.tick(T0);
    a.tick(dead_at);
    assert_eq!(
        a.member(&b.peer_id(), dead_at).unwrap().state,
        PeerState::Dead
    );
    // A replay of its old advert does not bring it back.
    let relay = node(3, dead_at);
    a.on_request(&addr(3), push(&relay, vec![old.clone()]), dead_at);
    assert_eq!(
        a.member(&b.peer_id(), dead_at).unwrap().state,
        PeerState::Dead
    );
    // Restarted without state: seq = now, higher than anything before.
    let restarted = node(2, dead_at + 5);
    let inbound = a.on_request(&addr(2), restarted.make_request(), dead_at + 5);
    assert!(
        inbound
            .events
            .contains(&Event::Revived { peer: b.peer_id() })
    );
    assert_eq!(
        a.member(&b.peer_id(), dead_at + 5).unwrap().state,
        PeerState::Alive
    );
    // Once forgotten, the old advert is refused as stale.
    let later = dead_at + 5 + c.dead_after_ms + c.forget_after_ms;
    a.tick(later);
    assert!(a.member(&b.peer_id(), later).is_none());
    let relay = node(3, later);
    a.on_request(&addr(3), push(&relay, vec![old]), later);
    assert!(a.member(&b.peer_id(), later).is_none());
    assert!(a.stats().stale >= 1);
}

#[test]
fn inbound_gossip_is_rate_limited_per_peer_and_source() {
    let (mut a, b, c) = (node(1, T0), node(2, T0), node(3, T0));
    let burst = config().inbound.burst;
    for _ in 0..burst {
        assert!(
            a.on_request("20.0.0.2:5000", b.make_request(), T0)
                .reply
                .is_ok()
        );
    }
    let over = a.on_request("20.0.0.2:5001", b.make_request(), T0);
    assert_eq!(over.reply.unwrap_err(), Reject::RateLimited);
    // Another peer, or the same advert replayed from another IP, has its own bucket.
    assert!(
        a.on_request("20.0.0.3:5000", c.make_request(), T0)
            .reply
            .is_ok()
    );
    assert!(
        a.on_request("66.6.6.6:1", b.make_request(), T0)
            .reply
            .is_ok()
    );
    // Tokens come back with time (5 a second).
    assert!(
        a.on_request("20.0.0.2:5000", b.make_request(), T0 + 200)
            .reply
            .is_ok()
    );
    assert_eq!(a.stats().requests_rejected, 1);
}

#[test]
fn unknown_addresses_are_probed_before_they_count_as_verified() {
    let (mut a, b, c) = (node(1, T0), node(2, T0), node(3, T0));
    a.on_request(&addr(2), b.make_request(), T0);
    a.on_request(&addr(3), c.make_request(), T0);
    assert!(a.members(T0).iter().all(|m| m.verified_since_ms.is_none()));
    let events = a.tick(T0);
    let probes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Probe { peer, addr } => Some((*peer, addr.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(probes.len(), 2);
    assert!(probes.contains(&(b.peer_id(), addr(2))));
    let ok = a.probe_result(&b.peer_id(), true, T0 + 1);
    assert_eq!(ok, vec![Event::Verified { peer: b.peer_id() }]);
    let failed = a.probe_result(&c.peer_id(), false, T0 + 1);
    assert_eq!(failed, vec![Event::Suspected { peer: c.peer_id() }]);
    assert_eq!(
        a.member(&b.peer_id(), T0 + 1).unwrap().verified_since_ms,
        Some(T0 + 1)
    );
    // A probe that is never reported fails after probe_timeout_ms.
    let mut now = T0 + 2;
    for _ in 0..3 {
        now += config().probe_timeout_ms;
        a.tick(now);
    }
    // c failed max_failures times: no longer probed.
    let events = a.tick(now + 1);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Probe { peer, .. } if *peer == c.peer_id()))
    );
}

#[test]
fn failed_calls_make_a_peer_suspect_and_skipped() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    a.on_request(&addr(2), b.make_request(), T0);
    let target = Target {
        peer: Some(b.peer_id()),
        addr: addr(2),
    };
    let events = a.on_failure(&target, T0);
    assert_eq!(events, vec![Event::Suspected { peer: b.peer_id() }]);
    let mut rng = StdRng::seed_from_u64(3);
    assert!(a.gossip_targets(&mut rng, T0).is_empty());
    // Its next heartbeat clears the suspicion.
    let newer = signed(&id(2), &addr(2), T0 + 30_000);
    let relay = node(3, T0 + 30_000);
    let inbound = a.on_request(&addr(3), push(&relay, vec![newer]), T0 + 30_000);
    assert!(
        inbound
            .events
            .contains(&Event::Revived { peer: b.peer_id() })
    );
}

#[test]
fn anchors_round_trip_through_a_restart() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    a.on_request(&addr(2), b.make_request(), T0);
    assert!(a.anchors(T0).is_empty(), "only verified peers are anchors");
    a.probe_result(&b.peer_id(), true, T0);
    let anchors = a.anchors(T0);
    assert_eq!(
        anchors,
        vec![Anchor {
            peer: b.peer_id(),
            addr: addr(2)
        }]
    );
    let saved: Vec<String> = anchors.iter().map(ToString::to_string).collect();

    let later = T0 + 60_000;
    let mut restarted = node(1, later);
    restarted.restore_anchors(saved.iter().map(|l| l.parse().unwrap()).collect());
    let mut rng = StdRng::seed_from_u64(5);
    let targets = restarted.gossip_targets(&mut rng, later);
    assert_eq!(
        targets[0],
        Target {
            peer: Some(b.peer_id()),
            addr: addr(2)
        }
    );
    // The anchor's fresh advert is admitted as verified at once.
    let b_now = node(2, later);
    let events = restarted
        .on_request(&addr(2), b_now.make_request(), later)
        .events;
    assert!(events.contains(&Event::Verified { peer: b.peer_id() }));
    assert!(
        restarted
            .member(&b.peer_id(), later)
            .unwrap()
            .verified_since_ms
            .is_some()
    );
}

#[test]
fn own_advert_updates_must_be_ours_and_newer() {
    let mut a = node(1, T0);
    assert_eq!(
        a.update_self(signed(&id(2), &addr(2), T0 + 1), T0 + 1),
        Err(MembershipError::NotMine)
    );
    assert!(matches!(
        a.update_self(signed(&id(1), &addr(1), T0), T0),
        Err(MembershipError::NotNewer { .. })
    ));
    assert!(
        a.tick(T0 + config().refresh_interval_ms)
            .contains(&Event::RefreshAdvert)
    );
    let prev = a.my_advert().advert.seq;
    let next = Advert::new(vec![addr(1)], Some(prev), T0 + 30_000);
    a.update_self(sign_advert(&id(1), &next), T0 + 30_000)
        .unwrap();
    assert_eq!(a.my_advert().advert.seq, T0 + 30_000);
}

#[test]
fn members_response_serves_a_bootstrap_only_client() {
    let (mut a, b) = (node(1, T0), node(2, T0));
    a.on_request(&addr(2), b.make_request(), T0);
    let response = a.members_response(T0);
    let peers: Vec<PeerId> = response
        .adverts
        .iter()
        .map(|e| verify_advert(e, 0).unwrap().peer)
        .collect();
    assert!(peers.contains(&a.peer_id()) && peers.contains(&b.peer_id()));
    let mut client = node(3, T0);
    let target = Target {
        peer: None,
        addr: addr(1),
    };
    client.on_members_response(&target, response, T0);
    assert_eq!(client.len(), 2);
}

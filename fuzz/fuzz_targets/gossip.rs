//! The membership state machine (`scheduler_lib::membership::Membership`)
//! driven by a fuzzer-chosen sequence of inbound gossip requests, responses
//! to its own calls, `Members` answers, ticks, probe results, failures and
//! clock steps (forward and, as a system clock can, backward).
//!
//! Adverts are either raw envelope bytes or built from fuzzer-chosen fields
//! and signed by one of sixteen fixed keys (puzzle difficulty 0), sometimes
//! with a flipped bit, so the fuzzer reaches table insertion, replacement,
//! bucketing, graylisting, listings and follow-ups, not only the signature
//! check. Requests and responses can also be raw `pb::GossipRequest` /
//! `pb::GossipResponse` / `pb::MembersResponse` bytes.
//!
//! Never panics; replies and follow-ups stay within the configured caps;
//! `anchors` returns at most `max_anchors`.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peergrid_fuzz::{identities, verbose};
use peergrid_proto::{PeerId, pb};
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;
use scheduler_lib::membership::table::RANGES;
use scheduler_lib::membership::{
    Advert, Anchor, Membership, MembershipConfig, RateLimit, Target, sign_advert,
};

const T0: u64 = 1_800_000_000_000;

/// An address as found in an advert or a socket: mostly parseable, some not.
#[derive(Debug, Arbitrary)]
enum Addr {
    V4(u8, u8, u8, u16),
    V6(u16, u16, u16, u16),
    Loopback(u16),
    Raw(String),
}

impl Addr {
    fn render(&self) -> String {
        match self {
            Addr::V4(a, b, c, port) => format!("{a}.{b}.{c}.1:{port}"),
            Addr::V6(a, b, c, port) => format!("[{a:x}:{b:x}::{c:x}]:{port}"),
            Addr::Loopback(port) => format!("127.0.0.1:{port}"),
            Addr::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Seq {
    /// The advert's timestamp (what `Advert::next_seq` gives).
    Timestamp,
    Value(u64),
}

#[derive(Debug, Arbitrary)]
struct Fields {
    signer: u8,
    addrs: Vec<Addr>,
    seq: Seq,
    /// Signing time relative to now, in 100 ms steps (±55 min).
    age: i16,
    free_slots: u32,
    total_slots: u32,
    cores: u32,
    max_job_memory_bytes: u64,
    wasm_features: Vec<String>,
    version: String,
    /// Flip `xor` into byte `at` of the signed payload after signing.
    corrupt: Option<(u16, u8)>,
}

#[derive(Debug, Arbitrary)]
enum Env {
    Signed(Fields),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Digest {
    None,
    /// A first call: this node's own range sums with some changed.
    OwnSums(Vec<(u16, u64)>),
    /// A first call: all zero but these.
    Sums(Vec<(u16, u64)>),
    /// Wants or a listing: (signer index, seq) entries and ranges.
    Listing {
        entries: Vec<(u8, u64)>,
        raw_entries: Vec<(Vec<u8>, u64)>,
        ranges: Vec<u32>,
    },
}

#[derive(Debug, Arbitrary)]
enum Who {
    /// A target returned by `gossip_targets`, by index.
    Picked(u8),
    Peer(u8, Addr),
    Address(Addr),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Request {
        from_addr: Addr,
        from: Option<Env>,
        digest: Digest,
        adverts: Vec<Env>,
    },
    RawRequest(Addr, Vec<u8>),
    Response {
        who: Who,
        digest: Digest,
        adverts: Vec<Env>,
    },
    RawResponse(Who, Vec<u8>),
    Members(Who, Vec<Env>),
    RawMembers(Who, Vec<u8>),
    GossipTargets(u64),
    Failure(Who),
    Tick,
    Probe {
        peer: u8,
        ok: bool,
    },
    UpdateSelf(Fields),
    Bootstrap(Addr),
    Anchors(Vec<(u8, Addr)>),
    ParseAnchor(String),
    /// Step the clock by this many 100 ms (negative: backwards).
    Clock(i16),
}

/// Small, fuzzer-chosen capacities so that caps, full buckets and eviction
/// are reached with a handful of peers; timings are the defaults.
#[derive(Debug)]
struct Caps(MembershipConfig);

impl<'a> Arbitrary<'a> for Caps {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Caps(MembershipConfig {
            puzzle_bits: 0,
            fanout: u.int_in_range(1..=4)?,
            max_digest_entries: u.int_in_range(1..=64)?,
            max_adverts_per_message: u.int_in_range(1..=16)?,
            buckets: u.int_in_range(1..=16)?,
            bucket_size: u.int_in_range(1..=8)?,
            buckets_per_group: u.int_in_range(1..=4)?,
            max_per_group: u.int_in_range(1..=8)?,
            probes_per_tick: u.int_in_range(1..=3)?,
            max_failures: u.int_in_range(1..=4)?,
            max_anchors: u.int_in_range(1..=4)?,
            inbound: RateLimit {
                burst: u.int_in_range(1..=10)?,
                per_sec: 5.0,
            },
            limiter_capacity: u.int_in_range(1..=8)?,
            max_bad_adverts: u.int_in_range(1..=4)?,
            ..MembershipConfig::default()
        }))
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    caps: Option<Caps>,
    ops: Vec<Op>,
}

fn peer(index: u8) -> PeerId {
    identities()[usize::from(index) % identities().len()].peer_id()
}

fn envelope(env: &Env, now: u64) -> Option<pb::SignedEnvelope> {
    match env {
        Env::Raw(bytes) => pb::SignedEnvelope::decode(bytes.as_slice()).ok(),
        Env::Signed(f) => Some(signed(f, usize::from(f.signer) % identities().len(), now)),
    }
}

fn signed(f: &Fields, signer: usize, now: u64) -> pb::SignedEnvelope {
    let timestamp = now.saturating_add_signed(i64::from(f.age) * 100);
    let advert = Advert {
        addrs: f.addrs.iter().take(10).map(Addr::render).collect(),
        free_slots: f.free_slots,
        total_slots: f.total_slots,
        cores: f.cores,
        max_job_memory_bytes: f.max_job_memory_bytes,
        max_limits: None,
        wasm_features: f.wasm_features.clone(),
        version: f.version.clone(),
        seq: match f.seq {
            Seq::Timestamp => timestamp,
            Seq::Value(v) => v,
        },
        timestamp_unix_ms: timestamp,
    };
    let mut envelope = sign_advert(&identities()[signer], &advert);
    if let Some((at, xor)) = f.corrupt
        && !envelope.payload.is_empty()
    {
        let at = usize::from(at) % envelope.payload.len();
        envelope.payload[at] ^= xor;
    }
    envelope
}

fn envelopes(envs: &[Env], now: u64) -> Vec<pb::SignedEnvelope> {
    envs.iter()
        .take(24)
        .filter_map(|e| envelope(e, now))
        .collect()
}

fn digest(d: &Digest, own: &[u64]) -> Option<pb::GossipDigest> {
    let sums = |changes: &[(u16, u64)], mut sums: Vec<u64>| {
        for &(at, value) in changes {
            let at = usize::from(at) % RANGES;
            sums[at] = value;
        }
        sums
    };
    match d {
        Digest::None => None,
        Digest::OwnSums(changes) => Some(pb::GossipDigest {
            range_sums: sums(changes, own.to_vec()),
            ..Default::default()
        }),
        Digest::Sums(changes) => Some(pb::GossipDigest {
            range_sums: sums(changes, vec![0; RANGES]),
            ..Default::default()
        }),
        Digest::Listing {
            entries,
            raw_entries,
            ranges,
        } => Some(pb::GossipDigest {
            entries: entries
                .iter()
                .map(|&(p, seq)| (peer(p).as_bytes().to_vec(), seq))
                .chain(raw_entries.iter().cloned())
                .map(|(peer_id, seq)| pb::DigestEntry { peer_id, seq })
                .collect(),
            ranges: ranges.clone(),
            range_sums: Vec::new(),
        }),
    }
}

fn target(who: &Who, picked: &[Target]) -> Target {
    match who {
        Who::Picked(i) if !picked.is_empty() => picked[usize::from(*i) % picked.len()].clone(),
        Who::Picked(_) => Target {
            peer: None,
            addr: "192.0.2.1:7400".into(),
        },
        Who::Peer(p, addr) => Target {
            peer: Some(peer(*p)),
            addr: addr.render(),
        },
        Who::Address(addr) => Target {
            peer: None,
            addr: addr.render(),
        },
    }
}

fn own_sums(m: &Membership) -> Vec<u64> {
    m.make_request()
        .digest
        .map(|d| d.range_sums)
        .unwrap_or_default()
}

fuzz_target!(|input: Input| {
    let config = input.caps.map_or_else(
        || MembershipConfig {
            puzzle_bits: 0,
            ..MembershipConfig::default()
        },
        |c| c.0,
    );
    let me = &identities()[0];
    let mine = sign_advert(me, &Advert::new(vec!["10.0.0.1:7400".into()], None, T0));
    let mut m = Membership::new(config.clone(), mine, [7; 32], T0).expect("own advert verifies");
    let mut now = T0;
    let mut picked: Vec<Target> = Vec::new();
    let (advert_cap, entry_cap) = (config.max_adverts_per_message, config.max_digest_entries);

    for op in input.ops.iter().take(32) {
        match op {
            Op::Request {
                from_addr,
                from,
                digest: d,
                adverts,
            } => {
                let request = pb::GossipRequest {
                    from_advert: from.as_ref().and_then(|e| envelope(e, now)),
                    digest: digest(d, &own_sums(&m)),
                    adverts: envelopes(adverts, now),
                };
                if let Ok(reply) = m.on_request(&from_addr.render(), request, now).reply {
                    assert!(reply.adverts.len() <= advert_cap);
                    assert!(reply.digest.is_none_or(|d| d.entries.len() <= entry_cap));
                }
            }
            Op::RawRequest(from_addr, bytes) => {
                if let Ok(request) = pb::GossipRequest::decode(bytes.as_slice()) {
                    let _ = m.on_request(&from_addr.render(), request, now);
                }
            }
            Op::Response {
                who,
                digest: d,
                adverts,
            } => {
                let response = pb::GossipResponse {
                    digest: digest(d, &own_sums(&m)),
                    adverts: envelopes(adverts, now),
                };
                let out = m.on_response(&target(who, &picked), response, now);
                if let Some(follow_up) = out.follow_up {
                    assert!(follow_up.adverts.len() <= advert_cap);
                }
            }
            Op::RawResponse(who, bytes) => {
                if let Ok(response) = pb::GossipResponse::decode(bytes.as_slice()) {
                    let _ = m.on_response(&target(who, &picked), response, now);
                }
            }
            Op::Members(who, adverts) => {
                let response = pb::MembersResponse {
                    adverts: envelopes(adverts, now),
                };
                m.on_members_response(&target(who, &picked), response, now);
            }
            Op::RawMembers(who, bytes) => {
                if let Ok(response) = pb::MembersResponse::decode(bytes.as_slice()) {
                    m.on_members_response(&target(who, &picked), response, now);
                }
            }
            Op::GossipTargets(seed) => {
                picked = m.gossip_targets(&mut StdRng::seed_from_u64(*seed), now);
            }
            Op::Failure(who) => {
                m.on_failure(&target(who, &picked), now);
            }
            Op::Tick => {
                m.tick(now);
            }
            Op::Probe { peer: p, ok } => {
                m.probe_result(&peer(*p), *ok, now);
            }
            Op::UpdateSelf(fields) => {
                let _ = m.update_self(signed(fields, 0, now), now);
            }
            Op::Bootstrap(addr) => m.add_bootstrap(addr.render()),
            Op::Anchors(anchors) => m.restore_anchors(
                anchors
                    .iter()
                    .map(|(p, addr)| Anchor {
                        peer: peer(*p),
                        addr: addr.render(),
                    })
                    .collect(),
            ),
            Op::ParseAnchor(s) => {
                if let Ok(anchor) = s.parse::<Anchor>() {
                    assert_eq!(anchor.to_string().parse::<Anchor>().ok(), Some(anchor));
                }
            }
            Op::Clock(step) => now = now.saturating_add_signed(i64::from(*step) * 100),
        }
        let anchors = m.anchors(now);
        assert!(anchors.len() <= config.max_anchors);
        for anchor in anchors {
            // Anchors are persisted one per line and read back at start.
            assert_eq!(anchor.to_string().parse::<Anchor>().ok(), Some(anchor));
        }
        let _ = m.members(now);
        assert!(m.members_response(now).adverts.len() <= entry_cap);
    }
    if verbose() {
        eprintln!(
            "{} ops, {} peers, {:?}",
            input.ops.len(),
            m.len(),
            m.stats()
        );
    }
});

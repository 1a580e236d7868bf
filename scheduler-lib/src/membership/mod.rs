//! Membership: how peers find each other without a central list. Pure: no
//! sockets, no clock (`now_ms` is Unix milliseconds, passed in), no hidden
//! randomness (an `Rng` is passed in where one is needed).
//!
//! Every node publishes a signed [`Advert`] (addresses, free slots, cores,
//! limits, a sequence number and a timestamp) and a [`Membership`] holds the
//! adverts of the peers it knows:
//!
//! - **Signed adverts** ([`advert`]): checked before decoding; a key must
//!   solve the S/Kademlia puzzle at `puzzle_bits`; a newer sequence number
//!   replaces an older one, never the reverse; a bad advert is charged to
//!   the peer that relayed it, and repeat offenders are graylisted.
//! - **Gossip** ([`gossip`]): scuttlebutt-style push-pull anti-entropy.
//!   Each round a node calls `fanout` random peers; the two compare 1024
//!   range sums, list the ranges that differ (peer id, seq), and send each
//!   other the adverts the other lacks. Messages are capped; a converged
//!   pair exchanges one 8 KiB call. An advert reaches all N nodes in
//!   O(log N) rounds (the `membership_sim` example: every node knows every
//!   other after 4 rounds at 1,000 nodes, 14 at 10,000).
//! - **Failure detection** ([`detector`]): gossip-style heartbeats (van
//!   Renesse et al. 1998): nodes re-sign their advert every
//!   `refresh_interval_ms`; a peer whose newest advert is older than
//!   `suspect_after_ms` is Suspect, older than `dead_after_ms` Dead.
//! - **Eclipse resistance** ([`table`], [`group`]): the table is bucketed by
//!   network group (IPv4 /16, IPv6 /32) with a secret key, caps each group,
//!   keeps live long-lived peers over newcomers, picks gossip targets one per
//!   group, tests unknown addresses before admitting them as verified
//!   ([`Event::Probe`]), and keeps [`Anchor`]s across restarts. Inbound gossip
//!   is rate-limited per peer ([`limiter`]).
//!
//! # Driving it from a node
//!
//! ```
//! use peergrid_proto::{Identity, puzzle};
//! use rand::SeedableRng;
//! use scheduler_lib::membership::{
//!     Advert, Event, Membership, MembershipConfig, sign_advert,
//! };
//!
//! let config = MembershipConfig { puzzle_bits: 4, ..MembershipConfig::default() };
//! let now = 1_800_000_000_000; // Unix ms
//! let a = puzzle::grind(4, |_| {});
//! let b = puzzle::grind(4, |_| {});
//! let advert = |addr: &str| Advert::new(vec![addr.into()], None, now);
//! let mut node_a = Membership::new(config.clone(), sign_advert(&a, &advert("127.0.0.1:7001")), [1; 32], now).unwrap();
//! let mut node_b = Membership::new(config, sign_advert(&b, &advert("127.0.0.1:7002")), [2; 32], now).unwrap();
//! node_a.add_bootstrap("127.0.0.1:7002".into());
//!
//! // Every gossip interval (1 s), on node A:
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! for target in node_a.gossip_targets(&mut rng, now) {
//!     let mut request = node_a.make_request();
//!     loop {
//!         // ... send `request` to target.addr with the Gossip RPC; on B:
//!         let inbound = node_b.on_request("127.0.0.1:7001", request, now);
//!         let response = inbound.reply.unwrap();
//!         // ... back on A:
//!         let outbound = node_a.on_response(&target, response, now);
//!         match outbound.follow_up {
//!             Some(next) => request = next,
//!             None => break,
//!         }
//!     }
//! }
//! for event in node_a.tick(now) {
//!     if let Event::Probe { peer, addr } = event {
//!         // ... dial addr, check the key it presents is `peer`'s, then:
//!         node_a.probe_result(&peer, true, now);
//!     }
//! }
//! assert_eq!(node_a.members(now)[0].peer, b.peer_id());
//! assert_eq!(node_b.members(now)[0].peer, a.peer_id());
//! ```

pub mod advert;
pub mod anchor;
pub mod detector;
pub mod event;
pub mod gossip;
pub mod group;
pub mod limiter;
mod state;
pub mod table;

pub use advert::{
    Advert, AdvertError, VerifiedAdvert, Verifier, VerifyAdvert, sign_advert, verify_advert,
};
pub use anchor::{Anchor, AnchorParseError};
pub use detector::PeerState;
pub use event::{Event, Inbound, Member, Outbound, Reject, Relayer, Stats, Target};
pub use group::{LocalGrouping, NetGroups};
pub use limiter::RateLimit;
pub use state::{Membership, MembershipError};

/// The knobs of membership. Times are in milliseconds. Nodes of one network
/// must agree on `puzzle_bits` and should agree on the timing.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipConfig {
    /// Sybil cost: a key is accepted only if `SHA-256(SHA-256(key))` has this
    /// many leading zero bits. 16 (about 1.1 s of one core per identity on
    /// the project's VM, see `peergrid_proto::puzzle`): cheap once for an
    /// honest node, and a thousand throwaway identities cost a thousand
    /// times that. Tests and local demos use 8 or less.
    pub puzzle_bits: u32,
    /// Peers called per gossip round (3).
    pub fanout: usize,
    /// How often a node re-signs its advert, the heartbeat (30 s).
    /// [`Event::RefreshAdvert`] says when.
    pub refresh_interval_ms: u64,
    /// A peer whose newest advert is this old is Suspect (90 s: three
    /// missed heartbeats).
    pub suspect_after_ms: u64,
    /// … and this old, Dead: no longer relayed nor called (180 s).
    pub dead_after_ms: u64,
    /// A Dead peer is forgotten this much later (120 s).
    pub forget_after_ms: u64,
    /// Adverts signed further than this in the future are refused (30 s).
    pub max_clock_skew_ms: u64,
    /// Every entry's timers are re-checked at least this often (10 s); the
    /// work is spread over the ticks in between.
    pub sweep_interval_ms: u64,
    /// Most digest entries in one message (1024, about 43 KB).
    pub max_digest_entries: usize,
    /// Most adverts in one message (512, about 120 KB).
    pub max_adverts_per_message: usize,
    /// Buckets of the table (512).
    pub buckets: usize,
    /// Entries per bucket (64): the table holds at most `buckets ×
    /// bucket_size` peers (32,768).
    pub bucket_size: usize,
    /// Buckets one network group can reach (4).
    pub buckets_per_group: usize,
    /// Most peers of one network group in the table (32).
    pub max_per_group: usize,
    /// How addresses are grouped (IPv4 /16, IPv6 /32, local by endpoint).
    pub groups: NetGroups,
    /// Probes started per tick, at most (2).
    pub probes_per_tick: usize,
    /// A probe not reported within this time failed (10 s).
    pub probe_timeout_ms: u64,
    /// Failed contacts after which an unverified peer is no longer probed
    /// until it publishes a newer advert, and an anchor is dropped (3).
    pub max_failures: u8,
    /// Anchors exported by [`Membership::anchors`] (4).
    pub max_anchors: usize,
    /// Inbound gossip per (peer, source IP): burst 10, 5 calls a second.
    pub inbound: RateLimit,
    /// Peers tracked by the rate limiter and the penalties (4096 each).
    pub limiter_capacity: usize,
    /// Bad adverts a relayer may pass before it is graylisted (3).
    pub max_bad_adverts: u32,
    /// How long a graylist lasts (10 min).
    pub graylist_ms: u64,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            puzzle_bits: 16,
            fanout: 3,
            refresh_interval_ms: 30_000,
            suspect_after_ms: 90_000,
            dead_after_ms: 180_000,
            forget_after_ms: 120_000,
            max_clock_skew_ms: 30_000,
            sweep_interval_ms: 10_000,
            max_digest_entries: 1024,
            max_adverts_per_message: 512,
            buckets: 512,
            bucket_size: 64,
            buckets_per_group: 4,
            max_per_group: 32,
            groups: NetGroups::default(),
            probes_per_tick: 2,
            probe_timeout_ms: 10_000,
            max_failures: 3,
            max_anchors: 4,
            inbound: RateLimit {
                burst: 10,
                per_sec: 5.0,
            },
            limiter_capacity: 4096,
            max_bad_adverts: 3,
            graylist_ms: 600_000,
        }
    }
}

#[cfg(test)]
mod tests;

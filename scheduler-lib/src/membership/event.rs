//! What [`Membership`](super::Membership) tells its caller: events, gossip
//! targets, replies, members and counters.

use std::sync::Arc;

use peergrid_proto::{PeerId, pb};

use super::advert::{AdvertError, VerifiedAdvert};
use super::detector::PeerState;

/// Something the caller may want to act on or log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A peer entered the table (its address not yet verified).
    Discovered {
        /// The peer.
        peer: PeerId,
    },
    /// Please test this address: dial `addr`, check that the endpoint
    /// proves it holds `peer`'s key, and report with
    /// [`probe_result`](super::Membership::probe_result) (within
    /// `probe_timeout_ms`, or it counts as a failure).
    Probe {
        /// The peer the address claims to be.
        peer: PeerId,
        /// Its primary address.
        addr: String,
    },
    /// A probe (or an anchor) verified the peer's address: it is admitted as
    /// a live, verified member.
    Verified {
        /// The peer.
        peer: PeerId,
    },
    /// The peer is suspected: its newest advert is getting old, or this node
    /// could not reach it.
    Suspected {
        /// The peer.
        peer: PeerId,
    },
    /// The peer is dead: no advert from it for `dead_after_ms`.
    Dead {
        /// The peer.
        peer: PeerId,
    },
    /// A Suspect or Dead peer published a newer advert (it came back or
    /// restarted) and is Alive again.
    Revived {
        /// The peer.
        peer: PeerId,
    },
    /// A Dead peer was forgotten.
    Removed {
        /// The peer.
        peer: PeerId,
    },
    /// An advert failed verification; `relayer` handed it over.
    BadAdvert {
        /// Who handed it over.
        relayer: Relayer,
        /// What was wrong.
        error: AdvertError,
    },
    /// A relayer passed `max_bad_adverts` bad adverts and is ignored until
    /// `until_ms`.
    Graylisted {
        /// The relayer.
        peer: PeerId,
        /// When the graylist expires (Unix ms).
        until_ms: u64,
    },
    /// This node's own advert is `refresh_interval_ms` old: sign a new one
    /// ([`Advert::next_seq`](super::Advert::next_seq)) and call
    /// [`update_self`](super::Membership::update_self).
    RefreshAdvert,
}

/// Who handed over an advert.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Relayer {
    /// A peer whose own advert verified.
    Peer(PeerId),
    /// Only an address is known (a bootstrap address, or a requester whose
    /// own advert failed).
    Address(String),
}

/// A peer to gossip with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Who should answer, or `None` for a bootstrap address not yet known.
    pub peer: Option<PeerId>,
    /// Where to call.
    pub addr: String,
}

/// Why an inbound gossip call was refused. Map to a gRPC status:
/// `RateLimited` → `RESOURCE_EXHAUSTED`, the rest → `PERMISSION_DENIED`
/// (`BadAdvert`, `MissingAdvert` → `INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// The request carries no `from_advert`.
    #[error("gossip request without the sender's advert")]
    MissingAdvert,
    /// The sender's advert does not verify.
    #[error("sender's advert refused: {0}")]
    BadAdvert(AdvertError),
    /// The sender's advert is too old or too far in the future.
    #[error("sender's advert is stale or from the future")]
    Stale,
    /// The sender is over its token bucket.
    #[error("gossip rate limit exceeded")]
    RateLimited,
    /// The sender relayed too many bad adverts lately.
    #[error("sender is graylisted for relaying bad adverts")]
    Graylisted,
}

/// The outcome of [`on_request`](super::Membership::on_request).
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The response to send, or why the call is refused.
    pub reply: Result<pb::GossipResponse, Reject>,
    /// What happened meanwhile.
    pub events: Vec<Event>,
}

/// The outcome of [`on_response`](super::Membership::on_response).
#[derive(Debug, Clone)]
pub struct Outbound {
    /// A second call to make to the same target, if the first found
    /// differences (send it with `Gossip` and feed its response to
    /// `on_response` again).
    pub follow_up: Option<pb::GossipRequest>,
    /// What happened meanwhile.
    pub events: Vec<Event>,
}

/// A peer as this node sees it.
#[derive(Debug, Clone)]
pub struct Member {
    /// The peer.
    pub peer: PeerId,
    /// Its listen addresses (primary first).
    pub addrs: Vec<String>,
    /// Free job slots it advertised.
    pub free_slots: u32,
    /// Its total job slots.
    pub total_slots: u32,
    /// Its cores.
    pub cores: u32,
    /// Sequence number of its newest advert.
    pub seq: u64,
    /// When its newest advert was signed (Unix ms): when it was last heard
    /// to be alive.
    pub last_seen_ms: u64,
    /// Alive, Suspect or Dead.
    pub state: PeerState,
    /// Since when its address is verified (probed), if it is.
    pub verified_since_ms: Option<u64>,
    /// The advert itself.
    pub advert: Arc<VerifiedAdvert>,
}

/// Counters since the membership started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Adverts received (from requests, responses and pushes).
    pub adverts_received: u64,
    /// Byte-identical to the advert held: skipped without verifying.
    pub duplicates: u64,
    /// Failed verification (charged to the relayer).
    pub bad: u64,
    /// Older than `dead_after_ms` or too far in the future.
    pub stale: u64,
    /// Not newer than the advert held.
    pub older: u64,
    /// New peers admitted.
    pub inserted: u64,
    /// Newer adverts of known peers.
    pub updated: u64,
    /// Refused: the bucket was full of live peers.
    pub refused_bucket_full: u64,
    /// Refused: the network group was at its cap.
    pub refused_group_full: u64,
    /// Refused: a 64-bit peer-id prefix collision.
    pub refused_collision: u64,
    /// Byte-identical to an advert refused lately: skipped without work.
    pub refused_again: u64,
    /// Inbound gossip calls refused (rate limit, graylist, bad advert).
    pub requests_rejected: u64,
}

//! A node's status: [`NodeStatus`], one snapshot of what a running node
//! knows about itself — identity, uptime, addresses, job slots, jobs run and
//! refused, work done (CPU time, and fuel for fuel-budget jobs), peers, and
//! what it knows of its reputation.
//!
//! The snapshot is a plain struct built from the node's own state
//! ([`NodeStatus::of`]): the counters of [`NodeStats`](crate::NodeStats)
//! that the Prometheus endpoint ([`crate::metrics`]) also exports, the job
//! pool, the connection gate and the membership table. Nothing is counted
//! twice and nothing is read from disk. The same struct is what the
//! `peergrid.v1.Node/Status` RPC carries ([`StatusService`], converted to and
//! from the wire only here: [`NodeStatus::to_pb`], [`NodeStatus::from_pb`]),
//! what `peergrid status` prints ([`fetch`] gets it from a running node),
//! and what a status page can render.
//!
//! Who may call `Status`: anyone who can connect. The snapshot holds no
//! secret (no keys, paths, job contents or other peers' identities) and
//! changes nothing, but it is not free (a pass over the membership table),
//! so each call goes through the node's connection gate, the per-IP
//! [`status_per_ip`](crate::flood::FloodConfig::status_per_ip) rate limit
//! and the short-call deadline like every other call.
//!
//! Reputation is not something a node can see: in peergrid each submitter
//! scores the workers it uses from its own verdicts and keeps the score to
//! itself, and no message tells a worker how it was judged. The snapshot
//! says so ([`ReputationView`]) rather than guess.

use std::sync::Arc;
use std::time::Duration;

use peergrid_proto::tls::Transport;
use peergrid_proto::{PeerId, pb};
use scheduler_lib::membership::{Member, PeerState};
use serde::{Serialize, Serializer};
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use crate::metrics::Reason;
use crate::node::Node;

/// What [`ReputationView::note`] says while a node cannot know its
/// reputation.
pub const REPUTATION_UNKNOWN: &str = "unknown: each submitter scores the workers it uses from \
     its own verdicts and keeps the score to itself; no message tells a worker how it was \
     judged, so this node cannot know how others rate it";

/// A snapshot of one node, as it was when taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's peer id.
    #[serde(serialize_with = "display")]
    pub peer_id: PeerId,
    /// Software version, e.g. "peergrid 0.1.0".
    pub version: String,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// When the node started, in ms since the Unix epoch (its clock).
    pub started_at_unix_ms: u64,
    /// The socket address its gRPC server is bound to; `None` before it
    /// serves.
    pub listen_addr: Option<String>,
    /// The addresses its advert tells peers to dial (primary first).
    pub advertised_addrs: Vec<String>,
    /// TLS 1.3 keyed by its identity (false: plaintext, `--insecure`).
    pub tls: bool,
    /// Its job slots.
    pub slots: Slots,
    /// Jobs run and refused, and the work done, since it started.
    pub jobs: Jobs,
    /// The peers it knows and its connections.
    pub peers: Peers,
    /// What it knows of how others rate it.
    pub reputation: ReputationView,
}

/// A node's job slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Slots {
    /// Slots in total.
    pub total: u32,
    /// Slots running a job right now.
    pub in_use: u32,
    /// Slots free right now.
    pub free: u32,
}

/// Jobs run and refused, and the work done, since the node started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Jobs {
    /// Jobs run to a result, whatever its outcome.
    pub run: u64,
    /// Of `run`, those whose run ended in a failure outcome.
    pub failed: u64,
    /// `Execute` requests refused without running: the sum of
    /// `rejected_by`.
    pub rejected: u64,
    /// `rejected` by reason (the names of [`Reason::name`]), every reason
    /// listed, zeros included. In JSON an object: reason to count.
    #[serde(serialize_with = "by_reason")]
    pub rejected_by: Vec<Rejections>,
    /// Fuel (metered WebAssembly instructions) spent on jobs under a fuel
    /// budget; jobs under the default wall-time budget count none.
    pub fuel_used: u64,
    /// CPU time spent on jobs, in microseconds, whatever their budget
    /// kind: the work done.
    pub cpu_time_us: u64,
    /// Modules received by upload and stored.
    pub modules_received: u64,
    /// Module uploads refused.
    pub modules_refused: u64,
}

/// Refused `Execute` requests for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejections {
    /// The reason's name (see [`Reason::name`]; a newer node may send
    /// names this one does not know).
    pub reason: String,
    /// Requests refused for it.
    pub count: u64,
}

/// The peers a node knows (itself not counted) and its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Peers {
    /// Peers heard from recently.
    pub alive: u32,
    /// Peers whose newest advert is getting old, or that could not be
    /// reached.
    pub suspect: u32,
    /// Peers whose newest advert is too old: gone.
    pub dead: u32,
    /// Of all of them, those whose advertised address a handshake proved.
    pub verified: u32,
    /// Peers the node holds an outbound gossip channel to.
    pub gossip_channels: u32,
    /// Inbound connections open through the connection gate, the caller's
    /// own included.
    pub inbound_connections: u32,
}

/// What a node knows of how other nodes rate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReputationView {
    /// Whether it knows anything. Always false in this version.
    pub known: bool,
    /// What it knows, or why it knows nothing, in words for people.
    pub note: String,
}

/// Peers of a membership table by state: what [`NodeStatus`] and the
/// metrics report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// [`PeerState::Alive`] peers.
    pub alive: u64,
    /// [`PeerState::Suspect`] peers.
    pub suspect: u64,
    /// [`PeerState::Dead`] peers.
    pub dead: u64,
    /// Peers whose address is verified, whatever their state.
    pub verified: u64,
}

impl MemberCounts {
    /// Counts `members` by state.
    pub fn of(members: &[Member]) -> Self {
        let mut counts = Self::default();
        for member in members {
            match member.state {
                PeerState::Alive => counts.alive += 1,
                PeerState::Suspect => counts.suspect += 1,
                PeerState::Dead => counts.dead += 1,
            }
            if member.verified_since_ms.is_some() {
                counts.verified += 1;
            }
        }
        counts
    }

    /// The counts of `node`'s membership table (all zero before it serves).
    pub fn of_node(node: &Node) -> Self {
        node.gossip()
            .map(|gossip| Self::of(&gossip.members()))
            .unwrap_or_default()
    }
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn by_reason<S: Serializer>(rejections: &[Rejections], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(rejections.len()))?;
    for r in rejections {
        map.serialize_entry(&r.reason, &r.count)?;
    }
    map.end()
}

fn small(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

impl NodeStatus {
    /// A snapshot of `node` now.
    pub async fn of(node: &Node) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = node.stats();
        let total = node.total_slots();
        let free = node.free_slots().min(total);
        let members = MemberCounts::of_node(node);
        let (advertised_addrs, gossip_channels) = match node.gossip() {
            Some(gossip) => (
                vec![gossip.advertised().to_string()],
                gossip.channels().await,
            ),
            None => (Vec::new(), 0),
        };
        Self {
            peer_id: node.peer_id(),
            version: crate::VERSION.to_string(),
            uptime_ms: u64::try_from(node.uptime().as_millis()).unwrap_or(u64::MAX),
            started_at_unix_ms: node.started_at_unix_ms(),
            listen_addr: node.listen_addr().map(|a| a.to_string()),
            advertised_addrs,
            tls: node.transport().is_tls(),
            slots: Slots {
                total: small(total),
                in_use: small(total - free),
                free: small(free),
            },
            jobs: Jobs {
                run: stats.jobs_run.load(Relaxed),
                failed: stats.jobs_failed.load(Relaxed),
                rejected: stats.jobs_refused.load(Relaxed),
                rejected_by: Reason::ALL
                    .iter()
                    .map(|r| Rejections {
                        reason: r.name().to_string(),
                        count: stats.refused_by.get(*r),
                    })
                    .collect(),
                fuel_used: stats.fuel_used.load(Relaxed),
                cpu_time_us: stats.cpu_time_us.load(Relaxed),
                modules_received: stats.modules_received.load(Relaxed),
                modules_refused: stats.modules_refused.load(Relaxed),
            },
            peers: Peers {
                alive: small(members.alive),
                suspect: small(members.suspect),
                dead: small(members.dead),
                verified: small(members.verified),
                gossip_channels: small(gossip_channels),
                inbound_connections: small(node.connection_gate().open()),
            },
            reputation: ReputationView {
                known: false,
                note: REPUTATION_UNKNOWN.to_string(),
            },
        }
    }

    /// The wire form (`peergrid.v1.StatusResponse`).
    pub fn to_pb(&self) -> pb::StatusResponse {
        pb::StatusResponse {
            peer_id: self.peer_id.as_bytes().to_vec(),
            version: self.version.clone(),
            uptime_ms: self.uptime_ms,
            started_at_unix_ms: self.started_at_unix_ms,
            listen_addr: self.listen_addr.clone().unwrap_or_default(),
            advertised_addrs: self.advertised_addrs.clone(),
            tls: self.tls,
            slots: Some(pb::SlotStatus {
                total: self.slots.total,
                in_use: self.slots.in_use,
                free: self.slots.free,
            }),
            jobs: Some(pb::JobCounts {
                run: self.jobs.run,
                failed: self.jobs.failed,
                rejected: self.jobs.rejected,
                rejected_by: self
                    .jobs
                    .rejected_by
                    .iter()
                    .map(|r| pb::RejectionCount {
                        reason: r.reason.clone(),
                        count: r.count,
                    })
                    .collect(),
                fuel_used: self.jobs.fuel_used,
                cpu_time_us: self.jobs.cpu_time_us,
                modules_received: self.jobs.modules_received,
                modules_refused: self.jobs.modules_refused,
            }),
            peers: Some(pb::PeerCounts {
                alive: self.peers.alive,
                suspect: self.peers.suspect,
                dead: self.peers.dead,
                verified: self.peers.verified,
                gossip_channels: self.peers.gossip_channels,
                inbound_connections: self.peers.inbound_connections,
            }),
            reputation: Some(pb::ReputationView {
                known: self.reputation.known,
                note: self.reputation.note.clone(),
            }),
        }
    }

    /// Reads the wire form. The peer id must be 32 bytes; absent parts
    /// (slots, jobs, peers) read as zeros, and an absent reputation as
    /// unknown, as proto3 defines them.
    pub fn from_pb(response: pb::StatusResponse) -> Result<Self, StatusError> {
        let id: [u8; 32] = response.peer_id.as_slice().try_into().map_err(|_| {
            StatusError::Malformed(format!(
                "peer_id is {} bytes, not 32",
                response.peer_id.len()
            ))
        })?;
        let slots = response.slots.unwrap_or_default();
        let jobs = response.jobs.unwrap_or_default();
        let peers = response.peers.unwrap_or_default();
        let reputation = response.reputation.unwrap_or_default();
        Ok(Self {
            peer_id: PeerId::from_bytes(id),
            version: response.version,
            uptime_ms: response.uptime_ms,
            started_at_unix_ms: response.started_at_unix_ms,
            listen_addr: (!response.listen_addr.is_empty()).then_some(response.listen_addr),
            advertised_addrs: response.advertised_addrs,
            tls: response.tls,
            slots: Slots {
                total: slots.total,
                in_use: slots.in_use,
                free: slots.free,
            },
            jobs: Jobs {
                run: jobs.run,
                failed: jobs.failed,
                rejected: jobs.rejected,
                rejected_by: jobs
                    .rejected_by
                    .into_iter()
                    .map(|r| Rejections {
                        reason: r.reason,
                        count: r.count,
                    })
                    .collect(),
                fuel_used: jobs.fuel_used,
                cpu_time_us: jobs.cpu_time_us,
                modules_received: jobs.modules_received,
                modules_refused: jobs.modules_refused,
            },
            peers: Peers {
                alive: peers.alive,
                suspect: peers.suspect,
                dead: peers.dead,
                verified: peers.verified,
                gossip_channels: peers.gossip_channels,
                inbound_connections: peers.inbound_connections,
            },
            reputation: ReputationView {
                known: reputation.known,
                note: if reputation.note.is_empty() && !reputation.known {
                    "unknown".to_string()
                } else {
                    reputation.note
                },
            },
        })
    }
}

/// Why a node's status could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The address is not a `host:port`.
    #[error("bad node address {addr:?}: {reason}")]
    BadAddress {
        /// The address given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the address (or the TLS handshake failed).
    #[error("no peergrid node answers at {addr}: {reason}")]
    Unreachable {
        /// The address dialled.
        addr: String,
        /// The connection error.
        reason: String,
    },
    /// The node answered the call with an error.
    #[error("the node at {addr} refused the status call: {code:?}: {message}")]
    Refused {
        /// The address dialled.
        addr: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The node's message.
        message: String,
    },
    /// The answer does not read as a status.
    #[error("malformed status answer: {0}")]
    Malformed(String),
    /// Over TLS, the node proved one key and claimed another peer id.
    #[error(
        "the node at {addr} proved peer {proven} in the TLS handshake but its status names peer {claimed}"
    )]
    PeerMismatch {
        /// The address dialled.
        addr: String,
        /// The peer id the handshake proved.
        proven: PeerId,
        /// The peer id the status named.
        claimed: PeerId,
    },
}

/// Asks the node at `addr` (`host:port`) for its status over `transport`,
/// waiting at most `timeout` to connect and as long again for the answer.
/// Over TLS the peer id in the answer must be the one the handshake proved.
pub async fn fetch(
    addr: &str,
    transport: &Transport,
    timeout: Duration,
) -> Result<NodeStatus, StatusError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| StatusError::BadAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(timeout)
        .timeout(timeout);
    let connection =
        transport
            .connect(endpoint, None)
            .await
            .map_err(|e| StatusError::Unreachable {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    let response = pb::node_client::NodeClient::new(connection.channel)
        .status(pb::StatusRequest {})
        .await
        .map_err(|status| StatusError::Refused {
            addr: addr.to_string(),
            code: status.code(),
            message: status.message().to_string(),
        })?
        .into_inner();
    let status = NodeStatus::from_pb(response)?;
    if let Some(proven) = connection.peer
        && proven != status.peer_id
    {
        return Err(StatusError::PeerMismatch {
            addr: addr.to_string(),
            proven,
            claimed: status.peer_id,
        });
    }
    Ok(status)
}

/// The gRPC face of a node's status: `peergrid.v1.Node`.
#[derive(Debug, Clone)]
pub struct StatusService {
    node: Arc<Node>,
}

impl StatusService {
    /// The status service of `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::node_server::Node for StatusService {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let ip = request.remote_addr().map(|a| a.ip());
        node.flood_control()
            .status_from(ip)
            .map_err(|refusal| node.shed(&refusal))?;
        Ok(Response::new(NodeStatus::of(node).await.to_pb()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeStatus {
        NodeStatus {
            peer_id: PeerId::from_bytes([7; 32]),
            version: crate::VERSION.to_string(),
            uptime_ms: 61_000,
            started_at_unix_ms: 1_700_000_000_000,
            listen_addr: Some("127.0.0.1:7400".into()),
            advertised_addrs: vec!["127.0.0.1:7400".into()],
            tls: true,
            slots: Slots {
                total: 4,
                in_use: 1,
                free: 3,
            },
            jobs: Jobs {
                run: 5,
                failed: 1,
                rejected: 2,
                rejected_by: vec![Rejections {
                    reason: "busy".into(),
                    count: 2,
                }],
                fuel_used: 123_456,
                cpu_time_us: 12_345_678,
                modules_received: 1,
                modules_refused: 0,
            },
            peers: Peers {
                alive: 3,
                suspect: 1,
                dead: 0,
                verified: 2,
                gossip_channels: 2,
                inbound_connections: 4,
            },
            reputation: ReputationView {
                known: false,
                note: REPUTATION_UNKNOWN.into(),
            },
        }
    }

    #[test]
    fn the_wire_form_reads_back_the_same() {
        let status = sample();
        assert_eq!(NodeStatus::from_pb(status.to_pb()).unwrap(), status);
    }

    #[test]
    fn a_short_peer_id_is_malformed_and_absent_parts_are_zero() {
        let mut wire = sample().to_pb();
        wire.peer_id.truncate(31);
        let err = NodeStatus::from_pb(wire).unwrap_err().to_string();
        assert!(err.contains("31 bytes"), "{err}");

        let bare = pb::StatusResponse {
            peer_id: vec![1; 32],
            ..Default::default()
        };
        let status = NodeStatus::from_pb(bare).unwrap();
        assert_eq!(status.slots, Slots::default());
        assert_eq!(status.listen_addr, None);
        assert!(!status.reputation.known);
    }

    #[test]
    fn json_names_the_peer_in_hex() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["peer_id"], "07".repeat(32));
        assert_eq!(json["jobs"]["fuel_used"], 123_456);
        assert_eq!(json["jobs"]["cpu_time_us"], 12_345_678);
        assert_eq!(json["jobs"]["rejected_by"]["busy"], 2);
        assert_eq!(json["reputation"]["known"], false);
    }
}

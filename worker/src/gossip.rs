//! The node's side of membership: it publishes its signed advert, serves the
//! `peergrid.v1.Membership` gRPC service, and on a timer runs gossip rounds
//! with a few peers, probes addresses it has only heard of, and re-signs its
//! advert (the heartbeat). All decisions are the pure
//! [`Membership`](scheduler_lib::membership::Membership)'s; this module only
//! moves its messages over gRPC, keeps time and persists anchors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use peergrid_proto::tls::Transport;
use peergrid_proto::{Identity, PeerId, pb};
use rand::SeedableRng;
use rand::rngs::StdRng;
use scheduler_lib::client::WorkerConn;
use scheduler_lib::ledger::unix_ms;
use scheduler_lib::membership::{
    Advert, Anchor, Event, Member, Membership, MembershipConfig, Target, sign_advert,
};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::node::{Node, NodeError};

/// File in the data directory that keeps anchor peers across restarts.
const ANCHORS_FILE: &str = "anchors";

/// How a node takes part in membership.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Addresses to start from (`host:port`).
    pub bootstrap: Vec<String>,
    /// The address other peers should dial; default: the listen address.
    pub advertise: Option<String>,
    /// Time between gossip rounds.
    pub interval: Duration,
    /// The membership protocol's knobs (puzzle bits, timeouts, table caps).
    pub membership: MembershipConfig,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            advertise: None,
            interval: Duration::from_secs(1),
            membership: MembershipConfig::default(),
        }
    }
}

/// A node's membership state and the connections it gossips over.
pub struct Gossip {
    state: Mutex<Membership>,
    advertise: String,
    interval: Duration,
    anchors_path: PathBuf,
    rng: Mutex<StdRng>,
    conns: tokio::sync::Mutex<HashMap<String, pb::membership_client::MembershipClient<Channel>>>,
    /// The node's transport, for dialling peers.
    transport: Transport,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip")
            .field("advertise", &self.advertise)
            .field("members", &lock(&self.state).len())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gossip {
    /// Builds the membership state of `node`, reachable at `advertise`.
    pub(crate) fn new(
        node: &Node,
        identity: &Identity,
        advertise: String,
    ) -> Result<Self, NodeError> {
        let config = &node.config().gossip;
        let now = now_ms();
        let me = own_advert(node, identity, &advertise, None, now);
        let secret: [u8; 32] = rand::random();
        let mut state = Membership::new(config.membership.clone(), me, secret, now)
            .map_err(|e| NodeError::Membership(e.to_string()))?;
        for addr in &config.bootstrap {
            state.add_bootstrap(addr.clone());
        }
        let anchors_path = node.config().data_dir.join(ANCHORS_FILE);
        let anchors: Vec<Anchor> = std::fs::read_to_string(&anchors_path)
            .map(|text| text.lines().filter_map(|l| l.parse().ok()).collect())
            .unwrap_or_default();
        if !anchors.is_empty() {
            info!(anchors = anchors.len(), "restored anchor peers");
            state.restore_anchors(anchors);
        }
        Ok(Self {
            state: Mutex::new(state),
            advertise,
            interval: config.interval,
            anchors_path,
            rng: Mutex::new(StdRng::from_entropy()),
            conns: tokio::sync::Mutex::new(HashMap::new()),
            transport: node.transport().clone(),
        })
    }

    /// The peers this node knows, with their state.
    pub fn members(&self) -> Vec<Member> {
        lock(&self.state).members(now_ms())
    }

    /// The address this node's advert tells peers to dial.
    pub fn advertised(&self) -> &str {
        &self.advertise
    }

    /// Peers this node holds an outbound gossip channel to right now.
    pub async fn channels(&self) -> usize {
        self.conns.lock().await.len()
    }

    /// Runs gossip rounds until the future is dropped.
    pub(crate) async fn run(self: Arc<Self>, node: Arc<Node>, identity: Identity) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds: u64 = 0;
        loop {
            ticker.tick().await;
            let now = now_ms();
            let (events, targets) = {
                let mut state = lock(&self.state);
                let events = state.tick(now);
                let mut rng = lock(&self.rng);
                let targets = state.gossip_targets(&mut *rng, now);
                (events, targets)
            };
            self.handle(events, &node, &identity).await;
            let mut calls = JoinSet::new();
            for target in targets {
                let me = Arc::clone(&self);
                calls.spawn(async move { me.exchange(target).await });
            }
            while let Some(events) = calls.join_next().await {
                if let Ok(events) = events {
                    self.handle(events, &node, &identity).await;
                }
            }
            rounds += 1;
            if rounds.is_multiple_of(10) {
                self.save_anchors();
            }
        }
    }

    /// One push-pull exchange with `target` (and its follow-ups).
    async fn exchange(&self, target: Target) -> Vec<Event> {
        let mut events = Vec::new();
        let mut request = lock(&self.state).make_request();
        for _ in 0..4 {
            let reply = match self.client(&target).await {
                Ok(mut client) => client.gossip(request).await.map(Response::into_inner),
                Err(e) => Err(e),
            };
            let now = now_ms();
            match reply {
                Ok(response) => {
                    let outbound = lock(&self.state).on_response(&target, response, now);
                    events.extend(outbound.events);
                    match outbound.follow_up {
                        Some(next) => request = next,
                        None => break,
                    }
                }
                Err(status) => {
                    debug!(addr = %target.addr, error = %status.message(), "gossip call failed");
                    self.conns.lock().await.remove(&target.addr);
                    events.extend(lock(&self.state).on_failure(&target, now));
                    break;
                }
            }
        }
        events
    }

    async fn client(
        &self,
        target: &Target,
    ) -> Result<pb::membership_client::MembershipClient<Channel>, Status> {
        let addr = &target.addr;
        if let Some(c) = self.conns.lock().await.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        // A known member must prove its advertised key at its address.
        let channel = self
            .transport
            .connect(endpoint, target.peer)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .channel;
        let client = pb::membership_client::MembershipClient::new(channel)
            .max_decoding_message_size(4 << 20);
        self.conns
            .lock()
            .await
            .insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Acts on what the membership asked for.
    async fn handle(&self, events: Vec<Event>, node: &Node, identity: &Identity) {
        for event in events {
            match event {
                Event::RefreshAdvert => self.refresh(node, identity),
                Event::Probe { peer, addr } => {
                    let ok = probe(&self.transport, &peer, &addr).await;
                    let more = lock(&self.state).probe_result(&peer, ok, now_ms());
                    // Results of a probe are state changes only.
                    for e in more {
                        log_event(&e);
                    }
                }
                other => log_event(&other),
            }
        }
    }

    /// Re-signs this node's advert with its current free slots.
    pub(crate) fn refresh(&self, node: &Node, identity: &Identity) {
        let now = now_ms();
        let mut state = lock(&self.state);
        let previous = state.my_advert().advert.seq;
        let envelope = own_advert(node, identity, &self.advertise, Some(previous), now);
        if let Err(e) = state.update_self(envelope, now) {
            warn!(error = %e, "could not refresh this node's advert");
        }
    }

    fn save_anchors(&self) {
        let anchors = lock(&self.state).anchors(now_ms());
        if anchors.is_empty() {
            return;
        }
        let text: String = anchors.iter().map(|a| format!("{a}\n")).collect();
        if let Err(e) = std::fs::write(&self.anchors_path, text) {
            warn!(error = %e, path = %self.anchors_path.display(), "could not save anchor peers");
        }
    }
}

/// Dials `addr` and checks that the key it presents is `peer`'s (in the
/// TLS handshake, and again in the signed `Hello`).
async fn probe(transport: &Transport, peer: &PeerId, addr: &str) -> bool {
    let answer = async {
        let conn =
            WorkerConn::connect(addr, Duration::from_secs(2), transport, Some(*peer)).await?;
        conn.hello().await
    };
    match tokio::time::timeout(Duration::from_secs(5), answer).await {
        Ok(Ok(info)) => info.peer == *peer,
        _ => false,
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Verified { peer } => info!(peer = %peer.short(), "peer verified and admitted"),
        Event::Dead { peer } => info!(peer = %peer.short(), "peer is dead"),
        Event::Removed { peer } => info!(peer = %peer.short(), "peer removed"),
        Event::Revived { peer } => info!(peer = %peer.short(), "peer is back"),
        Event::BadAdvert { relayer, error } => warn!(?relayer, %error, "dropped a bad advert"),
        Event::Graylisted { peer, .. } => warn!(peer = %peer.short(), "relayer graylisted"),
        other => debug!(?other, "membership event"),
    }
}

/// This node's advert, signed.
fn own_advert(
    node: &Node,
    identity: &Identity,
    advertise: &str,
    previous: Option<u64>,
    now: u64,
) -> pb::SignedEnvelope {
    let config = node.config();
    let mut advert = Advert::new(vec![advertise.to_string()], previous, now);
    advert.free_slots = u32::try_from(node.free_slots()).unwrap_or(u32::MAX);
    advert.total_slots = u32::try_from(node.total_slots()).unwrap_or(u32::MAX);
    advert.cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    advert.max_job_memory_bytes = config.max_limits.memory_bytes;
    advert.max_limits = Some(config.max_limits.to_pb());
    advert.version = crate::VERSION.to_string();
    sign_advert(identity, &advert)
}

/// The gRPC face of a node's membership.
#[derive(Debug, Clone)]
pub struct MembershipService {
    pub(crate) node: Arc<Node>,
}

impl MembershipService {
    /// The per-IP limit on inbound membership calls, checked before the
    /// membership lock is taken or any advert verified.
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let ip = request.remote_addr().map(|a| a.ip());
        self.node
            .flood_control()
            .gossip_from(ip)
            .map_err(|refusal| {
                self.node.stats().rate_limited.add(refusal.kind());
                debug!(?ip, %refusal, "gossip call shed");
                refusal.to_status()
            })
    }
}

#[tonic::async_trait]
impl pb::membership_server::Membership for MembershipService {
    async fn gossip(
        &self,
        request: Request<pb::GossipRequest>,
    ) -> Result<Response<pb::GossipResponse>, Status> {
        self.admit(&request)?;
        let gossip = self
            .node
            .gossip()
            .ok_or_else(|| Status::unavailable("membership not started"))?;
        let from = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let inbound = lock(&gossip.state).on_request(&from, request.into_inner(), now_ms());
        for e in &inbound.events {
            log_event(e);
        }
        inbound.reply.map(Response::new).map_err(|reject| {
            use scheduler_lib::membership::Reject;
            match reject {
                Reject::RateLimited => Status::resource_exhausted(reject.to_string()),
                Reject::BadAdvert(_) | Reject::MissingAdvert => {
                    Status::invalid_argument(reject.to_string())
                }
                _ => Status::permission_denied(reject.to_string()),
            }
        })
    }

    async fn members(
        &self,
        request: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        self.admit(&request)?;
        let gossip = self
            .node
            .gossip()
            .ok_or_else(|| Status::unavailable("membership not started"))?;
        let response = lock(&gossip.state).members_response(now_ms());
        Ok(Response::new(response))
    }
}

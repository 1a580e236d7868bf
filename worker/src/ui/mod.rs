//! The node's status page: a small web page served by the node itself, the
//! way BOINC volunteers watch their manager. Off by default; `peergrid node
//! --ui 127.0.0.1:7080` (or `ui = "127.0.0.1:7080"` in `node.toml`) serves
//! it, on a loopback address only unless `--ui-public` says otherwise.
//!
//! Two resources, both `GET` (or `HEAD`) only, anything else is 404 or 405:
//!
//! - `/`: plain server-rendered HTML with no external assets (inline CSS,
//!   an inline SVG chart) that reloads itself every 5 s: node health, job
//!   slots in use, jobs run, failed and refused, the recent jobs and how
//!   each ended (CPU time, fuel), work done (CPU time) per minute over the
//!   last hour, and the peers the membership table knows, with the scores
//!   this data directory's ledger gives them, if it has any ([`ledger`]).
//! - `/status.json`: the same [`Snapshot`] as JSON.
//!
//! Every string that comes from a peer or a module (peer ids, addresses,
//! module hashes, outcome and error texts) is HTML-escaped. The page runs
//! no script and loads nothing: its Content-Security-Policy is
//! `default-src 'none'; style-src 'unsafe-inline'; img-src data:`, with
//! `nosniff`, `no-store` and no framing. While it is served on loopback
//! only, a request whose `Host` is neither an IP address nor `localhost` is
//! refused (421), so a web page elsewhere cannot read it through DNS
//! rebinding.
//!
//! The HTTP listener is the one the metrics endpoint uses ([`crate::http`]:
//! bounded connections and deadlines). The data is the node's own: the
//! [`NodeStatus`] that `peergrid status` shows, the node's
//! [`Activity`](crate::activity::Activity) and its membership table.

pub mod ledger;
pub mod page;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use peergrid_proto::PeerId;
use scheduler_lib::membership::{Member, PeerState};
use serde::{Serialize, Serializer};
use tokio::net::TcpListener;
use tracing::info;

use crate::activity::{JobEnd, RecentJob, WorkMinute};
use crate::node::Node;
use crate::status::NodeStatus;
use ledger::{LedgerScore, LedgerScores};

/// Where to serve the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiConfig {
    /// The address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// Allow an address that is not loopback (`--ui-public`).
    pub public: bool,
}

/// Why the status page cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UiError {
    /// A non-loopback address without `public`.
    #[error(
        "the status page address {addr} is not a loopback address: the page shows this node's \
         jobs, submitters and peers to anyone who can reach it. Serve it on 127.0.0.1 or [::1] \
         (e.g. --ui 127.0.0.1:7080), or pass --ui-public (ui_public = true in node.toml) to \
         serve it on {addr} anyway"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("binding the status page address {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("status page: {0}")]
    Io(#[from] std::io::Error),
}

/// The page's refresh period, in seconds.
pub const REFRESH_SECS: u32 = 5;

/// Peers listed at most (alive ones first); the page says how many more.
pub const MAX_PEER_ROWS: usize = 100;

/// Refuses `addr` unless it is loopback or `public` allows any address.
pub fn check(config: &UiConfig) -> Result<(), UiError> {
    if config.public || config.addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(UiError::NotLoopback { addr: config.addr })
    }
}

/// Checks `config` ([`check`]) and binds its address.
pub async fn bind(config: &UiConfig) -> Result<TcpListener, UiError> {
    check(config)?;
    TcpListener::bind(config.addr)
        .await
        .map_err(|source| UiError::Bind {
            addr: config.addr,
            source,
        })
}

/// Serves the status page of `node` on `listener` until `shutdown`
/// completes. The listener must be on a loopback address unless the node's
/// [`NodeConfig::ui`](crate::NodeConfig::ui) says `public`.
pub async fn serve_ui(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), UiError> {
    let addr = listener.local_addr()?;
    let public = node.config().ui.is_some_and(|ui| ui.public);
    check(&UiConfig { addr, public })?;
    info!(%addr, "status page listening (GET / and /status.json)");
    let state = Arc::new(UiState {
        ledger: Arc::new(LedgerScores::new(&node.config().data_dir)),
        node,
        public,
    });
    crate::http::serve("status page", listener, shutdown, move |request| {
        respond(Arc::clone(&state), request)
    })
    .await?;
    Ok(())
}

struct UiState {
    node: Arc<Node>,
    public: bool,
    ledger: Arc<LedgerScores>,
}

/// Everything the page shows, at one moment; `/status.json` is this.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When it was taken, in ms since the Unix epoch (the node's clock).
    pub taken_at_unix_ms: u64,
    /// The node's status, as `peergrid status` shows it.
    pub status: NodeStatus,
    /// Whether the node looks well, and why not.
    pub health: Health,
    /// The last jobs it took a slot for, newest first.
    pub recent_jobs: Vec<RecentJob>,
    /// Work done per minute over the last hour, oldest first.
    pub work_per_minute: Vec<WorkMinute>,
    /// The peers of its membership table (at most [`MAX_PEER_ROWS`]; alive
    /// ones first, then the most recently heard from).
    pub peers: Vec<PeerRow>,
    /// How many peers the table holds in all.
    pub peers_total: usize,
    /// What is known of reputations, and where it comes from.
    pub reputation: ReputationPanel,
}

/// A node's health at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// True when nothing below needs the operator's attention.
    pub ok: bool,
    /// What needs attention (empty when `ok`).
    pub problems: Vec<String>,
}

/// One peer of the membership table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerRow {
    /// Its peer id.
    #[serde(serialize_with = "display")]
    pub peer_id: PeerId,
    /// `alive`, `suspect` or `dead`.
    pub state: &'static str,
    /// The addresses its advert names (primary first).
    pub addrs: Vec<String>,
    /// Free job slots it advertised.
    pub free_slots: u32,
    /// Its job slots.
    pub total_slots: u32,
    /// Its cores.
    pub cores: u32,
    /// When its newest advert was signed, in ms since the Unix epoch.
    pub last_seen_unix_ms: u64,
    /// Whether a handshake proved its advertised address.
    pub verified: bool,
    /// How this data directory's submitter rated it, if it ever used it.
    pub ledger_score: Option<LedgerScore>,
}

/// Reputations: what this node knows of how others rate it (nothing), and
/// the scores in its data directory's ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReputationPanel {
    /// How others rate this node: always unknown to it (see
    /// [`crate::status::REPUTATION_UNKNOWN`]).
    pub of_this_node: String,
    /// Whether the data directory has a ledger (`peergrid submit` was run
    /// from it).
    pub ledger_exists: bool,
    /// Workers the ledger rates.
    pub ledger_rated: usize,
    /// When the ledger was read, in ms since the Unix epoch.
    pub ledger_read_at_unix_ms: Option<u64>,
    /// Where the scores come from, or why there are none, in words.
    pub note: String,
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Alive => "alive",
        PeerState::Suspect => "suspect",
        PeerState::Dead => "dead",
    }
}

impl Snapshot {
    /// A snapshot of `node` now, with the scores of `ledger`'s view.
    pub async fn of(node: &Node, ledger: &ledger::LedgerView) -> Self {
        let now = now_ms();
        let status = NodeStatus::of(node).await;
        let activity = node.activity();
        let recent_jobs = activity.recent();
        let mut members: Vec<Member> = node.gossip().map(|g| g.members()).unwrap_or_default();
        members.sort_by(|a, b| {
            a.state
                .cmp(&b.state)
                .then(b.last_seen_ms.cmp(&a.last_seen_ms))
                .then(a.peer.as_bytes().cmp(b.peer.as_bytes()))
        });
        let peers_total = members.len();
        let peers = members
            .iter()
            .take(MAX_PEER_ROWS)
            .map(|m| PeerRow {
                peer_id: m.peer,
                state: state_name(m.state),
                addrs: m.addrs.clone(),
                free_slots: m.free_slots,
                total_slots: m.total_slots,
                cores: m.cores,
                last_seen_unix_ms: m.last_seen_ms,
                verified: m.verified_since_ms.is_some(),
                ledger_score: ledger.scores.get(&m.peer).copied(),
            })
            .collect();
        let health = health(&status, &recent_jobs);
        Self {
            taken_at_unix_ms: now,
            health,
            work_per_minute: activity.work(now),
            recent_jobs,
            peers,
            peers_total,
            reputation: reputation_panel(ledger),
            status,
        }
    }
}

/// What needs the operator's attention, from a status and the recent jobs.
pub fn health(status: &NodeStatus, recent: &[RecentJob]) -> Health {
    let mut problems = Vec::new();
    if status.listen_addr.is_none() {
        problems.push("not serving yet: the gRPC server has not started".to_string());
    }
    if status.peers.alive == 0 {
        problems.push(
            "no live peers: this node knows nobody to gossip with (check --peer, and that \
             others can reach its advertised address)"
                .to_string(),
        );
    }
    if status.slots.total > 0 && status.slots.free == 0 {
        problems.push(format!(
            "all {} job slots are busy: new jobs are refused until one frees",
            status.slots.total
        ));
    }
    let not_run = recent.iter().filter(|j| j.end == JobEnd::NotRun).count();
    if not_run > 0 {
        problems.push(format!(
            "{not_run} of the last {} jobs could not run here (a host failure or this node's \
             compile budget): see the recent jobs and the log",
            recent.len()
        ));
    }
    Health {
        ok: problems.is_empty(),
        problems,
    }
}

fn reputation_panel(ledger: &ledger::LedgerView) -> ReputationPanel {
    let note = if !ledger.exists {
        "Reputation is kept by submitters: each scores the workers it uses from its own \
         verdicts and keeps the score to itself. This data directory has no ledger (no \
         peergrid submit was run from it), so there are no scores to show."
            .to_string()
    } else {
        let mut note = format!(
            "Scores from this data directory's ledger: how this node, as a submitter, rated \
             the {} worker(s) it sent jobs to (peergrid peers lists them all). They are its \
             own first-hand scores, not how the grid rates anyone.",
            ledger.scores.len()
        );
        if let Some(problem) = &ledger.problem {
            note.push_str(" Newest scores unavailable: ");
            note.push_str(problem);
            note.push('.');
        }
        note
    };
    ReputationPanel {
        of_this_node: crate::status::REPUTATION_UNKNOWN.to_string(),
        ledger_exists: ledger.exists,
        ledger_rated: ledger.scores.len(),
        ledger_read_at_unix_ms: ledger.read_at_unix_ms,
        note,
    }
}

/// The page's Content-Security-Policy: nothing loads, no script runs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Whether a request's `Host` header names this machine the way a browser
/// reaching a loopback listener would: an IP address or `localhost`, with
/// or without a port. A name that resolves to 127.0.0.1 (DNS rebinding)
/// does not. No `Host` at all (HTTP/1.0) is not a browser: allowed.
pub fn host_allowed(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

async fn respond(state: Arc<UiState>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut refused = response(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".into(),
        );
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return refused;
    }
    if !state.public && !host_allowed(request.headers().get(header::HOST)) {
        return response(
            StatusCode::MISDIRECTED_REQUEST,
            TEXT,
            "this status page answers only requests addressed to a loopback IP address or \
             localhost\n"
                .into(),
        );
    }
    let path = request.uri().path();
    if path != "/" && path != "/status.json" {
        return response(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: the status page is at / and its data at /status.json\n".into(),
        );
    }
    let ledger = state.ledger.view().await;
    let snapshot = Snapshot::of(&state.node, &ledger).await;
    if path == "/" {
        response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::render(&snapshot),
        )
    } else {
        match serde_json::to_string_pretty(&snapshot) {
            Ok(mut json) => {
                json.push('\n');
                response(StatusCode::OK, "application/json", json)
            }
            Err(e) => response(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("cannot write the status as JSON: {e}\n"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_public() {
        let at = |addr: &str, public| UiConfig {
            addr: addr.parse().unwrap(),
            public,
        };
        assert!(check(&at("127.0.0.1:7080", false)).is_ok());
        assert!(check(&at("[::1]:7080", false)).is_ok());
        let refused = check(&at("0.0.0.0:7080", false)).unwrap_err().to_string();
        assert!(refused.contains("--ui-public"), "{refused}");
        assert!(refused.contains("0.0.0.0:7080"), "{refused}");
        assert!(check(&at("192.0.2.1:7080", false)).is_err());
        assert!(check(&at("0.0.0.0:7080", true)).is_ok());
    }

    #[test]
    fn hosts_that_name_this_machine_are_allowed_and_other_names_are_not() {
        let allowed = |host: &str| host_allowed(Some(&HeaderValue::from_str(host).unwrap()));
        for host in [
            "127.0.0.1:7080",
            "127.0.0.1",
            "localhost:7080",
            "LOCALHOST",
            "[::1]:7080",
            "[::1]",
        ] {
            assert!(allowed(host), "{host}");
        }
        for host in [
            "evil.example:7080",
            "evil.example",
            "127.0.0.1.nip.io:7080",
            "[evil]:80",
            "",
        ] {
            assert!(!allowed(host), "{host}");
        }
        assert!(host_allowed(None));
    }

    #[test]
    fn health_names_what_needs_attention() {
        let mut status = fixtures::snapshot().status;
        assert!(health(&status, &[]).ok, "{:?}", health(&status, &[]));
        status.peers.alive = 0;
        status.slots.free = 0;
        let sick = health(&status, &[]);
        assert!(!sick.ok);
        assert_eq!(sick.problems.len(), 2, "{sick:?}");
        assert!(sick.problems.iter().any(|p| p.contains("no live peers")));
        assert!(sick.problems.iter().any(|p| p.contains("slots are busy")));
    }
}

/// A snapshot with a little of everything, hostile strings included.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::status::{Jobs, Peers, Rejections, ReputationView, Slots};

    pub(crate) const HOSTILE: &str = "<script>alert('x')</script>&\"";

    pub(crate) fn snapshot() -> Snapshot {
        let now = 1_700_000_000_000;
        let status = NodeStatus {
            peer_id: PeerId::from_bytes([7; 32]),
            version: crate::VERSION.to_string(),
            uptime_ms: 3_723_000,
            started_at_unix_ms: now - 3_723_000,
            listen_addr: Some("127.0.0.1:7400".into()),
            advertised_addrs: vec!["127.0.0.1:7400".into()],
            tls: true,
            slots: Slots {
                total: 4,
                in_use: 1,
                free: 3,
            },
            jobs: Jobs {
                run: 2,
                failed: 1,
                rejected: 3,
                rejected_by: vec![Rejections {
                    reason: "busy".into(),
                    count: 3,
                }],
                fuel_used: 123_456_789,
                cpu_time_us: 45_600_000,
                modules_received: 2,
                modules_refused: 0,
            },
            peers: Peers {
                alive: 1,
                suspect: 0,
                dead: 0,
                verified: 1,
                gossip_channels: 1,
                inbound_connections: 2,
            },
            reputation: ReputationView {
                known: false,
                note: crate::status::REPUTATION_UNKNOWN.into(),
            },
        };
        let job = |end, outcome: &str, cpu_time_us, fuel| RecentJob {
            finished_at_unix_ms: now - 30_000,
            job_id: [1; 32],
            submitter: PeerId::from_bytes([2; 32]),
            module: [3; 32],
            end,
            outcome: outcome.into(),
            cpu_time_us,
            fuel,
            wall_time_ms: 12,
        };
        let recent_jobs = vec![
            // A wall-time job (no fuel) and a fuel-budget one.
            job(
                JobEnd::Failed,
                &format!("invalid module: {HOSTILE}"),
                80_000,
                0,
            ),
            job(JobEnd::Success, "success", 120_000, 123_456_789),
        ];
        let activity = crate::activity::Activity::default();
        for j in recent_jobs.iter().rev() {
            activity.record(j.clone());
        }
        Snapshot {
            taken_at_unix_ms: now,
            health: health(&status, &recent_jobs),
            work_per_minute: activity.work(now),
            recent_jobs,
            peers: vec![PeerRow {
                peer_id: PeerId::from_bytes([5; 32]),
                state: "alive",
                addrs: vec![format!("{HOSTILE}:7400")],
                free_slots: 1,
                total_slots: 2,
                cores: 4,
                last_seen_unix_ms: now - 2_000,
                verified: true,
                ledger_score: Some(LedgerScore {
                    trust: 0.9,
                    agreed: 8,
                    dissented: 0,
                    banned: false,
                }),
            }],
            peers_total: 1,
            reputation: reputation_panel(&ledger::LedgerView::default()),
            status,
        }
    }
}

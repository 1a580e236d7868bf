//! Monitoring: a node's figures in the Prometheus text format, and
//! [`serve_metrics`], a minimal HTTP/1 endpoint for them (off by default;
//! `peergrid node --metrics ADDR` starts it).
//!
//! Every figure is read at scrape time from what the node already keeps:
//! the atomic counters of [`NodeStats`](crate::NodeStats) (jobs run, refused
//! by reason, CPU time and fuel, signature failures, rate-limit hits,
//! modules), its job pool (slots in use), its connection gate and its
//! membership table (peers by state). The text format is small enough to
//! write by hand: every label value here comes from a fixed set of names,
//! so nothing needs escaping.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::info;

use crate::admission::Refusal;
use crate::flood::LimitKind;
use crate::node::Node;
use crate::replay::ReplayError;

/// Why a request for work was refused: the `reason` label of
/// `peergrid_jobs_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The envelope's signature failed.
    Signature,
    /// Missing envelope, undecodable payload, a field of the wrong length.
    Malformed,
    /// Addressed to another worker.
    WrongWorker,
    /// Asks for more fuel, memory, time or input than this worker allows.
    Limits,
    /// A replayed envelope.
    Replayed,
    /// An expired envelope, or one valid for too long.
    Expired,
    /// All job slots busy (or the replay memory full).
    Busy,
    /// A rate limit or the per-submitter job cap.
    RateLimited,
    /// The operator's allow/deny lists.
    Policy,
}

impl Reason {
    /// Every reason, in metrics order.
    pub const ALL: [Reason; 9] = [
        Reason::Signature,
        Reason::Malformed,
        Reason::WrongWorker,
        Reason::Limits,
        Reason::Replayed,
        Reason::Expired,
        Reason::Busy,
        Reason::RateLimited,
        Reason::Policy,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Signature => "signature",
            Reason::Malformed => "malformed",
            Reason::WrongWorker => "wrong_worker",
            Reason::Limits => "limits",
            Reason::Replayed => "replayed",
            Reason::Expired => "expired",
            Reason::Busy => "busy",
            Reason::RateLimited => "rate_limited",
            Reason::Policy => "policy",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl From<&Refusal> for Reason {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::Signature(_) => Reason::Signature,
            Refusal::WrongWorker { .. } => Reason::WrongWorker,
            Refusal::Limit(_) | Refusal::InputTooLarge { .. } => Reason::Limits,
            Refusal::Replay(ReplayError::Replayed) => Reason::Replayed,
            Refusal::Replay(ReplayError::Full(_)) => Reason::Busy,
            Refusal::Replay(_) => Reason::Expired,
            _ => Reason::Malformed,
        }
    }
}

/// One atomic counter per [`Reason`].
#[derive(Debug, Default)]
pub struct ReasonCounts([AtomicU64; Reason::ALL.len()]);

impl ReasonCounts {
    /// Counts one refusal for `reason`.
    pub fn add(&self, reason: Reason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals for `reason` so far.
    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason.index()].load(Ordering::Relaxed)
    }
}

/// One atomic counter per rate limit ([`LimitKind`]).
#[derive(Debug, Default)]
pub struct LimitCounts([AtomicU64; LimitKind::ALL.len()]);

impl LimitCounts {
    fn index(kind: LimitKind) -> usize {
        LimitKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
    }

    /// Counts one call refused by `kind`.
    pub fn add(&self, kind: LimitKind) {
        self.0[Self::index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Calls refused by `kind` so far.
    pub fn get(&self, kind: LimitKind) -> u64 {
        self.0[Self::index(kind)].load(Ordering::Relaxed)
    }
}

/// Writes one metric family: HELP, TYPE and its samples.
fn family<T: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(String, T)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn single(value: u64) -> Vec<(String, u64)> {
    vec![(String::new(), value)]
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The node's figures in the Prometheus text exposition format (0.0.4).
pub fn render(node: &Node) -> String {
    let stats = node.stats();
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "peergrid_jobs_run_total",
        "counter",
        "Jobs run to a result (any outcome).",
        &single(load(&stats.jobs_run)),
    );
    family(
        &mut out,
        "peergrid_jobs_failed_total",
        "counter",
        "Jobs whose run ended in a failure outcome (out of fuel, trap, ...).",
        &single(load(&stats.jobs_failed)),
    );
    let rejected: Vec<_> = Reason::ALL
        .iter()
        .map(|r| {
            (
                format!("{{reason=\"{}\"}}", r.name()),
                stats.refused_by.get(*r),
            )
        })
        .collect();
    family(
        &mut out,
        "peergrid_jobs_rejected_total",
        "counter",
        "Execute requests refused, by reason.",
        &rejected,
    );
    family(
        &mut out,
        "peergrid_fuel_used_total",
        "counter",
        "Fuel (WASM instructions) spent on jobs under a fuel budget (wall-time jobs count none).",
        &single(load(&stats.fuel_used)),
    );
    family(
        &mut out,
        "peergrid_job_cpu_seconds_total",
        "counter",
        "CPU time spent on jobs, in seconds: the work done, whatever the budget kind.",
        &[(String::new(), load(&stats.cpu_time_us) as f64 / 1e6)],
    );
    family(
        &mut out,
        "peergrid_signature_failures_total",
        "counter",
        "Job envelopes whose signature did not verify.",
        &single(load(&stats.signature_failures)),
    );
    let limited: Vec<_> = LimitKind::ALL
        .iter()
        .map(|k| {
            (
                format!("{{limit=\"{}\"}}", k.name()),
                stats.rate_limited.get(*k),
            )
        })
        .collect();
    family(
        &mut out,
        "peergrid_rate_limit_hits_total",
        "counter",
        "Calls refused by a rate limit or the per-submitter job cap, by limit.",
        &limited,
    );
    family(
        &mut out,
        "peergrid_modules_received_total",
        "counter",
        "Modules received by upload and stored.",
        &single(load(&stats.modules_received)),
    );
    family(
        &mut out,
        "peergrid_modules_refused_total",
        "counter",
        "Module uploads refused (policy, size, hash mismatch, rate limit, deadline).",
        &single(load(&stats.modules_refused)),
    );
    let total = node.total_slots() as u64;
    let free = node.free_slots() as u64;
    family(
        &mut out,
        "peergrid_slots",
        "gauge",
        "Job slots of this node.",
        &single(total),
    );
    family(
        &mut out,
        "peergrid_slots_in_use",
        "gauge",
        "Job slots running a job right now (the node queues nothing: a job \
         finding every slot busy is refused).",
        &single(total.saturating_sub(free)),
    );
    let gate = node.connection_gate();
    family(
        &mut out,
        "peergrid_connections_open",
        "gauge",
        "Connections open through the connection gate.",
        &single(gate.open() as u64),
    );
    family(
        &mut out,
        "peergrid_connections_refused_total",
        "counter",
        "Connections closed at once because a connection cap was reached.",
        &single(gate.refused()),
    );
    family(
        &mut out,
        "peergrid_connections_timed_out_total",
        "counter",
        "Connections closed for sending nothing within their deadline.",
        &single(gate.timed_out()),
    );
    let peers = crate::status::MemberCounts::of_node(node);
    family(
        &mut out,
        "peergrid_peers",
        "gauge",
        "Peers in the membership table, by state.",
        &[
            ("{state=\"alive\"}".into(), peers.alive),
            ("{state=\"suspect\"}".into(), peers.suspect),
            ("{state=\"dead\"}".into(), peers.dead),
        ],
    );
    family(
        &mut out,
        "peergrid_peers_verified",
        "gauge",
        "Peers whose advertised address was proven by a handshake.",
        &single(peers.verified),
    );
    family(
        &mut out,
        "peergrid_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        &single(node.uptime().as_secs()),
    );
    out
}

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn respond(node: &Node, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, render(node), CONTENT_TYPE),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n".to_string(),
            "text/plain",
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET\n".to_string(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Serves `GET /metrics` for `node` on `listener` (HTTP/1.1) until
/// `shutdown` completes, with the limits of every side endpoint (see
/// [`crate::http`]): a short header deadline and at most 64 connections at
/// once, so it cannot be held open by a slow client; bind it to a private
/// address all the same.
pub async fn serve_metrics(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics endpoint listening (GET /metrics)");
    }
    crate::http::serve("metrics endpoint", listener, shutdown, move |request| {
        let response = respond(&node, &request);
        async move { response }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_in_the_text_format() {
        let mut out = String::new();
        family(
            &mut out,
            "x_total",
            "counter",
            "An x.",
            &[("{a=\"b\"}".into(), 3), (String::new(), 4)],
        );
        assert_eq!(
            out,
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{a=\"b\"} 3\nx_total 4\n"
        );
    }

    #[test]
    fn counters_count_per_label() {
        let reasons = ReasonCounts::default();
        reasons.add(Reason::Policy);
        reasons.add(Reason::Policy);
        assert_eq!(reasons.get(Reason::Policy), 2);
        assert_eq!(reasons.get(Reason::Busy), 0);
        let limits = LimitCounts::default();
        limits.add(LimitKind::GossipPerIp);
        assert_eq!(limits.get(LimitKind::GossipPerIp), 1);
        assert_eq!(limits.get(LimitKind::ExecutePerIp), 0);
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Reason::ALL.len(), "label values are distinct");
    }

    #[test]
    fn refusals_map_to_reasons() {
        assert_eq!(
            Reason::from(&Refusal::Replay(ReplayError::Replayed)),
            Reason::Replayed
        );
        assert_eq!(
            Reason::from(&Refusal::Replay(ReplayError::Expired(5))),
            Reason::Expired
        );
        assert_eq!(Reason::from(&Refusal::MissingEnvelope), Reason::Malformed);
        assert_eq!(Reason::from(&Refusal::Limit("fuel".into())), Reason::Limits);
    }
}

//! `peergrid peers`: what this node has learned about the workers it used.
//!
//! Thin glue over the ledger `peergrid submit` keeps in the data directory
//! ([`scheduler_lib::ledger`]): load every peer's reputation record, as the
//! scheduler would ([`reputation_store::load`]), and print one row per peer,
//! most trusted first and banned peers last. Reputation is first-hand only:
//! a peer appears here once this node has sent it a job.
//!
//! No ledger, or no peers in it, is not an error: a one-line message and
//! exit 0. A ledger that cannot be opened (another `peergrid submit` holds
//! it, damage, a newer schema) is exit 1. This command never creates a
//! ledger.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use peergrid_proto::PeerId;
use scheduler_lib::ledger::{self, Ledger, LedgerError};
use scheduler_lib::{PeerReputation, Reputation, ReputationConfig, reputation_store};

use super::args::{OutputFormat, PeersArgs};
use super::report::ago;

/// Lists the peers of the ledger in the data directory on stdout.
pub fn run(args: PeersArgs) -> anyhow::Result<ExitCode> {
    let path = super::data_dir(args.data_dir)?.join(ledger::FILE_NAME);
    let (observed, config) = load(&path)?;
    let total = observed.len();
    let peers: Vec<Peer> = observed
        .into_iter()
        .filter(|p| !args.banned || p.record.banned)
        .collect();

    if peers.is_empty() {
        let message = if total == 0 {
            format!(
                "no peers observed yet: this node has not submitted jobs (ledger: {})",
                path.display()
            )
        } else {
            format!(
                "no banned peers among the {total} observed (ledger: {})",
                path.display()
            )
        };
        match args.output_format {
            OutputFormat::Text => println!("{message}"),
            OutputFormat::Json => {
                println!("[]");
                eprintln!("{message}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now_ms = ledger::unix_ms(SystemTime::now());
    print!(
        "{}",
        match args.output_format {
            OutputFormat::Text => text(&peers, &config, now_ms),
            OutputFormat::Json => json(&peers),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// One peer's row: its record and what the scheduler derives from it.
struct Peer {
    /// Its id.
    id: PeerId,
    /// What this node observed of it.
    record: PeerReputation,
    /// Probability that its next result is right (Sarmenta's credibility,
    /// from its streak and the population's fault rate; 0 when banned).
    credibility: f64,
    /// Whether it is established (may run a job alone when credible).
    established: bool,
}

impl Peer {
    /// Its state for people: `banned`, `established`, `new` (no verified
    /// good result yet), or `None` (working towards established).
    fn state(&self) -> Option<&'static str> {
        let r = &self.record;
        if r.banned {
            Some("banned")
        } else if self.established {
            Some("established")
        } else if r.agreed + r.spot_passed == 0 {
            Some("new")
        } else {
            None
        }
    }
}

/// Every peer of the ledger at `path`, most trusted first and banned peers
/// last, with the reputation config they were judged by (the scheduler's
/// default, which `peergrid submit` uses). No ledger file: no peers.
fn load(path: &Path) -> anyhow::Result<(Vec<Peer>, ReputationConfig)> {
    let config = ReputationConfig::default();
    if !path.exists() {
        return Ok((Vec::new(), config));
    }
    let ledger = Ledger::open(path).map_err(|error| match error {
        LedgerError::Locked { .. } => anyhow::anyhow!(
            "the ledger {} is in use by another peergrid process (a running `peergrid submit`?); \
             try again when it has finished",
            path.display()
        ),
        error => anyhow::Error::new(error),
    })?;
    let mut reputation = Reputation::new(config.clone());
    reputation_store::load(&ledger, &mut reputation)
        .with_context(|| format!("reading the peers of the ledger {}", path.display()))?;
    drop(ledger);

    let mut peers: Vec<Peer> = reputation
        .iter()
        .map(|(id, record)| {
            let standing = reputation.standing(id);
            Peer {
                id: *id,
                record: record.clone(),
                credibility: standing.credibility.unwrap_or(0.0),
                established: standing.established,
            }
        })
        .collect();
    peers.sort_by(|a, b| {
        a.record
            .banned
            .cmp(&b.record.banned)
            .then(b.record.trust().total_cmp(&a.record.trust()))
            .then(a.id.as_bytes().cmp(b.id.as_bytes()))
    });
    Ok((peers, config))
}

/// The aligned table for people.
fn text(peers: &[Peer], config: &ReputationConfig, now_ms: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12}  {:>5}  {:>5}  {:<11}  {:>6}  {:>9}  {:>8}  {:>7}  {:>11}  {:>4}  {:>8}  last seen",
        "peer",
        "trust",
        "cred",
        "state",
        "agreed",
        "dissented",
        "timeouts",
        "invalid",
        "spot ok/bad",
        "bans",
        "recovery",
    );
    for p in peers {
        let r = &p.record;
        let recovery = if r.banned {
            format!("{}/{}", r.recovery_progress, config.recovery_passes)
        } else {
            "—".to_string()
        };
        let spot = format!("{}/{}", r.spot_passed, r.spot_failed);
        let _ = writeln!(
            out,
            "{:<12}  {:>5.3}  {:>5.3}  {:<11}  {:>6}  {:>9}  {:>8}  {:>7}  {:>11}  {:>4}  {:>8}  {}",
            p.id.short(),
            r.trust(),
            p.credibility,
            p.state().unwrap_or("—"),
            r.agreed,
            r.dissented,
            r.timeouts,
            r.invalid,
            spot,
            r.times_banned,
            recovery,
            ago(now_ms, r.last_seen_ms),
        );
    }
    out
}

/// The peers as a JSON array, one object per peer with every field.
fn json(peers: &[Peer]) -> String {
    use serde_json::json;
    let rows: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            let r = &p.record;
            json!({
                "peer_id": p.id.to_string(),
                "trust": r.trust(),
                "credibility": p.credibility,
                "state": p.state(),
                "banned": r.banned,
                "established": p.established,
                "good": r.good,
                "bad": r.bad,
                "consecutive_valid": r.consecutive_valid,
                "agreed": r.agreed,
                "dissented": r.dissented,
                "timeouts": r.timeouts,
                "invalid": r.invalid,
                "spot_passed": r.spot_passed,
                "spot_failed": r.spot_failed,
                "first_seen_unix_ms": r.first_seen_ms,
                "last_seen_unix_ms": r.last_seen_ms,
                "banned_at_unix_ms": r.banned_at_ms,
                "times_banned": r.times_banned,
                "recovery_progress": r.recovery_progress,
            })
        })
        .collect();
    let value = serde_json::Value::Array(rows);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

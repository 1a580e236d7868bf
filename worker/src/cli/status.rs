//! `peergrid status`: what the local running node is doing, from its own
//! mouth (the `peergrid.v1.Node/Status` call; see
//! [`peergrid_worker::status`]).
//!
//! The node is the one `--node ADDR` names, else the one the effective node
//! configuration describes (`peergrid config show`: built-in defaults <
//! `--config` or the default `node.toml` < `--data-dir`): its `listen`
//! address, asked on loopback when it is an unspecified address such as
//! `0.0.0.0`. Over TLS (unless `--insecure`, given or configured) the client
//! presents the identity of the data directory, or a throwaway one if that
//! directory has none: reading a status needs no standing in the grid. A
//! node that does not answer is an error naming the address and how to
//! start one (exit 1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use peergrid_proto::tls::Transport;
use peergrid_proto::{Identity, identity::KEY_FILE};
use peergrid_worker::status::{self, NodeStatus, StatusError};

use super::args::{OutputFormat, StatusArgs};
use super::config::NodeSettings;

/// Asks the node for its status and prints it.
pub async fn run(args: StatusArgs, insecure: bool) -> anyhow::Result<ExitCode> {
    let (settings, _) = NodeSettings::load(args.config.as_deref())?;
    let flags = NodeSettings {
        data_dir: args.data_dir.clone(),
        insecure: insecure.then_some(true),
        ..NodeSettings::default()
    };
    let effective = settings.overlay(flags).resolve(|| super::data_dir(None))?;
    let addr = match &args.node {
        Some(addr) => addr.clone(),
        None => dialable(effective.listen).to_string(),
    };
    let identity = identity_of(&effective.data_dir)?;
    let transport = Transport::new(&identity, effective.insecure)?;
    let status = match status::fetch(&addr, &transport, args.timeout).await {
        Ok(status) => status,
        Err(StatusError::Unreachable { addr, reason }) => {
            let hint = if args.node.is_some() {
                "is a node running there? (`peergrid node` starts one)"
            } else {
                "is the node running? start it with `peergrid node` (or name another with --node ADDR)"
            };
            // Something listens but the handshake failed: plaintext and TLS
            // do not mix.
            let tls = if reason.contains("Connection refused") {
                ""
            } else if transport.is_tls() {
                "; a node started with --insecure needs `peergrid --insecure status`"
            } else {
                "; a node serving TLS refuses --insecure clients"
            };
            anyhow::bail!("no peergrid node answers at {addr}: {hint} ({reason}{tls})");
        }
        Err(StatusError::Refused {
            addr,
            code: tonic::Code::Unimplemented,
            message,
        }) => anyhow::bail!(
            "the node at {addr} does not serve peergrid.v1.Node/Status (an older peergrid?): {message}"
        ),
        // A TLS node drops a plaintext client's call.
        Err(StatusError::Refused {
            addr,
            code:
                code @ (tonic::Code::Cancelled
                | tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Internal),
            message,
        }) if !transport.is_tls() => anyhow::bail!(
            "the node at {addr} dropped the plaintext status call ({code:?}: {message}); \
             does it serve TLS? then ask without --insecure"
        ),
        Err(e) => return Err(e.into()),
    };
    let text = match args.output_format {
        OutputFormat::Text => text(&status, &addr),
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(&status).context("writing the status")?;
            json.push('\n');
            json
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The address to dial for a node listening on `listen`: loopback for an
/// unspecified address (`0.0.0.0`, `[::]`).
pub fn dialable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The identity in `dir` if there is one, else a throwaway one (never
/// created on disk: asking for a status must not grind or write a key).
fn identity_of(dir: &Path) -> anyhow::Result<Identity> {
    if dir.join(KEY_FILE).is_file() {
        let (identity, _) = Identity::load_or_create(dir)
            .with_context(|| format!("reading the identity in {}", dir.display()))?;
        Ok(identity)
    } else {
        Ok(Identity::generate())
    }
}

/// A duration in ms for people: `3d 4h`, `2h 5m`, `7m 12s`, `42s`.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CPU time in µs for people, in seconds: `42 ms` under a second, else
/// `12.3 s`, `1,234.5 s`.
fn cpu_time(us: u64) -> String {
    if us < 1_000_000 {
        format!("{} ms", us / 1000)
    } else {
        let tenths = us / 100_000;
        format!("{}.{} s", thousands(tenths / 10), tenths % 10)
    }
}

/// The status for people, one aspect a line.
fn text(s: &NodeStatus, addr: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: String| {
        let _ = writeln!(out, "{label:<11} {value}");
    };
    line(&mut out, "node", format!("{} at {addr}", s.peer_id));
    line(&mut out, "version", s.version.clone());
    let since = super::job::utc(s.started_at_unix_ms);
    line(
        &mut out,
        "uptime",
        format!("{} (started {since})", duration(s.uptime_ms)),
    );
    let transport = if s.tls { "TLS" } else { "plaintext" };
    let listen = s.listen_addr.as_deref().unwrap_or("not serving");
    let advertised = if s.advertised_addrs.is_empty() {
        "nothing".to_string()
    } else {
        s.advertised_addrs.join(", ")
    };
    line(
        &mut out,
        "listening",
        format!("{listen} ({transport}), advertised as {advertised}"),
    );
    line(
        &mut out,
        "slots",
        format!(
            "{} in use, {} free, {} total",
            s.slots.in_use, s.slots.free, s.slots.total
        ),
    );
    let j = &s.jobs;
    let reasons: Vec<String> = j
        .rejected_by
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| format!("{} {}", r.reason, r.count))
        .collect();
    let rejected = if reasons.is_empty() {
        format!("{} rejected", j.rejected)
    } else {
        format!("{} rejected ({})", j.rejected, reasons.join(", "))
    };
    line(
        &mut out,
        "jobs",
        format!("{} run, {} failed, {rejected}", j.run, j.failed),
    );
    // CPU time is the work of every job; only jobs under a fuel budget
    // count fuel.
    line(
        &mut out,
        "work done",
        format!(
            "CPU time {}, fuel {}",
            cpu_time(j.cpu_time_us),
            thousands(j.fuel_used)
        ),
    );
    line(
        &mut out,
        "modules",
        format!(
            "{} received, {} refused",
            j.modules_received, j.modules_refused
        ),
    );
    let p = &s.peers;
    line(
        &mut out,
        "peers",
        format!(
            "{} alive, {} suspect, {} dead ({} verified)",
            p.alive, p.suspect, p.dead, p.verified
        ),
    );
    line(
        &mut out,
        "connected",
        format!(
            "gossip channels to {} peer(s); {} inbound connection(s), this one included",
            p.gossip_channels, p.inbound_connections
        ),
    );
    line(&mut out, "reputation", s.reputation.note.clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_dialled_on_loopback() {
        let any: SocketAddr = "0.0.0.0:7400".parse().unwrap();
        assert_eq!(dialable(any), "127.0.0.1:7400".parse().unwrap());
        let any6: SocketAddr = "[::]:7400".parse().unwrap();
        assert_eq!(dialable(any6), "[::1]:7400".parse().unwrap());
        let fixed: SocketAddr = "10.0.0.5:7401".parse().unwrap();
        assert_eq!(dialable(fixed), fixed);
    }

    #[test]
    fn numbers_read_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(66_107_081), "66,107,081");
        assert_eq!(cpu_time(0), "0 ms");
        assert_eq!(cpu_time(42_999), "42 ms");
        assert_eq!(cpu_time(12_345_678), "12.3 s");
        assert_eq!(cpu_time(1_234_567_890), "1,234.5 s");
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(61_000), "1m 1s");
        assert_eq!(duration(2 * 3_600_000 + 5 * 60_000), "2h 5m");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
    }
}

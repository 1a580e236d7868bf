//! `peergrid peers --node ADDR`: the membership table of a running node, as
//! its `Members` answer gives it (its own advert and its live peers'),
//! every advert verified here before it is shown.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use peergrid_proto::tls::Transport;
use peergrid_proto::{Identity, pb};
use scheduler_lib::ledger::unix_ms;
use scheduler_lib::membership::verify_advert;

/// Prints the membership table of the node at `addr`.
/// Over TLS the caller presents a throwaway identity: reading the table
/// needs no standing in the grid.
pub async fn run(
    addr: &str,
    puzzle_bits: u32,
    json: bool,
    insecure: bool,
) -> anyhow::Result<ExitCode> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("bad node address {addr}"))?
        .connect_timeout(Duration::from_secs(3));
    let transport = Transport::new(&Identity::generate(), insecure)?;
    let channel = transport
        .connect(endpoint, None)
        .await
        .with_context(|| format!("connecting to the node at {addr}"))?
        .channel;
    let members = pb::membership_client::MembershipClient::new(channel)
        .members(pb::MembersRequest {})
        .await
        .with_context(|| format!("asking {addr} for its members"))?
        .into_inner();
    let now = unix_ms(SystemTime::now());
    let mut rows = Vec::new();
    for envelope in &members.adverts {
        match verify_advert(envelope, puzzle_bits) {
            Ok(v) => rows.push(v),
            Err(e) => eprintln!("warning: {addr} sent an advert that does not verify: {e}"),
        }
    }
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|v| {
                serde_json::json!({
                    "peer_id": v.peer.to_string(),
                    "addrs": v.advert.addrs,
                    "free_slots": v.advert.free_slots,
                    "total_slots": v.advert.total_slots,
                    "cores": v.advert.cores,
                    "seq": v.advert.seq,
                    "last_seen_unix_ms": v.advert.timestamp_unix_ms,
                    "state": "alive",
                    "version": v.advert.version,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12}  {:<22}  {:>5}  {:>5}  {:<10}  state",
        "peer", "address", "free", "slots", "last seen"
    );
    for v in &rows {
        let age = now.saturating_sub(v.advert.timestamp_unix_ms) / 1000;
        println!(
            "{:<12}  {:<22}  {:>5}  {:>5}  {:<10}  alive",
            v.peer.short(),
            v.primary_addr(),
            v.advert.free_slots,
            v.advert.total_slots,
            format!("{age}s ago"),
        );
    }
    eprintln!(
        "{} members known to {addr} (its own advert included)",
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}

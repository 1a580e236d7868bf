//! `peergrid node`: serve jobs to other peers until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use peergrid_proto::Identity;
use peergrid_worker::{Node, NodeConfig};
use scheduler_lib::client::WorkerConn;
use tracing::{info, warn};

use super::args::NodeArgs;

/// Runs a node.
pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let dir = super::data_dir(args.data_dir)?;
    let (identity, created) = Identity::load_or_create(&dir)?;
    if created {
        info!(dir = %dir.display(), "created a new node identity");
    }
    let mut config = NodeConfig::new(&dir);
    if let Some(slots) = args.slots {
        anyhow::ensure!(slots > 0, "--slots must be at least 1");
        config.slots = slots;
    }
    let slots = config.slots;
    let node = Node::new(identity, config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("peer id {}", node.peer_id());
    println!(
        "listening on {addr} with {slots} job slot(s); data in {}",
        dir.display()
    );
    for peer in &args.peers {
        greet(peer).await;
    }
    node.serve(listener, shutdown_signal()).await?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Says hello to a bootstrap peer and logs who answered.
async fn greet(addr: &str) {
    let answer = async {
        let conn = WorkerConn::connect(addr, Duration::from_secs(3)).await?;
        conn.hello().await
    };
    match answer.await {
        Ok(info) => info!(
            peer = %info.peer.short(),
            %addr,
            free_slots = info.hello.free_slots,
            "bootstrap peer is up"
        ),
        Err(e) => warn!(%addr, error = %e, "bootstrap peer did not answer"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutting down: finishing in-flight calls");
}

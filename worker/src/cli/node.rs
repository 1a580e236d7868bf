//! `peergrid node`: serve jobs to other peers until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use peergrid_worker::{Node, NodeConfig};
use tracing::info;

use super::args::NodeArgs;

/// Runs a node.
pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let dir = super::data_dir(args.data_dir)?;
    let (identity, created) = super::identity::load_or_grind(&dir, args.puzzle_bits, true)?;
    if created {
        info!(dir = %dir.display(), "created a new node identity");
    }
    let mut config = NodeConfig::new(&dir);
    // Untrusted modules compile in a child process under a time and memory
    // budget (compile bombs).
    config.sandbox.compiler = Some(super::compiler_command()?);
    config.gossip.membership.puzzle_bits = args.puzzle_bits;
    config.gossip.bootstrap = args.peers.clone();
    config.gossip.advertise = args.advertise.clone();
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
    node.serve(listener, shutdown_signal()).await?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
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

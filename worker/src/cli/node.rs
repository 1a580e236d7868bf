//! `peergrid node`: serve jobs to other peers until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use peergrid_worker::{Node, NodeConfig};
use tracing::{info, warn};

use super::args::NodeArgs;

/// Runs a node (`insecure`: plaintext instead of TLS).
pub async fn run(args: NodeArgs, insecure: bool) -> anyhow::Result<ExitCode> {
    let dir = super::data_dir(args.data_dir.clone())?;
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
    config.insecure = insecure;
    if insecure {
        warn!(
            "--insecure: serving plaintext gRPC; peers are not authenticated and traffic is readable"
        );
    }
    if let Some(slots) = args.slots {
        anyhow::ensure!(slots > 0, "--slots must be at least 1");
        config.slots = slots;
    }
    apply_protection(&args, &mut config);
    let slots = config.slots;
    let node = Node::new(identity, config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Off unless asked for; stops with the node.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match args.metrics {
        Some(metrics_addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("binding the metrics address {metrics_addr}"))?;
            println!(
                "metrics on http://{}/metrics",
                metrics_listener.local_addr()?
            );
            Some(tokio::spawn(peergrid_worker::metrics::serve_metrics(
                Arc::clone(&node),
                metrics_listener,
                async {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        None => None,
    };
    println!("peer id {}", node.peer_id());
    println!(
        "listening on {addr} with {slots} job slot(s); data in {}",
        dir.display()
    );
    let served = node.serve(listener, shutdown_signal()).await;
    let _ = stop_metrics.send(());
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    served?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The operator policy and flood-control flags, into the node's config.
fn apply_protection(args: &NodeArgs, config: &mut NodeConfig) {
    let policy = &mut config.policy;
    policy
        .allow_submitters
        .extend(args.allow_submitters.iter().copied());
    policy
        .deny_submitters
        .extend(args.deny_submitters.iter().copied());
    policy
        .allow_modules
        .extend(args.allow_modules.iter().copied());
    policy
        .deny_modules
        .extend(args.deny_modules.iter().copied());
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if let Some(max) = args.max_jobs_per_submitter {
        config.flood.max_jobs_per_submitter = Some(as_usize(max));
    }
    config.connections.max_connections = as_usize(args.max_connections);
    config.connections.max_connections_per_ip = as_usize(args.max_connections_per_ip);
    for (rule, count) in [
        ("allow-submitter", policy.allow_submitters.len()),
        ("deny-submitter", policy.deny_submitters.len()),
        ("allow-module", policy.allow_modules.len()),
        ("deny-module", policy.deny_modules.len()),
    ] {
        if count > 0 {
            info!(rule, entries = count, "operator policy");
        }
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

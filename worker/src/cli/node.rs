//! `peergrid node`: serve jobs to other peers until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use peergrid_worker::{Node, NodeConfig};
use tracing::{info, warn};

use super::args::NodeArgs;
use super::config::Effective;

/// Runs a node (`insecure`: the global `--insecure`, plaintext instead of
/// TLS), configured by defaults < its config file < its flags.
pub async fn run(args: NodeArgs, insecure: bool) -> anyhow::Result<ExitCode> {
    let (settings, config_file) = Effective::from_args(&args, insecure)?;
    if let Some(path) = &config_file {
        info!(file = %path.display(), "read the config file");
    }
    let dir = settings.data_dir.clone();
    let (identity, created) = super::identity::load_or_grind(&dir, settings.puzzle_bits, true)?;
    if created {
        info!(dir = %dir.display(), "created a new node identity");
    }
    let mut config = NodeConfig::new(&dir);
    // Untrusted modules compile in a child process under a time and memory
    // budget (compile bombs).
    config.sandbox.compiler = Some(super::compiler_command()?);
    settings.apply(&mut config);
    if settings.insecure {
        warn!(
            "--insecure: serving plaintext gRPC; peers are not authenticated and traffic is readable"
        );
    }
    log_policy(&config);
    let slots = config.slots;
    let node = Node::new(identity, config)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // Off unless asked for; stops with the node.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match settings.metrics {
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
    // The status page: off unless asked for, loopback unless --ui-public.
    let (stop_ui, ui_stopped) = tokio::sync::oneshot::channel::<()>();
    let ui = match node.config().ui {
        Some(ui_config) => {
            let ui_listener = peergrid_worker::ui::bind(&ui_config).await?;
            println!("status page on http://{}/", ui_listener.local_addr()?);
            Some(tokio::spawn(peergrid_worker::ui::serve_ui(
                Arc::clone(&node),
                ui_listener,
                async {
                    let _ = ui_stopped.await;
                },
            )))
        }
        None => None,
    };
    let signals = count_signals()?;
    println!("peer id {}", node.peer_id());
    println!(
        "listening on {addr} with {slots} job slot(s); data in {}",
        dir.display()
    );
    let served = serve_until_stopped(&node, listener, signals).await;
    let _ = stop_metrics.send(());
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    let _ = stop_ui.send(());
    if let Some(ui) = ui {
        let _ = ui.await;
    }
    served?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Logs the operator policy in force (from the config file and flags).
fn log_policy(config: &NodeConfig) {
    let policy = &config.policy;
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

/// How long running jobs may take to finish after Ctrl-C or SIGTERM before
/// the node stops anyway (a second signal stops it at once).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Counts Ctrl-C and SIGTERM signals. The handlers are installed when this
/// is created, before the node says it is listening, so a signal sent as
/// soon as it is up is never the default (fatal) one.
fn count_signals() -> anyhow::Result<tokio::sync::watch::Receiver<u32>> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        )
    };
    let (count, signals) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            #[cfg(not(unix))]
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            count.send_modify(|n| *n += 1);
        }
    });
    Ok(signals)
}

/// Serves until a signal, then lets running jobs finish for at most
/// [`SHUTDOWN_GRACE`]. Jobs still running after that are handed back: their
/// connections close, and their submitters place them elsewhere.
async fn serve_until_stopped(
    node: &std::sync::Arc<Node>,
    listener: tokio::net::TcpListener,
    signals: tokio::sync::watch::Receiver<u32>,
) -> Result<(), peergrid_worker::node::NodeError> {
    let mut first = signals.clone();
    let stop = async move {
        let _ = first.wait_for(|n| *n >= 1).await;
        info!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "shutting down: no new jobs; running ones may finish (Ctrl-C again to stop now)"
        );
    };
    let serve = std::sync::Arc::clone(node).serve(listener, stop);
    tokio::pin!(serve);
    let mut second = signals;
    let grace = async move {
        if second.wait_for(|n| *n >= 1).await.is_err() {
            return std::future::pending::<()>().await;
        }
        tokio::select! {
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
            _ = second.wait_for(|n| *n >= 2) => {}
        }
    };
    tokio::select! {
        served = &mut serve => served,
        () = grace => {
            let running = node.total_slots() - node.free_slots();
            warn!(
                running,
                "stopping with jobs still running; their submitters will place them elsewhere"
            );
            Ok(())
        }
    }
}

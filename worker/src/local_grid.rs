//! A grid of real nodes inside one process, on 127.0.0.1 ephemeral ports,
//! each with a fresh identity and a temporary data directory. Used by
//! `peergrid demo` and the integration tests; handy for local development of
//! a service that embeds `scheduler-lib`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use peergrid_proto::{Identity, PeerId};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::NodeConfig;
use crate::node::{Node, NodeError};

/// One node of a [`LocalGrid`]. Each node has its own tokio runtime, so
/// [`GridNode::kill`] drops its listener *and* every open connection at
/// once, as a killed process would.
#[derive(Debug)]
pub struct GridNode {
    /// The node's shared state.
    pub node: Arc<Node>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its identity (to restart it as itself).
    pub identity: Identity,
    /// Where its status page is served, if its config asks for one
    /// ([`NodeConfig::ui`]; port 0 there: the port bound here).
    pub ui_addr: Option<SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), NodeError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl GridNode {
    /// Starts one node with `config` (an empty `data_dir` is replaced by a
    /// fresh temporary directory, removed with the node) on an ephemeral port of 127.0.0.1, with a fresh
    /// identity that solves the configured puzzle.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        Self::start_on(config, IpAddr::V4(Ipv4Addr::LOCALHOST), None).await
    }

    /// Like [`GridNode::start`], on `ip` (any 127.0.0.0/8 address works on
    /// Linux, so a test can give each node its own address), with `identity`
    /// if given (to restart a node as itself). The status page is served
    /// too if the config asks for it; an address [`crate::ui::check`]
    /// refuses is an error.
    pub async fn start_on(
        mut config: NodeConfig,
        ip: IpAddr,
        identity: Option<Identity>,
    ) -> Result<Self, NodeError> {
        let dir = if config.data_dir.as_os_str().is_empty() {
            let dir = tempfile::Builder::new()
                .prefix("peergrid-node-")
                .tempdir()?;
            config.data_dir = dir.path().to_path_buf();
            Some(dir)
        } else {
            None
        };
        // Bound before the node's runtime exists: an error here drops no
        // runtime inside this async context.
        let ui_listener = match &config.ui {
            Some(ui) => {
                crate::ui::check(ui)?;
                let listener = std::net::TcpListener::bind(ui.addr).map_err(|source| {
                    crate::ui::UiError::Bind {
                        addr: ui.addr,
                        source,
                    }
                })?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            None => None,
        };
        let identity = identity.unwrap_or_else(|| {
            peergrid_proto::puzzle::grind(config.gossip.membership.puzzle_bits, |_| {})
        });
        let node = Node::new(identity.clone(), config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("peergrid-grid-node")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(Arc::clone(&node).serve(listener, async {
            let _ = stopped.await;
        }));
        // The page stops with the node's runtime (`kill`).
        let ui_addr = match ui_listener {
            Some(listener) => {
                let ui_addr = listener.local_addr()?;
                let listener = {
                    let _guard = runtime.enter();
                    TcpListener::from_std(listener)?
                };
                runtime.spawn(crate::ui::serve_ui(
                    Arc::clone(&node),
                    listener,
                    std::future::pending(),
                ));
                Some(ui_addr)
            }
            None => None,
        };
        Ok(Self {
            node,
            addr,
            identity,
            ui_addr,
            runtime: Some(runtime),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        })
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.node.peer_id()
    }

    /// Stops serving gracefully: in-flight calls finish first.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.kill();
    }

    /// Stops at once: the listener and every connection are dropped and
    /// in-flight calls get no answer, like a process killed with SIGKILL.
    pub fn kill(&mut self) {
        self.stop.take();
        self.task.take();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for GridNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Several nodes in this process.
#[derive(Debug)]
pub struct LocalGrid {
    /// The nodes, in start order.
    pub nodes: Vec<GridNode>,
}

impl LocalGrid {
    /// Starts one node per config.
    pub async fn start(configs: Vec<NodeConfig>) -> Result<Self, NodeError> {
        let mut nodes = Vec::with_capacity(configs.len());
        for config in configs {
            nodes.push(GridNode::start(config).await?);
        }
        Ok(Self { nodes })
    }

    /// `host:port` of every node, for a scheduler's peer list.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.to_string()).collect()
    }

    /// Stops every node gracefully.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }
}

//! # peergrid-worker: the peergrid node
//!
//! A node serves the `peergrid.v1.Worker` gRPC service: it tells submitters
//! who it is and what it has free ([`Hello`](peergrid_proto::pb::HelloRequest)),
//! receives WASM modules in chunks into a content-addressed on-disk
//! [`store`], admits signed job envelopes ([`admission`]: signature, address,
//! limits, freshness via [`replay`]), runs them on a bounded pool of job
//! threads ([`pool`]) inside the wasmtime sandbox, and answers with a result
//! claim signed by its own identity.
//!
//! Beside it every node serves `peergrid.v1.Membership` ([`gossip`]),
//! `peergrid.v1.Node` (its [`status`]), the standard gRPC health service and
//! gRPC server reflection, so generic gRPC tools can inspect it. Off by
//! default, it also serves Prometheus [`metrics`] and a status page for its
//! operator ([`ui`]).
//!
//! The `peergrid` binary in this crate is a thin command line over this
//! library and [`scheduler_lib`].
//!
//! ```no_run
//! use peergrid_worker::{Node, NodeConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = NodeConfig::new("/tmp/peergrid-node");
//! // Identities must solve the network's puzzle (Sybil cost).
//! let identity = peergrid_proto::puzzle::grind(config.gossip.membership.puzzle_bits, |_| {});
//! let node = Node::new(identity, config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("serving on {}", listener.local_addr()?);
//! node.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod activity;
pub mod admission;
pub mod config;
pub mod connections;
pub mod deadlines;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod flood;
pub mod gossip;
pub mod http;
pub mod listener;
pub mod local_grid;
pub mod local_run;
pub mod metrics;
pub mod node;
pub mod penalty;
pub mod policy;
pub mod pool;
pub mod replay;
pub mod status;
pub mod store;
pub mod ui;

pub use config::{LOCAL_PUZZLE_BITS, NodeConfig};
pub use gossip::GossipConfig;
pub use local_grid::{GridNode, LocalGrid};
pub use node::{Node, NodeError, NodeStats, WorkerService};
pub use status::NodeStatus;

/// This software's name and version, as nodes report it (`Hello`, adverts,
/// `Status`): e.g. "peergrid 0.1.0".
pub const VERSION: &str = concat!("peergrid ", env!("CARGO_PKG_VERSION"));

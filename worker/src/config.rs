//! The knobs of a node, in one place.

use std::path::PathBuf;
use std::time::Duration;

use scheduler_lib::Limits;

/// Everything a node needs to run; [`NodeConfig::new`] gives safe defaults.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the identity key and the module store live.
    pub data_dir: PathBuf,
    /// Concurrent jobs (threads in the job pool).
    pub slots: usize,
    /// Limits for fields a job leaves at zero.
    pub default_limits: Limits,
    /// The most one job may ask for; larger requests are refused.
    pub max_limits: Limits,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: u64,
    /// Largest job input (stdin + args) accepted, in bytes.
    pub max_input_bytes: u64,
    /// Concurrent module uploads.
    pub max_concurrent_uploads: usize,
    /// Live job envelopes remembered for replay protection.
    pub replay_capacity: usize,
    /// Engine settings of the sandbox.
    pub sandbox: peergrid_sandbox::Config,
    /// Membership: bootstrap peers, advertised address, gossip timing, the
    /// network's identity puzzle.
    pub gossip: crate::gossip::GossipConfig,
    /// Serve and dial peers in plaintext instead of TLS 1.3 keyed by the
    /// node's identity. Debugging only (`--insecure`); default: false.
    pub insecure: bool,
    /// Flood control: rate limits per source IP and per submitter, and the
    /// jobs one submitter may run at once.
    pub flood: crate::flood::FloodConfig,
    /// Connection caps (total, per IP) and deadlines for silent connections.
    pub connections: crate::connections::ConnectionLimits,
    /// Per-call deadlines and HTTP/2 limits of the gRPC server.
    pub calls: crate::deadlines::CallLimits,
    /// The operator's allow and deny lists of submitters and modules.
    pub policy: crate::policy::OperatorPolicy,
    /// The status page ([`crate::ui`]): where `peergrid node` and
    /// [`GridNode`](crate::GridNode) serve it. Default: none (off).
    pub ui: Option<crate::ui::UiConfig>,
    /// Deliberate misbehaviour (demo and tests only).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::fault::Fault>,
}

/// Identity puzzle bits for grids on one machine (demo, tests, benches):
/// cheap to grind (a few milliseconds), so throwaway identities stay cheap.
pub const LOCAL_PUZZLE_BITS: u32 = 8;

impl NodeConfig {
    /// Defaults for a node of a grid on one machine (demo, tests, benches):
    /// [`LOCAL_PUZZLE_BITS`], and gossip every 200 ms with heartbeats fast
    /// enough that a stopped node is noticed within seconds, and per-IP
    /// limits loose enough for one shared address. Its data
    /// directory is set by whoever starts it (see [`crate::LocalGrid`]).
    pub fn local() -> Self {
        let mut config = Self::new("");
        let m = &mut config.gossip.membership;
        m.puzzle_bits = LOCAL_PUZZLE_BITS;
        m.refresh_interval_ms = 500;
        m.suspect_after_ms = 1_500;
        m.dead_after_ms = 3_000;
        m.forget_after_ms = 3_000;
        m.sweep_interval_ms = 200;
        m.probe_timeout_ms = 2_000;
        config.gossip.interval = std::time::Duration::from_millis(200);
        // Every node and submitter of a local grid shares 127.0.0.1.
        config.flood = crate::flood::FloodConfig::local();
        config.connections.max_connections_per_ip = config.connections.max_connections;
        config
    }

    /// Defaults for a node keeping its state in `data_dir`: one slot per
    /// core minus one for the machine's owner, 512 MiB and 10 minutes per job
    /// at most, modules up to 64 MiB (real WASI programs of 20–56 MiB fit; a
    /// 100 MiB upload is refused by its header).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            data_dir: data_dir.into(),
            slots: cores.saturating_sub(1).max(1),
            default_limits: Limits::default(),
            max_limits: Limits {
                fuel: 1_000_000_000_000,
                memory_bytes: 512 << 20,
                wall_time: Duration::from_secs(600),
                max_output_bytes: 64 << 20,
                max_stderr_bytes: 1 << 20,
                // Not a maximum: any budget kind is accepted.
                budget: scheduler_lib::Budget::WallTime,
            },
            max_module_bytes: 64 << 20,
            max_input_bytes: 16 << 20,
            max_concurrent_uploads: 4,
            replay_capacity: 1_000_000,
            sandbox: node_sandbox_config(),
            gossip: crate::gossip::GossipConfig::default(),
            insecure: false,
            flood: crate::flood::FloodConfig::default(),
            connections: crate::connections::ConnectionLimits::default(),
            calls: crate::deadlines::CallLimits::default(),
            policy: crate::policy::OperatorPolicy::default(),
            ui: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

/// The sandbox settings a node starts from: the library defaults, except
/// that NaNs are left as the CPU makes them
/// ([`peergrid_sandbox::Config::canonicalize_nans`] off). Canonicalizing
/// them would make float-heavy jobs 2.5x slower; without it replicas agree
/// bit for bit within one platform, and schedulers place all replicas of a
/// job on one platform (the `platform` a worker's `Hello` names).
pub fn node_sandbox_config() -> peergrid_sandbox::Config {
    let mut config = peergrid_sandbox::Config::default();
    config.canonicalize_nans = false;
    config
}

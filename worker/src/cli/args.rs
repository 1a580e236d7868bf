//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// peergrid: a peer-to-peer compute grid for WASM jobs, verified by quorum.
#[derive(Debug, Parser)]
#[command(name = "peergrid", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr (RUST_LOG sets the level, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Talk to peers in plaintext HTTP/2 instead of TLS 1.3 keyed by node
    /// identities: no encryption, no proof of who answers. Debugging only;
    /// a TLS node refuses plaintext clients and vice versa.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this machine's node identity (if absent) and print its peer id.
    Keygen(KeygenArgs),
    /// Run a worker node: serve jobs to other peers.
    Node(NodeArgs),
    /// The node's configuration: `config show` prints what `peergrid node`
    /// would use after merging its config file and flags.
    Config(ConfigArgs),
    /// Ask the running node (this machine's, by default) what it is doing:
    /// peer id, uptime, slots, jobs run/failed/rejected, work done, peers.
    Status(StatusArgs),
    /// Run a job on k workers and print the output a majority agreed on.
    Submit(SubmitArgs),
    /// Run a job locally in the same sandbox (the reference result).
    Run(RunArgs),
    /// Check a result certificate offline: valid signatures from enough
    /// distinct workers, all for the same job, module, input and output.
    Verify(VerifyArgs),
    /// List the peers this node has used as workers, most trusted first:
    /// trust, credibility, agreements, faults, bans.
    Peers(PeersArgs),
    /// List the jobs submitted from this data directory, newest first: id,
    /// submitted, module, replicas, state, verdict (or why there is none).
    Jobs(JobsArgs),
    /// Explain one submitted job: where each replica ran, what each worker
    /// signed, fuel and time, failures and stderr, the verdict and why.
    Job(JobArgs),
    /// Start a local grid with one cheating node, run the example jobs, and
    /// show the cheater being caught. No set-up needed.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Measure what verification costs: k=1 and k=3 on a local grid versus
    /// a local sandbox run, as ratios from one run.
    #[cfg(feature = "demo")]
    Bench(BenchArgs),
    /// Internal: the sandbox's compiler child process. Reads one compile
    /// request on stdin and writes the compiled module to stdout under the
    /// requested time and memory limits; `node` and `demo` run it to
    /// compile untrusted modules. Not for use by hand.
    #[command(name = COMPILE_MODULE, hide = true)]
    CompileModule,
}

/// The hidden subcommand that runs the sandbox's compiler child process.
pub const COMPILE_MODULE: &str = "__compile-module";

/// `peergrid keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Data directory (default: the user's data dir, e.g. ~/.local/share/peergrid).
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The network's identity puzzle: leading zero bits of sha256(sha256(key)).
    #[arg(long, default_value_t = DEFAULT_PUZZLE_BITS)]
    pub puzzle_bits: u32,
}

/// `peergrid node` (and `peergrid config show`). Every flag is also a key
/// of the config file; a flag given overrides the file, so the flags that
/// have a default are `Option`s, the default applied after merging
/// (`super::config`), and their help names it.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Config file (TOML; keys as the flags, `-` as `_`) [default:
    /// node.toml in the user's config dir, e.g. ~/.config/peergrid, if it
    /// exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve gRPC on [default: 127.0.0.1:7400].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Bootstrap peers (host:port) to learn the grid from by gossip; repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// The address other peers should dial (default: the listen address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// The network's identity puzzle: leading zero bits of
    /// sha256(sha256(key)) [default: 16].
    #[arg(long, value_name = "BITS")]
    pub puzzle_bits: Option<u32>,
    /// Concurrent jobs (default: cores - 1, at least 1).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Data directory (default: the user's data dir).
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`); off by
    /// default. Bind it to a private address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Serve a status page for people on this address (`GET /`, and
    /// `/status.json`), e.g. 127.0.0.1:7080; off by default. Loopback
    /// addresses only, unless --ui-public.
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<SocketAddr>,
    /// Allow --ui on an address that is not loopback: anyone who can reach
    /// it sees this node's jobs, submitters and peers.
    #[arg(long)]
    pub ui_public: bool,
    /// Serve only these submitters (peer ids, 64 hex digits); repeatable.
    #[arg(long = "allow-submitter", value_name = "PEER_ID", value_parser = parse_peer_id)]
    pub allow_submitters: Vec<peergrid_proto::PeerId>,
    /// Never serve these submitters (peer ids, 64 hex digits); repeatable.
    #[arg(long = "deny-submitter", value_name = "PEER_ID", value_parser = parse_peer_id)]
    pub deny_submitters: Vec<peergrid_proto::PeerId>,
    /// Run only these modules (sha256, 64 hex digits); repeatable.
    #[arg(long = "allow-module", value_name = "SHA256", value_parser = parse_module_hash)]
    pub allow_modules: Vec<[u8; 32]>,
    /// Never store or run these modules (sha256, 64 hex digits); repeatable.
    #[arg(long = "deny-module", value_name = "SHA256", value_parser = parse_module_hash)]
    pub deny_modules: Vec<[u8; 32]>,
    /// Jobs one submitter may run here at once (default: half the slots,
    /// rounded up).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_jobs_per_submitter: Option<u64>,
    /// Connections open at once, in total [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Connections open at once from one IP address (IPv6: one /64)
    /// [default: 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: Option<u64>,
    /// The most fuel (instructions) one job may ask for; larger jobs are
    /// refused [default: 1000000000000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_fuel: Option<u64>,
    /// The most memory one job may ask for, in MiB [default: 512].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory_mib: Option<u64>,
    /// The longest wall time one job may ask for, in seconds [default: 600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_wall_time_secs: Option<u64>,
}

/// `peergrid config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do with the configuration.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The subcommands of `peergrid config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration `peergrid node` would run with, given the
    /// same config file and flags: built-in defaults < config file < flags.
    Show(ConfigShowArgs),
}

/// `peergrid config show`.
#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// The `peergrid node` flags to merge, as `peergrid node` would.
    #[command(flatten)]
    pub node: NodeArgs,
    /// How to print it: TOML (a valid node.toml) or JSON.
    #[arg(long, value_enum, default_value = "toml")]
    pub output: ConfigFormat,
}

/// How `peergrid config show` prints the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigFormat {
    /// A node.toml, usable as `--config`.
    Toml,
    /// One JSON object with the same keys.
    Json,
}

/// Limits shared by `submit` and `run`.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Count fuel and stop the job after this many instructions: every
    /// replica stops at the same instruction, so "out of fuel" is a verdict
    /// they agree on. Instrumented code runs 1.5–3x slower. Without it the
    /// job runs uninstrumented and only --wall-time bounds it (a timeout is
    /// never a vote).
    #[arg(long, value_name = "INSTRUCTIONS")]
    pub fuel: Option<u64>,
    /// Memory cap for the job, in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: u64,
    /// Wall-clock limit per run (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    pub wall_time: Duration,
    /// Largest stdout accepted, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub max_output_kib: u64,
}

/// The network's default identity puzzle (about a second of one core).
pub const DEFAULT_PUZZLE_BITS: u32 = 16;

/// `peergrid submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The WASM module (a WASI command).
    #[arg(required_unless_present = "resume")]
    pub module: Option<PathBuf>,
    /// Resume a job or a batch of the ledger that did not finish (its id,
    /// or a unique prefix of it, as printed when it started) instead of
    /// submitting one. A batch reports the inputs already verified from the
    /// ledger and runs only the rest.
    #[arg(long, value_name = "ID", conflicts_with_all = ["module", "input", "inputs", "args"])]
    pub resume: Option<String>,
    /// File to use as the job's stdin, or `-` for this process's stdin.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Run the module once per input, as one batch: a directory (each
    /// regular file is one input's stdin, in name order) or a JSON-lines
    /// file (one input per line: a JSON string that is the stdin, or an
    /// object with `stdin` or `stdin_hex`, and optional `args` and `id`).
    /// Results are written as they are verified (see `--out`).
    #[arg(long, value_name = "DIR|FILE.jsonl", conflicts_with_all = ["input", "certificate"])]
    pub inputs: Option<PathBuf>,
    /// Where a batch writes its results: one JSON object per line and per
    /// input, in the order they finish (default: stdout).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    /// Jobs of a batch in flight at once (default: adapts to how long jobs
    /// take, from one per free slot the grid has when the batch starts up
    /// to 96 per free slot, divided by the replicas, at most 1,024;
    /// workers queue a batch's jobs for their slots).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..10_000))]
    pub in_flight: Option<u64>,
    /// Workers that run the job (k) while their credibility is unknown; a
    /// strict majority must agree. Trusted workers may need fewer.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Always run exactly k replicas and decide by strict majority
    /// (adaptive replication off).
    #[arg(long)]
    pub fixed_replicas: bool,
    /// Worker or bootstrap addresses (host:port); repeatable. The rest of
    /// the grid is learned from them (their `Members` answer).
    #[arg(long = "peer", required = true)]
    pub peers: Vec<String>,
    /// The network's identity puzzle: workers whose key does not solve it
    /// get no work.
    #[arg(long, default_value_t = DEFAULT_PUZZLE_BITS)]
    pub puzzle_bits: u32,
    /// Give up after this long (e.g. 5m).
    #[arg(long, default_value = "5m", value_parser = humantime_duration)]
    pub timeout: Duration,
    /// Data directory holding the submitter's identity.
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write the certificate of the accepted result (the agreeing workers'
    /// signed claims) to this file, for `peergrid verify`.
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
    /// Job limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Program arguments for the job (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `peergrid verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate file (as written by `peergrid submit --certificate`).
    pub certificate: PathBuf,
    /// Also check that this file (or `-` for stdin) is the certified output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Distinct valid signatures required.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_signatures: u64,
    /// Count only signatures by these peers (64 hex digits); repeatable.
    #[arg(long = "known-peer", value_name = "PEER_ID", value_parser = parse_peer_id)]
    pub known_peers: Vec<peergrid_proto::PeerId>,
    /// Never count signatures by these peers (64 hex digits); repeatable.
    #[arg(long = "banned-peer", value_name = "PEER_ID", value_parser = parse_peer_id)]
    pub banned_peers: Vec<peergrid_proto::PeerId>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output_format: OutputFormat,
}

/// `peergrid peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// Data directory holding the ledger `peergrid submit` keeps.
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Show only the banned peers.
    #[arg(long)]
    pub banned: bool,
    /// Instead of this node's reputations, show the membership table of the
    /// running node at this address (id, address, slots, last seen, state).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<String>,
    /// The network's identity puzzle, to verify the adverts (with --node).
    #[arg(long, default_value_t = DEFAULT_PUZZLE_BITS)]
    pub puzzle_bits: u32,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output_format: OutputFormat,
}

/// `peergrid status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The node to ask (host:port) [default: the listen address of the
    /// node configuration, as `peergrid config show` prints it, on
    /// loopback if it is 0.0.0.0 or [::]].
    #[arg(long, value_name = "ADDR")]
    pub node: Option<String>,
    /// The node's config file, for its listen address, data directory and
    /// `insecure` [default: node.toml in the user's config dir, if it
    /// exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory whose identity this client presents over TLS (none
    /// there: a throwaway one) [default: the config's, else the user's
    /// data dir].
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Give up connecting after this long, and waiting for the answer after
    /// as long again (e.g. 5s).
    #[arg(long, default_value = "5s", value_parser = humantime_duration)]
    pub timeout: Duration,
    /// What to print on stdout.
    #[arg(long, visible_alias = "output", value_enum, default_value = "text")]
    pub output_format: OutputFormat,
}

/// `peergrid jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Data directory holding the ledger `peergrid submit` keeps.
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also list every job of every batch (a batch is otherwise one line).
    #[arg(long)]
    pub all: bool,
    /// What to print on stdout.
    #[arg(long, visible_alias = "output", value_enum, default_value = "text")]
    pub output_format: OutputFormat,
}

/// `peergrid job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job or batch id, or a unique prefix of it (as `peergrid jobs`
    /// prints it). A batch is explained as its inputs' outcomes.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Data directory holding the ledger `peergrid submit` keeps.
    #[arg(long, env = "PEERGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also write the job's stored result certificate to this file, for
    /// `peergrid verify`.
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, visible_alias = "output", value_enum, default_value = "text")]
    pub output_format: OutputFormat,
}

/// How `verify`, `peers`, `jobs`, `job` and `status` print their reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned lines for people.
    Text,
    /// JSON: one object (`verify`, `job`, `status`) or an array of them
    /// (`peers`, `jobs`).
    Json,
}

/// `peergrid run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The WASM module (a WASI command).
    pub module: PathBuf,
    /// File to use as the job's stdin, or `-` for this process's stdin.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Job limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Reproduce a submitted job exactly: its job id (64 hex digits) seeds
    /// the WASI random source as on the workers (default: all zeros).
    #[arg(long, value_parser = parse_job_id)]
    pub job_id: Option<[u8; 32]>,
    /// Start of the job's virtual wall clock, ns since the Unix epoch.
    #[arg(long, default_value_t = 0)]
    pub clock_ns: u64,
    /// Program arguments for the job (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

fn parse_job_id(text: &str) -> Result<[u8; 32], String> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(text, &mut id)
        .map_err(|e| format!("job id must be 64 hex digits: {e}"))?;
    Ok(id)
}

fn parse_module_hash(text: &str) -> Result<[u8; 32], String> {
    peergrid_worker::policy::parse_module_hash(text)
}

fn parse_peer_id(text: &str) -> Result<peergrid_proto::PeerId, String> {
    text.parse()
        .map_err(|e| format!("peer id must be 64 hex digits: {e}"))
}

/// `peergrid demo`.
#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Honest nodes to start (the demo adds one cheater).
    #[arg(long, default_value_t = 3)]
    pub honest: usize,
    /// Replicas per job.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
}

/// `peergrid bench`.
#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Jobs timed per row.
    #[arg(long, default_value_t = 300)]
    pub jobs: usize,
    /// Run only these sections (comma-separated); all of them by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<BenchSection>,
}

/// A section of `peergrid bench`, for `--only`.
#[cfg(feature = "demo")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSection {
    /// Per-job latency on loopback: k=1, k=3, adaptive, ledger, plaintext.
    Latency,
    /// Verified jobs per second, one at a time and in batches.
    Throughput,
    /// Resident memory of a node process, idle and busy.
    Memory,
    /// First run of a module vs warm, and after a restart.
    Cold,
    /// Instantiate + run + drop of a tiny module, pooled and on demand.
    Instantiation,
    /// WASM vs native on the example jobs.
    Native,
}

/// Parses durations like `250ms`, `30s`, `5m`, `1h` (a bare number is seconds).
pub fn humantime_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms or 5m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

impl LimitArgs {
    /// The job limits these flags describe.
    pub fn limits(&self) -> scheduler_lib::Limits {
        let defaults = scheduler_lib::Limits::default();
        scheduler_lib::Limits {
            budget: match self.fuel {
                Some(_) => scheduler_lib::Budget::Fuel,
                None => scheduler_lib::Budget::WallTime,
            },
            fuel: self.fuel.unwrap_or(defaults.fuel),
            memory_bytes: self.memory_mib << 20,
            wall_time: self.wall_time,
            max_output_bytes: self.max_output_kib << 10,
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(humantime_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(humantime_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(humantime_duration("7"), Ok(Duration::from_secs(7)));
        assert!(humantime_duration("5 parsecs").is_err());
        assert!(humantime_duration("").is_err());
    }

    #[test]
    fn node_policy_flags_repeat_and_parse() {
        let peer = "ab".repeat(32);
        let module = "cd".repeat(32);
        let cli = Cli::try_parse_from([
            "peergrid",
            "node",
            "--deny-submitter",
            &peer,
            "--deny-submitter",
            &"01".repeat(32),
            "--allow-module",
            &module,
            "--metrics",
            "127.0.0.1:9400",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else {
            panic!("not the node command");
        };
        assert_eq!(args.deny_submitters.len(), 2);
        assert_eq!(args.deny_submitters[0].to_string(), peer);
        assert_eq!(args.allow_modules, vec![[0xcd; 32]]);
        assert_eq!(args.metrics, Some("127.0.0.1:9400".parse().unwrap()));
        assert!(Cli::try_parse_from(["peergrid", "node", "--deny-module", "xyz"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

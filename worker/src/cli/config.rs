//! The volunteer's config file (`node.toml`) and `peergrid config show`.
//!
//! `peergrid node` takes its settings from three layers, each overriding the
//! one before: built-in defaults < the config file < command-line flags (and
//! `PEERGRID_DATA_DIR`, which stands for `--data-dir`). The file is the one
//! `--config` names (an error if it is missing), else `node.toml` in the
//! user's config dir (e.g. `~/.config/peergrid/node.toml`) if it exists. Its
//! keys are the flags of `peergrid node` with `_` for `-` (lists under their
//! plural: `peers`, `allow_submitters`, …); a list given on the command line
//! replaces the file's list. Unknown keys and bad values are errors naming
//! the file, the line and the key.
//!
//! `peergrid config show` prints the merged result, every default filled in,
//! as a `node.toml` that `--config` accepts (or as JSON).

use std::io::Write;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use peergrid_proto::PeerId;
use peergrid_worker::NodeConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::args::{ConfigFormat, ConfigShowArgs, DEFAULT_PUZZLE_BITS, NodeArgs};

/// The address `peergrid node` serves on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

/// The config file's name in the user's config dir.
pub const DEFAULT_FILE_NAME: &str = "node.toml";

/// One layer of node settings: what a config file or the command line sets.
/// `None` (a key absent, a flag not given) leaves the layer below in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// `--listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--peer`, repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    /// `--advertise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// `--puzzle-bits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub puzzle_bits: Option<u32>,
    /// `--slots`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<NonZeroUsize>,
    /// `--data-dir` (in a file, relative to the file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
    /// `--ui`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<SocketAddr>,
    /// `--ui-public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_public: Option<bool>,
    /// `--allow-submitter`, repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_submitters: Option<Vec<Hex32<PeerId>>>,
    /// `--deny-submitter`, repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_submitters: Option<Vec<Hex32<PeerId>>>,
    /// `--allow-module`, repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_modules: Option<Vec<Hex32<ModuleHash>>>,
    /// `--deny-module`, repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_modules: Option<Vec<Hex32<ModuleHash>>>,
    /// `--max-jobs-per-submitter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jobs_per_submitter: Option<NonZeroU64>,
    /// `--max-connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<NonZeroU64>,
    /// `--max-connections-per-ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<NonZeroU64>,
    /// `--max-fuel`: the most fuel one job may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fuel: Option<NonZeroU64>,
    /// `--max-memory-mib`: the most memory one job may ask for, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mib: Option<NonZeroU64>,
    /// `--max-wall-time-secs`: the longest wall time one job may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_time_secs: Option<NonZeroU64>,
    /// `--insecure`: plaintext instead of TLS (debugging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// A 32-byte value written as 64 hex digits (a peer id or a module sha256),
/// so that a bad one in the file is an error at its line and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex32<T>(pub T);

/// A module's sha256, as the operator policy holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleHash(pub [u8; 32]);

impl FromStr for ModuleHash {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        peergrid_worker::policy::parse_module_hash(text).map(Self)
    }
}

impl std::fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<T: std::fmt::Display> Serialize for Hex32<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de, T> Deserialize<'de> for Hex32<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map(Hex32)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not 64 hex digits: {e}")))
    }
}

fn hex32<T: Copy, U: Copy>(values: &[T], wrap: impl Fn(T) -> U) -> Option<Vec<Hex32<U>>> {
    (!values.is_empty()).then(|| values.iter().map(|v| Hex32(wrap(*v))).collect())
}

impl NodeSettings {
    /// The settings the command line gives: only the flags actually present
    /// (`insecure` is the global `--insecure`).
    pub fn from_args(args: &NodeArgs, insecure: bool) -> anyhow::Result<Self> {
        let slots = match args.slots {
            Some(n) => Some(NonZeroUsize::new(n).context("--slots must be at least 1")?),
            None => None,
        };
        Ok(Self {
            listen: args.listen,
            peers: (!args.peers.is_empty()).then(|| args.peers.clone()),
            advertise: args.advertise.clone(),
            puzzle_bits: args.puzzle_bits,
            slots,
            data_dir: args.data_dir.clone(),
            metrics: args.metrics,
            ui: args.ui,
            ui_public: args.ui_public.then_some(true),
            allow_submitters: hex32(&args.allow_submitters, |p| p),
            deny_submitters: hex32(&args.deny_submitters, |p| p),
            allow_modules: hex32(&args.allow_modules, ModuleHash),
            deny_modules: hex32(&args.deny_modules, ModuleHash),
            // The value parsers refuse 0 for these.
            max_jobs_per_submitter: args.max_jobs_per_submitter.and_then(NonZeroU64::new),
            max_connections: args.max_connections.and_then(NonZeroU64::new),
            max_connections_per_ip: args.max_connections_per_ip.and_then(NonZeroU64::new),
            max_fuel: args.max_fuel.and_then(NonZeroU64::new),
            max_memory_mib: args.max_memory_mib.and_then(NonZeroU64::new),
            max_wall_time_secs: args.max_wall_time_secs.and_then(NonZeroU64::new),
            insecure: insecure.then_some(true),
        })
    }

    /// Parses a config file's text; `path` names it in errors (toml's
    /// messages name the line, column and key) and anchors a relative
    /// `data_dir`.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let mut settings: Self = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        if let Some(dir) = settings.data_dir.take() {
            let base = path.parent().unwrap_or(Path::new(""));
            settings.data_dir = Some(base.join(dir));
        }
        Ok(settings)
    }

    /// Reads the config file: `explicit` (which must exist), else the
    /// default file if there is one. Returns the settings and the file read.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<(Self, Option<PathBuf>)> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => match default_path() {
                Some(path) if path.is_file() => path,
                _ => return Ok((Self::default(), None)),
            },
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        Ok((Self::parse(&text, &path)?, Some(path)))
    }

    /// These settings with every one `top` sets replaced by `top`'s.
    pub fn overlay(self, top: Self) -> Self {
        Self {
            listen: top.listen.or(self.listen),
            peers: top.peers.or(self.peers),
            advertise: top.advertise.or(self.advertise),
            puzzle_bits: top.puzzle_bits.or(self.puzzle_bits),
            slots: top.slots.or(self.slots),
            data_dir: top.data_dir.or(self.data_dir),
            metrics: top.metrics.or(self.metrics),
            ui: top.ui.or(self.ui),
            ui_public: top.ui_public.or(self.ui_public),
            allow_submitters: top.allow_submitters.or(self.allow_submitters),
            deny_submitters: top.deny_submitters.or(self.deny_submitters),
            allow_modules: top.allow_modules.or(self.allow_modules),
            deny_modules: top.deny_modules.or(self.deny_modules),
            max_jobs_per_submitter: top.max_jobs_per_submitter.or(self.max_jobs_per_submitter),
            max_connections: top.max_connections.or(self.max_connections),
            max_connections_per_ip: top.max_connections_per_ip.or(self.max_connections_per_ip),
            max_fuel: top.max_fuel.or(self.max_fuel),
            max_memory_mib: top.max_memory_mib.or(self.max_memory_mib),
            max_wall_time_secs: top.max_wall_time_secs.or(self.max_wall_time_secs),
            insecure: top.insecure.or(self.insecure),
        }
    }

    /// Fills every unset value with the built-in default: the complete
    /// configuration a node runs with. `data_dir` is the user's data dir
    /// unless set.
    pub fn resolve(
        self,
        default_data_dir: impl FnOnce() -> anyhow::Result<PathBuf>,
    ) -> anyhow::Result<Effective> {
        let defaults = NodeConfig::new("");
        let listen = match self.listen {
            Some(addr) => addr,
            None => DEFAULT_LISTEN
                .parse()
                .context("the built-in listen address")?,
        };
        let slots = self.slots.map_or(defaults.slots, NonZeroUsize::get).max(1);
        let max_memory_mib = self
            .max_memory_mib
            .map_or(defaults.max_limits.memory_bytes >> 20, NonZeroU64::get);
        anyhow::ensure!(
            max_memory_mib.checked_mul(1 << 20).is_some(),
            "max_memory_mib = {max_memory_mib} is too large"
        );
        let ui_public = self.ui_public.unwrap_or(false);
        if let Some(addr) = self.ui {
            peergrid_worker::ui::check(&peergrid_worker::ui::UiConfig {
                addr,
                public: ui_public,
            })?;
        }
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        Ok(Effective {
            listen,
            peers: self.peers.unwrap_or_default(),
            advertise: self.advertise,
            puzzle_bits: self.puzzle_bits.unwrap_or(DEFAULT_PUZZLE_BITS),
            slots,
            data_dir,
            metrics: self.metrics,
            ui: self.ui,
            ui_public,
            allow_submitters: self.allow_submitters.unwrap_or_default(),
            deny_submitters: self.deny_submitters.unwrap_or_default(),
            allow_modules: self.allow_modules.unwrap_or_default(),
            deny_modules: self.deny_modules.unwrap_or_default(),
            // What the node does when unset: half the slots, rounded up.
            max_jobs_per_submitter: self
                .max_jobs_per_submitter
                .map_or(slots.div_ceil(2) as u64, NonZeroU64::get),
            max_connections: self
                .max_connections
                .map_or(defaults.connections.max_connections as u64, NonZeroU64::get),
            max_connections_per_ip: self.max_connections_per_ip.map_or(
                defaults.connections.max_connections_per_ip as u64,
                NonZeroU64::get,
            ),
            max_fuel: self
                .max_fuel
                .map_or(defaults.max_limits.fuel, NonZeroU64::get),
            max_memory_mib,
            max_wall_time_secs: self
                .max_wall_time_secs
                .map_or(defaults.max_limits.wall_time.as_secs(), NonZeroU64::get),
            insecure: self.insecure.unwrap_or(false),
        })
    }
}

/// The complete configuration of a node: every value decided. Written out
/// (`config show`), it is a valid config file with the same keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effective {
    /// Address to serve gRPC on.
    pub listen: SocketAddr,
    /// Bootstrap peers.
    pub peers: Vec<String>,
    /// The address other peers should dial (none: the listen address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// The network's identity puzzle.
    pub puzzle_bits: u32,
    /// Concurrent jobs.
    pub slots: usize,
    /// Where the identity, module store and ledger live.
    pub data_dir: PathBuf,
    /// Prometheus metrics address (none: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
    /// Status page address (none: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<SocketAddr>,
    /// Whether the status page may be served on a non-loopback address.
    pub ui_public: bool,
    /// Only these submitters are served, if any are listed.
    pub allow_submitters: Vec<Hex32<PeerId>>,
    /// These submitters are never served.
    pub deny_submitters: Vec<Hex32<PeerId>>,
    /// Only these modules run, if any are listed.
    pub allow_modules: Vec<Hex32<ModuleHash>>,
    /// These modules never run.
    pub deny_modules: Vec<Hex32<ModuleHash>>,
    /// Jobs one submitter may run here at once.
    pub max_jobs_per_submitter: u64,
    /// Connections open at once, in total.
    pub max_connections: u64,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: u64,
    /// The most fuel one job may ask for.
    pub max_fuel: u64,
    /// The most memory one job may ask for, in MiB.
    pub max_memory_mib: u64,
    /// The longest wall time one job may ask for, in seconds.
    pub max_wall_time_secs: u64,
    /// Plaintext instead of TLS.
    pub insecure: bool,
}

impl Effective {
    /// What `peergrid node` runs with, given its flags: defaults < the
    /// config file < the flags.
    pub fn from_args(args: &NodeArgs, insecure: bool) -> anyhow::Result<(Self, Option<PathBuf>)> {
        let flags = NodeSettings::from_args(args, insecure)?;
        let (file, path) = NodeSettings::load(args.config.as_deref())?;
        let effective = file.overlay(flags).resolve(|| super::data_dir(None))?;
        Ok((effective, path))
    }

    /// Sets these values in a node's config (the rest stays as it is).
    pub fn apply(&self, config: &mut NodeConfig) {
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        config.data_dir.clone_from(&self.data_dir);
        config.slots = self.slots;
        config.gossip.membership.puzzle_bits = self.puzzle_bits;
        config.gossip.bootstrap.clone_from(&self.peers);
        config.gossip.advertise.clone_from(&self.advertise);
        config.insecure = self.insecure;
        config.ui = self.ui.map(|addr| peergrid_worker::ui::UiConfig {
            addr,
            public: self.ui_public,
        });
        let policy = &mut config.policy;
        policy
            .allow_submitters
            .extend(self.allow_submitters.iter().map(|p| p.0));
        policy
            .deny_submitters
            .extend(self.deny_submitters.iter().map(|p| p.0));
        policy
            .allow_modules
            .extend(self.allow_modules.iter().map(|m| m.0.0));
        policy
            .deny_modules
            .extend(self.deny_modules.iter().map(|m| m.0.0));
        config.flood.max_jobs_per_submitter = Some(as_usize(self.max_jobs_per_submitter));
        config.connections.max_connections = as_usize(self.max_connections);
        config.connections.max_connections_per_ip = as_usize(self.max_connections_per_ip);
        config.max_limits.fuel = self.max_fuel;
        // `resolve` checked that this fits.
        config.max_limits.memory_bytes = self.max_memory_mib.saturating_mul(1 << 20);
        config.max_limits.wall_time = Duration::from_secs(self.max_wall_time_secs);
    }
}

/// The default config file: `node.toml` in the user's config dir.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "peergrid", "peergrid")
        .map(|d| d.config_dir().join(DEFAULT_FILE_NAME))
}

/// `peergrid config show`: prints the effective configuration.
pub fn show(args: &ConfigShowArgs, insecure: bool) -> anyhow::Result<ExitCode> {
    let (effective, path) = Effective::from_args(&args.node, insecure)?;
    let text = match args.output {
        ConfigFormat::Toml => {
            let source = match &path {
                Some(path) => path.display().to_string(),
                None => "no config file".to_string(),
            };
            let body = toml::to_string(&effective)
                .context("writing the effective configuration as TOML")?;
            format!("# peergrid node: built-in defaults < {source} < flags\n{body}")
        }
        ConfigFormat::Json => {
            let body = serde_json::to_string_pretty(&effective)
                .context("writing the effective configuration as JSON")?;
            format!("{body}\n")
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `peergrid config show | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<NodeSettings> {
        NodeSettings::parse(text, Path::new("/etc/peergrid/node.toml"))
    }

    fn resolve(settings: NodeSettings) -> Effective {
        settings
            .resolve(|| Ok(PathBuf::from("/default/data")))
            .unwrap()
    }

    fn node_args(flags: &[&str]) -> NodeArgs {
        use clap::Parser;
        let cli = super::super::args::Cli::try_parse_from(["peergrid", "node"].iter().chain(flags))
            .unwrap();
        match cli.command {
            super::super::args::Command::Node(args) => args,
            _ => panic!("not the node command"),
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let file = parse(
            "slots = 3\nlisten = \"0.0.0.0:7401\"\npuzzle_bits = 20\npeers = [\"a.example:7400\"]\n",
        )
        .unwrap();
        let flags = NodeSettings::from_args(&node_args(&["--slots", "5"]), false).unwrap();
        let effective = resolve(file.overlay(flags));
        assert_eq!(effective.slots, 5, "a flag given beats the file");
        assert_eq!(effective.listen, "0.0.0.0:7401".parse().unwrap());
        assert_eq!(
            effective.puzzle_bits, 20,
            "an absent flag leaves the file's value"
        );
        assert_eq!(effective.peers, ["a.example:7400"]);
        assert_eq!(effective.max_connections, 1024, "neither: the default");
        assert_eq!(
            effective.max_jobs_per_submitter, 3,
            "half of 5 slots, rounded up"
        );
        assert_eq!(effective.data_dir, PathBuf::from("/default/data"));
        assert!(!effective.insecure);
    }

    #[test]
    fn flags_with_defaults_do_not_override_the_file_unless_given() {
        let file =
            parse("listen = \"0.0.0.0:9000\"\nmax_connections = 10\npuzzle_bits = 12\n").unwrap();
        let none = resolve(
            file.clone()
                .overlay(NodeSettings::from_args(&node_args(&[]), false).unwrap()),
        );
        assert_eq!(none.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(none.max_connections, 10);
        assert_eq!(none.puzzle_bits, 12);
        let given = node_args(&["--listen", "127.0.0.1:7400", "--puzzle-bits", "16"]);
        let given = resolve(file.overlay(NodeSettings::from_args(&given, false).unwrap()));
        assert_eq!(given.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(
            given.puzzle_bits, 16,
            "a flag equal to the default still wins"
        );
    }

    #[test]
    fn a_list_on_the_command_line_replaces_the_files() {
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        let file = parse(&format!("deny_submitters = [\"{a}\"]\n")).unwrap();
        let kept = resolve(file.clone().overlay(NodeSettings::default()));
        assert_eq!(kept.deny_submitters[0].0.to_string(), a);
        let flags = NodeSettings::from_args(&node_args(&["--deny-submitter", &b]), false).unwrap();
        let replaced = resolve(file.overlay(flags));
        assert_eq!(replaced.deny_submitters.len(), 1);
        assert_eq!(replaced.deny_submitters[0].0.to_string(), b);
    }

    #[test]
    fn insecure_from_the_file_or_the_flag() {
        let file = parse("insecure = true\n").unwrap();
        assert!(resolve(file.overlay(NodeSettings::default())).insecure);
        let flags = NodeSettings::from_args(&node_args(&[]), true).unwrap();
        assert!(resolve(NodeSettings::default().overlay(flags)).insecure);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_line() {
        let unknown = parse("slots = 2\nslotz = 3\n").unwrap_err().to_string();
        assert!(unknown.contains("/etc/peergrid/node.toml"), "{unknown}");
        assert!(unknown.contains("slotz"), "{unknown}");
        assert!(unknown.contains("line 2"), "{unknown}");
        let zero = parse("\nslots = 0\n").unwrap_err().to_string();
        assert!(zero.contains("slots") && zero.contains("line 2"), "{zero}");
        let hash = parse("deny_modules = [\"xyz\"]\n").unwrap_err().to_string();
        assert!(
            hash.contains("deny_modules") && hash.contains("xyz"),
            "{hash}"
        );
        let addr = parse("listen = \"nowhere\"\n").unwrap_err().to_string();
        assert!(addr.contains("listen") && addr.contains("line 1"), "{addr}");
    }

    #[test]
    fn the_ui_is_off_by_default_loopback_only_and_reaches_the_node_config() {
        let off = resolve(NodeSettings::default());
        assert_eq!(off.ui, None);
        let mut config = NodeConfig::new("");
        off.apply(&mut config);
        assert_eq!(config.ui, None);

        let on = resolve(parse("ui = \"127.0.0.1:7080\"\n").unwrap());
        assert_eq!(on.ui, Some("127.0.0.1:7080".parse().unwrap()));
        on.apply(&mut config);
        assert_eq!(
            config.ui.map(|ui| (ui.addr.port(), ui.public)),
            Some((7080, false))
        );
        let text = toml::to_string(&on).unwrap();
        assert!(text.contains("ui = \"127.0.0.1:7080\""), "{text}");
        assert!(text.contains("ui_public = false"), "{text}");

        let public = NodeSettings::from_args(&node_args(&["--ui", "0.0.0.0:7080"]), false).unwrap();
        let refused = public
            .clone()
            .resolve(|| Ok(PathBuf::from("/d")))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--ui-public"), "{refused}");
        let file = parse("ui_public = true\n").unwrap();
        assert!(resolve(file.overlay(public)).ui_public);
        let flag = node_args(&["--ui", "0.0.0.0:7080", "--ui-public"]);
        assert!(resolve(NodeSettings::from_args(&flag, false).unwrap()).ui_public);
    }

    #[test]
    fn a_relative_data_dir_is_relative_to_the_file() {
        let file = parse("data_dir = \"state\"\n").unwrap();
        assert_eq!(file.data_dir, Some(PathBuf::from("/etc/peergrid/state")));
    }

    #[test]
    fn the_shown_configuration_reads_back_as_a_config_file() {
        let file = parse(&format!(
            "slots = 2\nmetrics = \"127.0.0.1:9400\"\nallow_modules = [\"{}\"]\nmax_fuel = 5000\n",
            "cd".repeat(32)
        ))
        .unwrap();
        let effective = resolve(file);
        let text = toml::to_string(&effective).unwrap();
        let again = resolve(parse(&text).unwrap());
        assert_eq!(again, effective, "{text}");
    }

    #[test]
    fn the_effective_limits_reach_the_node_config() {
        let effective = resolve(
            parse("max_fuel = 1000\nmax_memory_mib = 64\nmax_wall_time_secs = 30\nslots = 4\n")
                .unwrap(),
        );
        let mut config = NodeConfig::new("");
        effective.apply(&mut config);
        assert_eq!(config.max_limits.fuel, 1000);
        assert_eq!(config.max_limits.memory_bytes, 64 << 20);
        assert_eq!(config.max_limits.wall_time, Duration::from_secs(30));
        assert_eq!(config.slots, 4);
        assert_eq!(config.flood.max_jobs_per_submitter, Some(2));
        assert_eq!(config.data_dir, PathBuf::from("/default/data"));
    }

    #[test]
    fn the_help_names_the_defaults_applied_after_merging() {
        use clap::CommandFactory;
        let mut cli = super::super::args::Cli::command();
        let help = cli
            .find_subcommand_mut("node")
            .unwrap()
            .render_long_help()
            .to_string();
        let defaults = NodeConfig::new("");
        for default in [
            DEFAULT_LISTEN.to_string(),
            DEFAULT_PUZZLE_BITS.to_string(),
            defaults.connections.max_connections.to_string(),
            defaults.connections.max_connections_per_ip.to_string(),
            defaults.max_limits.fuel.to_string(),
            (defaults.max_limits.memory_bytes >> 20).to_string(),
            defaults.max_limits.wall_time.as_secs().to_string(),
        ] {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{default}: {help}"
            );
        }
    }
}

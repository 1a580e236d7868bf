//! The `peergrid` subcommands and what they share.
//!
//! Exit codes: 0 success; 1 error (bad file, no usable workers, …);
//! 2 usage error; 3 no quorum (nothing accepted); 4 a quorum agreed that the
//! job itself failed (out of fuel, trap, non-zero exit, …); 5 `verify`: the
//! certificate is invalid (or the output does not match it). `jobs` and
//! `job` exit 0 whatever the job's state, 1 for an unknown or ambiguous id.
//! `status` exits 1 when no node answers at the address.

pub mod args;
pub mod batch;
#[cfg(feature = "demo")]
pub mod bench;
#[cfg(feature = "demo")]
pub mod bench_load;
#[cfg(feature = "demo")]
pub mod bench_native;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod identity;
pub mod job;
pub mod jobs;
pub mod keygen;
pub mod logging;
pub mod members;
pub mod node;
pub mod peers;
pub mod report;
pub mod run;
pub mod status;
pub mod submit;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use args::{Cli, Command};

/// A general error.
pub const EXIT_ERROR: u8 = 1;
/// No result reached a strict majority.
pub const EXIT_NO_QUORUM: u8 = 3;
/// The job failed (as agreed by a quorum, or locally for `run`).
pub const EXIT_JOB_FAILED: u8 = 4;
/// `verify`: the certificate is invalid, or the output does not match it.
pub const EXIT_INVALID: u8 = 5;

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen(a) => keygen::run(&data_dir(a.data_dir)?, a.puzzle_bits),
        Command::Node(a) => runtime()?.block_on(node::run(a, cli.insecure)),
        Command::Config(a) => match a.command {
            args::ConfigCommand::Show(a) => config::show(&a, cli.insecure),
        },
        Command::Status(a) => runtime()?.block_on(status::run(a, cli.insecure)),
        Command::Submit(a) => runtime()?.block_on(submit::run(a, cli.insecure)),
        Command::Run(a) => run::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Peers(a) => match a.node.clone() {
            Some(addr) => runtime()?.block_on(members::run(
                &addr,
                a.puzzle_bits,
                a.output_format == args::OutputFormat::Json,
                cli.insecure,
            )),
            None => peers::run(a),
        },
        Command::Jobs(a) => jobs::run(a),
        Command::Job(a) => job::run(a),
        #[cfg(feature = "demo")]
        Command::Demo(a) => runtime()?.block_on(demo::run(a)),
        #[cfg(feature = "demo")]
        Command::Bench(a) => runtime()?.block_on(bench::run(a)),
        Command::CompileModule => Ok(peergrid_sandbox::compiler::child_main()),
    }
}

/// How the sandbox of a node started by this executable compiles untrusted
/// modules: in a child process running this same executable's hidden
/// `__compile-module` subcommand, under the sandbox's compile budget.
pub fn compiler_command() -> anyhow::Result<peergrid_sandbox::CompilerCommand> {
    let exe = std::env::current_exe()
        .context("locating this executable to run the module compiler process")?;
    Ok(peergrid_sandbox::CompilerCommand::with_args(
        exe,
        [args::COMPILE_MODULE],
    ))
}

/// [`NodeConfig::local`](peergrid_worker::NodeConfig::local) with this
/// executable as the compiler and runner program, as `peergrid node` runs:
/// modules compiled in the budgeted child process, wall-time jobs in
/// supervised runner processes. For the demo and the benchmarks.
pub fn local_node_config() -> anyhow::Result<peergrid_worker::NodeConfig> {
    let mut config = peergrid_worker::NodeConfig::local();
    config.sandbox.compiler = Some(compiler_command()?);
    Ok(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The data directory: the flag, else the user's data dir for peergrid.
pub fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    directories::ProjectDirs::from("org", "peergrid", "peergrid")
        .map(|d| d.data_dir().to_path_buf())
        .context("no home directory to put the data dir in; pass --data-dir")
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    match path {
        None => Ok(Vec::new()),
        Some(p) if p.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading input from stdin")?;
            Ok(bytes)
        }
        Some(p) => std::fs::read(p).with_context(|| format!("reading input file {}", p.display())),
    }
}

/// Reads a module file, with a clear error if it is missing.
pub fn read_module(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading module {}", path.display()))
}

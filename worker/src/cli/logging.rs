//! Logging to stderr through `tracing`; `RUST_LOG` sets the filter.

use tracing_subscriber::EnvFilter;

use super::args::{Cli, Command, LogFormat};

/// Installs the subscriber. A node logs at `info` by default (one line per
/// job); the other commands only warn (the demo only errs), so their output
/// stays readable.
pub fn init(cli: &Cli) {
    let default = match cli.command {
        Command::Node(_) => "info",
        // The demo tells its own story on stdout.
        #[cfg(feature = "demo")]
        Command::Demo(_) => "error",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

//! `peergrid`: run a node, submit jobs, run a job locally, or watch a demo
//! grid catch a cheater. Thin glue over `peergrid-worker` and `scheduler-lib`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    cli::logging::init(&args);
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}

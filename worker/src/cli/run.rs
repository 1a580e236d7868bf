//! `peergrid run`: run a job locally in the production sandbox.

use std::io::Write;
use std::process::ExitCode;

use peergrid_sandbox::{Config, JobInput, Sandbox};
use peergrid_worker::node::{job_seed, sandbox_limits};

use super::args::RunArgs;
use super::{EXIT_JOB_FAILED, read_input, read_module};

/// Runs the module on this machine, as a worker would, with a fixed seed and
/// clock so the output matches what honest workers produce.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let module = read_module(&args.module)?;
    let stdin = read_input(args.input.as_ref())?;
    let sandbox = Sandbox::new(Config::default())?;
    let limits = sandbox_limits(&args.limits.limits());
    let execution = match sandbox.compile(&module) {
        Ok(compiled) => sandbox.run(
            &compiled,
            &JobInput {
                args: args.args,
                stdin,
                seed: job_seed(&args.job_id.unwrap_or_default()),
                clock_base_unix_ns: args.clock_ns,
            },
            &limits,
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_JOB_FAILED));
        }
    };
    std::io::stdout().write_all(&execution.stdout)?;
    std::io::stderr().write_all(&execution.stderr)?;
    eprintln!(
        "ran locally: {}, fuel {}, {:.1} ms",
        match &execution.result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        },
        execution.fuel_used,
        execution.elapsed.as_secs_f64() * 1000.0
    );
    Ok(if execution.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_JOB_FAILED)
    })
}

//! `peergrid run`: run a job locally in the production sandbox.

use std::io::Write;
use std::process::ExitCode;

use peergrid_worker::local_run::run_locally;

use super::args::RunArgs;
use super::{EXIT_JOB_FAILED, read_input, read_module};

/// Runs the module on this machine, as a worker would, with a fixed seed and
/// clock so the output matches what honest workers produce.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let module = read_module(&args.module)?;
    let stdin = read_input(args.input.as_ref())?;
    let execution = run_locally(
        &module,
        args.args,
        stdin,
        &args.limits.limits(),
        &args.job_id.unwrap_or_default(),
        args.clock_ns,
    )?;
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

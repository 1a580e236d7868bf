//! Running a job on this machine exactly as a worker would: the reference
//! result that `peergrid run` prints and that tests compare the grid's
//! verdicts against.

use peergrid_proto::Sha256Hash;
use peergrid_sandbox::{Config, Execution, JobInput, Sandbox, SandboxError};

use crate::node::{job_seed, sandbox_limits};

/// Compiles and runs `module` in a fresh sandbox with the production
/// configuration. `job_id` seeds the WASI random source as it does on the
/// workers, and `clock_base_unix_ns` starts the virtual clock, so a job that
/// reads either reproduces a submitted run exactly.
///
/// Blocking: call it from a plain thread, not from an async task.
pub fn run_locally(
    module: &[u8],
    args: Vec<String>,
    stdin: Vec<u8>,
    limits: &scheduler_lib::Limits,
    job_id: &Sha256Hash,
    clock_base_unix_ns: u64,
) -> Result<Execution, SandboxError> {
    let sandbox = Sandbox::new(Config::default())?;
    let input = JobInput {
        args,
        stdin,
        seed: job_seed(job_id),
        clock_base_unix_ns,
    };
    Ok(match sandbox.compile(module) {
        Ok(compiled) => sandbox.run(&compiled, &input, &sandbox_limits(limits)),
        Err(error) => Execution::failed(error),
    })
}

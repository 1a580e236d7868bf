//! `peergrid submit`: run a job on k workers; print the agreed output.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use peergrid_proto::Identity;
use scheduler_lib::{Certificate, Job, JobReport, Scheduler, SchedulerConfig, Verdict};

use super::args::SubmitArgs;
use super::{EXIT_JOB_FAILED, EXIT_NO_QUORUM, read_input, read_module, report};

/// Submits the job and reports the verdict.
pub async fn run(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let module = read_module(&args.module)?;
    let stdin = read_input(args.input.as_ref())?;
    let dir = super::data_dir(args.data_dir)?;
    let (identity, _) = Identity::load_or_create(&dir)?;
    let scheduler = Scheduler::new(
        identity,
        SchedulerConfig {
            peers: args.peers,
            job_timeout: args.timeout,
            ..SchedulerConfig::default()
        },
    );
    let job = Job::new(module)
        .stdin(stdin)
        .args(args.args)
        .limits(args.limits.limits())
        .replicas(args.replicas);
    let report = scheduler.submit(&job).await?;
    eprint!("{}", report::summary(&report, &report::by_id));
    match &report.verdict {
        Verdict::Accepted { output, .. } => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&output.stdout)?;
            stdout.flush()?;
            if let Some(path) = &args.certificate {
                write_certificate(&report, path)?;
            }
            if output.result.is_err() {
                std::io::stderr().write_all(&output.stderr)?;
                return Ok(ExitCode::from(EXIT_JOB_FAILED));
            }
            Ok(ExitCode::SUCCESS)
        }
        Verdict::NoQuorum { .. } => {
            if let Some(path) = &args.certificate {
                eprintln!(
                    "no certificate written to {}: nothing was accepted",
                    path.display()
                );
            }
            Ok(ExitCode::from(EXIT_NO_QUORUM))
        }
    }
}

/// Writes the certificate of an accepted result (encoded `ResultCertificate`).
fn write_certificate(report: &JobReport, path: &Path) -> anyhow::Result<()> {
    let certificate =
        Certificate::from_report(report).context("the accepted result has no certificate")?;
    std::fs::write(path, certificate.encode())
        .with_context(|| format!("writing the certificate to {}", path.display()))?;
    eprintln!(
        "certificate: {} signatures, written to {} (check it with `peergrid verify {}`)",
        certificate.claims.len(),
        path.display(),
        path.display()
    );
    Ok(())
}

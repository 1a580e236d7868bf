//! `peergrid submit`: run a job on k workers; print the agreed output.
//! (`--inputs`, a batch of many inputs, and resuming one: [`super::batch`].)

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use peergrid_proto::{Identity, pb};
use scheduler_lib::ledger::{self, Ledger};
use scheduler_lib::{Certificate, Job, JobReport, Scheduler, SchedulerConfig, Verdict};

use super::args::SubmitArgs;
use super::{EXIT_JOB_FAILED, EXIT_NO_QUORUM, read_input, read_module, report};

/// Submits the job (or resumes one from the ledger) and reports the verdict.
/// (`insecure`: plaintext instead of TLS.)
pub async fn run(args: SubmitArgs, insecure: bool) -> anyhow::Result<ExitCode> {
    let dir = super::data_dir(args.data_dir.clone())?;
    let (identity, _) = Identity::load_or_create(&dir)?;
    let ledger_path = dir.join(ledger::FILE_NAME);
    let ledger = Ledger::open(&ledger_path)
        .with_context(|| format!("opening the job ledger {}", ledger_path.display()))?;
    let scheduler = std::sync::Arc::new(
        Scheduler::new(
            identity,
            SchedulerConfig {
                peers: args.peers.clone(),
                puzzle_bits: args.puzzle_bits,
                job_timeout: args.timeout,
                insecure,
                ..SchedulerConfig::default()
            },
        )
        .with_ledger(ledger.clone())?,
    );
    let report = match (&args.resume, &args.module) {
        (Some(prefix), _) => {
            if let Some(batch_id) = super::batch::find_batch(&ledger, prefix)? {
                return super::batch::resume(&args, scheduler, batch_id).await;
            }
            let job_id = super::job::find_job(&ledger, prefix)?;
            if let Some(done) = finished(&ledger, &job_id)? {
                return Ok(done);
            }
            eprintln!(
                "resuming job {} from {}",
                hex::encode(job_id),
                ledger_path.display()
            );
            scheduler.resume_job(job_id).await?
        }
        (None, Some(module)) if args.inputs.is_some() => {
            let module = read_module(module)?;
            let inputs = args.inputs.clone().unwrap_or_default();
            return super::batch::submit(&args, scheduler, module, &inputs).await;
        }
        (None, Some(module)) => {
            let module = read_module(module)?;
            let stdin = read_input(args.input.as_ref())?;
            let job = Job::new(module)
                .stdin(stdin)
                .args(args.args.clone())
                .limits(args.limits.limits())
                .replicas(args.replicas)
                .adaptive(!args.fixed_replicas);
            scheduler.submit(&job).await?
        }
        (None, None) => anyhow::bail!("give a module to submit, or --resume JOB_ID"),
    };
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

/// For a job that already has a verdict: prints the stored output and
/// returns the exit code; `None` if it still needs running.
fn finished(ledger: &Ledger, job_id: &[u8; 32]) -> anyhow::Result<Option<ExitCode>> {
    let record = ledger
        .job(job_id)?
        .with_context(|| format!("job {} vanished from the ledger", hex::encode(job_id)))?;
    let code = match record.state() {
        pb::JobState::Submitted | pb::JobState::Running => return Ok(None),
        pb::JobState::Accepted => {
            let verdict = record.verdict.clone().unwrap_or_default();
            std::io::stdout().write_all(&verdict.output)?;
            if verdict.outcome() == pb::Outcome::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_JOB_FAILED)
            }
        }
        pb::JobState::NoQuorum => ExitCode::from(EXIT_NO_QUORUM),
        pb::JobState::Failed | pb::JobState::Unspecified => ExitCode::from(super::EXIT_ERROR),
    };
    eprintln!(
        "job {} already finished ({:?}): {}",
        hex::encode(&job_id[..6]),
        record.state(),
        record.state_reason
    );
    Ok(Some(code))
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

//! `peergrid submit MODULE --inputs DIR|FILE.jsonl` and `--resume BATCH`:
//! one module run on many inputs, results written as they are verified, a
//! progress bar on a terminal (and silence elsewhere).
//!
//! Each result is one JSON line: `index`, `label`, `job_id`, `state`
//! (`accepted`, `no_quorum` or `failed`), and for accepted results
//! `outcome` (`success` or how the program failed), `stdout` (or
//! `stdout_hex` when it is not UTF-8), `stderr` when the program failed,
//! `fuel_used`; `reason` otherwise; `from_ledger` when a resumed batch read
//! it from the ledger instead of running it again.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peergrid_proto::{Sha256Hash, pb};
use scheduler_lib::batch::{Batch, BatchProgress, BatchRun, Task, TaskOutcome, TaskResult};
use scheduler_lib::{Job, Ledger, Scheduler};
use serde_json::{Value, json};

use super::args::SubmitArgs;
use super::{EXIT_ERROR, EXIT_JOB_FAILED, EXIT_NO_QUORUM};

/// Largest inputs file or directory total read into one batch.
const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Submits the module once per input of `inputs` and writes the results.
pub async fn submit(
    args: &SubmitArgs,
    scheduler: Arc<Scheduler>,
    module: Vec<u8>,
    inputs: &Path,
) -> anyhow::Result<ExitCode> {
    let tasks = read_tasks(inputs)?;
    anyhow::ensure!(
        !tasks.is_empty(),
        "{} holds no inputs: nothing to submit",
        inputs.display()
    );
    let template = Job::new(module)
        .args(args.args.clone())
        .limits(args.limits.limits())
        .replicas(args.replicas)
        .adaptive(!args.fixed_replicas);
    let mut batch = Batch::new(template, tasks).source(inputs.display().to_string());
    if let Some(n) = args.in_flight {
        batch = batch.in_flight(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let run = scheduler.submit_batch(batch).await?;
    announce(&run, "submitted");
    follow(run, args.out.as_deref()).await
}

/// Finishes the batch `batch_id` of the ledger.
pub async fn resume(
    args: &SubmitArgs,
    scheduler: Arc<Scheduler>,
    batch_id: Sha256Hash,
) -> anyhow::Result<ExitCode> {
    let in_flight = args
        .in_flight
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let run = scheduler.resume_batch(batch_id, in_flight).await?;
    announce(&run, "resumed");
    follow(run, args.out.as_deref()).await
}

/// The batch whose id starts with `prefix`, if exactly one does; an error if
/// several do.
pub fn find_batch(ledger: &Ledger, prefix: &str) -> anyhow::Result<Option<Sha256Hash>> {
    let prefix = prefix.trim().to_ascii_lowercase();
    let matches: Vec<Sha256Hash> = ledger
        .batches()?
        .iter()
        .filter_map(|b| peergrid_proto::hash::hash_from_slice(&b.batch_id))
        .filter(|id| hex::encode(id).starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [id] => Ok(Some(*id)),
        _ => anyhow::bail!(
            "{} batches start with {prefix}; give more digits",
            matches.len()
        ),
    }
}

fn announce(run: &BatchRun, what: &str) {
    let id = hex::encode(run.id);
    eprintln!(
        "batch {id} {what}: {} inputs, up to {} jobs in flight at a time\n\
         (if interrupted, finish it with `peergrid submit --resume {}`)",
        run.total,
        run.in_flight,
        &id[..12]
    );
}

/// Writes every result as it arrives, keeps the progress bar, prints the
/// summary, and returns the exit code of the worst outcome.
async fn follow(mut run: BatchRun, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut sink: Box<dyn Write + Send> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("creating the results file {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let bar = progress_bar(run.total as u64);
    let started = Instant::now();
    let mut worst = ExitCode::SUCCESS;
    let mut rank = 0;
    while let Some(result) = run.next().await {
        let line = result_json(&result);
        writeln!(sink, "{line}").context("writing a result")?;
        sink.flush().context("writing a result")?;
        let (r, code) = severity(&result.outcome);
        if r > rank {
            (rank, worst) = (r, code);
        }
        if let Some(bar) = &bar {
            let p = run.progress();
            bar.set_position(p.done() as u64);
            bar.set_message(counts(&p));
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let p = run.progress();
    eprintln!("{}", summary(&run, &p, started.elapsed()));
    Ok(worst)
}

/// How bad an outcome is for the exit code: failed (1) over no quorum (3)
/// over a program that failed (4) over success (0).
fn severity(outcome: &TaskOutcome) -> (u8, ExitCode) {
    match outcome {
        TaskOutcome::Accepted { result: Ok(()), .. } => (0, ExitCode::SUCCESS),
        TaskOutcome::Accepted { .. } => (1, ExitCode::from(EXIT_JOB_FAILED)),
        TaskOutcome::NoQuorum { .. } => (2, ExitCode::from(EXIT_NO_QUORUM)),
        TaskOutcome::Failed { .. } => (3, ExitCode::from(EXIT_ERROR)),
    }
}

/// A bar on stderr when it is a terminal; `None` (no progress output at all)
/// otherwise.
fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{bar:30} {pos}/{len} done  {msg}  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    Some(bar)
}

fn counts(p: &BatchProgress) -> String {
    let mut text = format!(
        "{} verified, {} failed, {} in flight",
        p.verified(),
        p.no_quorum + p.failed,
        p.in_flight
    );
    if p.waiting > 0 {
        text += &format!(" ({} waiting for usable workers)", p.waiting);
    }
    text
}

fn summary(run: &BatchRun, p: &BatchProgress, elapsed: Duration) -> String {
    let ran = p.done() - p.from_ledger;
    let secs = elapsed.as_secs_f64();
    let mut line = format!(
        "batch {}: {} inputs: {} verified ({} of them a program failure), {} without quorum, {} failed",
        &hex::encode(run.id)[..12],
        p.total,
        p.verified(),
        p.job_failed,
        p.no_quorum,
        p.failed
    );
    if p.from_ledger > 0 {
        line += &format!("; {} already decided, read from the ledger", p.from_ledger);
    }
    line += &format!(
        "; {ran} run in {secs:.1} s ({:.1}/s)",
        if secs > 0.0 { ran as f64 / secs } else { 0.0 }
    );
    if p.failed > 0 {
        line += &format!(
            "; run `peergrid submit --resume {}` to retry the failed ones",
            &hex::encode(run.id)[..12]
        );
    }
    line
}

/// One result as a JSON object (see the module docs).
pub fn result_json(result: &TaskResult) -> Value {
    let mut v = json!({
        "index": result.index,
        "label": result.label,
        "job_id": hex::encode(result.job_id),
    });
    match &result.outcome {
        TaskOutcome::Accepted {
            result: run,
            stdout,
            stderr,
            fuel_used,
        } => {
            v["state"] = json!("accepted");
            v["outcome"] = json!(match run {
                Ok(()) => "success".to_string(),
                Err(failure) => failure.to_string(),
            });
            match std::str::from_utf8(stdout) {
                Ok(text) => v["stdout"] = json!(text),
                Err(_) => v["stdout_hex"] = json!(hex::encode(stdout)),
            }
            if run.is_err() {
                v["stderr"] = json!(String::from_utf8_lossy(stderr));
            }
            v["fuel_used"] = json!(fuel_used);
        }
        TaskOutcome::NoQuorum { reason } => {
            v["state"] = json!("no_quorum");
            v["reason"] = json!(reason);
        }
        TaskOutcome::Failed { reason } => {
            v["state"] = json!("failed");
            v["reason"] = json!(reason);
        }
    }
    if result.from_ledger {
        v["from_ledger"] = json!(true);
    }
    v
}

/// The tasks of a directory (one file each) or a JSON-lines file.
pub fn read_tasks(path: &Path) -> anyhow::Result<Vec<Task>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading inputs {}", path.display()))?;
    if meta.is_dir() {
        return read_dir_tasks(path);
    }
    anyhow::ensure!(
        meta.len() <= MAX_INPUT_BYTES,
        "inputs file {} is {} bytes; the limit is {MAX_INPUT_BYTES}",
        path.display(),
        meta.len()
    );
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading inputs file {} (it must be UTF-8 JSON lines)",
            path.display()
        )
    })?;
    let mut tasks = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let task = parse_line(line, n + 1)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        tasks.push(task);
    }
    Ok(tasks)
}

fn read_dir_tasks(dir: &Path) -> anyhow::Result<Vec<Task>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing inputs directory {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut total = 0u64;
    let mut tasks = Vec::with_capacity(files.len());
    for file in files {
        let stdin =
            std::fs::read(&file).with_context(|| format!("reading input {}", file.display()))?;
        total += stdin.len() as u64;
        anyhow::ensure!(
            total <= MAX_INPUT_BYTES,
            "inputs in {} add up to more than {MAX_INPUT_BYTES} bytes",
            dir.display()
        );
        let label = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tasks.push(Task::new(stdin).label(label));
    }
    Ok(tasks)
}

/// One line of a JSON-lines inputs file.
fn parse_line(line: &str, number: usize) -> anyhow::Result<Task> {
    let value: Value = serde_json::from_str(line).context("not valid JSON")?;
    let default_label = format!("line {number}");
    match value {
        Value::String(stdin) => Ok(Task::new(stdin).label(default_label)),
        Value::Object(map) => {
            for key in map.keys() {
                anyhow::ensure!(
                    matches!(key.as_str(), "stdin" | "stdin_hex" | "args" | "id"),
                    "unknown key {key:?} (expected stdin, stdin_hex, args, id)"
                );
            }
            let stdin = match (map.get("stdin"), map.get("stdin_hex")) {
                (Some(_), Some(_)) => anyhow::bail!("give stdin or stdin_hex, not both"),
                (Some(Value::String(s)), None) => s.clone().into_bytes(),
                (None, Some(Value::String(h))) => hex::decode(h).context("stdin_hex is not hex")?,
                (None, None) => Vec::new(),
                _ => anyhow::bail!("stdin and stdin_hex must be strings"),
            };
            let args = match map.get("args") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|a| {
                        a.as_str()
                            .map(str::to_string)
                            .context("every element of args must be a string")
                    })
                    .collect::<anyhow::Result<_>>()?,
                Some(_) => anyhow::bail!("args must be an array of strings"),
            };
            let label = match map.get("id") {
                None => default_label,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => anyhow::bail!("id must be a string or a number"),
            };
            Ok(Task::new(stdin).args(args).label(label))
        }
        _ => anyhow::bail!("expected a JSON string (the stdin) or an object"),
    }
}

/// Where one batch of the ledger stands, for `peergrid jobs` and
/// `peergrid job BATCH_ID`.
pub struct BatchSummary {
    /// The batch id.
    pub id: Sha256Hash,
    /// The batch's record.
    pub record: pb::BatchRecord,
    /// Accepted, and the program succeeded.
    pub succeeded: usize,
    /// Accepted, and the program failed (fuel, trap, exit code).
    pub program_failed: usize,
    /// No result reached a quorum.
    pub no_quorum: usize,
    /// Failed without a verdict (a resume tries them again).
    pub failed: usize,
    /// No verdict yet: interrupted before it, or never placed.
    pub unfinished: usize,
    /// The inputs that did not succeed, in input order.
    pub problems: Vec<Problem>,
}

/// One input of a batch that did not succeed.
pub struct Problem {
    /// Its position in the batch.
    pub index: usize,
    /// Its label.
    pub label: String,
    /// Its job (explained by `peergrid job ID`).
    pub job_id: Sha256Hash,
    /// The job's state (`accepted`, `no_quorum`, `failed`, `submitted`, ...).
    pub state: &'static str,
    /// Why, from the job's record.
    pub why: String,
}

impl BatchSummary {
    /// Counts the jobs of `record`, each found with `job` (from records
    /// already read: this does no I/O).
    pub fn of<'a>(
        record: pb::BatchRecord,
        job: impl Fn(&Sha256Hash) -> Option<&'a pb::JobRecord>,
    ) -> anyhow::Result<Self> {
        let id = peergrid_proto::hash::hash_from_slice(&record.batch_id)
            .context("a batch record with an id that is not 32 bytes")?;
        let mut summary = Self {
            id,
            succeeded: 0,
            program_failed: 0,
            no_quorum: 0,
            failed: 0,
            unfinished: 0,
            problems: Vec::new(),
            record: pb::BatchRecord::default(),
        };
        for (index, raw) in record.job_ids.iter().enumerate() {
            let label = record
                .labels
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string());
            let job_id = peergrid_proto::hash::hash_from_slice(raw).unwrap_or_default();
            let job = job(&job_id);
            let short = hex::encode(&job_id[..6]);
            let status = job.as_ref().map(|j| super::job::Status::of(j, &short));
            let (state, why) = match (&job, status) {
                (None, _) | (_, None) => {
                    summary.failed += 1;
                    (
                        "missing",
                        "its job record is missing from the ledger".to_string(),
                    )
                }
                (Some(job), Some(status)) => {
                    match job.state() {
                        pb::JobState::Accepted => {
                            let ok = job
                                .verdict
                                .as_ref()
                                .is_some_and(|v| v.outcome() == pb::Outcome::Success);
                            if ok {
                                summary.succeeded += 1;
                                continue;
                            }
                            summary.program_failed += 1;
                        }
                        pb::JobState::NoQuorum => summary.no_quorum += 1,
                        pb::JobState::Failed | pb::JobState::Unspecified => summary.failed += 1,
                        pb::JobState::Submitted | pb::JobState::Running => summary.unfinished += 1,
                    }
                    (status.state, status.why)
                }
            };
            summary.problems.push(Problem {
                index,
                label,
                job_id,
                state,
                why,
            });
        }
        summary.record = record;
        Ok(summary)
    }

    /// Inputs in the batch.
    pub fn total(&self) -> usize {
        self.record.job_ids.len()
    }

    /// One line for `peergrid jobs`.
    pub fn line(&self, short: &str) -> String {
        let mut line = format!(
            "batch {short}  {}  {} inputs: {} ok",
            super::job::utc(self.record.created_at_unix_ms),
            self.total(),
            self.succeeded
        );
        for (n, what) in [
            (self.program_failed, "program failed"),
            (self.no_quorum, "no quorum"),
            (self.failed, "failed"),
            (self.unfinished, "unfinished"),
        ] {
            if n > 0 {
                line += &format!(", {n} {what}");
            }
        }
        if self.unfinished + self.failed > 0 {
            line += &format!(" — finish with `peergrid submit --resume {short}`");
        }
        line
    }

    /// The batch explained for people: counts, then every input that did
    /// not succeed.
    pub fn text(&self) -> String {
        let short = &hex::encode(self.id)[..12];
        let mut out = format!(
            "{}\nmodule {}\ninputs from {}\n",
            self.line(short),
            hex::encode(&self.record.module_sha256),
            if self.record.source.is_empty() {
                "(not recorded)"
            } else {
                &self.record.source
            }
        );
        if self.problems.is_empty() {
            out += "every input was verified and its program succeeded\n";
        }
        for p in &self.problems {
            out += &format!(
                "  input {} ({}): {} — {} (job {})\n",
                p.index,
                p.label,
                p.state,
                p.why,
                &hex::encode(p.job_id)[..12]
            );
        }
        out
    }

    /// The batch as JSON.
    pub fn json(&self) -> Value {
        json!({
            "batch_id": hex::encode(self.id),
            "submitted_at_unix_ms": self.record.created_at_unix_ms,
            "module_sha256": hex::encode(&self.record.module_sha256),
            "source": self.record.source,
            "inputs": self.total(),
            "succeeded": self.succeeded,
            "program_failed": self.program_failed,
            "no_quorum": self.no_quorum,
            "failed": self.failed,
            "unfinished": self.unfinished,
            "problems": self.problems.iter().map(|p| json!({
                "index": p.index,
                "label": p.label,
                "job_id": hex::encode(p.job_id),
                "state": p.state,
                "why": p.why,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_strings_or_objects() {
        let t = parse_line(r#""12""#, 3).unwrap();
        assert_eq!(
            (t.stdin.as_slice(), t.label.as_str()),
            (&b"12"[..], "line 3")
        );
        let t = parse_line(r#"{"stdin_hex":"00ff","args":["-v"],"id":7}"#, 1).unwrap();
        assert_eq!(t.stdin, vec![0, 255]);
        assert_eq!(t.args, vec!["-v"]);
        assert_eq!(t.label, "7");
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, words) in [
            ("{", "not valid JSON"),
            ("3", "expected a JSON string"),
            (r#"{"stdn":"x"}"#, "unknown key"),
            (r#"{"stdin":"x","stdin_hex":"00"}"#, "not both"),
            (r#"{"args":[1]}"#, "must be a string"),
            (r#"{"stdin_hex":"zz"}"#, "not hex"),
        ] {
            let e = format!("{:#}", parse_line(line, 1).unwrap_err());
            assert!(e.contains(words), "{line}: {e}");
        }
    }
}

//! Batches: one module run on many inputs (a bag of tasks, the usual shape
//! of volunteer-computing work), pipelined across the grid with bounded work
//! in flight, results streamed back as each input is verified.
//!
//! Every input is an ordinary job: its own job id, its own replicas and
//! quorum, its own [`JobRecord`](pb::JobRecord) in the ledger. A batch adds
//! a [`BatchRecord`](pb::BatchRecord) listing them, written with all the job
//! records in one transaction before anything is placed, so a batch
//! interrupted by Ctrl-C or a crash is finished by
//! [`Scheduler::resume_batch`]: inputs already decided are reported from the
//! ledger, never run again; the others are placed again. A task that finds
//! too few usable workers (all busy elsewhere, briefly unreachable, not yet
//! discovered) waits and tries again until the job timeout, instead of
//! failing the moment the grid is short.
//!
//! ```no_run
//! use std::sync::Arc;
//! use peergrid_proto::Identity;
//! use scheduler_lib::batch::{Batch, Task, TaskOutcome};
//! use scheduler_lib::{Job, Scheduler, SchedulerConfig};
//!
//! # async fn demo(module: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let scheduler = Arc::new(Scheduler::new(
//!     Identity::generate(),
//!     SchedulerConfig { peers: vec!["127.0.0.1:7001".into()], ..SchedulerConfig::default() },
//! ));
//! let tasks = (1..=1000).map(|n| Task::new(n.to_string().into_bytes()));
//! let mut run = scheduler.submit_batch(Batch::new(Job::new(module), tasks)).await?;
//! while let Some(result) = run.next().await {
//!     if let TaskOutcome::Accepted { stdout, .. } = &result.outcome {
//!         println!("{}: {}", result.label, String::from_utf8_lossy(stdout));
//!     }
//!     let p = run.progress();
//!     eprintln!("{}/{} done, {} in flight", p.done(), p.total, p.in_flight);
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use peergrid_proto::hash::hash_from_slice;
use peergrid_proto::{Sha256Hash, pb};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::SchedulerError;
use crate::job::{Job, Submission};
use crate::ledger;
use crate::outcome::{JobFailure, outcome_from_fields};
use crate::pipeline::Depth;
use crate::scheduler::Scheduler;
use crate::verdict::{JobReport, Verdict};

/// One input of a batch: what the module reads on stdin, its arguments,
/// and a name to report it by.
#[derive(Debug, Clone, Default)]
pub struct Task {
    /// Standard input.
    pub stdin: Vec<u8>,
    /// Program arguments (argv[1..]); empty: the batch template's.
    pub args: Vec<String>,
    /// A name for people and output files (a file name, a line number);
    /// empty: the task's index.
    pub label: String,
}

impl Task {
    /// A task reading `stdin`, with the template's arguments.
    pub fn new(stdin: impl Into<Vec<u8>>) -> Self {
        Self {
            stdin: stdin.into(),
            ..Self::default()
        }
    }

    /// Sets the program arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
}

/// Many inputs for one module: the template job's module, limits, replicas
/// and adaptivity apply to every task.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Module, limits, replicas and adaptivity of every task; its stdin is
    /// ignored, its arguments are used by tasks that give none.
    pub template: Job,
    /// The inputs, in order.
    pub tasks: Vec<Task>,
    /// Jobs in flight at once; `None`: a pipeline that adapts to how long
    /// jobs take, from one job per free slot of the workers found when the
    /// batch starts (divided by the replicas) up to [`IN_FLIGHT_PER_SLOT`]
    /// per free slot, at most [`MAX_DEFAULT_IN_FLIGHT`] (see
    /// [`crate::pipeline`]).
    pub in_flight: Option<usize>,
    /// Where the inputs came from, recorded for people (e.g. a path).
    pub source: String,
}

impl Batch {
    /// A batch running `template`'s module on every task.
    pub fn new(template: Job, tasks: impl IntoIterator<Item = Task>) -> Self {
        Self {
            template,
            tasks: tasks.into_iter().collect(),
            in_flight: None,
            source: String::new(),
        }
    }

    /// Caps the jobs in flight at once (at least 1).
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = Some(n.max(1));
        self
    }

    /// Records where the inputs came from.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }
}

/// How one task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// A quorum of independent workers agreed on this result. The agreed
    /// result may itself be a failure of the program (`result` is `Err`:
    /// out of fuel, a trap, a non-zero exit), which every honest worker saw.
    Accepted {
        /// How the program ended.
        result: Result<(), JobFailure>,
        /// The agreed stdout.
        stdout: Vec<u8>,
        /// Stderr as one agreeing worker returned it.
        stderr: Vec<u8>,
        /// Fuel the run used.
        fuel_used: u64,
    },
    /// Workers answered but no result reached a quorum: nothing accepted.
    NoQuorum {
        /// How the votes fell.
        reason: String,
    },
    /// The task could not be carried out (no usable workers, the ledger
    /// failed, ...); nothing was accepted. A resumed batch tries it again.
    Failed {
        /// Why.
        reason: String,
    },
}

impl TaskOutcome {
    /// Whether a quorum accepted a successful run.
    pub fn is_success(&self) -> bool {
        matches!(self, TaskOutcome::Accepted { result: Ok(()), .. })
    }

    fn of(report: Result<JobReport, SchedulerError>) -> Self {
        match report {
            Ok(report) => match report.verdict {
                Verdict::Accepted { output, .. } => TaskOutcome::Accepted {
                    result: output.result,
                    stdout: output.stdout,
                    stderr: output.stderr,
                    fuel_used: output.fuel_used,
                },
                no_quorum @ Verdict::NoQuorum { .. } => TaskOutcome::NoQuorum {
                    reason: no_quorum.no_quorum_reason().unwrap_or_default(),
                },
            },
            Err(e) => TaskOutcome::Failed {
                reason: e.to_string(),
            },
        }
    }

    /// The outcome a ledger record already holds, or `None` while the job
    /// still has to run (submitted, running, or failed without a verdict and
    /// so worth another try).
    fn recorded(record: &pb::JobRecord) -> Option<Self> {
        match record.state() {
            pb::JobState::Accepted => {
                let verdict = record.verdict.clone().unwrap_or_default();
                let Some(result) =
                    outcome_from_fields(verdict.outcome, verdict.exit_code, &verdict.detail)
                else {
                    return Some(TaskOutcome::Failed {
                        reason: "the ledger's verdict for this job names no outcome".into(),
                    });
                };
                Some(TaskOutcome::Accepted {
                    result,
                    stdout: verdict.output,
                    stderr: verdict.stderr,
                    fuel_used: verdict.fuel_used,
                })
            }
            pb::JobState::NoQuorum => Some(TaskOutcome::NoQuorum {
                reason: record.state_reason.clone(),
            }),
            _ => None,
        }
    }
}

/// The verified (or failed) result of one task.
#[derive(Debug, Clone)]
pub struct TaskResult {
    /// The task's position in the batch.
    pub index: usize,
    /// The task's label (its index if it had none).
    pub label: String,
    /// The job that carried it out.
    pub job_id: Sha256Hash,
    /// How it ended.
    pub outcome: TaskOutcome,
    /// True when the result was read from the ledger: decided before this
    /// run (a resumed batch), not run again.
    pub from_ledger: bool,
}

/// Where a batch stands. Counts add up: `total = accepted + job_failed +
/// no_quorum + failed + in_flight + queued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// Tasks in the batch.
    pub total: usize,
    /// Accepted by a quorum, the program succeeded.
    pub accepted: usize,
    /// Accepted by a quorum, the program itself failed (fuel, trap, exit code).
    pub job_failed: usize,
    /// No result reached a quorum.
    pub no_quorum: usize,
    /// Could not be carried out.
    pub failed: usize,
    /// Being placed or running now.
    pub in_flight: usize,
    /// Of those in flight, how many are waiting because the grid has too
    /// few usable workers for them right now (they try again shortly).
    pub waiting: usize,
    /// Not started yet.
    pub queued: usize,
    /// Of the finished ones, how many were already decided before this run.
    pub from_ledger: usize,
}

impl BatchProgress {
    /// Tasks finished, whatever the outcome.
    pub fn done(&self) -> usize {
        self.accepted + self.job_failed + self.no_quorum + self.failed
    }

    /// Tasks with a verdict (accepted, either way).
    pub fn verified(&self) -> usize {
        self.accepted + self.job_failed
    }

    fn count(&mut self, result: &TaskResult) {
        match &result.outcome {
            TaskOutcome::Accepted { result: Ok(()), .. } => self.accepted += 1,
            TaskOutcome::Accepted { .. } => self.job_failed += 1,
            TaskOutcome::NoQuorum { .. } => self.no_quorum += 1,
            TaskOutcome::Failed { .. } => self.failed += 1,
        }
        if result.from_ledger {
            self.from_ledger += 1;
        }
    }
}

/// A batch being carried out: results arrive with [`BatchRun::next`] in the
/// order they finish; [`BatchRun::progress`] and [`BatchRun::subscribe`]
/// say where it stands. Dropping it stops placing new tasks (those in
/// flight finish and are recorded; the rest stay in the ledger to resume).
#[derive(Debug)]
pub struct BatchRun {
    /// The batch id (its ledger key; random without a ledger).
    pub id: Sha256Hash,
    /// Tasks in the batch.
    pub total: usize,
    /// The most jobs in flight at once (a default batch starts lower and
    /// deepens while jobs come back quickly: see [`crate::pipeline`]).
    pub in_flight: usize,
    results: mpsc::Receiver<TaskResult>,
    progress: watch::Receiver<BatchProgress>,
}

impl BatchRun {
    /// The next finished task, or `None` once every task has finished.
    pub async fn next(&mut self) -> Option<TaskResult> {
        self.results.recv().await
    }

    /// Where the batch stands now.
    pub fn progress(&self) -> BatchProgress {
        *self.progress.borrow()
    }

    /// A receiver that wakes at every change of progress (for a progress
    /// bar or a status page).
    pub fn subscribe(&self) -> watch::Receiver<BatchProgress> {
        self.progress.clone()
    }
}

/// What a task needs before it runs.
enum Pending {
    /// A job to run.
    Run(Work),
    /// Already decided.
    Done(TaskOutcome),
}

/// A job of the batch still to be run.
enum Work {
    /// A new job whose record is written.
    Fresh(Box<Job>, Submission),
    /// A recorded job to place again.
    Resume(Box<pb::JobRecord>),
}

/// The most batch jobs kept in flight per free worker slot by default
/// (for jobs that come back quickly).
pub const IN_FLIGHT_PER_SLOT: usize = 96;

/// The most batch jobs kept in flight by default.
pub const MAX_DEFAULT_IN_FLIGHT: usize = 1024;

/// The first pause when a task finds too few usable workers; it doubles up
/// to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries of a task waiting for workers.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Runs one task. When the grid has too few usable workers for it (all
/// busy elsewhere, unreachable for a moment, not yet discovered), the task
/// waits and tries again, with growing pauses, until the scheduler's job
/// timeout has passed; only then is it reported failed (a resume tries it
/// again). Waiting tasks are counted in [`BatchProgress::waiting`].
async fn run_task(
    scheduler: Arc<Scheduler>,
    mut work: Work,
    progress: Arc<watch::Sender<BatchProgress>>,
) -> Result<JobReport, SchedulerError> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let result = match &work {
            Work::Fresh(job, submission) => scheduler.run_submission(job, submission.clone()).await,
            Work::Resume(record) => scheduler.resume((**record).clone(), true).await,
        };
        let waiting = matches!(result, Err(SchedulerError::NotEnoughWorkers { .. }))
            && started.elapsed() + pause < scheduler.job_timeout();
        if !waiting {
            return result;
        }
        if let Err(e) = &result {
            debug!(error = %e, ?pause, "too few usable workers; the task waits");
        }
        progress.send_modify(|p| p.waiting += 1);
        tokio::time::sleep(pause).await;
        progress.send_modify(|p| p.waiting -= 1);
        pause = (pause * 2).min(MAX_PAUSE);
        match &mut work {
            // Envelopes are signed when placed; give them a full lifetime.
            Work::Fresh(_, submission) => {
                submission.expires_at = SystemTime::now() + scheduler.envelope_ttl();
            }
            // The first try noted the replicas an interruption left
            // unanswered; the next ones must not note them again.
            Work::Resume(record) => record.placements.clear(),
        }
    }
}

struct Item {
    index: usize,
    label: String,
    job_id: Sha256Hash,
    pending: Pending,
}

impl Scheduler {
    /// Starts a batch: records it (with a ledger), then places its tasks,
    /// keeping [`Batch::in_flight`] jobs running. Fails before recording
    /// anything if the batch is empty or invalid, or if there are not
    /// enough usable workers for even one task.
    pub async fn submit_batch(self: &Arc<Self>, batch: Batch) -> Result<BatchRun, SchedulerError> {
        let Batch {
            template,
            tasks,
            in_flight,
            source,
        } = batch;
        if tasks.is_empty() {
            return Err(SchedulerError::InvalidJob("the batch has no inputs".into()));
        }
        if template.replicas == 0 {
            return Err(SchedulerError::InvalidJob(
                "replicas must be at least 1".into(),
            ));
        }
        if template.module().is_empty() {
            return Err(SchedulerError::InvalidJob("module is empty".into()));
        }
        let depth = match in_flight {
            Some(n) => Depth::fixed(n),
            None => self.default_depth(template.replicas).await?,
        };
        let now = ledger::unix_ms(SystemTime::now());
        let ttl = self.envelope_ttl();
        let mut items = Vec::with_capacity(tasks.len());
        let mut records = Vec::with_capacity(tasks.len());
        for (index, task) in tasks.into_iter().enumerate() {
            let mut job = template.clone().stdin(task.stdin);
            if !task.args.is_empty() {
                job.args = task.args;
            }
            let submission = Submission {
                batched: true,
                ..Submission::new(&job, ttl)
            };
            records.push(ledger::new_job_record(&job, &submission, now));
            let label = if task.label.is_empty() {
                index.to_string()
            } else {
                task.label
            };
            items.push(Item {
                index,
                label,
                job_id: submission.job_id,
                pending: Pending::Run(Work::Fresh(Box::new(job), submission)),
            });
        }
        let batch_id: Sha256Hash = rand::random();
        let record = pb::BatchRecord {
            batch_id: batch_id.to_vec(),
            module_sha256: template.module_hash().to_vec(),
            job_ids: items.iter().map(|i| i.job_id.to_vec()).collect(),
            labels: items.iter().map(|i| i.label.clone()).collect(),
            created_at_unix_ms: now,
            source,
        };
        let module = Arc::clone(template.module());
        let hash = template.module_hash();
        self.in_ledger(move |l| {
            l.put_module(&hash, &module)?;
            l.insert_batch(&record, &records)
        })
        .await?;
        info!(
            batch = %hex::encode(&batch_id[..6]),
            tasks = items.len(),
            in_flight = depth.ceiling(),
            "batch submitted"
        );
        Ok(self.drive(batch_id, items, depth))
    }

    /// Finishes a batch recorded in the ledger: tasks already decided are
    /// reported from their records (`from_ledger`), the others (never
    /// placed, interrupted, or failed for want of workers) are placed again.
    /// `in_flight`: as [`Batch::in_flight`].
    pub async fn resume_batch(
        self: &Arc<Self>,
        batch_id: Sha256Hash,
        in_flight: Option<usize>,
    ) -> Result<BatchRun, SchedulerError> {
        let (batch, records) = self
            .in_ledger(move |l| {
                let Some(batch) = l.batch(&batch_id)? else {
                    return Ok(None);
                };
                let mut records = Vec::with_capacity(batch.job_ids.len());
                for id in &batch.job_ids {
                    let record = match hash_from_slice(id) {
                        Some(id) => l.job(&id)?,
                        None => None,
                    };
                    records.push(record);
                }
                Ok(Some((batch, records)))
            })
            .await?
            .ok_or_else(|| SchedulerError::Ledger("this scheduler keeps no ledger".into()))?
            .ok_or_else(|| {
                SchedulerError::Ledger(format!("no batch {} in the ledger", hex::encode(batch_id)))
            })?;
        let mut items = Vec::with_capacity(records.len());
        let mut replicas = 1;
        for (index, record) in records.into_iter().enumerate() {
            let job_id = batch
                .job_ids
                .get(index)
                .and_then(|id| hash_from_slice(id))
                .unwrap_or_default();
            let label = batch
                .labels
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string());
            let pending = match record {
                None => Pending::Done(TaskOutcome::Failed {
                    reason: format!(
                        "job {} of the batch is missing from the ledger",
                        hex::encode(job_id)
                    ),
                }),
                Some(record) => {
                    replicas = replicas.max(record.replicas as usize);
                    match TaskOutcome::recorded(&record) {
                        Some(outcome) => Pending::Done(outcome),
                        None => Pending::Run(Work::Resume(Box::new(record))),
                    }
                }
            };
            items.push(Item {
                index,
                label,
                job_id,
                pending,
            });
        }
        let to_run = items
            .iter()
            .filter(|i| matches!(i.pending, Pending::Run(_)))
            .count();
        let depth = match in_flight {
            Some(n) => Depth::fixed(n),
            None if to_run == 0 => Depth::fixed(1),
            None => self.default_depth(replicas).await?,
        };
        info!(
            batch = %hex::encode(&batch_id[..6]),
            tasks = items.len(),
            to_run,
            in_flight = depth.ceiling(),
            "batch resumed"
        );
        Ok(self.drive(batch_id, items, depth))
    }

    /// The default pipeline: from one job per free slot of the live
    /// workers (divided by the replicas each job takes) up to
    /// [`IN_FLIGHT_PER_SLOT`] per free slot, at most
    /// [`MAX_DEFAULT_IN_FLIGHT`], adapting to how long jobs take
    /// ([`Depth::adaptive`]); an error if there are no workers.
    async fn default_depth(&self, replicas: usize) -> Result<Depth, SchedulerError> {
        let (live, reasons) = self.survey().await;
        let free: usize = live.iter().map(|w| w.info.hello.free_slots as usize).sum();
        if live.is_empty() {
            return Err(SchedulerError::NotEnoughWorkers {
                needed: replicas / 2 + 1,
                usable: 0,
                known: self.configured_peers(),
                reasons,
            });
        }
        let replicas = replicas.max(1);
        let floor = (free / replicas).max(1);
        let ceiling = (free * IN_FLIGHT_PER_SLOT / replicas).clamp(floor, MAX_DEFAULT_IN_FLIGHT);
        Ok(Depth::adaptive(floor, ceiling))
    }

    /// Runs the items in a task of their own, as many at a time as `depth`
    /// allows.
    fn drive(self: &Arc<Self>, id: Sha256Hash, items: Vec<Item>, mut depth: Depth) -> BatchRun {
        let total = items.len();
        let in_flight = depth.ceiling();
        let (results_tx, results) = mpsc::channel(in_flight.max(16));
        let (progress_tx, progress) = watch::channel(BatchProgress {
            total,
            queued: total,
            ..BatchProgress::default()
        });
        let progress_tx = Arc::new(progress_tx);
        let scheduler = Arc::clone(self);
        let span = info_span!("batch", id = %hex::encode(&id[..6]));
        tokio::spawn(
            async move {
                let started = Instant::now();
                let mut queue = items.into_iter();
                let mut running = JoinSet::new();
                loop {
                    while running.len() < depth.limit() {
                        let Some(item) = queue.next() else { break };
                        // Each change of progress is one `send_modify`, so
                        // a reader never sees a task counted twice or not
                        // at all.
                        let (index, label, job_id) = (item.index, item.label, item.job_id);
                        let run = match item.pending {
                            Pending::Done(outcome) => {
                                let result = TaskResult {
                                    index,
                                    label,
                                    job_id,
                                    outcome,
                                    from_ledger: true,
                                };
                                progress_tx.send_modify(|p| {
                                    p.queued -= 1;
                                    p.count(&result);
                                });
                                if results_tx.send(result).await.is_err() {
                                    return;
                                }
                                continue;
                            }
                            Pending::Run(work) => tokio::spawn(run_task(
                                Arc::clone(&scheduler),
                                work,
                                Arc::clone(&progress_tx),
                            )),
                        };
                        progress_tx.send_modify(|p| {
                            p.queued -= 1;
                            p.in_flight += 1;
                        });
                        let placed = Instant::now();
                        running.spawn(async move {
                            let outcome = match run.await {
                                Ok(report) => TaskOutcome::of(report),
                                Err(e) => TaskOutcome::Failed {
                                    reason: format!("the task's job stopped: {e}"),
                                },
                            };
                            let result = TaskResult {
                                index,
                                label,
                                job_id,
                                outcome,
                                from_ledger: false,
                            };
                            (result, placed.elapsed())
                        });
                    }
                    let Some(joined) = running.join_next().await else {
                        break;
                    };
                    let Ok((result, took)) = joined else {
                        // Only a panic in the wrapper above lands here; the
                        // job's own task reports its panic as an outcome.
                        warn!("a batch task ended without a result");
                        progress_tx.send_modify(|p| {
                            p.in_flight -= 1;
                            p.failed += 1;
                        });
                        continue;
                    };
                    depth.observe(took);
                    progress_tx.send_modify(|p| {
                        p.in_flight -= 1;
                        p.count(&result);
                    });
                    if results_tx.send(result).await.is_err() {
                        // Nobody listens any more: place nothing new; the
                        // jobs in flight finish and are recorded.
                        break;
                    }
                }
                let p = *progress_tx.borrow();
                info!(
                    accepted = p.accepted,
                    job_failed = p.job_failed,
                    no_quorum = p.no_quorum,
                    failed = p.failed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "batch finished"
                );
            }
            .instrument(span),
        );
        BatchRun {
            id,
            total,
            in_flight,
            results,
            progress,
        }
    }
}

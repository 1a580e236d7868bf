//! `peergrid job ID`: explain one submitted job from the ledger.
//!
//! Reads the job's record from the ledger `peergrid submit` keeps in the
//! data directory ([`scheduler_lib::ledger`]) and says everything it holds:
//! where each replica ran (peer id and address), what each worker signed
//! (outcome, output hash, fuel, its own wall time, the round trip measured
//! here, whether the signature still checks), the stderr each worker
//! returned, the replicas that failed and why, the verdict (who agreed, who
//! dissented, the votes needed) and the result certificate.
//!
//! What the ledger does not hold is said, not guessed:
//! - stderr exists only for workers that returned a result; a replica that
//!   failed without one (unreachable, busy, timed out, bad signature) has
//!   only its error text;
//! - the submitter writes results together with the verdict, so a job
//!   interrupted before its verdict has placements but no results;
//! - the quorum an accepted job needed is not recorded (adaptive
//!   replication may accept fewer votes than a strict majority of k from
//!   credible workers); it is recorded for a job that reached no quorum.
//!
//! Reading needs the ledger file to itself: redb locks it for the process
//! that opened it. So while a `peergrid submit` runs on this data directory
//! the ledger cannot be read (exit 1, saying so), and conversely a job
//! found still SUBMITTED or RUNNING is one no process is working on: its
//! submitter was interrupted, and `peergrid submit --resume ID` finishes it.
//!
//! This module also holds what `peergrid jobs` shares: opening the ledger
//! without creating it, resolving an id prefix, and naming a job's state.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use peergrid_proto::hash::hash_from_slice;
use peergrid_proto::{Domain, PeerId, Sha256Hash, envelope, pb};
use prost::Message;
use scheduler_lib::ledger::{self, Ledger, LedgerError};
use scheduler_lib::outcome::outcome_from_claim;
use scheduler_lib::{Certificate, VerifyPolicy};
use serde_json::{Value, json};

use super::args::{JobArgs, OutputFormat};
use super::report::ago;

/// Most stderr lines the text report prints per worker (JSON has it all).
const STDERR_LINES: usize = 20;

/// Explains the job `args.id` (a full id or a unique prefix) on stdout.
pub fn run(args: JobArgs) -> anyhow::Result<ExitCode> {
    let path = super::data_dir(args.data_dir)?.join(ledger::FILE_NAME);
    let Some(ledger) = open_ledger(&path)? else {
        anyhow::bail!(
            "no job in the ledger starts with {}: there is no ledger at {} (no job was \
             submitted with this data directory)",
            args.id.trim(),
            path.display()
        );
    };
    if let Some(batch_id) = super::batch::find_batch(&ledger, &args.id)? {
        let record = ledger
            .batch(&batch_id)?
            .with_context(|| format!("batch {} vanished from the ledger", hex::encode(batch_id)))?;
        let mut jobs = std::collections::HashMap::new();
        for id in record.job_ids.iter().filter_map(|id| hash_from_slice(id)) {
            if let Some(job) = ledger.job(&id)? {
                jobs.insert(id, job);
            }
        }
        let summary = super::batch::BatchSummary::of(record, |id| jobs.get(id))?;
        print!(
            "{}",
            match args.output_format {
                OutputFormat::Text => summary.text(),
                OutputFormat::Json => pretty(&summary.json()),
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let job_id = find_job(&ledger, &args.id)?;
    let record = ledger
        .job(&job_id)
        .with_context(|| {
            format!(
                "reading job {} from {}",
                hex::encode(job_id),
                path.display()
            )
        })?
        .with_context(|| format!("job {} vanished from the ledger", hex::encode(job_id)))?;
    drop(ledger);

    let explained = Explained::of(&record);
    if let Some(file) = &args.certificate {
        write_certificate(&record, file)?;
    }
    print!(
        "{}",
        match args.output_format {
            OutputFormat::Text => explained.text(ledger::unix_ms(SystemTime::now())),
            OutputFormat::Json => pretty(&explained.json()),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Opens the ledger at `path` for reading; `None` if there is no file (this
/// never creates a ledger). A ledger another process holds is a clear error.
pub fn open_ledger(path: &Path) -> anyhow::Result<Option<Ledger>> {
    if !path.exists() {
        return Ok(None);
    }
    Ledger::open(path).map(Some).map_err(|error| match error {
        LedgerError::Locked { .. } => anyhow::anyhow!(
            "the ledger {} is in use by another peergrid process (a running `peergrid submit`?); \
             its jobs can be read when it has finished",
            path.display()
        ),
        error => {
            anyhow::Error::new(error).context(format!("opening the ledger {}", path.display()))
        }
    })
}

/// The ledger's job whose id starts with `prefix` (hex, any case), if
/// exactly one does; otherwise an error naming the prefix (none, or how
/// many match). `peergrid job` and `peergrid submit --resume` share it.
pub fn find_job(ledger: &Ledger, prefix: &str) -> anyhow::Result<Sha256Hash> {
    let prefix = prefix.trim().to_ascii_lowercase();
    anyhow::ensure!(
        !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_hexdigit()),
        "{prefix:?} is not a job id: give its hex digits (the full id, or a prefix of it)"
    );
    let matches: Vec<Sha256Hash> = ledger
        .jobs()?
        .into_iter()
        .map(|j| j.job_id)
        .filter(|id| hex::encode(id).starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => anyhow::bail!("no job in the ledger starts with {prefix}"),
        _ => anyhow::bail!(
            "{} jobs start with {prefix} ({}); give more digits",
            matches.len(),
            matches
                .iter()
                .take(5)
                .map(|id| hex::encode(&id[..8]))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The shortest prefix of `id` (at least 12 hex digits) that no other id
/// of `all` starts with: what listings print and `job` accepts.
pub fn find_short(id: &Sha256Hash, all: &[Sha256Hash]) -> String {
    let full = hex::encode(id);
    let others: Vec<String> = all.iter().filter(|o| *o != id).map(hex::encode).collect();
    (12..full.len())
        .map(|n| &full[..n])
        .find(|prefix| !others.iter().any(|o| o.starts_with(prefix)))
        .unwrap_or(&full)
        .to_string()
}

/// The command that finishes an interrupted job.
pub fn resume_command(id: &str) -> String {
    format!("peergrid submit --resume {id}")
}

/// Where a job is, for people and machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The ledger's state, as a JSON word: `submitted`, `running`,
    /// `accepted`, `no_quorum`, `failed`, `unspecified`.
    pub state: &'static str,
    /// The state as the listing shows it: `interrupted` for a job without a
    /// verdict (nothing is working on it), else the state in words.
    pub label: &'static str,
    /// Why it is there: how the votes fell, why it failed, or what it
    /// waits for and how to finish it.
    pub why: String,
    /// No verdict, and no process holds the ledger: resume it.
    pub interrupted: bool,
}

impl Status {
    /// The status of `record`, naming the job as `id` in the resume command.
    pub fn of(record: &pb::JobRecord, id: &str) -> Self {
        let k = record.replicas;
        let placed = record.placements.len();
        let resumed = record.state_reason.starts_with("resumed");
        let interrupted = |why: String| {
            let again = if resumed { " again after a resume" } else { "" };
            format!(
                "no verdict yet: interrupted{again}, {why} — resume with `{}`",
                resume_command(id)
            )
        };
        match record.state() {
            pb::JobState::Submitted => Self {
                state: "submitted",
                label: "interrupted",
                why: interrupted("before any replica was placed".into()),
                interrupted: true,
            },
            pb::JobState::Running => {
                let answers = record.results.len() + record.failures.len();
                let waiting = if answers == 0 {
                    // What the round last noted (results are written with
                    // the verdict, so this is the only trace of them).
                    match record.state_reason.as_str() {
                        "" | "waiting for workers" => "waiting for results".to_string(),
                        noted => format!("last noted: {noted}"),
                    }
                } else {
                    format!(
                        "{} results and {} failures recorded, waiting for the rest",
                        record.results.len(),
                        record.failures.len()
                    )
                };
                Self {
                    state: "running",
                    label: "interrupted",
                    why: interrupted(format!("placed on {placed} of {k}, {waiting}")),
                    interrupted: true,
                }
            }
            pb::JobState::Accepted => {
                let verdict = record.verdict.clone().unwrap_or_default();
                let agreed = verdict.agreeing_peers.len();
                let total = agreed + verdict.dissenting_peers.len();
                let mut why = match outcome_text(&verdict) {
                    None => format!("ok, {agreed} of {total} agree"),
                    Some(failure) => {
                        format!("the job itself failed ({failure}), {agreed} of {total} agree")
                    }
                };
                if !verdict.dissenting_peers.is_empty() {
                    let _ = write!(
                        why,
                        ", {} dissented ({})",
                        verdict.dissenting_peers.len(),
                        shorts(&verdict.dissenting_peers)
                    );
                }
                if !record.failures.is_empty() {
                    let _ = write!(why, ", {} failed", record.failures.len());
                }
                Self {
                    state: "accepted",
                    label: "accepted",
                    why,
                    interrupted: false,
                }
            }
            pb::JobState::NoQuorum => Self {
                state: "no_quorum",
                label: "no quorum",
                why: or_unknown(&record.state_reason),
                interrupted: false,
            },
            pb::JobState::Failed => Self {
                state: "failed",
                label: "failed",
                why: or_unknown(&record.state_reason),
                interrupted: false,
            },
            pb::JobState::Unspecified => Self {
                state: "unspecified",
                label: "unknown",
                why: "the record has no state this peergrid knows (written by a newer version?)"
                    .into(),
                interrupted: false,
            },
        }
    }
}

fn or_unknown(reason: &str) -> String {
    if reason.is_empty() {
        "the ledger gives no reason".into()
    } else {
        reason.to_string()
    }
}

/// `None` for a successful outcome, else the failure in words.
fn outcome_text(verdict: &pb::VerdictRecord) -> Option<String> {
    let claim = pb::ResultClaim {
        outcome: verdict.outcome,
        exit_code: verdict.exit_code,
        detail: verdict.detail.clone(),
        ..Default::default()
    };
    match outcome_from_claim(&claim) {
        Some(Ok(())) => None,
        Some(Err(failure)) => Some(failure.to_string()),
        None => Some("no outcome recorded".into()),
    }
}

/// Short ids of peer id byte strings, comma-separated.
fn shorts(peers: &[Vec<u8>]) -> String {
    peers
        .iter()
        .map(|p| short_peer(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A 12-digit peer id, or `?` for bytes that are not a peer id.
fn short_peer(bytes: &[u8]) -> String {
    peer_of(bytes).map_or_else(|| "?".into(), |p| p.short())
}

fn peer_of(bytes: &[u8]) -> Option<PeerId> {
    peergrid_proto::hash::hash_from_slice(bytes).map(PeerId::from_bytes)
}

/// Full hex of a peer id, `null` when empty.
fn peer_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        Value::String(hex::encode(bytes))
    }
}

/// What one worker did with one replica of the job.
#[derive(Debug, Clone)]
struct Replica {
    /// The worker's peer id (empty when never learned).
    peer_id: Vec<u8>,
    /// Where it was reached.
    address: String,
    /// When it was placed, if the ledger has its placement.
    placed_at_unix_ms: Option<u64>,
    /// Its signed result, if it returned one.
    result: Option<pb::ResultRecord>,
    /// Why it ended without a result, if it did.
    error: Option<String>,
}

/// One job, with its replicas matched up and its status.
struct Explained<'a> {
    record: &'a pb::JobRecord,
    id: String,
    status: Status,
    replicas: Vec<Replica>,
}

impl<'a> Explained<'a> {
    fn of(record: &'a pb::JobRecord) -> Self {
        let id = hex::encode(&record.job_id);
        Self {
            status: Status::of(record, &id),
            replicas: match_replicas(record),
            record,
            id,
        }
    }

    /// How the worker of `replica` counts in the verdict.
    fn role(&self, replica: &Replica) -> &'static str {
        let verdict = self.record.verdict.as_ref();
        let is_in = |peers: &[Vec<u8>]| peers.contains(&replica.peer_id);
        if replica.result.is_some() {
            match verdict {
                Some(v) if is_in(&v.agreeing_peers) => "agreed",
                Some(v) if is_in(&v.dissenting_peers) => "dissented",
                Some(_) if self.record.state() == pb::JobState::NoQuorum => "voted",
                _ => "answered",
            }
        } else if replica.error.is_some() {
            "failed"
        } else {
            "no_answer"
        }
    }

    fn text(&self, now_ms: u64) -> String {
        let r = self.record;
        let mut out = String::new();
        let _ = writeln!(out, "job {}", self.id);
        let _ = writeln!(
            out,
            "  submitted    {} ({})",
            utc(r.created_at_unix_ms),
            ago(now_ms, r.created_at_unix_ms)
        );
        let _ = writeln!(out, "  module       {}", hex::encode(&r.module_sha256));
        let _ = writeln!(
            out,
            "  input        {} bytes of stdin, args {:?}",
            r.stdin.len(),
            r.args
        );
        if let Some(l) = &r.limits {
            let budget = match scheduler_lib::Budget::from_pb(l.budget) {
                Some(scheduler_lib::Budget::Fuel) => format!("fuel {}", l.fuel),
                _ => "wall time only (no fuel counted)".to_owned(),
            };
            let _ = writeln!(
                out,
                "  limits       {budget}, memory {} MiB, wall time {} ms, stdout {} KiB",
                l.memory_bytes >> 20,
                l.wall_time_ms,
                l.max_output_bytes >> 10
            );
        }
        let _ = writeln!(
            out,
            "  replicas     {} asked, {} placed, {} results, {} failed",
            r.replicas,
            r.placements.len(),
            r.results.len(),
            r.failures.len()
        );
        if self.status.interrupted {
            let _ = writeln!(out, "  state        {}", self.status.why);
        } else {
            let _ = writeln!(
                out,
                "  state        {}: {}",
                self.status.label.to_uppercase(),
                self.status.why
            );
        }
        if !r.state_reason.is_empty() && !self.status.why.contains(&r.state_reason) {
            let _ = writeln!(out, "               (ledger: {})", r.state_reason);
        }
        if self.status.interrupted && r.results.is_empty() && !r.placements.is_empty() {
            let _ = writeln!(
                out,
                "               results are written with the verdict, so any received before \
                 the interruption are not in the ledger; resuming re-places the replicas"
            );
        }
        self.verdict_text(&mut out);
        self.certificate_text(&mut out);
        let _ = writeln!(out, "  workers");
        if self.replicas.is_empty() {
            let _ = writeln!(out, "    none: no replica was placed");
        }
        for replica in &self.replicas {
            self.replica_text(replica, &mut out);
        }
        out
    }

    fn verdict_text(&self, out: &mut String) {
        let r = self.record;
        let Some(v) = &r.verdict else {
            let _ = writeln!(out, "  verdict      none yet");
            return;
        };
        let decided = format!(
            "decided {} ({:.1} s after submission)",
            utc(v.decided_at_unix_ms),
            v.decided_at_unix_ms.saturating_sub(r.created_at_unix_ms) as f64 / 1000.0
        );
        if r.state() == pb::JobState::NoQuorum {
            let _ = writeln!(
                out,
                "  verdict      NO QUORUM: no result had the {} agreeing votes needed; nothing \
                 accepted; {decided}",
                v.needed
            );
            return;
        }
        let outcome = outcome_text(v).unwrap_or_else(|| "success".into());
        let _ = writeln!(
            out,
            "  verdict      ACCEPTED: {outcome}, output {} ({} bytes), fuel {}; {decided}",
            hex::encode(&v.output_sha256),
            v.output.len(),
            v.fuel_used
        );
        let _ = writeln!(
            out,
            "               agreed ({}): {}",
            v.agreeing_peers.len(),
            or_none(&shorts(&v.agreeing_peers))
        );
        let _ = writeln!(
            out,
            "               dissented ({}): {}",
            v.dissenting_peers.len(),
            or_none(&shorts(&v.dissenting_peers))
        );
        let _ = writeln!(
            out,
            "               quorum: {}",
            quorum_text(v.needed, r.replicas)
        );
        if outcome_text(v).is_some() {
            let _ = writeln!(
                out,
                "               stderr of an agreeing worker:{}",
                stderr_block(&v.stderr)
            );
        }
    }

    fn certificate_text(&self, out: &mut String) {
        let Some(v) = &self.record.verdict else {
            return;
        };
        let _ = writeln!(
            out,
            "  certificate  {}",
            certificate_summary(&v.certificate, &self.id)
        );
    }

    fn replica_text(&self, replica: &Replica, out: &mut String) {
        let role = self.role(replica);
        let label = match role {
            "dissented" => "DISSENTED".to_string(),
            "failed" => "FAILED".to_string(),
            "no_answer" => "no answer".to_string(),
            other => other.to_string(),
        };
        let peer = if replica.peer_id.is_empty() {
            "(peer unknown)".to_string()
        } else {
            short_peer(&replica.peer_id)
        };
        let _ = writeln!(
            out,
            "    {label:<10} {peer:<12}  {}",
            or_none(&replica.address)
        );
        let _ = writeln!(
            out,
            "               peer id {}",
            peer_json(&replica.peer_id)
        );
        if let Some(result) = &replica.result {
            let claim = Claim::of(result);
            let _ = writeln!(
                out,
                "               {}, output {}, {}, worker time {:.1} ms, round trip {} ms, \
                 signature {}",
                claim.outcome,
                claim
                    .output_sha256
                    .as_deref()
                    .map_or("?", |h| &h[..h.len().min(12)]),
                super::report::work(
                    claim.fuel_used,
                    std::time::Duration::from_micros(claim.cpu_time_us)
                ),
                claim.wall_time_us as f64 / 1000.0,
                result.round_trip_ms,
                claim.signature
            );
            let failed_run = claim.outcome != "success";
            if failed_run || !result.stderr.is_empty() {
                let _ = writeln!(
                    out,
                    "               stderr:{}",
                    stderr_block(&result.stderr)
                );
            }
        } else if let Some(error) = &replica.error {
            let _ = writeln!(out, "               error: {error}");
            let _ = writeln!(
                out,
                "               stderr: not in the ledger (the worker returned no result; \
                 stderr is kept only with a returned result)"
            );
        } else {
            let _ = writeln!(
                out,
                "               placed {}, no result or failure recorded (the submitter stopped)",
                replica.placed_at_unix_ms.map_or_else(|| "?".into(), utc)
            );
        }
    }

    fn json(&self) -> Value {
        let r = self.record;
        let verdict = r.verdict.as_ref().map(|v| {
            let accepted = r.state() == pb::JobState::Accepted;
            json!({
                "accepted": accepted,
                "outcome": if accepted {
                    Value::String(outcome_text(v).unwrap_or_else(|| "success".into()))
                } else {
                    Value::Null
                },
                "output_sha256": hex_or_null(&v.output_sha256),
                "output_bytes": v.output.len(),
                "output": if accepted { lossy(&v.output) } else { Value::Null },
                "stderr": if accepted { lossy(&v.stderr) } else { Value::Null },
                "fuel_used": v.fuel_used,
                "agreeing_workers": v.agreeing_peers.iter().map(|p| peer_json(p)).collect::<Vec<_>>(),
                "dissenting_workers": v.dissenting_peers.iter().map(|p| peer_json(p)).collect::<Vec<_>>(),
                "needed": if v.needed == 0 { Value::Null } else { json!(v.needed) },
                "quorum": quorum_text(v.needed, r.replicas),
                "decided_at_unix_ms": v.decided_at_unix_ms,
                "decided_at": utc(v.decided_at_unix_ms),
            })
        });
        let certificate = r.verdict.as_ref().and_then(|v| {
            (!v.certificate.is_empty()).then(|| {
                let decoded = Certificate::decode(&v.certificate);
                json!({
                    "bytes": v.certificate.len(),
                    "signatures": decoded.as_ref().map(|c| c.claims.len()).ok(),
                    "check": certificate_summary(&v.certificate, &self.id),
                    "valid": decoded
                        .map(|c| c.verify(&VerifyPolicy { min_signatures: 1, ..VerifyPolicy::default() }).is_ok())
                        .unwrap_or(false),
                })
            })
        });
        let workers: Vec<Value> = self
            .replicas
            .iter()
            .map(|replica| {
                let claim = replica.result.as_ref().map(Claim::of);
                let result = replica.result.as_ref();
                json!({
                    "peer_id": peer_json(&replica.peer_id),
                    "address": replica.address,
                    "placed_at_unix_ms": replica.placed_at_unix_ms,
                    "role": self.role(replica),
                    "output_sha256": claim.as_ref().and_then(|c| c.output_sha256.clone()),
                    "outcome": claim.as_ref().map(|c| c.outcome.clone()),
                    "fuel_used": claim.as_ref().map(|c| c.fuel_used),
                    "cpu_time_us": claim.as_ref().map(|c| c.cpu_time_us),
                    "wall_time_ms": claim.as_ref().map(|c| c.wall_time_us as f64 / 1000.0),
                    "round_trip_ms": result.map(|r| r.round_trip_ms),
                    "received_at_unix_ms": result.map(|r| r.received_at_unix_ms),
                    "signature": claim.as_ref().map(|c| c.signature.clone()),
                    "stderr": result.map(|r| lossy(&r.stderr)),
                    "stderr_kept": result.is_some(),
                    "error": replica.error,
                })
            })
            .collect();
        json!({
            "job_id": self.id,
            "module_sha256": hex::encode(&r.module_sha256),
            "args": r.args,
            "stdin_bytes": r.stdin.len(),
            "replicas": r.replicas,
            "submitted_at_unix_ms": r.created_at_unix_ms,
            "submitted_at": utc(r.created_at_unix_ms),
            "state": self.status.state,
            "status": self.status.why,
            "state_reason": r.state_reason,
            "interrupted": self.status.interrupted,
            "resume_command": self.status.interrupted.then(|| resume_command(&self.id)),
            "placements": r.placements.len(),
            "results": r.results.len(),
            "failures": r.failures.len(),
            "workers": workers,
            "verdict": verdict,
            "certificate": certificate,
        })
    }
}

/// A result's signed claim, read back for people.
struct Claim {
    /// `success` or the failure in words.
    outcome: String,
    /// Hex SHA-256 of the output the worker signed.
    output_sha256: Option<String>,
    fuel_used: u64,
    cpu_time_us: u64,
    wall_time_us: u64,
    /// `valid`, or why not.
    signature: String,
}

impl Claim {
    fn of(result: &pb::ResultRecord) -> Self {
        let unreadable = |why: String| Self {
            outcome: "unreadable claim".into(),
            output_sha256: None,
            fuel_used: 0,
            cpu_time_us: 0,
            wall_time_us: 0,
            signature: why,
        };
        let Some(signed) = &result.signed_claim else {
            return unreadable("missing".into());
        };
        let claim = match pb::ResultClaim::decode(signed.payload.as_slice()) {
            Ok(claim) => claim,
            Err(e) => return unreadable(format!("unreadable: {e}")),
        };
        let signature = match envelope::verify(signed, Domain::Result) {
            Ok(v) if v.signer.as_bytes().as_slice() == result.peer_id.as_slice() => "valid".into(),
            Ok(v) => format!("INVALID: signed by {}, not the worker", v.signer.short()),
            Err(e) => format!("INVALID: {e}"),
        };
        Self {
            outcome: match outcome_from_claim(&claim) {
                Some(Ok(())) => "success".into(),
                Some(Err(failure)) => failure.to_string(),
                None => "unknown outcome".into(),
            },
            output_sha256: Some(hex::encode(&claim.output_sha256)),
            fuel_used: claim.fuel_used,
            cpu_time_us: claim.cpu_time_us,
            wall_time_us: claim.wall_time_us,
            signature,
        }
    }
}

/// Pairs each placement with its result (by the envelope nonce the claim
/// repeats, else by peer) or failure (by peer), in placement order; results
/// and failures with no placement follow.
fn match_replicas(record: &pb::JobRecord) -> Vec<Replica> {
    let mut replicas: Vec<Replica> = record
        .placements
        .iter()
        .map(|p| Replica {
            peer_id: p.peer_id.clone(),
            address: p.address.clone(),
            placed_at_unix_ms: Some(p.placed_at_unix_ms),
            result: None,
            error: None,
        })
        .collect();
    let nonce_of = |r: &pb::ResultRecord| {
        r.signed_claim
            .as_ref()
            .and_then(|s| pb::ResultClaim::decode(s.payload.as_slice()).ok())
            .map(|c| c.nonce)
    };
    let open = |rep: &Replica| rep.result.is_none() && rep.error.is_none();
    for result in &record.results {
        let nonce = nonce_of(result);
        let slot = record
            .placements
            .iter()
            .zip(replicas.iter())
            .position(|(p, rep)| open(rep) && nonce.as_deref() == Some(p.nonce.as_slice()))
            .or_else(|| {
                replicas
                    .iter()
                    .position(|rep| open(rep) && rep.peer_id == result.peer_id)
            });
        match slot {
            Some(i) => replicas[i].result = Some(result.clone()),
            None => replicas.push(Replica {
                peer_id: result.peer_id.clone(),
                address: result.address.clone(),
                placed_at_unix_ms: None,
                result: Some(result.clone()),
                error: None,
            }),
        }
    }
    for failure in &record.failures {
        let slot = (!failure.peer_id.is_empty())
            .then(|| {
                replicas
                    .iter()
                    .position(|rep| open(rep) && rep.peer_id == failure.peer_id)
            })
            .flatten();
        match slot {
            Some(i) => replicas[i].error = Some(failure.error.clone()),
            None => replicas.push(Replica {
                peer_id: failure.peer_id.clone(),
                address: failure.address.clone(),
                placed_at_unix_ms: None,
                result: None,
                error: Some(failure.error.clone()),
            }),
        }
    }
    replicas
}

/// What the ledger says about the votes a result needed.
fn quorum_text(needed: u32, replicas: u32) -> String {
    if needed > 0 {
        format!("{needed} agreeing votes needed")
    } else {
        format!(
            "not recorded for an accepted job (a strict majority of {replicas} is {}; \
             credible workers may need fewer)",
            replicas / 2 + 1
        )
    }
}

/// The stored certificate, checked again: signatures and their count.
fn certificate_summary(bytes: &[u8], id: &str) -> String {
    if bytes.is_empty() {
        return "none (nothing was accepted, or no certificate was made)".into();
    }
    match Certificate::decode(bytes) {
        Err(e) => format!("{} bytes, unreadable: {e}", bytes.len()),
        Ok(c) => {
            let policy = VerifyPolicy {
                min_signatures: 1,
                ..VerifyPolicy::default()
            };
            let check = match c.verify(&policy) {
                Ok(v) => format!("valid, {} distinct signers", v.signers.len()),
                Err(e) => format!("INVALID: {e}"),
            };
            format!(
                "{} signatures, {check}; write it with `peergrid job {id} --certificate FILE`",
                c.claims.len()
            )
        }
    }
}

/// Writes the job's stored certificate to `file`.
fn write_certificate(record: &pb::JobRecord, file: &PathBuf) -> anyhow::Result<()> {
    let bytes = record
        .verdict
        .as_ref()
        .map(|v| v.certificate.as_slice())
        .unwrap_or_default();
    anyhow::ensure!(
        !bytes.is_empty(),
        "job {} has no certificate: nothing was accepted (state: {})",
        hex::encode(&record.job_id),
        Status::of(record, &hex::encode(&record.job_id)).label
    );
    std::fs::write(file, bytes)
        .with_context(|| format!("writing the certificate to {}", file.display()))?;
    eprintln!(
        "certificate written to {} (check it with `peergrid verify {}`)",
        file.display(),
        file.display()
    );
    Ok(())
}

/// Stderr as indented lines (at most [`STDERR_LINES`]), or ` (empty)`.
fn stderr_block(stderr: &[u8]) -> String {
    if stderr.is_empty() {
        return " (empty)".into();
    }
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for line in lines.iter().take(STDERR_LINES) {
        let _ = write!(out, "\n               | {line}");
    }
    if lines.len() > STDERR_LINES {
        let _ = write!(
            out,
            "\n               | … {} more lines (`--output json` has all of it)",
            lines.len() - STDERR_LINES
        );
    }
    out
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}

fn hex_or_null(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        Value::String(hex::encode(bytes))
    }
}

/// Bytes as a string (invalid UTF-8 replaced).
fn lossy(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// Pretty JSON with a final newline.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// A Unix time in ms as `YYYY-MM-DD HH:MM:SSZ` (UTC); `—` for 0.
pub fn utc(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "—".into();
    }
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_civil_dates() {
        assert_eq!(utc(0), "—");
        assert_eq!(utc(1_000), "1970-01-01 00:00:01Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20Z");
    }

    #[test]
    fn an_interrupted_job_says_how_far_it_got_and_how_to_resume() {
        let mut record = pb::JobRecord {
            replicas: 3,
            placements: vec![pb::PlacementRecord::default(); 2],
            ..Default::default()
        };
        record.set_state(pb::JobState::Running);
        let status = Status::of(&record, "abcd");
        assert!(status.interrupted);
        assert_eq!(status.label, "interrupted");
        assert!(status.why.contains("placed on 2 of 3"), "{}", status.why);
        assert!(
            status.why.contains("`peergrid submit --resume abcd`"),
            "{}",
            status.why
        );
        record.set_state(pb::JobState::Submitted);
        assert!(
            Status::of(&record, "abcd")
                .why
                .contains("before any replica was placed")
        );
    }

    #[test]
    fn failures_without_a_placement_are_listed_too() {
        let placement = pb::PlacementRecord {
            peer_id: vec![1; 32],
            address: "a:1".into(),
            ..Default::default()
        };
        let record = pb::JobRecord {
            placements: vec![placement],
            failures: vec![
                pb::FailureRecord {
                    peer_id: vec![1; 32],
                    error: "busy".into(),
                    ..Default::default()
                },
                pb::FailureRecord {
                    address: "b:2".into(),
                    error: "unreachable".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let replicas = match_replicas(&record);
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[0].error.as_deref(), Some("busy"));
        assert_eq!(replicas[1].address, "b:2");
        assert!(replicas[1].placed_at_unix_ms.is_none());
    }
}

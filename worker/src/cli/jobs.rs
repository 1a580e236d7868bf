//! `peergrid jobs`: list the jobs submitted from this data directory.
//!
//! One row per job of the ledger `peergrid submit` keeps, newest first: job
//! id prefix, when it was submitted (UTC), module hash prefix, replicas
//! asked, state, and a verdict summary (how many workers agreed, who
//! dissented, or why there is no verdict). A job without a verdict is
//! `interrupted`: this command can read the ledger only when no other
//! peergrid process holds it, so nothing is working on such a job, and the
//! row says how far it got and the `peergrid submit --resume` that finishes
//! it. `peergrid job ID` explains one job in full.
//!
//! Batches come first, one line each (inputs by outcome, and the resume
//! command while some are unfinished); their jobs are listed only with
//! `--all` (JSON lists every job, with its `batch_id`).
//!
//! No ledger, or an empty one, is not an error: a one-line message (`[]`
//! for JSON) and exit 0; this command never creates a ledger. A ledger
//! held by a running `peergrid submit`, damaged, or of a newer schema is
//! exit 1. Records that do not decode are skipped with a warning on stderr.

use std::fmt::Write as _;
use std::process::ExitCode;

use peergrid_proto::{Sha256Hash, pb};
use scheduler_lib::ledger;
use serde_json::{Value, json};

use super::args::{JobsArgs, OutputFormat};
use super::job::{Status, find_short, open_ledger, pretty, utc};

/// Lists the ledger's jobs on stdout, newest first.
pub fn run(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let path = super::data_dir(args.data_dir)?.join(ledger::FILE_NAME);
    let mut records = Vec::new();
    let mut batches = Vec::new();
    // Job id -> the batch it belongs to (full hex id).
    let mut in_batch = std::collections::HashMap::new();
    if let Some(ledger) = open_ledger(&path)? {
        // Every record once; batches are summed from the same records.
        records = ledger.records()?;
        let by_id: std::collections::HashMap<&Sha256Hash, &pb::JobRecord> =
            records.iter().map(|(id, r)| (id, r)).collect();
        for record in ledger.batches()? {
            let summary = super::batch::BatchSummary::of(record, |id| by_id.get(id).copied())?;
            for id in &summary.record.job_ids {
                in_batch.insert(id.clone(), hex::encode(summary.id));
            }
            batches.push(summary);
        }
    }
    if records.is_empty() {
        let message = format!(
            "no jobs submitted yet with this data directory (ledger: {})",
            path.display()
        );
        match args.output_format {
            OutputFormat::Text => println!("{message}"),
            OutputFormat::Json => {
                println!("[]");
                eprintln!("{message}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<Sha256Hash> = records.iter().map(|(id, _)| *id).collect();
    let rows: Vec<Row> = records
        .iter()
        .map(|(id, record)| {
            let mut row = Row::of(id, record, &find_short(id, &ids));
            row.batch = in_batch.get(id.as_slice()).cloned();
            row
        })
        .collect();
    match args.output_format {
        OutputFormat::Json => {
            print!(
                "{}",
                pretty(&Value::Array(rows.iter().map(Row::json).collect()))
            );
        }
        OutputFormat::Text => {
            // A batch is one line (`peergrid job BATCH_ID` lists its
            // problems); its jobs are listed only with --all.
            let batch_ids: Vec<Sha256Hash> = batches.iter().map(|b| b.id).collect();
            for batch in &batches {
                println!("{}", batch.line(&find_short(&batch.id, &batch_ids)));
            }
            let shown: Vec<Row> = rows
                .into_iter()
                .filter(|r| args.all || r.batch.is_none())
                .collect();
            if !batches.is_empty() && !shown.is_empty() {
                println!();
            }
            if !shown.is_empty() {
                print!("{}", text(&shown));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One job's line.
struct Row {
    /// Full job id, hex.
    id: String,
    /// The shortest prefix of at least 12 digits that names only this job.
    short: String,
    record: pb::JobRecord,
    status: Status,
    /// The batch the job belongs to (full hex id), if any.
    batch: Option<String>,
}

impl Row {
    fn of(id: &Sha256Hash, record: &pb::JobRecord, short: &str) -> Self {
        Self {
            id: hex::encode(id),
            short: short.to_string(),
            status: Status::of(record, short),
            record: record.clone(),
            batch: None,
        }
    }

    fn json(&self) -> Value {
        let r = &self.record;
        let v = r.verdict.as_ref();
        json!({
            "job_id": self.id,
            "batch_id": self.batch,
            "submitted_at_unix_ms": r.created_at_unix_ms,
            "submitted_at": utc(r.created_at_unix_ms),
            "module_sha256": hex::encode(&r.module_sha256),
            "replicas": r.replicas,
            "placements": r.placements.len(),
            "results": r.results.len(),
            "failures": r.failures.len(),
            "state": self.status.state,
            "interrupted": self.status.interrupted,
            "summary": self.status.why,
            "state_reason": r.state_reason,
            "agreeing": v.map(|v| v.agreeing_peers.len()),
            "dissenting": v.map(|v| v.dissenting_peers.len()),
            "decided_at_unix_ms": v.map(|v| v.decided_at_unix_ms),
            "resume_command": self.status.interrupted.then(|| super::job::resume_command(&self.short)),
        })
    }
}

/// The aligned table for people.
fn text(rows: &[Row]) -> String {
    let id_width = rows.iter().map(|r| r.short.len()).max().unwrap_or(12);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<id_width$}  {:<20}  {:<12}  {:>8}  {:<11}  verdict",
        "job", "submitted (UTC)", "module", "replicas", "state",
    );
    for row in rows {
        let r = &row.record;
        let module = hex::encode(&r.module_sha256);
        let _ = writeln!(
            out,
            "{:<id_width$}  {:<20}  {:<12}  {:>8}  {:<11}  {}",
            row.short,
            utc(r.created_at_unix_ms),
            &module[..module.len().min(12)],
            r.replicas,
            row.status.label,
            row.status.why,
        );
    }
    out
}

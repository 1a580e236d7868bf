//! Human-readable summaries of verdicts, shared by `submit` and `demo`, and
//! the relative times of the listings (`peers`, `job`).

use std::fmt::Write;

use peergrid_proto::PeerId;
use scheduler_lib::{JobReport, Verdict, WorkerRun};

/// How to name a worker in a summary.
pub type Namer<'a> = &'a dyn Fn(&PeerId, &str) -> String;

/// The default namer: short peer id and address.
pub fn by_id(peer: &PeerId, addr: &str) -> String {
    format!("{} ({addr})", peer.short())
}

fn run_line(run: &WorkerRun, name: Namer<'_>) -> String {
    let result = match &run.result {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    format!(
        "{}: {result}, output {}, {}, {:.1} ms",
        name(&run.worker, &run.addr),
        hex::encode(&run.output_sha256[..6]),
        work(run.fuel_used, run.cpu_time),
        run.round_trip.as_secs_f64() * 1000.0
    )
}

/// A run's work in words: its fuel when it counted fuel (a
/// [`Budget::Fuel`](scheduler_lib::Budget) job), else its CPU time.
pub fn work(fuel_used: u64, cpu_time: std::time::Duration) -> String {
    if fuel_used > 0 {
        format!("fuel {fuel_used}")
    } else {
        format!("cpu {:.1} ms", cpu_time.as_secs_f64() * 1000.0)
    }
}

/// A multi-line summary of a report (for stderr).
pub fn summary(report: &JobReport, name: Namer<'_>) -> String {
    let mut out = String::new();
    let ms = report.elapsed.as_secs_f64() * 1000.0;
    let id = hex::encode(&report.job_id[..6]);
    match &report.verdict {
        Verdict::Accepted {
            output,
            agreeing_workers,
            dissenting_workers,
            ..
        } => {
            let total = agreeing_workers.len() + dissenting_workers.len();
            let fuel = if output.fuel_used > 0 {
                format!(" (fuel {})", output.fuel_used)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "job {id}: ACCEPTED by {} of {total} workers in {ms:.1} ms{fuel}",
                agreeing_workers.len(),
            );
            if let Err(e) = &output.result {
                let _ = writeln!(out, "  the job itself failed on every agreeing worker: {e}");
            }
            for r in agreeing_workers {
                let _ = writeln!(out, "  agreed     {}", run_line(r, name));
            }
            for r in dissenting_workers {
                let _ = writeln!(
                    out,
                    "  DISSENTED  {}  <- caught: signed a different result",
                    run_line(r, name)
                );
            }
        }
        Verdict::NoQuorum { needed, runs, .. } => {
            let _ = writeln!(
                out,
                "job {id}: NO QUORUM after {ms:.1} ms: no result had the {needed} agreeing workers needed; nothing accepted"
            );
            for r in runs {
                let _ = writeln!(out, "  voted      {}", run_line(r, name));
            }
        }
    }
    for f in report.verdict.failures() {
        let _ = writeln!(
            out,
            "  failed     {}: {}",
            worker_name(f.worker.as_ref(), &f.addr, name),
            f.error
        );
    }
    let failures = report.verdict.failures();
    if matches!(report.verdict, Verdict::NoQuorum { .. })
        && !failures.is_empty()
        && failures
            .iter()
            .all(|f| f.error == scheduler_lib::WorkerError::WallClockTimeout)
    {
        let _ = writeln!(
            out,
            "  every worker ran out of wall time, which is never a vote: raise --wall-time, or \
             give the job a fuel budget (--fuel N) to have running out of it verified"
        );
    }
    out
}

fn worker_name(peer: Option<&PeerId>, addr: &str, name: Namer<'_>) -> String {
    match peer {
        Some(p) => name(p, addr),
        None => addr.to_string(),
    }
}

/// How long before `now_ms` the time `then_ms` was, for people: `12s ago`,
/// `3m ago`, `5h ago`, `2d ago`; `—` for no time at all.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "—".to_string();
    }
    let seconds = now_ms.saturating_sub(then_ms) / 1000;
    match seconds {
        0 => "just now".to_string(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn last_seen_reads_as_a_relative_time() {
        let now = 1_700_000_000_000;
        assert_eq!(ago(now, 0), "—");
        assert_eq!(ago(now, now + 5_000), "just now");
        assert_eq!(ago(now, now - 42_000), "42s ago");
        assert_eq!(ago(now, now - 3 * 60_000 - 10_000), "3m ago");
        assert_eq!(ago(now, now - 5 * 3_600_000), "5h ago");
        assert_eq!(ago(now, now - 2 * 86_400_000), "2d ago");
    }
}

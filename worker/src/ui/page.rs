//! The status page's HTML, rendered on the server from a [`Snapshot`]: one
//! self-contained document (inline CSS, an inline SVG chart, no script, no
//! external resource) that reloads itself every
//! [`REFRESH_SECS`](super::REFRESH_SECS) seconds.
//!
//! Every string that did not come from this file goes through [`escape`]
//! (text and attribute values alike): peer ids, addresses, module hashes,
//! outcome texts, versions, notes.

use std::fmt::Write as _;

use super::{PeerRow, Snapshot};
use crate::activity::{JobEnd, RecentJob, WorkMinute};

/// `text` with the five HTML-special characters escaped, safe in element
/// content and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with an SI prefix and three significant digits: 999, 1.23 k,
/// 45.6 M, 789 G.
pub fn si(n: u64) -> String {
    const PREFIXES: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    if n < 1000 {
        return n.to_string();
    }
    let mut value = n as f64;
    let mut prefix = "";
    for p in PREFIXES {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        prefix = p;
    }
    let digits = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.digits$} {prefix}")
}

/// CPU time in µs as seconds with about three significant digits, no
/// unit: 0.042, 1.23, 45.6, 789, 12345.
pub fn cpu_seconds(us: u64) -> String {
    let s = us as f64 / 1e6;
    let digits = if s >= 100.0 {
        0
    } else if s >= 10.0 {
        1
    } else if s >= 1.0 {
        2
    } else {
        3
    };
    format!("{s:.digits$}")
}

/// `HH:MM:SS` of a Unix time in ms, in UTC.
pub fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A duration in ms for people: 850 ms, 12 s, 3 min 20 s, 5 h 7 min, 2 d 3 h.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

/// How long before `now_ms` `then_ms` was ("just now" for the future).
fn ago(now_ms: u64, then_ms: u64) -> String {
    match now_ms.checked_sub(then_ms) {
        Some(ms) if ms >= 1000 => format!("{} ago", duration(ms)),
        _ => "just now".to_string(),
    }
}

const STYLE: &str = "
:root { color-scheme: light; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #57606a;
        --line: #d0d7de; --bg: #f6f8fa; --bar: #0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif;
       margin: 0 auto; padding: 16px 24px; max-width: 1180px; color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 15px; margin: 22px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 12px; margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
code, .id, td.mono { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 12.5px; }
.meta, .note { color: var(--muted); margin: 2px 0; }
.note { font-size: 12.5px; }
#health { border: 1px solid var(--line); border-left: 6px solid var(--ok); border-radius: 6px;
          padding: 8px 12px; margin-top: 12px; background: var(--bg); }
#health.warn { border-left-color: var(--warn); }
#health h2 { border: 0; margin: 0; padding: 0; }
#health ul { margin: 4px 0 0; padding-left: 20px; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-top: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.big { font-size: 24px; font-weight: 600; margin: 2px 0; }
.meter { height: 8px; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; overflow: hidden; }
.meter span { display: block; height: 100%; background: var(--bar); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--bg); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.outcome { max-width: 420px; overflow-wrap: anywhere; }
td.success, span.success { color: var(--ok); } td.failed, span.failed { color: var(--warn); }
td.not_run { color: var(--bad); font-weight: 600; }
td.alive { color: var(--ok); } td.suspect { color: var(--warn); } td.dead { color: var(--bad); }
.banned { color: var(--bad); font-weight: 600; }
svg { display: block; width: 100%; height: auto; }
svg .bar { fill: var(--bar); } svg .axis { stroke: var(--line); } svg text { font-size: 11px; fill: var(--muted); }
footer { margin: 24px 0 8px; color: var(--muted); font-size: 12px; }
";

/// The whole page for `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let s = &snapshot.status;
    let short = s.peer_id.short();
    let mut out = String::with_capacity(16 << 10);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>peergrid node {short}</title><style>{STYLE}</style></head><body>\n",
        refresh = super::REFRESH_SECS,
        short = escape(&short),
    );
    let _ = writeln!(
        out,
        "<header><h1>peergrid node <span class=\"id\" id=\"peer-id\" title=\"{id}\">{id}</span></h1>\
         <p class=\"meta\">{version} · up {uptime} · listening on {listen} · {tls} · \
         as of {at} UTC · reloads every {refresh} s</p></header>",
        id = escape(&s.peer_id.to_string()),
        version = escape(&s.version),
        uptime = duration(s.uptime_ms),
        listen = escape(s.listen_addr.as_deref().unwrap_or("(not yet)")),
        tls = if s.tls { "TLS" } else { "plaintext (insecure)" },
        at = clock(snapshot.taken_at_unix_ms),
        refresh = super::REFRESH_SECS,
    );
    health(&mut out, snapshot);
    cards(&mut out, snapshot);
    out.push_str(
        "<section id=\"work\"><h2>Work done, last hour</h2>\
         <p class=\"note\">CPU time per minute, in CPU-seconds: the processor time this \
         node spent running jobs for others, one bar a minute (one core busy for the whole \
         minute is 60 CPU-s).</p>",
    );
    out.push_str(&chart(&snapshot.work_per_minute));
    out.push_str("</section>\n");
    jobs(&mut out, snapshot);
    peers(&mut out, snapshot);
    reputation(&mut out, snapshot);
    out.push_str(
        "<footer>The same data as JSON: <a href=\"/status.json\">/status.json</a>. \
         From the command line: <code>peergrid status</code>.</footer>\n</body></html>\n",
    );
    out
}

fn health(out: &mut String, snapshot: &Snapshot) {
    let h = &snapshot.health;
    let class = if h.ok { "ok" } else { "warn" };
    let _ = write!(out, "<section id=\"health\" class=\"{class}\"><h2>Health: ");
    if h.ok {
        let s = &snapshot.status;
        let _ = write!(
            out,
            "<span class=\"success\">OK</span></h2><p>Serving jobs; {} live peer(s); {} of {} \
             slot(s) free.</p>",
            s.peers.alive, s.slots.free, s.slots.total
        );
    } else {
        out.push_str("<span class=\"failed\">needs attention</span></h2><ul>");
        for problem in &h.problems {
            let _ = write!(out, "<li>{}</li>", escape(problem));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n");
}

fn cards(out: &mut String, snapshot: &Snapshot) {
    let s = &snapshot.status;
    let percent = if s.slots.total == 0 {
        0
    } else {
        u64::from(s.slots.in_use) * 100 / u64::from(s.slots.total)
    };
    let _ = writeln!(
        out,
        "<section class=\"cards\">\
         <div class=\"card\" id=\"slots\"><h3>Slots in use</h3>\
         <p class=\"big\">{in_use} / {total}</p>\
         <div class=\"meter\"><span style=\"width:{percent}%\"></span></div>\
         <p class=\"note\">{free} free</p></div>\
         <div class=\"card\" id=\"job-counts\"><h3>Jobs</h3>\
         <p class=\"big\">{run} run</p>\
         <p class=\"note\">{failed} failed · {rejected} refused</p></div>\
         <div class=\"card\" id=\"work-done\"><h3>Work done</h3>\
         <p class=\"big\" title=\"{cpu_us} µs of CPU time\">{cpu} CPU-s</p>\
         <p class=\"note\">CPU time since start · <span title=\"{fuel} fuel\">{fuel_si} fuel</span> \
         · {modules} module(s) received</p></div>\
         <div class=\"card\" id=\"peer-counts\"><h3>Peers</h3>\
         <p class=\"big\">{alive} alive</p>\
         <p class=\"note\">{suspect} suspect · {dead} dead · {verified} verified</p></div>\
         </section>",
        in_use = s.slots.in_use,
        total = s.slots.total,
        free = s.slots.free,
        run = s.jobs.run,
        failed = s.jobs.failed,
        rejected = s.jobs.rejected,
        cpu_us = s.jobs.cpu_time_us,
        cpu = cpu_seconds(s.jobs.cpu_time_us),
        fuel = s.jobs.fuel_used,
        fuel_si = si(s.jobs.fuel_used),
        modules = s.jobs.modules_received,
        alive = s.peers.alive,
        suspect = s.peers.suspect,
        dead = s.peers.dead,
        verified = s.peers.verified,
    );
    let refused: Vec<String> = s
        .jobs
        .rejected_by
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| format!("{} {}", r.count, escape(&r.reason.replace('_', " "))))
        .collect();
    if !refused.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\" id=\"refused\">Refused without running: {}.</p>",
            refused.join(" · ")
        );
    }
}

/// Chart geometry: the SVG's viewBox is `WIDTH` × `HEIGHT`, bars between
/// `LEFT` and `WIDTH - RIGHT`, above `HEIGHT - BOTTOM`.
const WIDTH: u64 = 1000;
const HEIGHT: u64 = 180;
const LEFT: u64 = 84;
const RIGHT: u64 = 8;
const TOP: u64 = 10;
const BOTTOM: u64 = 24;

/// CPU time per minute as an inline SVG bar chart in CPU-seconds, each bar
/// titled with its minute, jobs, CPU time and fuel (if any was counted).
pub fn chart(work: &[WorkMinute]) -> String {
    let mut svg = String::with_capacity(8 << 10);
    let _ = write!(
        svg,
        "<svg id=\"work-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"CPU-seconds per minute over the last hour\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let base = HEIGHT - BOTTOM;
    let plot_height = base - TOP;
    let max = work.iter().map(|w| w.cpu_time_us).max().unwrap_or(0);
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{x2}\" y2=\"{base}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{x2}\" y2=\"{TOP}\" stroke-dasharray=\"4 4\"/>\
         <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{top}</text>\
         <text x=\"{lx}\" y=\"{base}\" text-anchor=\"end\">0 CPU-s</text>",
        x2 = WIDTH - RIGHT,
        lx = LEFT - 6,
        ty = TOP + 4,
        top = if max == 0 {
            "—".to_string()
        } else {
            format!("{} CPU-s", cpu_seconds(max))
        },
    );
    let n = work.len().max(1) as u64;
    let slot = (WIDTH - LEFT - RIGHT) as f64 / n as f64;
    for (i, minute) in work.iter().enumerate() {
        if minute.cpu_time_us == 0 {
            continue;
        }
        let height = (minute.cpu_time_us as f64 / max as f64 * plot_height as f64).max(1.0);
        let fuel = if minute.fuel == 0 {
            String::new()
        } else {
            format!(", {} fuel", si(minute.fuel))
        };
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{height:.1}\">\
             <title>{at} UTC: {jobs} job(s), {cpu} CPU-s{fuel}</title></rect>",
            x = LEFT as f64 + i as f64 * slot + 1.0,
            y = base as f64 - height,
            w = (slot - 2.0).max(1.0),
            at = &clock(minute.start_unix_ms)[..5],
            jobs = minute.jobs,
            cpu = cpu_seconds(minute.cpu_time_us),
        );
    }
    if max == 0 {
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">no work done in the last hour</text>",
            x = (LEFT + WIDTH - RIGHT) / 2,
            y = TOP + plot_height / 2,
        );
    }
    let label_y = HEIGHT - 6;
    if let (Some(first), Some(last)) = (work.first(), work.last()) {
        let minutes = work.len();
        let _ = write!(
            svg,
            "<text x=\"{LEFT}\" y=\"{label_y}\">{first} UTC ({minutes} min ago)</text>\
             <text x=\"{right}\" y=\"{label_y}\" text-anchor=\"end\">{last} UTC (now)</text>",
            first = &clock(first.start_unix_ms)[..5],
            last = &clock(last.start_unix_ms)[..5],
            right = WIDTH - RIGHT,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn end_class(end: JobEnd) -> &'static str {
    match end {
        JobEnd::Success => "success",
        JobEnd::Failed => "failed",
        JobEnd::NotRun => "not_run",
    }
}

fn jobs(out: &mut String, snapshot: &Snapshot) {
    out.push_str(
        "<section id=\"jobs\"><h2>Recent jobs</h2>\
         <p class=\"note\">The last jobs this node took a slot for, newest first. The outcome \
         is what this node computed and signed; the verdict on it is the submitter's, who \
         compares it with other workers' results.</p>",
    );
    if snapshot.recent_jobs.is_empty() {
        out.push_str("<p id=\"no-jobs\">No jobs yet since the node started.</p></section>\n");
        return;
    }
    out.push_str(
        "<table id=\"job-table\"><thead><tr><th>finished (UTC)</th><th>job</th>\
         <th>submitter</th><th>module</th><th>outcome</th><th class=\"num\">CPU time</th>\
         <th class=\"num\">fuel</th><th class=\"num\">wall time</th></tr></thead><tbody>",
    );
    for job in &snapshot.recent_jobs {
        job_row(out, job, snapshot.taken_at_unix_ms);
    }
    out.push_str("</tbody></table></section>\n");
}

fn job_row(out: &mut String, job: &RecentJob, now_ms: u64) {
    let submitter = job.submitter.to_string();
    let module = hex::encode(job.module);
    let job_id = hex::encode(job.job_id);
    let class = end_class(job.end);
    let _ = write!(
        out,
        "<tr class=\"job {class}\"><td title=\"{ago}\">{at}</td>\
         <td class=\"mono\" title=\"{job_id}\">{job_short}</td>\
         <td class=\"mono\" title=\"{submitter}\">{submitter_short}</td>\
         <td class=\"mono\" title=\"{module}\">{module_short}</td>\
         <td class=\"outcome {class}\">{outcome}</td>\
         <td class=\"num\" title=\"{cpu_us} µs\">{cpu}</td>{fuel}<td class=\"num\">{wall}</td></tr>",
        ago = ago(now_ms, job.finished_at_unix_ms),
        at = clock(job.finished_at_unix_ms),
        job_id = escape(&job_id),
        job_short = escape(job_id.get(..12).unwrap_or(&job_id)),
        submitter = escape(&submitter),
        submitter_short = escape(submitter.get(..12).unwrap_or(&submitter)),
        module = escape(&module),
        module_short = escape(module.get(..12).unwrap_or(&module)),
        outcome = escape(&job.outcome),
        cpu_us = job.cpu_time_us,
        cpu = duration(job.cpu_time_us / 1000),
        fuel = fuel_cell(job.fuel),
        wall = duration(job.wall_time_ms),
    );
}

/// A job's fuel as a table cell: "–" for a job that counted none (a
/// wall-time budget, whose work is its CPU time).
fn fuel_cell(fuel: u64) -> String {
    if fuel == 0 {
        "<td class=\"num\" title=\"no fuel counted (wall-time budget)\">–</td>".to_string()
    } else {
        format!("<td class=\"num\" title=\"{fuel}\">{}</td>", si(fuel))
    }
}

fn peers(out: &mut String, snapshot: &Snapshot) {
    out.push_str(
        "<section id=\"peers\"><h2>Peers</h2>\
         <p class=\"note\">The peers this node's membership table knows (from signed, gossiped \
         adverts). Trust is this data directory's own score of a worker it sent jobs to, when \
         it has one; see Reputation below.</p>",
    );
    if snapshot.peers.is_empty() {
        out.push_str(
            "<p id=\"no-peers\">No peers known yet: give the node a bootstrap peer with \
             <code>--peer HOST:PORT</code>.</p></section>\n",
        );
        return;
    }
    out.push_str(
        "<table id=\"peer-table\"><thead><tr><th>peer</th><th>state</th><th>address</th>\
         <th class=\"num\">slots free</th><th class=\"num\">cores</th><th>last seen</th>\
         <th>address verified</th><th class=\"num\">trust</th></tr></thead><tbody>",
    );
    for peer in &snapshot.peers {
        peer_row(out, peer, snapshot.taken_at_unix_ms);
    }
    out.push_str("</tbody></table>");
    let more = snapshot.peers_total.saturating_sub(snapshot.peers.len());
    if more > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">… and {more} more (the JSON at /status.json lists the same {}).</p>",
            snapshot.peers.len()
        );
    }
    out.push_str("</section>\n");
}

fn peer_row(out: &mut String, peer: &PeerRow, now_ms: u64) {
    let id = peer.peer_id.to_string();
    let addrs = peer.addrs.join(", ");
    let trust = match &peer.ledger_score {
        Some(score) if score.banned => format!(
            "<span class=\"banned\" title=\"agreed {} · dissented {}\">{:.3} banned</span>",
            score.agreed, score.dissented, score.trust
        ),
        Some(score) => format!(
            "<span title=\"agreed {} · dissented {}\">{:.3}</span>",
            score.agreed, score.dissented, score.trust
        ),
        None => "—".to_string(),
    };
    let _ = write!(
        out,
        "<tr class=\"peer {state}\"><td class=\"mono\" title=\"{id}\">{short}</td>\
         <td class=\"{state}\">{state}</td><td class=\"mono\">{addrs}</td>\
         <td class=\"num\">{free} / {total}</td><td class=\"num\">{cores}</td>\
         <td>{seen}</td><td>{verified}</td><td class=\"num\">{trust}</td></tr>",
        state = escape(peer.state),
        id = escape(&id),
        short = escape(id.get(..12).unwrap_or(&id)),
        addrs = escape(&addrs),
        free = peer.free_slots,
        total = peer.total_slots,
        cores = peer.cores,
        seen = ago(now_ms, peer.last_seen_unix_ms),
        verified = if peer.verified { "yes" } else { "not yet" },
    );
}

fn reputation(out: &mut String, snapshot: &Snapshot) {
    let r = &snapshot.reputation;
    let read = match r.ledger_read_at_unix_ms {
        Some(at) => format!(
            " Last read {} UTC.",
            clock(at) // the ledger is read rarely: say when
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "<section id=\"reputation\"><h2>Reputation</h2>\
         <p><strong>How others rate this node:</strong> {of_this_node}</p>\
         <p><strong>Scores this node keeps:</strong> {note}{read}</p></section>",
        of_this_node = escape(&r.of_this_node),
        note = escape(&r.note),
    );
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{HOSTILE, snapshot};
    use super::*;

    #[test]
    fn escapes_the_five_specials() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(si(999), "999");
        assert_eq!(si(1_234), "1.23 k");
        assert_eq!(si(45_600_000), "45.6 M");
        assert_eq!(si(789_000_000_000), "789 G");
        assert_eq!(si(u64::MAX), "18.4 E");
        assert_eq!(cpu_seconds(0), "0.000");
        assert_eq!(cpu_seconds(42_300), "0.042");
        assert_eq!(cpu_seconds(1_234_000), "1.23");
        assert_eq!(cpu_seconds(45_600_000), "45.6");
        assert_eq!(cpu_seconds(7_890_000_000), "7890");
        assert_eq!(clock(1_700_000_000_000), "22:13:20");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(3_723_000), "1 h 2 min");
        assert_eq!(duration(200_000), "3 min 20 s");
        assert_eq!(ago(10_000, 20_000), "just now");
    }

    #[test]
    fn the_page_escapes_what_peers_and_modules_say() {
        let page = render(&snapshot());
        assert!(!page.contains(HOSTILE), "raw hostile text in the page");
        assert!(!page.contains("<script"), "a script element in the page");
        assert!(page.contains(&escape(HOSTILE)), "escaped text missing");
        // Both places it appears: an outcome and a peer's address.
        assert_eq!(page.matches(&escape(HOSTILE)).count(), 2);
    }

    #[test]
    fn the_page_has_every_part() {
        let page = render(&snapshot());
        for part in [
            "<meta http-equiv=\"refresh\" content=\"5\">",
            "id=\"health\"",
            "id=\"slots\"",
            "1 / 4",
            "id=\"work-chart\"",
            "<rect class=\"bar\"",
            "id=\"job-table\"",
            "class=\"job success\"",
            "class=\"job failed\"",
            "id=\"peer-table\"",
            "0.900",
            "id=\"reputation\"",
            "kept by submitters",
            &"07".repeat(32),
            "3 busy",
        ] {
            assert!(page.contains(part), "{part} missing");
        }
        for external in [" src=", "<link", "<script", "url("] {
            assert!(
                !page.contains(external),
                "{external}: the page loads nothing"
            );
        }
    }

    #[test]
    fn the_chart_is_cpu_time_and_the_table_marks_jobs_without_fuel() {
        let page = render(&snapshot());
        let svg = chart(&snapshot().work_per_minute);
        // The fixture's two jobs in one minute: 120 + 80 ms of CPU.
        assert!(svg.contains(">0.200 CPU-s</text>"), "{svg}");
        assert!(svg.contains("2 job(s), 0.200 CPU-s, 123 M fuel"), "{svg}");
        assert!(page.contains("<th class=\"num\">CPU time</th>"));
        assert!(page.contains(">120 ms</td>"), "the success job's CPU time");
        assert!(
            page.contains("title=\"no fuel counted (wall-time budget)\">–</td>"),
            "the job without fuel"
        );
        assert!(
            page.contains("title=\"123456789\">123 M</td>"),
            "the fuel job"
        );
        assert!(
            page.contains("45600000 µs of CPU time\">45.6 CPU-s"),
            "the card"
        );
    }

    #[test]
    fn an_idle_hour_says_so() {
        let svg = chart(&[WorkMinute::default(); 60]);
        assert!(svg.contains("no work done in the last hour"));
        assert!(!svg.contains("<rect"));
    }
}

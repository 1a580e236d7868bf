//! Embedding scheduler-lib: a tiny HTTP service that farms its work out to a
//! peergrid grid and answers only with results a quorum verified.
//!
//! ```sh
//! # any grid will do; one bootstrap address is enough. Three local nodes:
//! for i in 1 2 3; do
//!   peergrid node --listen 127.0.0.1:700$i --peer 127.0.0.1:7001 --data-dir /tmp/pg$i &
//! done
//! cargo run -p scheduler-lib --example embed_service -- \
//!     --module target/wasm-jobs/wasm32-wasip1/release/job-primes.wasm \
//!     --peer 127.0.0.1:7001 --listen 127.0.0.1:8080
//! curl --data 1000000 http://127.0.0.1:8080/run          # one job
//! printf '10\n20\n30\n' | curl --data-binary @- http://127.0.0.1:8080/batch
//! ```
//!
//! `POST /run`: the body is the job's stdin; the answer is the verified
//! stdout (200), the agreed failure of the program with its stderr (422),
//! no quorum (502), or not enough workers (503), each error from the typed
//! [`SchedulerError`]. `POST /batch`: one task per line of the body; the
//! answer streams one JSON line per task as it is verified, then a summary
//! line from the batch's progress.
//!
//! The service is the [`serve`] function; `main` only parses flags. The
//! integration tests run [`serve`] against a real local grid.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use peergrid_proto::Identity;
use scheduler_lib::batch::{Batch, Task, TaskOutcome};
use scheduler_lib::{Job, Scheduler, SchedulerConfig, SchedulerError, Verdict};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Largest request body the service reads (stdin of one job, or a batch).
const MAX_BODY: usize = 4 << 20;

/// What every request handler shares: one scheduler (it keeps connections
/// and reputations across requests) and the module the service runs.
pub struct Service {
    /// The embedded scheduler.
    pub scheduler: Arc<Scheduler>,
    /// The WASM module every job runs.
    pub module: Arc<[u8]>,
    /// Replicas per job (k).
    pub replicas: usize,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves HTTP/1 on `listener` until the task is dropped or accept fails.
pub async fn serve(listener: TcpListener, service: Arc<Service>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req| {
                let service = Arc::clone(&service);
                async move { Ok::<_, Infallible>(handle(&service, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, handler)
                .await
            {
                eprintln!("connection ended: {e}");
            }
        });
    }
}

async fn handle(service: &Service, req: Request<Incoming>) -> Response<Body> {
    let route = (req.method().clone(), req.uri().path().to_string());
    let body = match read_body(req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match (route.0, route.1.as_str()) {
        (Method::POST, "/run") => run_one(service, body).await,
        (Method::POST, "/batch") => run_batch(service, body).await,
        _ => text(StatusCode::NOT_FOUND, "POST /run or POST /batch\n"),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("cannot read the body (at most {MAX_BODY} bytes): {e}\n"),
        )),
    }
}

/// One job: verified stdout, or the typed reason there is none.
async fn run_one(service: &Service, stdin: Vec<u8>) -> Response<Body> {
    let job = Job::new(Arc::clone(&service.module))
        .stdin(stdin)
        .replicas(service.replicas);
    match service.scheduler.submit(&job).await {
        Ok(report) => {
            let job_id = hex::encode(report.job_id);
            match report.verdict {
                Verdict::Accepted {
                    output,
                    agreeing_workers,
                    ..
                } => {
                    let (status, body) = match &output.result {
                        Ok(()) => (StatusCode::OK, output.stdout),
                        // Every honest worker saw the program fail: that is
                        // the verified answer, and the caller's problem.
                        Err(failure) => {
                            let mut body = format!("the job failed: {failure}\n").into_bytes();
                            body.extend_from_slice(&output.stderr);
                            (StatusCode::UNPROCESSABLE_ENTITY, body)
                        }
                    };
                    let mut response = Response::new(full(body));
                    *response.status_mut() = status;
                    let headers = response.headers_mut();
                    if let Ok(v) = job_id.parse() {
                        headers.insert("peergrid-job-id", v);
                    }
                    if let Ok(v) = agreeing_workers.len().to_string().parse() {
                        headers.insert("peergrid-agreeing-workers", v);
                    }
                    response
                }
                no_quorum @ Verdict::NoQuorum { .. } => text(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "job {job_id}: {}\n",
                        no_quorum.no_quorum_reason().unwrap_or_default()
                    ),
                ),
            }
        }
        Err(error) => error_response(&error),
    }
}

/// The HTTP answer to each kind of [`SchedulerError`].
fn error_response(error: &SchedulerError) -> Response<Body> {
    let status = match error {
        SchedulerError::InvalidJob(_) => StatusCode::BAD_REQUEST,
        SchedulerError::NotEnoughWorkers { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, &format!("{error}\n"))
}

/// A batch: one task per line, results streamed as JSON lines as they are
/// verified, then a summary.
async fn run_batch(service: &Service, body: Vec<u8>) -> Response<Body> {
    let text_body = String::from_utf8_lossy(&body);
    let tasks: Vec<Task> = text_body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Task::new(l.as_bytes().to_vec()))
        .collect();
    let template = Job::new(Arc::clone(&service.module)).replicas(service.replicas);
    let mut run = match service
        .scheduler
        .submit_batch(Batch::new(template, tasks))
        .await
    {
        Ok(run) => run,
        Err(error) => return error_response(&error),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        while let Some(result) = run.next().await {
            let line = match &result.outcome {
                TaskOutcome::Accepted {
                    result: r, stdout, ..
                } => serde_json::json!({
                    "index": result.index,
                    "state": "accepted",
                    "ok": r.is_ok(),
                    "stdout": String::from_utf8_lossy(stdout),
                }),
                TaskOutcome::NoQuorum { reason } | TaskOutcome::Failed { reason } => {
                    serde_json::json!({"index": result.index, "state": "failed", "reason": reason})
                }
            };
            if tx
                .send(Ok(Frame::data(Bytes::from(format!("{line}\n")))))
                .await
                .is_err()
            {
                return; // the client went away; the batch stops placing work
            }
        }
        let p = run.progress();
        let summary = serde_json::json!({
            "total": p.total, "verified": p.verified(), "no_quorum": p.no_quorum, "failed": p.failed,
        });
        let _ = tx
            .send(Ok(Frame::data(Bytes::from(format!("{summary}\n")))))
            .await;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    if let Ok(v) = "application/x-ndjson".parse() {
        response.headers_mut().insert("content-type", v);
    }
    response
}

fn full(bytes: Vec<u8>) -> Body {
    BodyExt::boxed(Full::new(Bytes::from(bytes)))
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(full(message.as_bytes().to_vec()));
    *response.status_mut() = status;
    response
}

/// Flags: `--module FILE --peer ADDR [--peer ADDR…] [--listen ADDR]
/// [--replicas K] [--puzzle-bits N] [--insecure]`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut module, mut peers, mut listen) = (None, Vec::new(), "127.0.0.1:8080".to_string());
    let mut config = SchedulerConfig::default();
    let mut replicas = 3;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--module" => module = Some(std::fs::read(value()?)?),
            "--peer" => peers.push(value()?),
            "--listen" => listen = value()?,
            "--replicas" => replicas = value()?.parse()?,
            "--puzzle-bits" => config.puzzle_bits = value()?.parse()?,
            "--insecure" => config.insecure = true,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let module = module.ok_or("give --module FILE.wasm")?;
    if peers.is_empty() {
        return Err("give at least one --peer ADDR (a bootstrap address is enough)".into());
    }
    config.peers = peers;
    // A service would load a persistent identity (Identity::load_or_create)
    // so the grid's reputations and rate limits know it across restarts.
    let scheduler = Arc::new(Scheduler::new(Identity::generate(), config));
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("serving on http://{}", listener.local_addr()?);
    let service = Arc::new(Service {
        scheduler,
        module: module.into(),
        replicas,
    });
    serve(listener, service).await?;
    Ok(())
}

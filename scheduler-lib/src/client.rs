//! A connection to one worker: the RPCs of `peergrid.v1.Worker`, with
//! message limits, timeouts and chunked module upload.
//!
//! [`WorkerConn::execute`] sends a job alone (`Execute`) when nothing else
//! is in flight to the worker, for the lowest latency. While jobs are in
//! flight, new ones queue, and a background task sends whatever has queued
//! as one `ExecuteBatch` call (at most [`MAX_BATCH_CALLS`] open at once)
//! whose answers stream back as each job completes: under load, one call
//! and one signature check carry many jobs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peergrid_proto::tls::Transport;
use peergrid_proto::{Domain, PeerId, Sha256Hash, envelope, pb};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::error::WorkerError;

/// Size of one module upload chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Largest gRPC message this client sends or accepts (a job's stdin, or a
/// result with its stdout and stderr). Modules travel in chunks, not whole.
pub const MAX_MESSAGE_BYTES: usize = 80 << 20;

/// A connected client of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConn {
    addr: String,
    /// The peer id proven by the TLS handshake (`None` over plaintext).
    tls_peer: Option<PeerId>,
    /// The peer id the caller dialled for (an advert's), if any: over
    /// plaintext, `Hello` must still prove it.
    expected: Option<PeerId>,
    client: pb::worker_client::WorkerClient<Channel>,
    /// Jobs sent and not yet answered, and the queue of the batching task
    /// (shared by clones of this connection).
    batching: Arc<Batching>,
    /// Module uploads under way through this connection, by hash: jobs
    /// that find the worker lacking a module at the same time share one
    /// upload (shared by clones of this connection).
    uploads: Arc<Mutex<HashMap<Sha256Hash, SharedUpload>>>,
}

/// One module upload that several jobs may wait for.
type SharedUpload =
    futures::future::Shared<futures::future::BoxFuture<'static, Result<(), WorkerError>>>;

/// Most `ExecuteBatch` calls open to one worker at once.
pub const MAX_BATCH_CALLS: usize = 2;

/// Most jobs in one `ExecuteBatch` call: what a worker accepts, and what
/// this client sends.
pub const MAX_BATCH_JOBS: usize = 256;

/// The answer to one job.
type Answer = Result<pb::ExecuteResponse, tonic::Status>;

/// A job waiting for the batching task, and where its answer goes.
type Queued = (pb::SignedEnvelope, oneshot::Sender<Answer>);

/// The batching state of one connection.
#[derive(Debug, Default)]
struct Batching {
    /// Jobs sent (alone or batched) and not yet answered.
    in_flight: AtomicUsize,
    /// The worker answered `ExecuteBatch` with "unimplemented" (shared
    /// with the batching task, which must not hold this struct: the queue
    /// closes, and the task ends, when the last connection clone drops it).
    unsupported: Arc<std::sync::atomic::AtomicBool>,
    /// The queue of the batching task, started on first use; replaced if
    /// the task has gone.
    queue: Mutex<Option<mpsc::UnboundedSender<Queued>>>,
}

/// Counts a job in flight until dropped (also when the caller gives up).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker's answer to `Hello`, checked.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Its peer id (from the public key it presented).
    pub peer: PeerId,
    /// The raw answer.
    pub hello: pb::HelloResponse,
}

impl WorkerConn {
    /// Connects to `addr` (`host:port`, or a full `http://` URI) over
    /// `transport`. Over TLS, when `expected` is given the worker must prove
    /// that peer's key in the handshake or the connection is refused (an
    /// advertised address is only used once it proves the advertised key);
    /// without it, the key that answers is pinned for the connection.
    pub async fn connect(
        addr: &str,
        connect_timeout: Duration,
        transport: &Transport,
        expected: Option<PeerId>,
    ) -> Result<Self, WorkerError> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| WorkerError::Unreachable(format!("bad address {addr:?}: {e}")))?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_adaptive_window(true);
        let connection = transport
            .connect(endpoint, expected)
            .await
            .map_err(|e| WorkerError::Unreachable(e.to_string()))?;
        let client = pb::worker_client::WorkerClient::new(connection.channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            addr: addr.to_string(),
            tls_peer: connection.peer,
            expected,
            client,
            batching: Arc::default(),
            uploads: Arc::default(),
        })
    }

    /// The address this connection dials.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The peer id the TLS handshake proved (`None` over plaintext).
    pub fn tls_peer(&self) -> Option<PeerId> {
        self.tls_peer
    }

    /// Asks the worker who it is and what it has free. The worker must sign
    /// a fresh random challenge with the key it names, so the answer proves
    /// that whoever listens at this address holds that key.
    pub async fn hello(&self) -> Result<WorkerInfo, WorkerError> {
        let challenge: [u8; 32] = rand::random();
        let hello = self
            .client
            .clone()
            .hello(pb::HelloRequest {
                challenge: challenge.to_vec(),
            })
            .await
            .map_err(|s| WorkerError::from_status(&s))?
            .into_inner();
        let proof = pb::SignedEnvelope {
            payload: challenge.to_vec(),
            public_key: hello.public_key.clone(),
            signature: hello.challenge_signature.clone(),
            proof: None,
        };
        let peer = envelope::verify(&proof, Domain::Hello)
            .map_err(|e| {
                WorkerError::Protocol(format!("the worker did not prove it holds its key: {e}"))
            })?
            .signer;
        if let Some(tls_peer) = self.tls_peer
            && tls_peer != peer
        {
            return Err(WorkerError::Protocol(format!(
                "the worker's Hello names peer {} but its TLS key is peer {}",
                peer.short(),
                tls_peer.short()
            )));
        }
        if let Some(expected) = self.expected
            && expected != peer
        {
            return Err(WorkerError::Protocol(format!(
                "dialled {} for peer {} but the worker there proved peer {}",
                self.addr,
                expected.short(),
                peer.short()
            )));
        }
        Ok(WorkerInfo { peer, hello })
    }

    /// Uploads a module in [`CHUNK_BYTES`] chunks, streamed lazily from the
    /// shared bytes (no copy of the whole module is made).
    pub async fn put_module(&self, hash: Sha256Hash, module: Arc<[u8]>) -> Result<(), WorkerError> {
        let total = module.len();
        let chunks = total.div_ceil(CHUNK_BYTES).max(1);
        let stream = futures::stream::iter((0..chunks).map(move |i| {
            let start = i * CHUNK_BYTES;
            let end = (start + CHUNK_BYTES).min(total);
            pb::ModuleChunk {
                header: (i == 0).then(|| pb::ModuleHeader {
                    module_sha256: hash.to_vec(),
                    total_size: total as u64,
                }),
                data: module[start..end].to_vec(),
            }
        }));
        let reply = self
            .client
            .clone()
            .put_module(stream)
            .await
            .map_err(|s| WorkerError::from_status(&s))?
            .into_inner();
        if reply.module_sha256 != hash {
            return Err(WorkerError::Protocol(
                "worker stored the module under another hash".to_string(),
            ));
        }
        Ok(())
    }

    /// Uploads a module unless it went, or is going, through this
    /// connection already: jobs that all find the worker lacking the
    /// module (a batch's first ones, even those whose miss was answered
    /// while the upload was finishing) send its bytes once, not once each.
    /// With `again`, an upload that has finished is not trusted (the
    /// worker missed the module after it: it may have evicted it) and the
    /// module is sent anew; one under way is still shared. A failed upload
    /// is always tried again.
    pub async fn put_module_once(
        &self,
        hash: Sha256Hash,
        module: Arc<[u8]>,
        again: bool,
    ) -> Result<(), WorkerError> {
        use futures::FutureExt;
        let upload = {
            let mut uploads = self
                .uploads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let stale = uploads
                .get(&hash)
                .is_some_and(|upload| match upload.peek() {
                    None => false,
                    Some(Ok(())) => again,
                    Some(Err(_)) => true,
                });
            if stale {
                uploads.remove(&hash);
            }
            uploads
                .entry(hash)
                .or_insert_with(|| {
                    // Without this connection's shared maps: an upload
                    // abandoned unfinished must not keep the map (and the
                    // connection) alive through itself.
                    let conn = WorkerConn {
                        batching: Arc::default(),
                        uploads: Arc::default(),
                        ..self.clone()
                    };
                    async move { conn.put_module(hash, module).await }
                        .boxed()
                        .shared()
                })
                .clone()
        };
        upload.await
    }

    /// Sends a signed job envelope: alone when nothing else is in flight
    /// to this worker, otherwise in the next `ExecuteBatch` call.
    pub async fn execute(&self, job: pb::SignedEnvelope) -> Answer {
        let before = self.batching.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.batching.in_flight);
        if before == 0 || self.batching.unsupported.load(Ordering::Acquire) {
            return self.execute_unary(job).await;
        }
        let (tx, rx) = oneshot::channel();
        match self.enqueue((job, tx)) {
            Ok(()) => rx.await.unwrap_or_else(|_| {
                Err(tonic::Status::unavailable(
                    "the batching task stopped before the worker answered",
                ))
            }),
            // No runtime to batch on: alone, then.
            Err((job, _)) => self.execute_unary(job).await,
        }
    }

    /// One `ExecuteBatch` call with `jobs` (at most [`MAX_BATCH_JOBS`]):
    /// the stream of answers, each naming its job's index, in the order
    /// the jobs complete. [`WorkerConn::execute`] batches by itself; this
    /// is for callers that make their own batches.
    pub async fn execute_batch(
        &self,
        jobs: Vec<pb::SignedEnvelope>,
    ) -> Result<tonic::Streaming<pb::ExecuteBatchReply>, tonic::Status> {
        self.client
            .clone()
            .execute_batch(pb::ExecuteBatchRequest { jobs })
            .await
            .map(tonic::Response::into_inner)
    }

    /// One `Execute` call, never batched: a worker with no free slot
    /// answers "busy" at once instead of letting the job wait.
    pub async fn execute_unary(&self, job: pb::SignedEnvelope) -> Answer {
        self.client
            .clone()
            .execute(pb::ExecuteRequest { job: Some(job) })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Hands a job to the batching task, starting it if need be.
    fn enqueue(&self, queued: Queued) -> Result<(), Queued> {
        let mut queue = self
            .batching
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let queued = match queue.as_ref() {
            Some(running) => match running.send(queued) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(queued)) => queued,
            },
            None => queued,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(queued);
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(batch_calls(
            self.client.clone(),
            Arc::clone(&self.batching.unsupported),
            receiver,
        ));
        let sent = sender.send(queued).map_err(|e| e.0);
        *queue = Some(sender);
        sent
    }
}

/// The batching task of one connection: sends whatever has queued as one
/// `ExecuteBatch` call, with at most [`MAX_BATCH_CALLS`] open.
async fn batch_calls(
    client: pb::worker_client::WorkerClient<Channel>,
    unsupported: Arc<std::sync::atomic::AtomicBool>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    let calls = Arc::new(Semaphore::new(MAX_BATCH_CALLS));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = Arc::clone(&calls).acquire_owned().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < MAX_BATCH_JOBS
            && let Ok(next) = queue.try_recv()
        {
            group.push(next);
        }
        // Jobs whose caller gave up while queued are not sent.
        group.retain(|(_, answer)| !answer.is_closed());
        if group.is_empty() {
            continue;
        }
        let (client, unsupported) = (client.clone(), Arc::clone(&unsupported));
        tokio::spawn(async move {
            batch_call(client, &unsupported, group).await;
            drop(permit);
        });
    }
}

/// One `ExecuteBatch` call: each answer goes to its job's caller as it
/// streams in. A worker without `ExecuteBatch` gets the jobs one by one.
async fn batch_call(
    mut client: pb::worker_client::WorkerClient<Channel>,
    unsupported: &std::sync::atomic::AtomicBool,
    group: Vec<Queued>,
) {
    let (jobs, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
    let mut answers: Vec<Option<oneshot::Sender<Answer>>> = answers.into_iter().map(Some).collect();
    let mut stream = match client.execute_batch(pb::ExecuteBatchRequest { jobs }).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            // A worker from before `ExecuteBatch`: these jobs fail with the
            // status (their callers place them again), later ones go alone.
            debug!("the worker has no ExecuteBatch; its jobs go one by one from now on");
            unsupported.store(true, Ordering::Release);
            for answer in answers.into_iter().flatten() {
                let _ = answer.send(Err(copy_status(&status)));
            }
            return;
        }
        Err(status) => {
            for answer in answers.into_iter().flatten() {
                let _ = answer.send(Err(copy_status(&status)));
            }
            return;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(reply)) => {
                let Some(answer) = answers.get_mut(reply.index as usize).and_then(Option::take)
                else {
                    debug!(
                        index = reply.index,
                        "the worker answered a job twice, or one it was not sent"
                    );
                    continue;
                };
                let _ = answer.send(batch_answer(reply));
            }
            Ok(None) => break,
            Err(status) => {
                for answer in answers.iter_mut().filter_map(Option::take) {
                    let _ = answer.send(Err(copy_status(&status)));
                }
                return;
            }
        }
    }
    for answer in answers.into_iter().flatten() {
        let _ = answer.send(Err(tonic::Status::internal(
            "the worker ended the batch without answering this job",
        )));
    }
}

/// One job's answer in a batch, as `Execute` would have given it.
pub fn batch_answer(reply: pb::ExecuteBatchReply) -> Answer {
    if reply.error_code != 0 {
        return Err(tonic::Status::new(
            tonic::Code::from(reply.error_code),
            reply.error_message,
        ));
    }
    reply
        .response
        .ok_or_else(|| tonic::Status::internal("the worker's batch answer is empty"))
}

/// The same status again, for each of the jobs it ends.
fn copy_status(status: &tonic::Status) -> tonic::Status {
    tonic::Status::new(status.code(), status.message())
}

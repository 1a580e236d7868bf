//! A connection to one worker: the four RPCs of `peergrid.v1.Worker`, with
//! message limits, timeouts and chunked module upload.

use std::sync::Arc;
use std::time::Duration;

use peergrid_proto::tls::Transport;
use peergrid_proto::{Domain, PeerId, Sha256Hash, envelope, pb};
use tonic::transport::{Channel, Endpoint};

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

    /// Sends a signed job envelope.
    pub async fn execute(
        &self,
        job: pb::SignedEnvelope,
    ) -> Result<pb::ExecuteResponse, tonic::Status> {
        self.client
            .clone()
            .execute(pb::ExecuteRequest { job: Some(job) })
            .await
            .map(tonic::Response::into_inner)
    }
}

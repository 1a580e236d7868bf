//! A job as a submitter describes it, and the signed envelopes made from it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peergrid_proto::{Domain, Identity, PeerId, Sha256Hash, envelope, pb, sha256};
use prost::Message;

use crate::limits::Limits;

/// One unit of work: a WASM module (a WASI command), its input, its limits
/// and how many independent workers must run it.
#[derive(Debug, Clone)]
pub struct Job {
    module: Arc<[u8]>,
    module_hash: Sha256Hash,
    /// Program arguments (argv[1..]).
    pub args: Vec<String>,
    /// Standard input.
    pub stdin: Vec<u8>,
    /// Resource limits, the same for every replica.
    pub limits: Limits,
    /// How many workers run the job (k) while their credibility is unknown;
    /// a strict majority of them must agree. With trusted workers, adaptive
    /// replication may use fewer (see [`Job::adaptive`]).
    pub replicas: usize,
    /// Whether replication adapts to the workers' credibility (the default).
    /// `false`: always exactly `replicas` workers and a strict majority.
    pub adaptive: bool,
}

impl Job {
    /// A job running `module` with empty input, default limits and 3 replicas.
    pub fn new(module: impl Into<Arc<[u8]>>) -> Self {
        let module = module.into();
        let module_hash = sha256(&module);
        Self {
            module,
            module_hash,
            args: Vec::new(),
            stdin: Vec::new(),
            limits: Limits::default(),
            replicas: 3,
            adaptive: true,
        }
    }

    /// Sets the standard input.
    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
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

    /// Sets the resource limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the number of replicas (k).
    pub fn replicas(mut self, k: usize) -> Self {
        self.replicas = k;
        self
    }

    /// Turns adaptive replication on (default) or off (fixed k, strict
    /// majority).
    pub fn adaptive(mut self, adaptive: bool) -> Self {
        self.adaptive = adaptive;
        self
    }

    /// The module bytes.
    pub fn module(&self) -> &Arc<[u8]> {
        &self.module
    }

    /// SHA-256 of the module: its content address.
    pub fn module_hash(&self) -> Sha256Hash {
        self.module_hash
    }

    /// Bytes of input a worker receives (stdin plus arguments).
    pub fn input_size(&self) -> u64 {
        (self.stdin.len() + self.args.iter().map(String::len).sum::<usize>()) as u64
    }
}

/// The identity of one submission of a job, shared by all its replicas.
#[derive(Debug, Clone)]
pub struct Submission {
    /// 32 random bytes naming this submission.
    pub job_id: Sha256Hash,
    /// Start of the job's virtual clock (ns since the Unix epoch).
    pub clock_base_unix_ns: u64,
    /// When the signed envelopes stop being valid.
    pub expires_at: SystemTime,
    /// SHA-256 of stdin, which result claims repeat.
    pub input_hash: Sha256Hash,
    /// A task of a batch: its envelopes may wait a moment (at most
    /// [`peergrid_proto::signer::BATCH_LINGER`]) to share a signature with
    /// other tasks', trading a millisecond of latency for throughput.
    pub batched: bool,
}

impl Submission {
    /// A fresh submission of `job` whose envelopes expire after `ttl`.
    pub fn new(job: &Job, ttl: Duration) -> Self {
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            job_id: rand::random(),
            clock_base_unix_ns: u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX),
            expires_at: now + ttl,
            input_hash: sha256(&job.stdin),
            batched: false,
        }
    }

    /// Signs the envelope for one replica addressed to `worker`; returns it
    /// with its fresh nonce.
    pub fn envelope_for(
        &self,
        job: &Job,
        submitter: &Identity,
        worker: PeerId,
    ) -> (pb::SignedEnvelope, [u8; 16]) {
        let (spec, nonce) = self.spec_for(job, worker);
        (envelope::sign(submitter, Domain::Job, spec), nonce)
    }

    /// The encoded `JobSpec` of one replica addressed to `worker`, to be
    /// signed (alone with [`Submission::envelope_for`], or with others by a
    /// [`peergrid_proto::BatchSigner`]); returned with its fresh nonce.
    pub fn spec_for(&self, job: &Job, worker: PeerId) -> (Vec<u8>, [u8; 16]) {
        let nonce: [u8; 16] = rand::random();
        let expires_at_unix_ms = self
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let spec = pb::JobSpec {
            job_id: self.job_id.to_vec(),
            module_sha256: job.module_hash.to_vec(),
            args: job.args.clone(),
            stdin: job.stdin.clone(),
            limits: Some(job.limits.to_pb()),
            clock_base_unix_ns: self.clock_base_unix_ns,
            worker_id: worker.as_bytes().to_vec(),
            nonce: nonce.to_vec(),
            expires_at_unix_ms,
        };
        (spec.encode_to_vec(), nonce)
    }
}

//! A peergrid node: the `peergrid.v1.Worker` gRPC service, its job pool,
//! module store and replay memory, and [`Node::serve`] to run it on a
//! listener until a shutdown signal.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use peergrid_proto::tls::Transport;
use peergrid_proto::{Domain, Identity, PeerId, Sha256Hash, envelope, pb, sha256};
use peergrid_sandbox::{ExecError, Execution, JobInput, Metering, Sandbox};
use prost::Message;
use scheduler_lib::Budget;
use scheduler_lib::outcome::{JobFailure, outcome_to_claim_fields};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::activity::JobEnd;
use crate::admission::{AdmittedJob, Policy, admit};
use crate::config::NodeConfig;
use crate::pool::JobPool;
use crate::replay::ReplayGuard;
use crate::store::ModuleStore;
use scheduler_lib::client::MAX_BATCH_JOBS;

/// Errors starting or running a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The sandbox engine could not be created.
    #[error("sandbox: {0}")]
    Sandbox(#[from] peergrid_sandbox::SandboxError),
    /// The module store could not be opened.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// Threads or sockets failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The identity is not acceptable on this network.
    #[error("{0}")]
    Identity(String),
    /// Membership could not start.
    #[error("membership: {0}")]
    Membership(String),
    /// The server-reflection service could not be built from the
    /// descriptors.
    #[error("gRPC server reflection: {0}")]
    Reflection(String),
    /// The status page could not be served.
    #[error("{0}")]
    Ui(#[from] crate::ui::UiError),
}

/// Counters of what a node has done since it started.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Jobs run to a result (any outcome).
    pub jobs_run: AtomicU64,
    /// Jobs whose run ended in a failure outcome.
    pub jobs_failed: AtomicU64,
    /// Requests refused (bad signature, replay, limits, busy…).
    pub jobs_refused: AtomicU64,
    /// Fuel spent on jobs under a fuel budget (wall-time jobs count none).
    pub fuel_used: AtomicU64,
    /// CPU time spent on jobs, in microseconds: the work done, whatever
    /// the jobs' budget kind.
    pub cpu_time_us: AtomicU64,
    /// Modules received by upload.
    pub modules_received: AtomicU64,
    /// Module uploads refused (policy, size, hash, rate limit, deadline).
    pub modules_refused: AtomicU64,
    /// Execute requests refused, by reason (their sum is `jobs_refused`).
    pub refused_by: crate::metrics::ReasonCounts,
    /// Job envelopes whose signature did not verify.
    pub signature_failures: AtomicU64,
    /// Calls refused by a rate limit or the per-submitter job cap, by limit.
    pub rate_limited: crate::metrics::LimitCounts,
}

/// A running node's shared state. Cheap to clone behind an `Arc`.
#[derive(Debug)]
pub struct Node {
    identity: Identity,
    /// Signs result claims; claims that finish together share a signature.
    signer: peergrid_proto::BatchSigner,
    config: NodeConfig,
    policy: Policy,
    /// Runs [`Budget::WallTime`] jobs: uninstrumented code in supervised
    /// runner processes when the node has a compiler program (as every
    /// `peergrid node` does), else `fuel_sandbox` with unlimited fuel.
    sandbox: Arc<Sandbox>,
    /// Runs [`Budget::Fuel`] jobs: fuel-metered code in this process.
    fuel_sandbox: Arc<Sandbox>,
    pool: JobPool,
    store: ModuleStore,
    replay: Mutex<ReplayGuard>,
    uploads: Semaphore,
    /// `ExecuteBatch` calls served at once (see [`Node::max_batches`]).
    batches: Arc<Semaphore>,
    /// The most `ExecuteBatch` calls served at once: four per slot.
    max_batches: usize,
    stats: NodeStats,
    /// The recent jobs and the work per minute, for the status page.
    activity: crate::activity::Activity,
    started: Instant,
    started_unix_ms: u64,
    /// The address the gRPC server is bound to, once it serves.
    listen_addr: std::sync::OnceLock<std::net::SocketAddr>,
    gossip: std::sync::OnceLock<Arc<crate::gossip::Gossip>>,
    flood: crate::flood::FloodControl,
    connections: Arc<crate::connections::ConnectionGate>,
    /// TLS keyed by this node's identity (or plaintext with `insecure`),
    /// for both the server and the node's own calls to peers.
    transport: Transport,
}

impl Node {
    /// Builds a node with this identity and configuration: creates the
    /// sandbox engine, the job threads and the module store. Compiled code
    /// is cached in `<data dir>/compiled` unless the sandbox config names
    /// another `artifact_dir`; job instances come from a pool sized for the
    /// slots ([`peergrid_sandbox::PoolConfig::for_slots`]) unless it names
    /// another `pool`.
    pub fn new(identity: Identity, config: NodeConfig) -> Result<Arc<Self>, NodeError> {
        let bits = config.gossip.membership.puzzle_bits;
        if !peergrid_proto::puzzle::solves(&identity.public_key(), bits) {
            return Err(NodeError::Identity(format!(
                "identity {} does not solve this network's puzzle ({bits} leading zero bits of \
                 sha256(sha256(key)); it has {}): create one with `peergrid keygen --puzzle-bits {bits}`",
                identity.peer_id().short(),
                peergrid_proto::puzzle::difficulty(&identity.public_key())
            )));
        }
        let transport = Transport::new(&identity, config.insecure)
            .map_err(|e| NodeError::Identity(e.to_string()))?;
        let mut sandbox_config = config.sandbox.clone();
        // Compiled code survives restarts: `<data dir>/compiled`.
        if sandbox_config.artifact_dir.is_none() {
            sandbox_config.artifact_dir = Some(config.data_dir.join("compiled"));
        }
        // Jobs take their instances from a pool: one per slot, plus
        // headroom. No memory cap of its own: a slot admits any 32-bit
        // memory and the job's limit (at most `max_limits.memory_bytes`)
        // stays with the sandbox's limiter, so verdicts are those of a
        // node without the pool.
        if sandbox_config.pool.is_none() {
            sandbox_config.pool = Some(peergrid_sandbox::PoolConfig::for_slots(config.slots));
        }
        // One sandbox per budget kind (the configured `metering` is
        // replaced): both share the artifact directory, whose file names
        // carry each engine's fingerprint.
        sandbox_config.metering = Metering::Fuel;
        let fuel_sandbox = Arc::new(Sandbox::new(sandbox_config.clone())?);
        let sandbox = if sandbox_config.compiler.is_some() {
            sandbox_config.metering = Metering::Supervised;
            Arc::new(Sandbox::new(sandbox_config)?)
        } else {
            Arc::clone(&fuel_sandbox)
        };
        let store = ModuleStore::open(&config.data_dir.join("modules"))?;
        let pool = JobPool::new(config.slots)?;
        Ok(Arc::new(Self {
            policy: Policy {
                default_limits: config.default_limits,
                max_limits: config.max_limits,
                max_input_bytes: config.max_input_bytes,
            },
            replay: Mutex::new(ReplayGuard::new(config.replay_capacity)),
            uploads: Semaphore::new(config.max_concurrent_uploads.max(1)),
            batches: Arc::new(Semaphore::new(config.slots.max(1) * BATCHES_PER_SLOT)),
            max_batches: config.slots.max(1) * BATCHES_PER_SLOT,
            signer: peergrid_proto::BatchSigner::new(identity.clone()),
            identity,
            sandbox,
            fuel_sandbox,
            pool,
            store,
            stats: NodeStats::default(),
            activity: crate::activity::Activity::default(),
            started: Instant::now(),
            started_unix_ms: now_ms(),
            listen_addr: std::sync::OnceLock::new(),
            gossip: std::sync::OnceLock::new(),
            flood: crate::flood::FloodControl::new(&config.flood, config.slots),
            connections: Arc::new(crate::connections::ConnectionGate::new(
                config.connections.clone(),
            )),
            transport,
            config,
        }))
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// What the node has done so far.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// What the node did lately: its recent jobs and work per minute.
    pub fn activity(&self) -> &crate::activity::Activity {
        &self.activity
    }

    /// The node's sandbox for [`Budget::WallTime`] jobs, the default
    /// kind (module cache statistics live there).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The node's sandbox for [`Budget::Fuel`] jobs.
    pub fn fuel_sandbox(&self) -> &Sandbox {
        &self.fuel_sandbox
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The node's membership, once it serves.
    pub fn gossip(&self) -> Option<&Arc<crate::gossip::Gossip>> {
        self.gossip.get()
    }

    /// The gate that caps this node's connections (see
    /// [`crate::connections::limit_connections`]).
    pub fn connection_gate(&self) -> &Arc<crate::connections::ConnectionGate> {
        &self.connections
    }

    /// The node's rate limits and per-submitter job cap.
    pub fn flood_control(&self) -> &crate::flood::FloodControl {
        &self.flood
    }

    /// Job slots in total.
    pub fn total_slots(&self) -> usize {
        self.pool.total()
    }

    /// Job slots free right now.
    pub fn free_slots(&self) -> usize {
        self.pool.free()
    }

    /// How this node talks to peers (TLS keyed by its identity, or
    /// plaintext when configured `insecure`).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Time since the node was built.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// When the node was built, in milliseconds since the Unix epoch.
    pub fn started_at_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }

    /// The address the gRPC server is bound to; `None` until it serves.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen_addr.get().copied()
    }

    /// Serves gRPC on `listener` until `shutdown` completes; in-flight
    /// calls then finish. The services: `peergrid.v1.Worker`,
    /// `peergrid.v1.Membership`, `peergrid.v1.Node` (status), the standard
    /// health service `grpc.health.v1.Health`, and server reflection
    /// (`grpc.reflection.v1` and `v1alpha`) describing all of them.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let local = listener.local_addr()?;
        let _ = self.listen_addr.set(local);
        let advertise = match &self.config.gossip.advertise {
            Some(addr) => addr.clone(),
            None => local.to_string(),
        };
        let gossip = Arc::new(crate::gossip::Gossip::new(
            &self,
            &self.identity,
            advertise,
        )?);
        let _ = self.gossip.set(Arc::clone(&gossip));
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<pb::worker_server::WorkerServer<WorkerService>>()
            .await;
        health_reporter
            .set_serving::<pb::node_server::NodeServer<crate::status::StatusService>>()
            .await;
        let (reflection, reflection_v1alpha) = reflection()?;
        let status =
            pb::node_server::NodeServer::new(crate::status::StatusService::new(Arc::clone(&self)));
        let membership =
            pb::membership_server::MembershipServer::new(crate::gossip::MembershipService {
                node: Arc::clone(&self),
            })
            .max_decoding_message_size(4 << 20);
        let gossip_loop = gossip.run(Arc::clone(&self), self.identity.clone());
        let transport = self.transport.clone();
        let calls = self.config.calls.clone();
        let worker_gate = Arc::clone(&self.connections);
        let worker = pb::worker_server::WorkerServer::new(WorkerService { node: self })
            .max_decoding_message_size(scheduler_lib::client::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(scheduler_lib::client::MAX_MESSAGE_BYTES);
        let gate = Arc::clone(&worker_gate);
        let router = crate::deadlines::server_builder(&calls)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(membership)
            .add_service(status)
            .add_service(worker);
        let server = async move {
            match transport {
                Transport::Tls(tls) => {
                    let incoming = crate::listener::tls(listener, tls.acceptor(), gate);
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
                Transport::Insecure => {
                    let incoming = crate::listener::plain(listener, gate);
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
            }
        };
        // Gossip runs as long as the server does.
        tokio::select! {
            served = server => served?,
            () = gossip_loop => {}
        }
        Ok(())
    }

    /// Counts and logs a refused Execute request. Refusals a flood causes
    /// in bulk (busy, rate-limited) are logged at debug level only, so a
    /// flooder cannot fill the operator's disk with warnings.
    fn refuse(&self, reason: crate::metrics::Reason, status: Status) -> Status {
        use crate::metrics::Reason;
        self.stats.jobs_refused.fetch_add(1, Ordering::Relaxed);
        self.stats.refused_by.add(reason);
        if reason == Reason::Signature {
            self.stats
                .signature_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        match reason {
            Reason::Busy | Reason::RateLimited => {
                debug!(code = ?status.code(), reason = status.message(), "refused job");
            }
            _ => warn!(code = ?status.code(), reason = status.message(), "refused job"),
        }
        status
    }

    /// Counts a call refused by flood control and turns it into its status.
    pub(crate) fn shed(&self, refusal: &crate::flood::FloodRefusal) -> Status {
        self.stats.rate_limited.add(refusal.kind());
        refusal.to_status()
    }

    /// Counts and logs a refused module upload.
    fn refuse_upload(&self, status: Status) -> Status {
        self.stats.modules_refused.fetch_add(1, Ordering::Relaxed);
        debug!(code = ?status.code(), reason = status.message(), "refused module upload");
        status
    }

    fn has_module(&self, hash: &Sha256Hash) -> bool {
        self.sandbox.cached(hash).is_some()
            || self.fuel_sandbox.cached(hash).is_some()
            || self.store.has(hash)
    }

    /// Runs one step (check or accept) on the replay memory; a refusal is
    /// counted and answered with the reason.
    fn in_replay_memory(
        &self,
        step: impl FnOnce(&mut ReplayGuard) -> Result<(), crate::replay::ReplayError>,
    ) -> Result<(), Status> {
        let mut memory = self
            .replay
            .lock()
            .map_err(|_| Status::internal("replay memory poisoned"))?;
        step(&mut memory).map_err(|e| {
            let refusal = crate::admission::Refusal::from(e);
            self.refuse(crate::metrics::Reason::from(&refusal), refusal.to_status())
        })
    }

    /// A job ticket of `submitter` and a free slot. Without `wait_until`
    /// (or once it has passed) a node at its limit refuses: the submitter's
    /// share as rate-limited, a full pool as busy.
    async fn take_slot(
        &self,
        submitter: &PeerId,
        wait_until: Option<tokio::time::Instant>,
    ) -> Result<(crate::flood::JobTicket, crate::pool::Slot), Status> {
        use crate::metrics::Reason;
        loop {
            // Enabled before trying, so a slot or ticket freed in between
            // wakes this waiter.
            let slot_freed = self.pool.freed().notified();
            let job_ended = self.flood.job_ended().notified();
            tokio::pin!(slot_freed, job_ended);
            slot_freed.as_mut().enable();
            job_ended.as_mut().enable();
            let waiting = wait_until.filter(|&t| tokio::time::Instant::now() < t);
            let ticket = match self.flood.start_job(*submitter) {
                Ok(ticket) => ticket,
                Err(refusal) => match waiting {
                    Some(until) => {
                        let _ = tokio::time::timeout_at(until, job_ended).await;
                        continue;
                    }
                    None => return Err(self.refuse(Reason::RateLimited, self.shed(&refusal))),
                },
            };
            if let Some(slot) = self.pool.try_acquire() {
                return Ok((ticket, slot));
            }
            drop(ticket);
            match waiting {
                Some(until) => {
                    let _ = tokio::time::timeout_at(until, slot_freed).await;
                }
                None => {
                    return Err(self.refuse(
                        Reason::Busy,
                        Status::resource_exhausted(format!(
                            "all {} job slots are busy",
                            self.pool.total()
                        )),
                    ));
                }
            }
        }
    }

    /// Signs a result claim, sharing the signature with claims that finish
    /// at about the same time.
    /// A job of a batch (`linger`) may wait a moment for more claims.
    async fn sign_claim(
        &self,
        claim: &pb::ResultClaim,
        linger: bool,
    ) -> Result<pb::SignedEnvelope, Status> {
        let payload = claim.encode_to_vec();
        let signed = if linger {
            let wait = peergrid_proto::signer::BATCH_LINGER;
            self.signer.sign_within(Domain::Result, payload, wait).await
        } else {
            self.signer.sign(Domain::Result, payload).await
        };
        signed.map_err(|e| Status::internal(e.to_string()))
    }

    /// Runs an admitted job on the pool and makes its claim (unsigned:
    /// see [`Node::seal`]).
    async fn execute(&self, job: AdmittedJob, slot: crate::pool::Slot) -> Result<Ran, Status> {
        let sandbox = Arc::clone(match job.limits.budget {
            Budget::WallTime => &self.sandbox,
            Budget::Fuel => &self.fuel_sandbox,
        });
        let store = self.store.clone();
        let module_hash = job.module_hash;
        let input = JobInput {
            args: job.spec.args.clone(),
            stdin: job.spec.stdin.clone(),
            seed: job_seed(&job.job_id),
            clock_base_unix_ns: job.spec.clock_base_unix_ns,
        };
        let limits = sandbox_limits(&job.limits);
        let execution = self
            .pool
            .run(slot, move || {
                run_job(&sandbox, &store, &module_hash, &input, &limits)
            })
            .await
            .map_err(|_| Status::internal("job thread vanished"))?
            .map_err(|p| Status::internal(p.to_string()))?;
        if let Err(ExecError::Host(problem)) = &execution.result {
            self.record_job(&job, JobEnd::NotRun, "not run: host failure", &execution);
            // The node failed, not the job: no claim, so it is never a vote.
            return Err(Status::internal(format!("worker host failure: {problem}")));
        }
        if let Err(ExecError::CompileBudget(why)) = &execution.result {
            self.record_job(
                &job,
                JobEnd::NotRun,
                "not run: over this node's compile budget",
                &execution,
            );
            // Over this node's compile budget is a refusal, not a verdict on
            // the module: the budget is this node's (in wall-clock time, on
            // its hardware), so it must never outvote a node that could.
            return Err(Status::failed_precondition(format!(
                "this worker refuses to compile the module: compile budget exceeded: {why}"
            )));
        }
        #[allow(unused_mut)]
        let mut execution = execution;
        if job.limits.budget == Budget::WallTime {
            // Counted only by the fallback fuel sandbox, against an
            // unlimited budget: not comparable with anything.
            execution.fuel_used = 0;
        }
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = &self.config.fault
            && execution.result.is_ok()
        {
            fault.corrupt(&mut execution.stdout);
        }
        let result = execution.result.clone().map_err(failure_of);
        let (outcome, exit_code, detail) = outcome_to_claim_fields(&result);
        let claim = pb::ResultClaim {
            job_id: job.job_id.to_vec(),
            worker_id: self.peer_id().as_bytes().to_vec(),
            nonce: job.nonce.to_vec(),
            module_sha256: job.module_hash.to_vec(),
            input_sha256: sha256(&job.spec.stdin).to_vec(),
            outcome: outcome as i32,
            exit_code,
            detail,
            output_sha256: sha256(&execution.stdout).to_vec(),
            stderr_sha256: sha256(&execution.stderr).to_vec(),
            fuel_used: execution.fuel_used,
            wall_time_us: u64::try_from(execution.elapsed.as_micros()).unwrap_or(u64::MAX),
            cpu_time_us: u64::try_from(execution.cpu_time.as_micros()).unwrap_or(u64::MAX),
        };
        self.stats.jobs_run.fetch_add(1, Ordering::Relaxed);
        self.stats
            .fuel_used
            .fetch_add(execution.fuel_used, Ordering::Relaxed);
        self.stats.cpu_time_us.fetch_add(
            u64::try_from(execution.cpu_time.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if result.is_err() {
            self.stats.jobs_failed.fetch_add(1, Ordering::Relaxed);
        }
        match &result {
            Ok(()) => self.record_job(&job, JobEnd::Success, "success", &execution),
            Err(failure) => {
                self.record_job(&job, JobEnd::Failed, &failure.to_string(), &execution);
            }
        }
        // In full, so an operator can put either on a deny list.
        info!(
            submitter = %job.submitter,
            module = %hex::encode(job.module_hash),
            outcome = %result.as_ref().map_or_else(ToString::to_string, |()| "success".into()),
            budget = %job.limits.budget,
            fuel = execution.fuel_used,
            cpu_ms = execution.cpu_time.as_millis() as u64,
            ms = execution.elapsed.as_millis() as u64,
            "ran job"
        );
        Ok(Ran {
            claim,
            stdout: execution.stdout,
            stderr: execution.stderr,
        })
    }

    /// Signs the claim of a job that ran and makes the answer; a job of a
    /// batch (`linger`) shares its signature with claims that finish
    /// within a moment of it.
    async fn seal(&self, ran: Ran, linger: bool) -> Result<pb::ExecuteResponse, Status> {
        #[allow(unused_mut)]
        let Ran {
            claim,
            mut stdout,
            stderr,
        } = ran;
        #[cfg(feature = "fault-injection")]
        let signed = if self.config.fault == Some(crate::fault::Fault::ForgeSignature) {
            envelope::sign(&Identity::generate(), Domain::Result, claim.encode_to_vec())
        } else {
            self.sign_claim(&claim, linger).await?
        };
        #[cfg(not(feature = "fault-injection"))]
        let signed = self.sign_claim(&claim, linger).await?;
        #[cfg(feature = "fault-injection")]
        if self.config.fault == Some(crate::fault::Fault::TamperAfterSigning) {
            crate::fault::Fault::FlipLastByte.corrupt(&mut stdout);
        }
        Ok(pb::ExecuteResponse {
            reply: Some(pb::execute_response::Reply::Result(signed)),
            output: stdout,
            stderr,
        })
    }
}

/// A job that ran: its claim, not yet signed, and its output.
#[derive(Debug)]
struct Ran {
    claim: pb::ResultClaim,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// What admitting and running one envelope gives.
#[derive(Debug)]
enum Answer {
    /// The reply as it goes out (the worker lacks the module).
    Ready(pb::ExecuteResponse),
    /// The job ran; its claim is to be signed.
    Ran(Ran),
}

impl Node {
    /// Adds a job that took a slot to the recent jobs and the work done.
    fn record_job(&self, job: &AdmittedJob, end: JobEnd, outcome: &str, execution: &Execution) {
        self.activity.record(crate::activity::RecentJob {
            finished_at_unix_ms: now_ms(),
            job_id: job.job_id,
            submitter: job.submitter,
            module: job.module_hash,
            end,
            outcome: outcome.to_string(),
            cpu_time_us: u64::try_from(execution.cpu_time.as_micros()).unwrap_or(u64::MAX),
            fuel: execution.fuel_used,
            wall_time_ms: u64::try_from(execution.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// gRPC server reflection (v1, and v1alpha for older tools) over every
/// service a node serves: the `peergrid.v1` ones and the health service
/// (the reflection service describes itself).
fn reflection() -> Result<
    (
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
        >,
        tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflection,
        >,
    ),
    NodeError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(peergrid_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let error = |e: tonic_reflection::server::Error| NodeError::Reflection(e.to_string());
    Ok((
        builder().build_v1().map_err(error)?,
        builder().build_v1alpha().map_err(error)?,
    ))
}

/// Compiles (once per node, cached) and runs a job. Runs on a pool thread.
fn run_job(
    sandbox: &Sandbox,
    store: &ModuleStore,
    hash: &Sha256Hash,
    input: &JobInput,
    limits: &peergrid_sandbox::Limits,
) -> Execution {
    let module = match sandbox.cached(hash) {
        Some(m) => Ok(m),
        None => match store.read(hash) {
            Ok(bytes) => sandbox.compile(&bytes),
            // The node's disk failed, not the job: never a signed claim.
            Err(e) => Err(ExecError::Host(format!(
                "module unreadable from the store: {e}"
            ))),
        },
    };
    match module {
        Ok(module) => sandbox.run(&module, input, limits),
        Err(error) => Execution::failed(error),
    }
}

/// The sandbox's form of a job's limits.
///
/// A [`Budget::WallTime`] job gets unlimited fuel: a supervised sandbox
/// ignores fuel anyway, and on a node without a compiler program, whose
/// wall-time jobs run in the fuel sandbox, it must not run out of fuel
/// where its replicas elsewhere would not.
pub fn sandbox_limits(l: &scheduler_lib::Limits) -> peergrid_sandbox::Limits {
    peergrid_sandbox::Limits {
        fuel: match l.budget {
            Budget::Fuel => l.fuel,
            // 2^63 instructions: centuries, and within wasmtime's range.
            Budget::WallTime => i64::MAX as u64,
        },
        memory_bytes: l.memory_bytes,
        wall_time: l.wall_time,
        max_output_bytes: usize::try_from(l.max_output_bytes).unwrap_or(usize::MAX),
        max_stderr_bytes: usize::try_from(l.max_stderr_bytes).unwrap_or(usize::MAX),
    }
}

/// The sandbox's error kinds, as the wire (and the scheduler) names them.
fn failure_of(error: ExecError) -> JobFailure {
    match error {
        ExecError::OutOfFuel => JobFailure::OutOfFuel,
        ExecError::MemoryLimit => JobFailure::MemoryLimit,
        ExecError::Timeout => JobFailure::Timeout,
        ExecError::Trap(t) => JobFailure::Trap(t),
        ExecError::InvalidModule(m) => JobFailure::InvalidModule(m),
        ExecError::OutputTooLarge => JobFailure::OutputTooLarge,
        ExecError::ExitCode(c) => JobFailure::ExitCode(c),
        other => JobFailure::Trap(other.to_string()),
    }
}

/// The seed of a job's deterministic WASI random source, derived from its
/// job id so every replica draws the same numbers.
pub fn job_seed(job_id: &Sha256Hash) -> [u8; 32] {
    sha256(&[b"peergrid/seed/v1\0".as_slice(), job_id].concat())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The gRPC face of a [`Node`].
#[derive(Debug, Clone)]
pub struct WorkerService {
    node: Arc<Node>,
}

#[tonic::async_trait]
impl pb::worker_server::Worker for WorkerService {
    async fn hello(
        &self,
        request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let node = &self.node;
        let challenge = request.into_inner().challenge;
        if challenge.len() > 64 {
            return Err(Status::invalid_argument(
                "Hello challenge longer than 64 bytes",
            ));
        }
        let challenge_signature = if challenge.is_empty() {
            Vec::new()
        } else {
            envelope::sign(&node.identity, Domain::Hello, challenge).signature
        };
        Ok(Response::new(pb::HelloResponse {
            public_key: node.identity.public_key().to_vec(),
            free_slots: u32::try_from(node.pool.free()).unwrap_or(u32::MAX),
            total_slots: u32::try_from(node.pool.total()).unwrap_or(u32::MAX),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            max_job_memory_bytes: node.config.max_limits.memory_bytes,
            max_limits: Some(node.config.max_limits.to_pb()),
            max_module_bytes: node.config.max_module_bytes,
            max_input_bytes: node.config.max_input_bytes,
            version: crate::VERSION.to_string(),
            challenge_signature,
            platform: node.sandbox.platform(),
        }))
    }

    async fn has_modules(
        &self,
        request: Request<pb::HasModulesRequest>,
    ) -> Result<Response<pb::HasModulesResponse>, Status> {
        let hashes = request.into_inner().module_sha256;
        if hashes.len() > 1024 {
            return Err(Status::invalid_argument(
                "at most 1024 hashes per HasModules call",
            ));
        }
        let present = hashes
            .iter()
            .map(|h| {
                peergrid_proto::hash::hash_from_slice(h).is_some_and(|h| self.node.has_module(&h))
            })
            .collect();
        Ok(Response::new(pb::HasModulesResponse { present }))
    }

    async fn put_module(
        &self,
        request: Request<Streaming<pb::ModuleChunk>>,
    ) -> Result<Response<pb::PutModuleResponse>, Status> {
        let node = &self.node;
        let ip = request.remote_addr().map(|a| a.ip());
        let peer = peergrid_proto::tls::caller(&request);
        self.receive_module(ip, peer, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|status| node.refuse_upload(status))
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let ip = request.remote_addr().map(|a| a.ip());
        let caller = peergrid_proto::tls::caller(&request);
        match execute_one(&self.node, ip, caller, request.into_inner(), None).await? {
            Answer::Ready(reply) => Ok(Response::new(reply)),
            Answer::Ran(ran) => self.node.seal(ran, false).await.map(Response::new),
        }
    }

    type ExecuteBatchStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::ExecuteBatchReply, Status>>;

    async fn execute_batch(
        &self,
        request: Request<pb::ExecuteBatchRequest>,
    ) -> Result<Response<Self::ExecuteBatchStream>, Status> {
        let ip = request.remote_addr().map(|a| a.ip());
        let caller = peergrid_proto::tls::caller(&request);
        let jobs = request.into_inner().jobs;
        if jobs.len() > MAX_BATCH_JOBS {
            return Err(self.node.refuse(
                crate::metrics::Reason::Malformed,
                Status::invalid_argument(format!(
                    "{} jobs in one ExecuteBatch call, at most {MAX_BATCH_JOBS} allowed",
                    jobs.len()
                )),
            ));
        }
        // Held until the batch's last job is answered: a node serves a
        // bounded number of batches at once, so waiting jobs (and the
        // requests that carry them) cannot pile up without end.
        let permit = Arc::clone(&self.node.batches)
            .try_acquire_owned()
            .map_err(|_| {
                self.node.refuse(
                    crate::metrics::Reason::Busy,
                    Status::resource_exhausted(format!(
                        "busy: {} ExecuteBatch calls in progress, the most this node serves at once",
                        self.node.max_batches
                    )),
                )
            })?;
        let permit = Arc::new(permit);
        // The per-IP limit is charged once for the whole call, by what it
        // costs in signature checks; the jobs are not charged again.
        let signatures: std::collections::HashSet<(&[u8], &[u8])> = jobs
            .iter()
            .map(|j| (j.public_key.as_slice(), j.signature.as_slice()))
            .collect();
        self.node
            .flood
            .execute_batch_from(ip, signatures.len())
            .map_err(|r| {
                self.node
                    .refuse(crate::metrics::Reason::RateLimited, self.node.shed(&r))
            })?;
        let count = jobs.len();
        let jobs = Arc::new(Mutex::new(jobs.into_iter().enumerate()));
        let (replies, stream) = tokio::sync::mpsc::channel(count.max(1));
        // A few lanes, each taking the next job when its last one is done:
        // a batch never has more jobs waiting for a slot than the node has
        // slots, however long it is.
        let lanes = count.min(self.node.pool.total());
        for _ in 0..lanes {
            let node = Arc::clone(&self.node);
            let jobs = Arc::clone(&jobs);
            let replies = replies.clone();
            let permit = Arc::clone(&permit);
            tokio::spawn(async move {
                let batch_permit = permit;
                loop {
                    // The caller hung up: the rest of its batch is not run.
                    if replies.is_closed() {
                        return;
                    }
                    let next = jobs.lock().ok().and_then(|mut j| j.next());
                    let Some((index, job)) = next else { return };
                    let wait_until = tokio::time::Instant::now() + BATCH_SLOT_WAIT;
                    let request = pb::ExecuteRequest { job: Some(job) };
                    // (No address: the call was charged per IP above.)
                    let answer = execute_one(&node, None, caller, request, Some(wait_until)).await;
                    let reply = match answer {
                        Ok(Answer::Ran(ran)) => {
                            // Signed (and sent) aside: the lane takes its
                            // next job while the claim waits to share a
                            // signature with others.
                            let (node, replies) = (Arc::clone(&node), replies.clone());
                            let permit = Arc::clone(&batch_permit);
                            tokio::spawn(async move {
                                let _permit = permit;
                                let sealed = node.seal(ran, true).await;
                                let _ = replies.send(Ok(batch_reply(index, sealed))).await;
                            });
                            continue;
                        }
                        Ok(Answer::Ready(reply)) => batch_reply(index, Ok(reply)),
                        Err(status) => batch_reply(index, Err(status)),
                    };
                    if replies.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            stream,
        )))
    }
}

/// One job's entry in an `ExecuteBatch` answer stream.
fn batch_reply(index: usize, answer: Result<pb::ExecuteResponse, Status>) -> pb::ExecuteBatchReply {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    match answer {
        Ok(response) => pb::ExecuteBatchReply {
            index,
            response: Some(response),
            ..Default::default()
        },
        Err(status) => pb::ExecuteBatchReply {
            index,
            response: None,
            error_code: status.code() as i32,
            error_message: status.message().to_string(),
        },
    }
}

/// `ExecuteBatch` calls a node serves at once, per job slot.
const BATCHES_PER_SLOT: usize = 4;

/// How long a job of a batch waits for a free slot (and for its
/// submitter's share of the slots) before it is refused as busy.
const BATCH_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Admits and runs one job envelope, as `Execute` does. With `wait_until`,
/// a job that finds no free slot, or its submitter at its share, waits for
/// one until then instead of being refused at once.
async fn execute_one(
    node: &Arc<Node>,
    ip: Option<std::net::IpAddr>,
    caller: Option<PeerId>,
    request: pb::ExecuteRequest,
    wait_until: Option<tokio::time::Instant>,
) -> Result<Answer, Status> {
    use crate::metrics::Reason;
    // Before the signature is checked: a flood from one address costs
    // no signature verifications past its bucket.
    node.flood
        .execute_from(ip)
        .map_err(|r| node.refuse(Reason::RateLimited, node.shed(&r)))?;
    let job = admit(&request, node.peer_id(), &node.policy)
        .map_err(|r| node.refuse(Reason::from(&r), r.to_status()))?;
    // Over TLS the connection proves who sends the job: it must be the
    // peer who signed it, so a captured job cannot be sent by anyone else.
    if let Some(caller) = caller
        && caller != job.submitter
    {
        return Err(node.refuse(
            Reason::Signature,
            Status::permission_denied(format!(
                "job signed by peer {} but the connection is authenticated as peer {}",
                job.submitter.short(),
                caller.short()
            )),
        ));
    }
    let span = info_span!(
        "job",
        id = %hex::encode(&job.job_id[..6]),
        submitter = %job.submitter.short()
    );
    async move {
        node.config
            .policy
            .check_job(&job.submitter, &job.module_hash)
            .map_err(|e| node.refuse(Reason::Policy, e.to_status()))?;
        let now = now_ms();
        let expires = job.spec.expires_at_unix_ms;
        node.in_replay_memory(|r| r.check(job.submitter, job.nonce, expires, now))?;
        // After the replay check, so that replaying a submitter's
        // captured envelope cannot drain that submitter's bucket.
        node.flood
            .execute_by(&job.submitter)
            .map_err(|r| node.refuse(Reason::RateLimited, node.shed(&r)))?;
        if !node.has_module(&job.module_hash) {
            return Ok(Answer::Ready(pb::ExecuteResponse {
                reply: Some(pb::execute_response::Reply::MissingModule(
                    job.module_hash.to_vec(),
                )),
                ..Default::default()
            }));
        }
        // The ticket is held until the job has run: one submitter never
        // holds more than its share of the slots, so others' jobs keep
        // flowing.
        let (_ticket, slot) = node.take_slot(&job.submitter, wait_until).await?;
        let now = now_ms();
        node.in_replay_memory(|r| r.accept(job.submitter, job.nonce, expires, now))?;
        node.execute(job, slot).await.map(Answer::Ran)
    }
    .instrument(span)
    .await
}

impl WorkerService {
    /// Receives one `PutModule` stream into the store: flood control, the
    /// operator policy, the size cap, and deadlines for every chunk and the
    /// whole upload (a client that opens the stream and never sends is cut
    /// off after `upload_chunk`).
    async fn receive_module(
        &self,
        ip: Option<std::net::IpAddr>,
        peer: Option<PeerId>,
        mut chunks: Streaming<pb::ModuleChunk>,
    ) -> Result<pb::PutModuleResponse, Status> {
        let node = &self.node;
        node.flood
            .put_module_from(ip, peer.as_ref())
            .map_err(|r| node.shed(&r))?;
        let _permit = node.uploads.try_acquire().map_err(|_| {
            Status::resource_exhausted(format!(
                "max_concurrent_uploads: {} module uploads in progress; retry later",
                node.config.max_concurrent_uploads
            ))
        })?;
        let limits = &node.config.calls;
        let deadline = tokio::time::Instant::now() + limits.upload;
        let first = next_chunk(&mut chunks, limits.upload_chunk, deadline)
            .await?
            .ok_or_else(|| Status::invalid_argument("empty module upload"))?;
        let header = first
            .header
            .ok_or_else(|| Status::invalid_argument("first ModuleChunk must carry the header"))?;
        let hash =
            peergrid_proto::hash::hash_from_slice(&header.module_sha256).ok_or_else(|| {
                Status::invalid_argument("ModuleHeader.module_sha256 must be 32 bytes")
            })?;
        let span =
            info_span!("upload", module = %hex::encode(&hash[..6]), bytes = header.total_size);
        async move {
            node.config
                .policy
                .check_module(&hash)
                .map_err(|e| e.to_status())?;
            if node.store.has(&hash) {
                return Ok(pb::PutModuleResponse {
                    module_sha256: hash.to_vec(),
                    already_present: true,
                });
            }
            if header.total_size > node.config.max_module_bytes {
                return Err(Status::out_of_range(format!(
                    "module is {} bytes; this worker accepts at most {}",
                    header.total_size, node.config.max_module_bytes
                )));
            }
            let status = |e: crate::store::StoreError| Status::invalid_argument(e.to_string());
            let mut upload = node
                .store
                .begin(hash, header.total_size)
                .map_err(|e| Status::internal(e.to_string()))?;
            upload.write(&first.data).map_err(status)?;
            while let Some(chunk) = next_chunk(&mut chunks, limits.upload_chunk, deadline).await? {
                if chunk.header.is_some() {
                    return Err(Status::invalid_argument(
                        "only the first ModuleChunk may carry a header",
                    ));
                }
                upload.write(&chunk.data).map_err(status)?;
            }
            upload.finish().map_err(status)?;
            node.stats.modules_received.fetch_add(1, Ordering::Relaxed);
            info!(module = %hex::encode(hash), "module stored");
            Ok(pb::PutModuleResponse {
                module_sha256: hash.to_vec(),
                already_present: false,
            })
        }
        .instrument(span)
        .await
    }
}

/// The next chunk of an upload, or `DEADLINE_EXCEEDED` naming the limit if
/// it does not come within `gap` (or before the whole upload's `deadline`).
async fn next_chunk(
    chunks: &mut Streaming<pb::ModuleChunk>,
    gap: std::time::Duration,
    deadline: tokio::time::Instant,
) -> Result<Option<pb::ModuleChunk>, Status> {
    let by_gap = tokio::time::Instant::now() + gap;
    match tokio::time::timeout_at(by_gap.min(deadline), chunks.next()).await {
        Ok(Some(chunk)) => chunk.map(Some),
        Ok(None) => Ok(None),
        Err(_) if deadline <= by_gap => Err(Status::deadline_exceeded(
            "PutModule exceeded the server's upload deadline",
        )),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "PutModule: no chunk within the server's upload_chunk deadline of {} s",
            gap.as_secs_f64()
        ))),
    }
}

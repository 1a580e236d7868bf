//! The scheduler: signs a job, places its replicas on workers, collects and
//! verifies their results and returns the quorum's verdict.
//!
//! Decisions are made by the pure [`placement`](crate::placement),
//! [`adaptive`](crate::adaptive), [`reputation`](crate::reputation) and
//! [`spot_check`](crate::spot_check) modules; this module only moves bytes and keeps
//! time. One [`Scheduler`] is meant to live as long as the service that
//! embeds it: it keeps connections to workers open across jobs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use peergrid_proto::hash::hash_from_slice;
use peergrid_proto::tls::Transport;
use peergrid_proto::{Identity, PeerId, Sha256Hash, pb};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::adaptive::{AdaptiveConfig, Decision, JobVerification, WorkerStanding};
use crate::client::{WorkerConn, WorkerInfo};
use crate::error::{SchedulerError, WorkerError};
use crate::job::{Job, Submission};
use crate::ledger::{self, Ledger, LedgerError};
use crate::limits::Limits;
use crate::membership::{MembershipConfig, verify_advert};
use crate::outcome::{JobFailure, VoteKey};
use crate::placement::{self, Candidate, Diversity, network_group};
use crate::reputation::PeerReputation;
use crate::reputation::{Observation, ReputationConfig};
use crate::reputation_store;
use crate::result::{Expected, VerifiedResult, verify_result};
use crate::spot_check::SpotCheckConfig;
use crate::trust::{KnownAnswer, TrustState};
use crate::verdict::{AgreedOutput, JobReport, Verdict, WorkerFailure, WorkerRun};

/// Knobs of a [`Scheduler`].
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Worker addresses (`host:port`) this scheduler may use.
    pub peers: Vec<String>,
    /// How long to wait for a TCP/HTTP2 connection to a worker.
    pub connect_timeout: Duration,
    /// How long one job may take from submit to verdict, uploads included.
    pub job_timeout: Duration,
    /// Adaptive replication: ε, the most replicas one job may use, how
    /// often trusted workers are re-verified. (`majority_replicas` is taken
    /// from each job's `replicas`.)
    pub adaptive: AdaptiveConfig,
    /// How observations move a peer's reputation, and when it is banned.
    pub reputation: ReputationConfig,
    /// How often workers get a job whose answer is known.
    pub spot_checks: SpotCheckConfig,
    /// Spot-checks sent at most after one job.
    pub max_spot_checks_per_job: usize,
    /// Accepted jobs kept in memory as spot-check questions.
    pub known_answers: usize,
    /// How different two workers' networks must be to run one job.
    pub diversity: Diversity,
    /// Ask the configured peers (`Members`) for the rest of the grid, so a
    /// bootstrap address is enough (default: true).
    pub discover: bool,
    /// The network's identity puzzle: workers whose key does not solve it
    /// get no work, and their adverts are ignored.
    pub puzzle_bits: u32,
    /// Seed of the policies' random draws (`None`: from the OS). Tests and
    /// demos that need repeatable decisions set it.
    pub seed: Option<u64>,
    /// Talk to workers in plaintext instead of TLS 1.3 keyed by identity
    /// (debugging only; default: false).
    pub insecure: bool,
    /// How long what the bootstrap peers' `Members` answered is reused
    /// before they are asked again (default: 5 s). Jobs in between only
    /// re-check the workers themselves (`Hello`), over kept connections.
    pub discovery_ttl: Duration,
    /// How long one survey of the workers (`Hello` to each: liveness and
    /// free slots) serves the jobs that follow (default: 100 ms; zero:
    /// survey for every job). A worker that fails in between is dropped
    /// from the cached survey at once, and one that has filled up answers
    /// "busy", which the job waits out, so the cache trades a round trip
    /// per job for at most this much staleness.
    pub survey_ttl: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            job_timeout: Duration::from_secs(300),
            adaptive: AdaptiveConfig::default(),
            reputation: ReputationConfig::default(),
            spot_checks: SpotCheckConfig::default(),
            max_spot_checks_per_job: 2,
            known_answers: 16,
            diversity: Diversity::default(),
            discover: true,
            puzzle_bits: MembershipConfig::default().puzzle_bits,
            seed: None,
            insecure: false,
            discovery_ttl: Duration::from_secs(5),
            survey_ttl: Duration::from_millis(100),
        }
    }
}

/// Submits jobs to the grid and verifies their results. Cheap to share
/// behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Scheduler {
    identity: Identity,
    /// Signs job envelopes; replicas placed together share a signature.
    signer: peergrid_proto::BatchSigner,
    config: SchedulerConfig,
    /// TLS keyed by `identity` (or plaintext), or why it could not be set up.
    transport: Result<Transport, String>,
    conns: tokio::sync::Mutex<HashMap<String, WorkerConn>>,
    /// The last discovery: when, and the addresses (with advertised peer
    /// ids) it found.
    discovered: tokio::sync::Mutex<Option<(Instant, Vec<Dialable>)>>,
    /// The last survey, reused for [`SchedulerConfig::survey_ttl`].
    surveyed: Mutex<Option<(Instant, Vec<LiveWorker>)>>,
    /// Held while a survey runs, so concurrent callers share one.
    surveying: tokio::sync::Mutex<()>,
    placed: Mutex<HashMap<PeerId, u64>>,
    ledger: Option<Ledger>,
    trust: Mutex<TrustState>,
}

/// An address to dial, with the peer id its advert names (the TLS
/// handshake there must prove it), if it came from an advert.
type Dialable = (String, Option<PeerId>);

/// A worker that answered `Hello`, with its connection.
#[derive(Debug, Clone)]
pub struct LiveWorker {
    /// The connection.
    pub conn: WorkerConn,
    /// What it said about itself.
    pub info: WorkerInfo,
}

struct Attempt {
    addr: String,
    peer: PeerId,
    started: Instant,
    outcome: Result<VerifiedResult, WorkerError>,
}

/// The state of one job's replicas while they run: the adaptive policy
/// decides, this only places, collects and keeps time.
struct Round<'a> {
    scheduler: &'a Scheduler,
    job: Arc<Job>,
    submission: &'a Submission,
    live: &'a [LiveWorker],
    /// Candidate indexes in placement order (banned and unfit ones left out).
    order: Vec<usize>,
    candidates: &'a [Candidate],
    deadline: tokio::time::Instant,
    verification: JobVerification,
    /// Network groups this job has run in (never two replicas in one).
    used_groups: HashSet<String>,
    runs: Vec<(WorkerRun, VerifiedResult)>,
    failures: Vec<WorkerFailure>,
    set: JoinSet<Attempt>,
    decision: Decision,
    /// Replicas placed beyond the first plan (disagreement, failures).
    escalations: usize,
}

impl Round<'_> {
    /// Places up to `count` more replicas on workers this job has not used,
    /// never two on one address; returns how many were placed.
    fn place(&mut self, count: usize) -> usize {
        let mut placed = 0;
        for &i in &self.order {
            if placed == count {
                break;
            }
            let c = &self.candidates[i];
            let group = network_group(&c.addr, self.scheduler.config.diversity);
            if self.verification.is_placed(&c.peer) || self.used_groups.contains(&group) {
                continue;
            }
            self.verification.placed(c.peer);
            self.used_groups.insert(group);
            self.scheduler.spawn_attempt(
                &mut self.set,
                &self.live[i],
                &self.job,
                self.submission,
                self.deadline,
                true,
            );
            placed += 1;
        }
        placed
    }

    /// Asks the policy what now, and acts: more replicas, or done.
    fn step(&mut self) {
        self.decision = self.verification.decide();
        if let Decision::NeedMore(n) = self.decision {
            let placed = self.place(n);
            if placed > 0 {
                info!(n, "escalating: more replicas placed");
                self.escalations += placed;
            } else {
                // No unused worker left: a strict majority of the job's k
                // still decides, as it would without reputations.
                self.decision = self.majority_fallback();
            }
        }
    }

    /// With every usable worker tried: the result a strict majority of the
    /// job's `replicas` agree on, if any.
    fn majority_fallback(&self) -> Decision {
        let needed = self.job.replicas / 2 + 1;
        let mut counts: HashMap<VoteKey, usize> = HashMap::new();
        for v in self.verification.votes() {
            *counts.entry(v.key).or_default() += 1;
        }
        let votes = self.verification.votes().len();
        counts
            .into_iter()
            .find(|&(_, n)| n >= needed && n * 2 > votes)
            .map_or(Decision::NoQuorum, |(key, _)| Decision::Accept(key))
    }

    /// What the job waits for now, in words: written to the ledger (without
    /// an fsync) so `peergrid job ID` can say it, even after a crash.
    fn waiting_for(&self) -> String {
        let votes = self.verification.votes().len();
        let pending = self.verification.pending();
        let needed = self.job.replicas / 2 + 1;
        let mut agreeing: HashMap<VoteKey, usize> = HashMap::new();
        for v in self.verification.votes() {
            *agreeing.entry(v.key).or_default() += 1;
        }
        let best = agreeing.values().copied().max().unwrap_or(0);
        let mut text = if votes == 0 {
            format!("{pending} replicas running; waiting for the first result")
        } else {
            format!(
                "waiting for quorum: {votes} results in ({} distinct, the largest group {best}; \
                 {needed} agreeing votes settle it), {pending} replicas still running",
                agreeing.len()
            )
        };
        let busy = self
            .candidates
            .iter()
            .filter(|c| c.free_slots == 0 && self.verification.is_placed(&c.peer))
            .count();
        if busy > 0 && pending > 0 {
            text += &format!(
                "; {busy} of the chosen workers had no free slot at the last survey: their replicas wait there for one"
            );
        }
        if self.escalations > 0 {
            text += &format!(
                "; escalated: {} extra replicas placed after disagreement or failures",
                self.escalations
            );
        }
        if !self.failures.is_empty() {
            text += &format!("; {} replicas failed", self.failures.len());
        }
        text
    }

    /// Records [`Round::waiting_for`] as the job's state reason.
    /// A task of a batch notes nothing here: its placements and verdict
    /// are recorded, and rewriting each of thousands of records after
    /// every answer (for a reason nobody reads while the batch runs: the
    /// ledger is the running submitter's alone) cost a third of a batch's
    /// ledger writes.
    fn note_state(&self) {
        if self.submission.batched {
            return;
        }
        let Some(ledger) = &self.scheduler.ledger else {
            return;
        };
        let (job_id, reason) = (self.submission.job_id, self.waiting_for());
        debug!(%reason, "job state");
        note_lazily(ledger, job_id, "the job's state", move |r| {
            if matches!(r.state(), pb::JobState::Submitted | pb::JobState::Running) {
                r.state_reason = reason;
            }
        });
    }

    fn done(&self) -> bool {
        match self.decision {
            Decision::Accept(_) | Decision::NoQuorum => self.verification.pending() == 0,
            Decision::Wait | Decision::NeedMore(_) => false,
        }
    }

    /// Collects answers until the policy has decided and every replica has
    /// answered (late answers still show who dissented), or the deadline.
    async fn collect(&mut self) {
        let now = now_ms();
        while !self.done() {
            let joined = tokio::select! {
                joined = self.set.join_next() => joined,
                () = tokio::time::sleep_until(self.deadline) => None,
            };
            let Some(joined) = joined else { break };
            let Ok(attempt) = joined else {
                warn!("an attempt task failed");
                continue;
            };
            let failure = |error| WorkerFailure {
                worker: Some(attempt.peer),
                addr: attempt.addr.clone(),
                error,
            };
            let observation = match &attempt.outcome {
                Ok(v) if v.result == Err(JobFailure::Timeout) => Some(Observation::TimedOut),
                Ok(_) => None,
                Err(WorkerError::RejectedResult(_)) => Some(Observation::InvalidResult),
                Err(
                    WorkerError::TimedOut(_)
                    | WorkerError::WallClockTimeout
                    | WorkerError::Unreachable(_),
                ) => Some(Observation::TimedOut),
                Err(_) => None,
            };
            if let Some(observation) = observation
                && let Ok(mut trust) = self.scheduler.trust.lock()
            {
                trust.observe(attempt.peer, observation, now);
            }
            match attempt.outcome {
                Ok(verified) if verified.result == Err(JobFailure::Timeout) => {
                    self.verification.failed(attempt.peer);
                    self.failures.push(failure(WorkerError::WallClockTimeout));
                }
                Ok(verified) => {
                    debug!(worker = %attempt.peer.short(), key = ?verified.key, "verified result");
                    let standing = self.scheduler.standing(&attempt.peer, self.job.adaptive);
                    self.verification
                        .vote(attempt.peer, verified.key, &standing);
                    let run = WorkerRun {
                        worker: attempt.peer,
                        addr: attempt.addr.clone(),
                        result: verified.result.clone(),
                        output_sha256: hash_from_slice(&verified.claim.output_sha256)
                            .unwrap_or_default(),
                        fuel_used: verified.claim.fuel_used,
                        cpu_time: Duration::from_micros(verified.claim.cpu_time_us),
                        wall_time: Duration::from_micros(verified.claim.wall_time_us),
                        round_trip: attempt.started.elapsed(),
                        signed_claim: verified.envelope.clone(),
                    };
                    self.runs.push((run, verified));
                }
                Err(error) => {
                    warn!(addr = %attempt.addr, %error, "replica failed");
                    if matches!(
                        error,
                        WorkerError::Unreachable(_) | WorkerError::TimedOut(_)
                    ) {
                        self.scheduler.forget_surveyed(&attempt.peer);
                    }
                    self.verification.failed(attempt.peer);
                    self.failures.push(failure(error));
                }
            }
            self.step();
            if !self.done() {
                self.note_state();
            }
        }
        if !self.set.is_empty() {
            // Whatever is still running missed the deadline.
            self.set.abort_all();
            self.failures.push(WorkerFailure {
                worker: None,
                addr: format!(
                    "({} replicas still running at the deadline)",
                    self.verification.pending()
                ),
                error: WorkerError::TimedOut(self.scheduler.config.job_timeout),
            });
            if matches!(self.decision, Decision::Wait | Decision::NeedMore(_)) {
                self.decision = self.majority_fallback();
            }
        }
    }
}

impl Scheduler {
    /// The configured addresses plus every live member their `Members`
    /// answers name, with adverts that verify (signature, puzzle),
    /// deduplicated. An advertised address comes with the advert's peer id,
    /// which the TLS handshake at that address must prove.
    async fn discover(&self, transport: &Transport, problems: &mut Vec<String>) -> Vec<Dialable> {
        let mut set = JoinSet::new();
        for addr in self.config.peers.iter().cloned() {
            let timeout = self.config.connect_timeout;
            let transport = transport.clone();
            set.spawn(async move {
                let uri = format!("http://{addr}");
                let answer = async move {
                    let endpoint = tonic::transport::Endpoint::from_shared(uri)
                        .map_err(|e| e.to_string())?
                        .connect_timeout(timeout);
                    let channel = transport
                        .connect(endpoint, None)
                        .await
                        .map_err(|e| e.to_string())?
                        .channel;
                    pb::membership_client::MembershipClient::new(channel)
                        .max_decoding_message_size(8 << 20)
                        .members(pb::MembersRequest {})
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| s.message().to_string())
                };
                (addr, tokio::time::timeout(timeout * 2, answer).await)
            });
        }
        let mut addrs: Vec<Dialable> = self
            .config
            .peers
            .iter()
            .map(|a| (a.clone(), None))
            .collect();
        while let Some(joined) = set.join_next().await {
            let Ok((addr, answer)) = joined else { continue };
            match answer {
                Ok(Ok(members)) => {
                    for envelope in members.adverts {
                        match verify_advert(&envelope, self.config.puzzle_bits) {
                            Ok(advert) => {
                                addrs.push((advert.primary_addr().to_string(), Some(advert.peer)))
                            }
                            Err(e) => debug!(%addr, error = %e, "ignored an advert"),
                        }
                    }
                }
                Ok(Err(e)) => debug!(%addr, error = %e, "no membership answer"),
                Err(_) => problems.push(format!("{addr}: no membership answer in time")),
            }
        }
        // One entry per address; an advertised peer id beats none.
        addrs.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.is_some().cmp(&a.1.is_some())));
        let mut seen = HashSet::new();
        addrs.retain(|(a, _)| seen.insert(a.clone()));
        addrs
    }

    /// A scheduler that signs jobs as `identity`.
    pub fn new(identity: Identity, config: SchedulerConfig) -> Self {
        let trust = TrustState::new(
            config.reputation.clone(),
            config.spot_checks.clone(),
            config.known_answers,
            config.seed,
        );
        let transport = Transport::new(&identity, config.insecure).map_err(|e| e.to_string());
        Self {
            signer: peergrid_proto::BatchSigner::new(identity.clone()),
            identity,
            config,
            transport,
            conns: tokio::sync::Mutex::new(HashMap::new()),
            discovered: tokio::sync::Mutex::new(None),
            surveyed: Mutex::new(None),
            surveying: tokio::sync::Mutex::new(()),
            placed: Mutex::new(HashMap::new()),
            ledger: None,
            trust: Mutex::new(trust),
        }
    }

    /// Records every job, placement, result and verdict in `ledger`, and
    /// every peer's reputation, so a restarted submitter keeps its accepted
    /// results and whom it trusts, and can resume unfinished jobs
    /// ([`Scheduler::resume_unfinished`]). Loads the reputations stored there.
    pub fn with_ledger(mut self, ledger: Ledger) -> Result<Self, SchedulerError> {
        {
            let mut trust = self.lock_trust();
            let loaded = reputation_store::load(&ledger, &mut trust.reputation)
                .map_err(|e| SchedulerError::Ledger(e.to_string()))?;
            if loaded > 0 {
                info!(peers = loaded, "reputations loaded from the ledger");
            }
        }
        self.ledger = Some(ledger);
        Ok(self)
    }

    /// A snapshot of this node's reputation records, most trusted first.
    pub fn reputations(&self) -> Vec<(PeerId, PeerReputation)> {
        let trust = self.lock_trust();
        let mut all: Vec<_> = trust
            .reputation
            .iter()
            .map(|(p, r)| (*p, r.clone()))
            .collect();
        all.sort_by(|a, b| b.1.trust().total_cmp(&a.1.trust()).then(a.0.cmp(&b.0)));
        all
    }

    /// Whether this node has banned `peer`.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.lock_trust().reputation.is_banned(peer)
    }

    fn lock_trust(&self) -> std::sync::MutexGuard<'_, TrustState> {
        // A panic while holding the lock cannot leave the plain-data state
        // half-updated in a way worse than losing one observation.
        self.trust
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The standing the adaptive policy sees for `peer` (unknown for jobs
    /// that asked for a fixed strict majority).
    fn standing(&self, peer: &PeerId, adaptive: bool) -> WorkerStanding {
        let trust = self.lock_trust();
        self.standing_in(&trust, peer, adaptive)
    }

    fn standing_in(&self, trust: &TrustState, peer: &PeerId, adaptive: bool) -> WorkerStanding {
        if adaptive {
            trust.standing(peer)
        } else {
            WorkerStanding::unknown()
        }
    }

    /// After an accepted job: update the workers' reputations, and keep the
    /// job as a spot-check question if independent workers agreed on it.
    fn learn(
        &self,
        verification: &JobVerification,
        key: VoteKey,
        job: &Arc<Job>,
        submission: &Submission,
        now: u64,
    ) {
        let observations = verification.observations(&key);
        let mut trust = self.lock_trust();
        for &(peer, observation) in &observations {
            trust.observe(peer, observation, now);
        }
        if !observations.is_empty() {
            trust.remember(KnownAnswer {
                job: Arc::clone(job),
                submission: submission.clone(),
                key,
                ran_on: verification.votes().iter().map(|v| v.peer).collect(),
            });
        }
    }

    /// Sends spot-checks to workers the policy picks among those that did
    /// not take part in the job just finished, and scores the answers.
    /// Returns the peers that were checked.
    async fn spot_check(&self, live: &[LiveWorker], exclude: &HashSet<PeerId>) -> Vec<PeerId> {
        let questions: Vec<(&LiveWorker, KnownAnswer)> = {
            let mut trust = self.lock_trust();
            let mut picked = Vec::new();
            for worker in live {
                if picked.len() == self.config.max_spot_checks_per_job {
                    break;
                }
                let peer = worker.info.peer;
                if exclude.contains(&peer) || worker.info.hello.free_slots == 0 {
                    continue;
                }
                let draw = trust.draw();
                if !trust.spot.should_spot_check(&trust.reputation, &peer, draw) {
                    continue;
                }
                if let Some(question) = trust.question_for(&peer) {
                    picked.push((worker, question));
                }
            }
            picked
        };
        if questions.is_empty() {
            return Vec::new();
        }
        let deadline = tokio::time::Instant::now() + self.config.job_timeout;
        let mut set = JoinSet::new();
        let mut expected = HashMap::new();
        for (worker, question) in &questions {
            let mut submission = question.submission.clone();
            submission.expires_at = SystemTime::now() + self.envelope_ttl();
            expected.insert(worker.info.peer, question.key);
            self.spawn_attempt(
                &mut set,
                worker,
                &question.job,
                &submission,
                deadline,
                false,
            );
        }
        let mut checked = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok(attempt) = joined else { continue };
            let now = now_ms();
            let matched = match &attempt.outcome {
                Ok(v) if v.result == Err(JobFailure::Timeout) => None,
                Ok(v) => Some(Some(v.key) == expected.get(&attempt.peer).copied()),
                Err(WorkerError::RejectedResult(_)) => Some(false),
                Err(_) => None,
            };
            if let Some(matched) = matched {
                info!(worker = %attempt.peer.short(), matched, "spot-check answered");
                self.lock_trust()
                    .score_spot_check(attempt.peer, matched, now);
                checked.push(attempt.peer);
            }
        }
        checked
    }

    /// The ledger, if this scheduler keeps one.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// Runs a ledger operation off the async threads (it waits for fsync).
    /// Without a ledger, does nothing and returns `None`.
    pub(crate) async fn in_ledger<R, F>(&self, op: F) -> Result<Option<R>, SchedulerError>
    where
        R: Send + 'static,
        F: FnOnce(&Ledger) -> Result<R, LedgerError> + Send + 'static,
    {
        match &self.ledger {
            None => Ok(None),
            Some(ledger) => in_ledger(ledger.clone(), op).await.map(Some),
        }
    }

    /// How long one job may take, submit to verdict.
    pub(crate) fn job_timeout(&self) -> Duration {
        self.config.job_timeout
    }

    /// How many peer addresses this scheduler was configured with.
    pub(crate) fn configured_peers(&self) -> usize {
        self.config.peers.len()
    }

    /// The submitter's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Asks every configured peer who it is and what it has free, in
    /// parallel. Returns the live ones and one line per peer that failed.
    /// A survey younger than [`SchedulerConfig::survey_ttl`] that found
    /// live workers is returned as it was.
    pub async fn survey(&self) -> (Vec<LiveWorker>, Vec<String>) {
        if let Some(live) = self.fresh_survey() {
            return (live, Vec::new());
        }
        // One survey at a time: jobs that start together (a batch's first
        // ones) wait for it and share its connections, instead of each
        // dialling every worker.
        let _surveying = self.surveying.lock().await;
        if let Some(live) = self.fresh_survey() {
            return (live, Vec::new());
        }
        let (live, problems) = self.survey_now().await;
        if let Ok(mut cached) = self.surveyed.lock() {
            *cached = (!live.is_empty()).then(|| (Instant::now(), live.clone()));
        }
        (live, problems)
    }

    /// The cached survey, if it is younger than `survey_ttl`.
    fn fresh_survey(&self) -> Option<Vec<LiveWorker>> {
        let cached = self.surveyed.lock().ok()?;
        let (at, live) = cached.as_ref()?;
        (at.elapsed() < self.config.survey_ttl).then(|| live.clone())
    }

    /// Drops `peer` from the cached survey (it failed to answer a job).
    fn forget_surveyed(&self, peer: &PeerId) {
        if let Ok(mut cached) = self.surveyed.lock()
            && let Some((_, live)) = cached.as_mut()
        {
            live.retain(|w| w.info.peer != *peer);
        }
    }

    async fn survey_now(&self) -> (Vec<LiveWorker>, Vec<String>) {
        let mut set = JoinSet::new();
        let mut problems = Vec::new();
        let transport = match &self.transport {
            Ok(t) => t.clone(),
            Err(e) => {
                problems.push(format!("TLS could not be set up: {e}"));
                return (Vec::new(), problems);
            }
        };
        let addrs = if self.config.discover {
            let mut cached = self.discovered.lock().await;
            match &*cached {
                Some((at, addrs)) if at.elapsed() < self.config.discovery_ttl => addrs.clone(),
                _ => {
                    let addrs = self.discover(&transport, &mut problems).await;
                    *cached = Some((Instant::now(), addrs.clone()));
                    addrs
                }
            }
        } else {
            self.config
                .peers
                .iter()
                .map(|a| (a.clone(), None))
                .collect()
        };
        for (addr, expected) in addrs {
            let conn = self
                .conns
                .lock()
                .await
                .get(&addr)
                .filter(|c| {
                    expected.is_none() || c.tls_peer().is_none() || c.tls_peer() == expected
                })
                .cloned();
            let timeout = self.config.connect_timeout;
            let transport = transport.clone();
            set.spawn(async move {
                let conn = match conn {
                    Some(c) => c,
                    None => WorkerConn::connect(&addr, timeout, &transport, expected)
                        .await
                        .map_err(|e| (addr.clone(), e))?,
                };
                match tokio::time::timeout(timeout, conn.hello()).await {
                    Ok(Ok(info)) => Ok(LiveWorker { conn, info }),
                    Ok(Err(e)) => Err((addr, e)),
                    Err(_) => Err((addr, WorkerError::TimedOut(timeout))),
                }
            });
        }
        let mut live = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(worker)) => {
                    self.conns
                        .lock()
                        .await
                        .insert(worker.conn.addr().to_string(), worker.conn.clone());
                    live.push(worker);
                }
                Ok(Err((addr, e))) => {
                    self.conns.lock().await.remove(&addr);
                    problems.push(format!("{addr}: {e}"));
                }
                Err(e) => problems.push(format!("survey task failed: {e}")),
            }
        }
        live.sort_by(|a, b| a.conn.addr().cmp(b.conn.addr()));
        (live, problems)
    }

    /// Runs `job` on `job.replicas` independent workers and returns the
    /// verdict of their strict majority. With a ledger, the job is recorded
    /// (module included) before anything is sent.
    pub async fn submit(&self, job: &Job) -> Result<JobReport, SchedulerError> {
        if job.replicas == 0 {
            return Err(SchedulerError::InvalidJob(
                "replicas must be at least 1".into(),
            ));
        }
        if job.module().is_empty() {
            return Err(SchedulerError::InvalidJob("module is empty".into()));
        }
        let submission = Submission::new(job, self.envelope_ttl());
        let (record_job, record) = (
            job.clone(),
            ledger::new_job_record(job, &submission, now_ms()),
        );
        self.in_ledger(move |l| {
            l.put_module(&record_job.module_hash(), record_job.module())?;
            l.insert_job(&record)
        })
        .await?;
        self.run_submission(job, submission).await
    }

    /// Runs again every job the ledger holds as submitted or running (left
    /// so by a crash or kill of the submitter), with its original job id and
    /// virtual clock, on freshly placed replicas. Returns one result per job.
    pub async fn resume_unfinished(
        &self,
    ) -> Result<Vec<(Sha256Hash, Result<JobReport, SchedulerError>)>, SchedulerError> {
        let records = self
            .in_ledger(|l| l.unfinished())
            .await?
            .unwrap_or_default();
        let mut reports = Vec::with_capacity(records.len());
        for record in records {
            let job_id = hash_from_slice(&record.job_id).unwrap_or_default();
            reports.push((job_id, self.resume(record, false).await));
        }
        Ok(reports)
    }

    /// Resumes one job of the ledger by id (e.g. after `peergrid submit` was
    /// interrupted). A job that already has a verdict is returned as is.
    pub async fn resume_job(&self, job_id: Sha256Hash) -> Result<JobReport, SchedulerError> {
        let record = self
            .in_ledger(move |l| l.job(&job_id))
            .await?
            .flatten()
            .ok_or_else(|| {
                SchedulerError::Ledger(format!("no job {} in the ledger", hex::encode(job_id)))
            })?;
        self.resume(record, false).await
    }

    /// Places a recorded job again: one left SUBMITTED or RUNNING, or (with
    /// `retry_failed`, as a batch resumes) one that FAILED without a verdict,
    /// e.g. for want of workers. A job with a verdict is never run again.
    pub(crate) async fn resume(
        &self,
        record: pb::JobRecord,
        retry_failed: bool,
    ) -> Result<JobReport, SchedulerError> {
        let job_id = hash_from_slice(&record.job_id).unwrap_or_default();
        let resumable = match record.state() {
            pb::JobState::Submitted | pb::JobState::Running => true,
            pb::JobState::Failed => retry_failed,
            _ => false,
        };
        if !resumable {
            return Err(SchedulerError::InvalidJob(format!(
                "job {} is already finished ({:?}: {})",
                hex::encode(&job_id[..6]),
                record.state(),
                record.state_reason
            )));
        }
        let hash = hash_from_slice(&record.module_sha256).unwrap_or_default();
        let module = self.in_ledger(move |l| l.module(&hash)).await?.flatten();
        let Some(module) = module else {
            let reason = "module lost from the ledger; cannot re-place".to_string();
            let why = reason.clone();
            self.in_ledger(move |l| {
                l.update_job(&job_id, |r| {
                    r.set_state(pb::JobState::Failed);
                    r.state_reason = why;
                })
            })
            .await?;
            return Err(SchedulerError::Ledger(reason));
        };
        let (job, submission) =
            ledger::resume(&record, module, SystemTime::now() + self.envelope_ttl())
                .map_err(|e| SchedulerError::Ledger(e.to_string()))?;
        // Replicas in flight when the submitter stopped have no answer to
        // collect: note them, then place the job afresh.
        let answered: HashSet<&[u8]> = record
            .results
            .iter()
            .map(|r| r.peer_id.as_slice())
            .chain(record.failures.iter().map(|f| f.peer_id.as_slice()))
            .collect();
        let lost: Vec<pb::FailureRecord> = record
            .placements
            .iter()
            .filter(|p| !answered.contains(p.peer_id.as_slice()))
            .map(|p| pb::FailureRecord {
                peer_id: p.peer_id.clone(),
                address: p.address.clone(),
                error: "the submitter stopped while this replica ran; re-placed".into(),
                at_unix_ms: now_ms(),
            })
            .collect();
        info!(job = %hex::encode(&job_id[..6]), lost = lost.len(), "resuming job from the ledger");
        self.in_ledger(move |l| {
            l.update_job(&job_id, |r| {
                r.failures.extend(lost);
                r.state_reason = "resumed after a restart".into();
            })
        })
        .await?;
        self.run_submission(&job, submission).await
    }

    pub(crate) fn envelope_ttl(&self) -> Duration {
        self.config.job_timeout + Duration::from_secs(30)
    }

    /// Places, runs and decides a job whose record (if there is a ledger)
    /// is already written.
    pub(crate) async fn run_submission(
        &self,
        job: &Job,
        submission: Submission,
    ) -> Result<JobReport, SchedulerError> {
        let started = Instant::now();
        let job_id = submission.job_id;
        let span = info_span!("job", id = %hex::encode(&job_id[..6]));
        async move {
            let (live, mut reasons) = self.survey().await;
            let known = self.config.peers.len();
            let candidates = self.candidates(job, &live, &mut reasons);
            // Distinct peers in distinct network groups that admit the job.
            let usable = placement::choose(
                &candidates,
                candidates.len(),
                &submission.job_id,
                &HashSet::new(),
                &HashSet::new(),
                self.config.diversity,
            )
            .len();
            // Enough workers for a strict majority of k to be possible.
            let needed = job.replicas / 2 + 1;
            if usable < needed {
                let error = SchedulerError::NotEnoughWorkers {
                    needed,
                    usable,
                    known,
                    reasons,
                };
                let why = error.to_string();
                self.in_ledger(move |l| {
                    l.update_job(&job_id, |r| {
                        r.set_state(pb::JobState::Failed);
                        r.state_reason = why;
                    })
                })
                .await?;
                return Err(error);
            }
            let (verdict, evidence) = self
                .run_replicas(job, &submission, &live, &candidates)
                .await;
            let report = JobReport {
                job_id,
                verdict,
                elapsed: started.elapsed(),
            };
            log_verdict(&report);
            let mut involved = report.verdict.involved_workers();
            let checked = self.spot_check(&live, &involved).await;
            involved.extend(checked);
            self.record_verdict(&report, evidence, involved).await?;
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// Writes the results, failures and verdict of a finished job together
    /// with the reputations of the peers it involved (all or nothing).
    async fn record_verdict(
        &self,
        report: &JobReport,
        evidence: Vec<pb::ResultRecord>,
        peers: HashSet<PeerId>,
    ) -> Result<(), SchedulerError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let (reputations, faults) = {
            let trust = self.lock_trust();
            (
                reputation_store::encoded(&trust.reputation, peers),
                trust.reputation.fault_counts(),
            )
        };
        let now = now_ms();
        let failures: Vec<pb::FailureRecord> = report
            .verdict
            .failures()
            .iter()
            .map(|f| ledger::failure_record(f, now))
            .collect();
        let (job_id, verdict) = (report.job_id, report.verdict.clone());
        let certificate = report.certificate().map(|c| c.encode()).unwrap_or_default();
        let state = vec![reputation_store::fault_counts_entry(faults)];
        let queued = ledger.queue_update(true, &job_id, reputations, state, move |r| {
            r.results.extend(evidence);
            r.failures.extend(failures);
            ledger::record_verdict(r, &verdict, certificate, now);
        });
        commit_if_asked(ledger, queued.must_commit);
        queued
            .answer
            .await
            .map_err(|_| SchedulerError::Ledger("the ledger commit was abandoned".into()))?
            .map_err(|e| SchedulerError::Ledger(e.to_string()))?;
        Ok(())
    }

    fn candidates(
        &self,
        job: &Job,
        live: &[LiveWorker],
        reasons: &mut Vec<String>,
    ) -> Vec<Candidate> {
        let placed = self.placed.lock().map(|p| p.clone()).unwrap_or_default();
        let trust = self.lock_trust();
        live.iter()
            .map(|w| {
                let standing = trust.reputation.standing(&w.info.peer);
                let refusal = if !solves_puzzle(&w.info.hello.public_key, self.config.puzzle_bits) {
                    Some(format!(
                        "its identity does not solve the network's puzzle ({} bits)",
                        self.config.puzzle_bits
                    ))
                } else if trust.reputation.is_banned(&w.info.peer) {
                    Some(
                        "banned by this node's reputation (it must pass spot-checks to return)"
                            .to_string(),
                    )
                } else {
                    refusal_reason(job, &w.info.hello)
                };
                if let Some(r) = &refusal {
                    reasons.push(format!("{} ({}): {r}", w.conn.addr(), w.info.peer.short()));
                }
                Candidate {
                    peer: w.info.peer,
                    addr: w.conn.addr().to_string(),
                    free_slots: w.info.hello.free_slots,
                    placed: placed.get(&w.info.peer).copied().unwrap_or(0),
                    admits_job: refusal.is_none(),
                    established: standing.established && !standing.banned,
                    platform: w.info.hello.platform.clone(),
                }
            })
            .collect()
    }

    async fn run_replicas(
        &self,
        job: &Job,
        submission: &Submission,
        live: &[LiveWorker],
        candidates: &[Candidate],
    ) -> (Verdict, Vec<pb::ResultRecord>) {
        let order = placement::choose(
            candidates,
            candidates.len(),
            &submission.job_id,
            &HashSet::new(),
            &HashSet::new(),
            self.config.diversity,
        );
        let adaptive = AdaptiveConfig {
            majority_replicas: job.replicas,
            max_replicas: self.config.adaptive.max_replicas.max(job.replicas),
            ..self.config.adaptive.clone()
        };
        let mut verification = JobVerification::new(adaptive);
        let (standings, draw) = {
            let mut trust = self.lock_trust();
            let standings: Vec<WorkerStanding> = order
                .iter()
                .take(job.replicas)
                .map(|&i| self.standing_in(&trust, &candidates[i].peer, job.adaptive))
                .collect();
            let draw = trust.draw();
            (standings, draw)
        };
        let plan = verification.plan(&standings, draw);
        info!(replicas = plan.replicas, reason = ?plan.reason, "placement plan");
        let mut round = Round {
            scheduler: self,
            job: Arc::new(job.clone()),
            submission,
            live,
            order,
            candidates,
            deadline: tokio::time::Instant::now() + self.config.job_timeout,
            verification,
            used_groups: HashSet::new(),
            runs: Vec::new(),
            failures: Vec::new(),
            set: JoinSet::new(),
            decision: Decision::Wait,
            escalations: 0,
        };
        round.place(plan.replicas);
        round.step();
        round.note_state();
        round.collect().await;
        let now = now_ms();
        let evidence = round
            .runs
            .iter()
            .map(|(run, v)| ledger::result_record(run, &v.output, &v.stderr, now))
            .collect();
        if let Decision::Accept(key) = round.decision {
            self.learn(&round.verification, key, &round.job, submission, now);
        }
        let needed = job.replicas / 2 + 1;
        (
            build_verdict(round.decision, needed, round.runs, round.failures),
            evidence,
        )
    }

    fn spawn_attempt(
        &self,
        set: &mut JoinSet<Attempt>,
        worker: &LiveWorker,
        job: &Arc<Job>,
        submission: &Submission,
        deadline: tokio::time::Instant,
        record: bool,
    ) {
        if let Ok(mut placed) = self.placed.lock() {
            *placed.entry(worker.info.peer).or_default() += 1;
        }
        let (spec, nonce) = submission.spec_for(job, worker.info.peer);
        let signer = self.signer.clone();
        let linger = submission.batched;
        let conn = worker.conn.clone();
        let peer = worker.info.peer;
        let job = Arc::clone(job);
        let job_id = submission.job_id;
        let input_hash = submission.input_hash;
        let span = info_span!("replica", worker = %peer.short(), addr = %conn.addr());
        let ledger = self.ledger.clone().filter(|_| record);
        set.spawn(
            async move {
                // Record the placement before sending. Lazily: a crash
                // that loses the note only loses detail, since an unfinished
                // job is placed afresh when it resumes.
                if let Some(ledger) = &ledger {
                    let placement = ledger::placement_record(peer, conn.addr(), &nonce, now_ms());
                    note_lazily(ledger, job_id, "a placement", move |r| {
                        r.placements.push(placement);
                        // (The reason is the round's to say: see
                        // `Round::note_state`.)
                        r.set_state(pb::JobState::Running);
                    });
                }
                let started = Instant::now();
                // Signed here, not when placed: the replicas placed
                // together (and other jobs' in a batch) share a signature.
                let signed = if linger {
                    let wait = peergrid_proto::signer::BATCH_LINGER;
                    signer
                        .sign_within(peergrid_proto::Domain::Job, spec, wait)
                        .await
                } else {
                    signer.sign(peergrid_proto::Domain::Job, spec).await
                };
                let envelope = match signed {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        return Attempt {
                            addr: conn.addr().to_string(),
                            peer,
                            started,
                            outcome: Err(WorkerError::Unreachable(format!("not sent: {e}"))),
                        };
                    }
                };
                let expected = Expected {
                    worker: peer,
                    job_id: &job_id,
                    nonce: &nonce,
                    module_hash: &job.module_hash(),
                    input_hash: &input_hash,
                };
                let outcome = match tokio::time::timeout_at(
                    deadline,
                    attempt(&conn, &job, envelope, &expected, deadline),
                )
                .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => Err(WorkerError::TimedOut(started.elapsed())),
                };
                Attempt {
                    addr: conn.addr().to_string(),
                    peer,
                    started,
                    outcome,
                }
            }
            .instrument(span),
        );
    }
}

fn solves_puzzle(public_key: &[u8], bits: u32) -> bool {
    <[u8; 32]>::try_from(public_key).is_ok_and(|k| peergrid_proto::puzzle::solves(&k, bits))
}

/// Why this worker cannot take this job, from what it advertised.
fn refusal_reason(job: &Job, hello: &pb::HelloResponse) -> Option<String> {
    if hello.max_module_bytes > 0 && job.module().len() as u64 > hello.max_module_bytes {
        return Some(format!(
            "module is {} bytes, worker accepts at most {}",
            job.module().len(),
            hello.max_module_bytes
        ));
    }
    if hello.max_input_bytes > 0 && job.input_size() > hello.max_input_bytes {
        return Some(format!(
            "input is {} bytes, worker accepts at most {}",
            job.input_size(),
            hello.max_input_bytes
        ));
    }
    let max = hello.max_limits.as_ref().map(|m| {
        Limits::from_pb(
            m,
            &Limits {
                budget: job.limits.budget,
                fuel: u64::MAX,
                memory_bytes: u64::MAX,
                wall_time: Duration::MAX,
                max_output_bytes: u64::MAX,
                max_stderr_bytes: u64::MAX,
            },
        )
    })?;
    job.limits.exceeds(&max).map(|e| format!("job limit {e}"))
}

/// One replica on one worker: execute, uploading the module on a miss and
/// waiting out "busy" answers until the deadline; then verify the answer.
async fn attempt(
    conn: &WorkerConn,
    job: &Job,
    envelope: pb::SignedEnvelope,
    expected: &Expected<'_>,
    deadline: tokio::time::Instant,
) -> Result<VerifiedResult, WorkerError> {
    // Module uploads this attempt asked for: the first may be shared with
    // other jobs' (one upload per connection); after a second miss the
    // module is sent anew (the worker may have evicted it); a third miss
    // is the worker's fault.
    let mut uploads = 0;
    // A full worker frees a slot when any of its jobs ends, which for short
    // jobs is a millisecond away: start small, double, jitter so that
    // replicas waiting on one worker do not retry in step.
    let mut backoff = Duration::from_millis(2);
    loop {
        match conn.execute(envelope.clone()).await {
            Ok(reply) => match reply.reply {
                Some(pb::execute_response::Reply::Result(signed)) => {
                    return Ok(verify_result(signed, reply.output, reply.stderr, expected)?);
                }
                Some(pb::execute_response::Reply::MissingModule(hash)) => {
                    if uploads == 2 || hash != job.module_hash() {
                        return Err(WorkerError::Protocol(
                            "worker asked for a module it was already sent, or another one".into(),
                        ));
                    }
                    debug!(bytes = job.module().len(), "uploading module");
                    match conn
                        .put_module_once(job.module_hash(), Arc::clone(job.module()), uploads > 0)
                        .await
                    {
                        Ok(()) => uploads += 1,
                        // Other uploads fill the worker's upload slots.
                        Err(WorkerError::Refused { code, .. }) if code == "ResourceExhausted" => {
                            wait_out_busy(&mut backoff, deadline).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => return Err(WorkerError::Protocol("empty execute reply".into())),
            },
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                wait_out_busy(&mut backoff, deadline).await?;
            }
            Err(status) => return Err(WorkerError::from_status(&status)),
        }
    }
}

/// Waits before asking a busy worker again: `backoff` with jitter, then
/// doubled (at most 500 ms); [`WorkerError::Busy`] if that would pass the
/// deadline.
async fn wait_out_busy(
    backoff: &mut Duration,
    deadline: tokio::time::Instant,
) -> Result<(), WorkerError> {
    if tokio::time::Instant::now() + *backoff >= deadline {
        return Err(WorkerError::Busy);
    }
    let jitter = rand::random::<f64>() + 0.5;
    tokio::time::sleep(backoff.mul_f64(jitter)).await;
    *backoff = (*backoff * 2).min(Duration::from_millis(500));
    Ok(())
}

fn build_verdict(
    decision: Decision,
    needed: usize,
    runs: Vec<(WorkerRun, VerifiedResult)>,
    failed_workers: Vec<WorkerFailure>,
) -> Verdict {
    let Decision::Accept(key) = decision else {
        return Verdict::NoQuorum {
            needed,
            runs: runs.into_iter().map(|(r, _)| r).collect(),
            failed_workers,
        };
    };
    let mut agreeing = Vec::new();
    let mut dissenting = Vec::new();
    let mut output: Option<AgreedOutput> = None;
    for (run, verified) in runs {
        if verified.key == key {
            match &mut output {
                Some(o) => o.fuel_used = o.fuel_used.min(run.fuel_used),
                None => {
                    output = Some(AgreedOutput {
                        result: verified.result,
                        stdout: verified.output,
                        stderr: verified.stderr,
                        fuel_used: run.fuel_used,
                    })
                }
            }
            agreeing.push(run);
        } else {
            dissenting.push(run);
        }
    }
    match output {
        Some(output) => Verdict::Accepted {
            output,
            agreeing_workers: agreeing,
            dissenting_workers: dissenting,
            failed_workers,
        },
        None => Verdict::NoQuorum {
            needed,
            runs: agreeing.into_iter().chain(dissenting).collect(),
            failed_workers,
        },
    }
}

fn log_verdict(report: &JobReport) {
    match &report.verdict {
        Verdict::Accepted {
            output,
            agreeing_workers,
            dissenting_workers,
            failed_workers,
        } => info!(
            agreed = agreeing_workers.len(),
            dissented = dissenting_workers.len(),
            failed = failed_workers.len(),
            fuel = output.fuel_used,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "accepted"
        ),
        Verdict::NoQuorum {
            runs,
            failed_workers,
            ..
        } => warn!(
            runs = runs.len(),
            failed = failed_workers.len(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "no quorum"
        ),
    }
}

fn now_ms() -> u64 {
    ledger::unix_ms(SystemTime::now())
}

/// Notes a change to a job's record lazily (see
/// [`Ledger::update_job_lazily`]) in the ledger's shared commits, without
/// waiting for it; a failure is logged, naming `what`.
fn note_lazily(
    ledger: &Ledger,
    job_id: Sha256Hash,
    what: &'static str,
    f: impl FnOnce(&mut pb::JobRecord) + Send + 'static,
) {
    let queued = ledger.queue_update(false, &job_id, Vec::new(), Vec::new(), f);
    commit_if_asked(ledger, queued.must_commit);
    tokio::spawn(async move {
        if let Ok(Err(e)) = queued.answer.await {
            warn!(error = %e, "could not note {what} in the ledger");
        }
    });
}

/// Starts committing the ledger's queued changes on a blocking thread when
/// a queued change found no commit under way.
fn commit_if_asked(ledger: &Ledger, must_commit: bool) {
    if must_commit {
        // Dropped unrun (the runtime is shutting down), the turn gives the
        // duty back, so later changes are not left waiting for it.
        let turn = ledger.commit_turn();
        tokio::task::spawn_blocking(move || turn.run());
    }
}

async fn in_ledger<R, F>(ledger: Ledger, op: F) -> Result<R, SchedulerError>
where
    R: Send + 'static,
    F: FnOnce(&Ledger) -> Result<R, LedgerError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || op(&ledger))
        .await
        .map_err(|e| SchedulerError::Ledger(format!("ledger task failed: {e}")))?
        .map_err(|e| SchedulerError::Ledger(e.to_string()))
}

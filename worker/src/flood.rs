//! Flood control: token-bucket rate limits per source IP and per submitter,
//! a cap on the jobs one submitter may run at once, and the knobs for both.
//!
//! The buckets are [`governor`]'s GCRA limiters over a [`BoundedStore`]: at
//! most `capacity` keys are remembered, so a flooder rotating source
//! addresses or throwaway identities cannot grow the node's memory. When the
//! table is full, idle keys (whose bucket has refilled, so forgetting them
//! loses nothing) are dropped; if none is idle, every unknown key shares one
//! overflow bucket, so rotating keys buys a flooder one bucket, not many.
//!
//! Inbound gossip is already limited per (claimed peer, source IP) inside
//! the membership ([`scheduler_lib::membership::MembershipConfig::inbound`]);
//! the per-IP limit here sits in front of it, before the membership lock is
//! taken and before an advert is verified, and also covers `Members` calls.
//! `Node.Status` calls (read-only, but not free) have a per-IP limit of
//! their own, so polling a node's status never spends its gossip budget.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{RateLimiter, StateStore};
use peergrid_proto::PeerId;
pub use scheduler_lib::membership::RateLimit;

use crate::penalty::{PenaltyBox, PenaltyConfig};

/// Flood-control knobs of a node (part of [`crate::NodeConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FloodConfig {
    /// `Execute` calls per source IP (IPv6: per /64), before the signature
    /// is checked; an `ExecuteBatch` call costs one token per distinct
    /// signature among its envelopes. Default: burst 4,000, 2,000 a second
    /// (about 6% of one core in signature checks). `None`: unlimited.
    pub execute_per_ip: Option<RateLimit>,
    /// Jobs per submitter (the verified signer of the job), alone or in
    /// batches. Default: burst 20,000, 10,000 a second: a researcher's
    /// batch of small jobs runs at full speed (a batch's jobs share their
    /// signatures, so admitting one costs a few hashes, and a busy node
    /// runs several thousand trivial jobs a second), the per-submitter job
    /// cap bounds the slots it holds, and the per-IP limit, checked before
    /// any signature, bounds what a flood costs.
    pub execute_per_submitter: Option<RateLimit>,
    /// `PutModule` uploads per source IP. Default: burst 30, one a second.
    pub put_module_per_ip: Option<RateLimit>,
    /// `PutModule` uploads per TLS peer (the identity the connection
    /// proves; uploads are not signed otherwise). Default: burst 30, one a
    /// second.
    pub put_module_per_peer: Option<RateLimit>,
    /// Inbound `Gossip` and `Members` calls per source IP. Default: burst
    /// 100, 50 a second (the membership adds its own, tighter, limit per
    /// claimed peer and IP).
    pub gossip_per_ip: Option<RateLimit>,
    /// Inbound `Node.Status` calls per source IP. Default: burst 20, 5 a
    /// second (a status page or `watch peergrid status` polls far slower).
    pub status_per_ip: Option<RateLimit>,
    /// Keys each rate limiter remembers (IPs or submitters); default 65,536.
    pub rate_limit_keys: usize,
    /// Jobs one submitter may run on this node at once. `None` (the
    /// default): half the slots, rounded up, at least one.
    pub max_jobs_per_submitter: Option<usize>,
    /// When a source IP or submitter that ignores refusals is shut out
    /// altogether (see [`crate::penalty`]).
    pub penalty: PenaltyConfig,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            execute_per_ip: Some(RateLimit {
                burst: 4_000,
                per_sec: 2_000.0,
            }),
            execute_per_submitter: Some(RateLimit {
                burst: 20_000,
                per_sec: 10_000.0,
            }),
            put_module_per_ip: Some(RateLimit {
                burst: 30,
                per_sec: 1.0,
            }),
            put_module_per_peer: Some(RateLimit {
                burst: 30,
                per_sec: 1.0,
            }),
            gossip_per_ip: Some(RateLimit {
                burst: 100,
                per_sec: 50.0,
            }),
            status_per_ip: Some(RateLimit {
                burst: 20,
                per_sec: 5.0,
            }),
            rate_limit_keys: 65_536,
            max_jobs_per_submitter: None,
            penalty: PenaltyConfig::default(),
        }
    }
}

impl FloodConfig {
    /// Limits for a grid on one machine (demo, tests, benches), where every
    /// node and submitter shares 127.0.0.1: the per-IP limits are so loose
    /// that only the per-submitter ones matter.
    pub fn local() -> Self {
        let loose = Some(RateLimit {
            burst: 100_000,
            per_sec: 100_000.0,
        });
        Self {
            execute_per_ip: loose,
            put_module_per_ip: loose,
            gossip_per_ip: loose,
            status_per_ip: loose,
            ..Self::default()
        }
    }

    /// The per-submitter job cap for a node with `slots` slots.
    pub fn jobs_per_submitter(&self, slots: usize) -> usize {
        self.max_jobs_per_submitter
            .unwrap_or(slots.div_ceil(2))
            .max(1)
    }
}

/// The key of a source address: an IPv4 address as is, an IPv6 address by
/// its /64 (one host usually owns a whole /64, so per-address buckets would
/// be free for it to multiply); IPv4-mapped IPv6 addresses as IPv4.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A governor state store holding at most `capacity` keys, plus one
/// overflow bucket shared by every key that finds the table full.
#[derive(Debug)]
pub struct BoundedStore<K> {
    inner: Mutex<Table<K>>,
}

#[derive(Debug)]
struct Table<K> {
    states: HashMap<K, Nanos>,
    overflow: Option<Nanos>,
    capacity: usize,
}

impl<K> BoundedStore<K> {
    /// An empty store for at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Table {
                states: HashMap::new(),
                overflow: None,
                capacity: capacity.max(1),
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut table = lock(&self.inner);
        if let Some(state) = table.states.get_mut(key) {
            let (value, next) = f(Some(*state))?;
            *state = next;
            return Ok(value);
        }
        if table.states.len() < table.capacity {
            let (value, next) = f(None)?;
            table.states.insert(key.clone(), next);
            return Ok(value);
        }
        let (value, next) = f(table.overflow)?;
        table.overflow = Some(next);
        Ok(value)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut table = lock(&self.inner);
        table.states.retain(|_, state| *state > drop_below);
        if table.overflow.is_some_and(|state| state <= drop_below) {
            table.overflow = None;
        }
    }

    fn shrink_to_fit(&self) {
        lock(&self.inner).states.shrink_to_fit();
    }

    fn len(&self) -> usize {
        lock(&self.inner).states.len()
    }

    fn is_empty(&self) -> bool {
        lock(&self.inner).states.is_empty()
    }
}

/// A refusal by a [`KeyedLimiter`]: when a token is next available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

/// Token buckets keyed by `K` (an IP or a submitter) with a bounded key set.
#[derive(Debug)]
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, BoundedStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    capacity: usize,
    started: Instant,
    last_prune_ms: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `limit` per key, at most `capacity` keys, on the real clock.
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        Self::with_clock(limit, capacity, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimiter<K, C> {
    /// Like [`KeyedLimiter::new`] on `clock` (a fake one in tests).
    pub fn with_clock(limit: RateLimit, capacity: usize, clock: C) -> Self {
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        let period = if limit.per_sec > 0.0 && limit.per_sec.is_finite() {
            Duration::try_from_secs_f64(1.0 / limit.per_sec).unwrap_or(Duration::from_secs(3600))
        } else {
            Duration::from_secs(3600)
        };
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        let capacity = capacity.max(1);
        Self {
            limiter: RateLimiter::new(quota, BoundedStore::new(capacity), clock.clone()),
            clock,
            capacity,
            started: Instant::now(),
            last_prune_ms: AtomicU64::new(0),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        self.check_n(key, NonZeroU32::MIN)
    }

    /// Takes `n` tokens for `key` at once, or none and says how long until
    /// they are available (a second, if `n` is more than the burst).
    pub fn check_n(&self, key: &K, n: NonZeroU32) -> Result<(), RetryAfter> {
        if self.limiter.len() >= self.capacity {
            self.prune();
        }
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RetryAfter(not_until.wait_time_from(self.clock.now()))),
            Err(_) => Err(RetryAfter(Duration::from_secs(1))),
        }
    }

    /// Keys remembered right now (at most the capacity).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops idle keys, at most once a second (a full scan is O(capacity)
    /// and a flooder must not be able to trigger it on every call).
    fn prune(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1_000 && last != 0 {
            return;
        }
        if self
            .last_prune_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.limiter.retain_recent();
        }
    }
}

/// Which rate limit refused a call (the `limit` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// [`FloodConfig::execute_per_ip`].
    ExecutePerIp,
    /// [`FloodConfig::execute_per_submitter`].
    ExecutePerSubmitter,
    /// [`FloodConfig::put_module_per_ip`].
    PutModulePerIp,
    /// [`FloodConfig::put_module_per_peer`].
    PutModulePerPeer,
    /// [`FloodConfig::gossip_per_ip`].
    GossipPerIp,
    /// [`FloodConfig::status_per_ip`].
    StatusPerIp,
    /// [`FloodConfig::max_jobs_per_submitter`].
    JobsPerSubmitter,
    /// [`FloodConfig::penalty`]: shut out for ignoring refusals.
    PenaltyBox,
}

impl LimitKind {
    /// Every kind, in metrics order.
    pub const ALL: [LimitKind; 8] = [
        LimitKind::ExecutePerIp,
        LimitKind::ExecutePerSubmitter,
        LimitKind::PutModulePerIp,
        LimitKind::PutModulePerPeer,
        LimitKind::GossipPerIp,
        LimitKind::StatusPerIp,
        LimitKind::JobsPerSubmitter,
        LimitKind::PenaltyBox,
    ];

    /// The knob's name, as in messages and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::ExecutePerIp => "execute_per_ip",
            LimitKind::ExecutePerSubmitter => "execute_per_submitter",
            LimitKind::PutModulePerIp => "put_module_per_ip",
            LimitKind::PutModulePerPeer => "put_module_per_peer",
            LimitKind::GossipPerIp => "gossip_per_ip",
            LimitKind::StatusPerIp => "status_per_ip",
            LimitKind::JobsPerSubmitter => "max_jobs_per_submitter",
            LimitKind::PenaltyBox => "penalty_box",
        }
    }
}

/// A call refused by flood control; [`FloodRefusal::to_status`] names the
/// limit in a `RESOURCE_EXHAUSTED` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FloodRefusal {
    /// A token bucket is empty.
    #[error(
        "rate limit {} exceeded (burst {burst}, {per_sec} per second); retry in {} ms",
        kind.name(),
        retry_after.as_millis()
    )]
    RateLimited {
        /// The limit.
        kind: LimitKind,
        /// Its burst.
        burst: u32,
        /// Its sustained rate.
        per_sec: String,
        /// When a token is next available.
        retry_after: Duration,
    },
    /// The submitter already runs as many jobs here as it may.
    #[error("{} exceeded: this submitter already runs {max} job(s) on this worker", LimitKind::JobsPerSubmitter.name())]
    TooManyJobs {
        /// The cap.
        max: usize,
    },
    /// The caller kept calling after refusals and is shut out for a while.
    #[error(
        "{} for ignoring rate-limit refusals: every call from this {who} is refused for {} s more",
        LimitKind::PenaltyBox.name(),
        remaining.as_secs().max(1)
    )]
    Penalized {
        /// `"address"` or `"peer"`.
        who: &'static str,
        /// Time left of the sentence.
        remaining: Duration,
    },
}

impl FloodRefusal {
    /// The gRPC status: `RESOURCE_EXHAUSTED`, naming the limit.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::resource_exhausted(self.to_string())
    }

    /// The limit that refused.
    pub fn kind(&self) -> LimitKind {
        match self {
            FloodRefusal::RateLimited { kind, .. } => *kind,
            FloodRefusal::TooManyJobs { .. } => LimitKind::JobsPerSubmitter,
            FloodRefusal::Penalized { .. } => LimitKind::PenaltyBox,
        }
    }
}

/// One configured limit: its kind, its numbers and its buckets.
#[derive(Debug)]
struct Limit<K: Hash + Eq + Clone> {
    kind: LimitKind,
    limit: RateLimit,
    buckets: KeyedLimiter<K>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(kind: LimitKind, limit: Option<RateLimit>, keys: usize) -> Option<Self> {
        limit.map(|limit| Self {
            kind,
            limit,
            buckets: KeyedLimiter::new(limit, keys),
        })
    }

    fn check(&self, key: &K, n: NonZeroU32) -> Result<(), FloodRefusal> {
        self.buckets
            .check_n(key, n)
            .map_err(|RetryAfter(retry_after)| FloodRefusal::RateLimited {
                kind: self.kind,
                burst: self.limit.burst,
                per_sec: format!("{}", self.limit.per_sec),
                retry_after,
            })
    }
}

/// A node's flood control: every rate limit and the per-submitter job cap.
#[derive(Debug)]
pub struct FloodControl {
    execute_per_ip: Option<Limit<IpAddr>>,
    execute_per_submitter: Option<Limit<PeerId>>,
    put_module_per_ip: Option<Limit<IpAddr>>,
    put_module_per_peer: Option<Limit<PeerId>>,
    gossip_per_ip: Option<Limit<IpAddr>>,
    status_per_ip: Option<Limit<IpAddr>>,
    jobs: Arc<SubmitterJobs>,
    ip_penalties: PenaltyBox<IpAddr>,
    peer_penalties: PenaltyBox<PeerId>,
}

/// Checks `key` against its sentence, then `limit`; a refusal is a strike.
fn guarded<K: Hash + Eq + Clone>(
    penalties: &PenaltyBox<K>,
    who: &'static str,
    limit: &Option<Limit<K>>,
    key: &K,
) -> Result<(), FloodRefusal> {
    guarded_n(penalties, who, limit, key, NonZeroU32::MIN)
}

/// [`guarded`] for `n` tokens at once.
fn guarded_n<K: Hash + Eq + Clone>(
    penalties: &PenaltyBox<K>,
    who: &'static str,
    limit: &Option<Limit<K>>,
    key: &K,
    n: NonZeroU32,
) -> Result<(), FloodRefusal> {
    let Some(limit) = limit else {
        return Ok(());
    };
    let now = Instant::now();
    penalties
        .check(key, now)
        .map_err(|remaining| FloodRefusal::Penalized { who, remaining })?;
    limit.check(key, n).inspect_err(|_| {
        if let Some(sentence) = penalties.strike(key, now) {
            tracing::warn!(
                who,
                seconds = sentence.as_secs(),
                "shut out a {who} that kept calling after rate-limit refusals"
            );
        }
    })
}

impl FloodControl {
    /// Flood control for a node with `slots` job slots.
    pub fn new(config: &FloodConfig, slots: usize) -> Self {
        let keys = config.rate_limit_keys;
        Self {
            execute_per_ip: Limit::new(LimitKind::ExecutePerIp, config.execute_per_ip, keys),
            execute_per_submitter: Limit::new(
                LimitKind::ExecutePerSubmitter,
                config.execute_per_submitter,
                keys,
            ),
            put_module_per_ip: Limit::new(
                LimitKind::PutModulePerIp,
                config.put_module_per_ip,
                keys,
            ),
            put_module_per_peer: Limit::new(
                LimitKind::PutModulePerPeer,
                config.put_module_per_peer,
                keys,
            ),
            gossip_per_ip: Limit::new(LimitKind::GossipPerIp, config.gossip_per_ip, keys),
            status_per_ip: Limit::new(LimitKind::StatusPerIp, config.status_per_ip, keys),
            jobs: Arc::new(SubmitterJobs::new(config.jobs_per_submitter(slots))),
            ip_penalties: PenaltyBox::new(config.penalty, keys),
            peer_penalties: PenaltyBox::new(config.penalty, keys),
        }
    }

    /// An `Execute` call from `ip` (unknown: not limited per IP).
    pub fn execute_from(&self, ip: Option<IpAddr>) -> Result<(), FloodRefusal> {
        self.check_ip(&self.execute_per_ip, ip)
    }

    /// An `ExecuteBatch` call from `ip` whose envelopes carry `signatures`
    /// distinct signatures: the per-IP `Execute` limit is charged what the
    /// call will cost in signature checks, one token per distinct
    /// signature (a batch signed under one Merkle root costs one, a batch
    /// of separately signed envelopes one each).
    pub fn execute_batch_from(
        &self,
        ip: Option<IpAddr>,
        signatures: usize,
    ) -> Result<(), FloodRefusal> {
        let n = u32::try_from(signatures)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        self.check_ip_n(&self.execute_per_ip, ip, n)
    }

    fn check_ip(
        &self,
        limit: &Option<Limit<IpAddr>>,
        ip: Option<IpAddr>,
    ) -> Result<(), FloodRefusal> {
        self.check_ip_n(limit, ip, NonZeroU32::MIN)
    }

    /// Takes `n` tokens of `limit` for `ip` (unknown: not limited per IP).
    fn check_ip_n(
        &self,
        limit: &Option<Limit<IpAddr>>,
        ip: Option<IpAddr>,
        n: NonZeroU32,
    ) -> Result<(), FloodRefusal> {
        match ip {
            Some(ip) => guarded_n(&self.ip_penalties, "address", limit, &ip_key(ip), n),
            None => Ok(()),
        }
    }

    /// An `Execute` call signed by `submitter`.
    pub fn execute_by(&self, submitter: &PeerId) -> Result<(), FloodRefusal> {
        guarded(
            &self.peer_penalties,
            "peer",
            &self.execute_per_submitter,
            submitter,
        )
    }

    /// A `PutModule` call from `ip`, over a connection authenticated as
    /// `peer` (`None` over plaintext).
    pub fn put_module_from(
        &self,
        ip: Option<IpAddr>,
        peer: Option<&PeerId>,
    ) -> Result<(), FloodRefusal> {
        self.check_ip(&self.put_module_per_ip, ip)?;
        match peer {
            Some(peer) => guarded(
                &self.peer_penalties,
                "peer",
                &self.put_module_per_peer,
                peer,
            ),
            None => Ok(()),
        }
    }

    /// A `Gossip` or `Members` call from `ip`.
    pub fn gossip_from(&self, ip: Option<IpAddr>) -> Result<(), FloodRefusal> {
        self.check_ip(&self.gossip_per_ip, ip)
    }

    /// A `Node.Status` call from `ip`.
    pub fn status_from(&self, ip: Option<IpAddr>) -> Result<(), FloodRefusal> {
        self.check_ip(&self.status_per_ip, ip)
    }

    /// Counts a job of `submitter` as running until the ticket is dropped,
    /// unless it already runs as many as it may.
    pub fn start_job(&self, submitter: PeerId) -> Result<JobTicket, FloodRefusal> {
        SubmitterJobs::start(&self.jobs, submitter)
    }

    /// Notified (all waiters) whenever a job's ticket is dropped, so a job
    /// waiting for its submitter's share can try again.
    pub fn job_ended(&self) -> &tokio::sync::Notify {
        &self.jobs.ended
    }
}

/// Jobs running per submitter. Entries exist only while a job runs, so the
/// map never holds more entries than there are running or starting jobs.
#[derive(Debug)]
pub struct SubmitterJobs {
    max: usize,
    running: Mutex<HashMap<PeerId, usize>>,
    ended: tokio::sync::Notify,
}

impl SubmitterJobs {
    /// At most `max` jobs per submitter (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            running: Mutex::new(HashMap::new()),
            ended: tokio::sync::Notify::new(),
        }
    }

    /// Starts a job of `submitter` if it runs fewer than the cap.
    pub fn start(this: &Arc<Self>, submitter: PeerId) -> Result<JobTicket, FloodRefusal> {
        let mut running = lock(&this.running);
        let count = running.entry(submitter).or_insert(0);
        if *count >= this.max {
            return Err(FloodRefusal::TooManyJobs { max: this.max });
        }
        *count += 1;
        Ok(JobTicket {
            jobs: Arc::clone(this),
            submitter,
        })
    }

    /// Jobs `submitter` runs right now.
    pub fn running(&self, submitter: &PeerId) -> usize {
        lock(&self.running).get(submitter).copied().unwrap_or(0)
    }
}

/// A running job of one submitter; dropping it ends the count.
#[derive(Debug)]
pub struct JobTicket {
    jobs: Arc<SubmitterJobs>,
    submitter: PeerId,
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        let mut running = lock(&self.jobs.running);
        if let Some(count) = running.get_mut(&self.submitter) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.submitter);
            }
        }
        drop(running);
        self.jobs.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limit(burst: u32, per_sec: f64) -> RateLimit {
        RateLimit { burst, per_sec }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(limit(3, 2.0), 10, clock.clone());
        assert!((0..3).all(|_| l.check(&1u8).is_ok()));
        let RetryAfter(wait) = l.check(&1).unwrap_err();
        assert!(
            wait <= Duration::from_millis(500) && !wait.is_zero(),
            "{wait:?}"
        );
        assert!(l.check(&2).is_ok(), "other keys have their own bucket");
        clock.advance(Duration::from_millis(500));
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_err());
    }

    #[test]
    fn rotating_keys_never_grow_the_table_past_its_capacity() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(limit(2, 1.0), 4, clock.clone());
        // A flooder with a fresh key per call: once the table is full, all
        // unknown keys share one overflow bucket of 2.
        let allowed = (0u32..10_000).filter(|k| l.check(k).is_ok()).count();
        assert_eq!(l.len(), 4);
        assert_eq!(
            allowed,
            4 + 2,
            "4 keys' bursts plus one shared overflow burst"
        );
        // Keys already known keep their own bucket.
        let known = KeyedLimiter::with_clock(limit(2, 1.0), 2, clock.clone());
        assert!(known.check(&1u8).is_ok());
        assert!(known.check(&2).is_ok());
        assert!(known.check(&3).is_ok() && known.check(&4).is_ok());
        assert!(known.check(&5).is_err(), "the overflow bucket is spent");
        assert!(
            known.check(&1).is_ok(),
            "a known key is not in the overflow"
        );
    }

    #[test]
    fn idle_keys_are_forgotten_when_the_table_is_full() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(limit(1, 1.0), 2, clock.clone());
        assert!(l.check(&1u8).is_ok());
        assert!(l.check(&2).is_ok());
        clock.advance(Duration::from_secs(5));
        // 1 and 2 have refilled: a new key gets its own bucket.
        assert!(l.check(&3).is_ok());
        assert!(l.len() <= 2);
        assert!(l.check(&3).is_err(), "3 has its own, now empty, bucket");
    }

    #[test]
    fn ipv6_hosts_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(ip_key(v4), v4);
    }

    #[test]
    fn a_submitter_runs_at_most_its_share_of_slots() {
        assert_eq!(FloodConfig::default().jobs_per_submitter(1), 1);
        assert_eq!(FloodConfig::default().jobs_per_submitter(2), 1);
        assert_eq!(FloodConfig::default().jobs_per_submitter(7), 4);
        let jobs = Arc::new(SubmitterJobs::new(2));
        let (a, b) = (PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32]));
        let t1 = SubmitterJobs::start(&jobs, a).unwrap();
        let _t2 = SubmitterJobs::start(&jobs, a).unwrap();
        let refused = SubmitterJobs::start(&jobs, a).unwrap_err();
        assert!(
            refused.to_string().contains("max_jobs_per_submitter"),
            "{refused}"
        );
        assert_eq!(refused.to_status().code(), tonic::Code::ResourceExhausted);
        assert!(
            SubmitterJobs::start(&jobs, b).is_ok(),
            "others are not affected"
        );
        drop(t1);
        assert_eq!(jobs.running(&a), 1);
        assert!(SubmitterJobs::start(&jobs, a).is_ok());
    }

    #[test]
    fn refusals_name_the_limit() {
        let control = FloodControl::new(
            &FloodConfig {
                execute_per_ip: Some(limit(1, 1.0)),
                ..FloodConfig::default()
            },
            2,
        );
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(control.execute_from(Some(ip)).is_ok());
        let refused = control.execute_from(Some(ip)).unwrap_err();
        assert_eq!(refused.kind(), LimitKind::ExecutePerIp);
        let status = refused.to_status();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("execute_per_ip"),
            "{}",
            status.message()
        );
        assert!(
            control.execute_from(None).is_ok(),
            "unknown IPs are not keyed"
        );
        assert!(
            control
                .execute_from(Some("192.0.2.8".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn a_batch_costs_the_per_ip_limit_one_token_per_distinct_signature() {
        let control = FloodControl::new(
            &FloodConfig {
                execute_per_ip: Some(limit(10, 0.001)),
                ..FloodConfig::default()
            },
            2,
        );
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        // 256 jobs under one Merkle root: one signature, one token.
        for _ in 0..3 {
            assert!(control.execute_batch_from(Some(ip), 1).is_ok());
        }
        // Separately signed jobs cost one each: 7 fit the 7 tokens left...
        assert!(control.execute_batch_from(Some(ip), 7).is_ok());
        // ...and not one more, nor a batch larger than the whole burst.
        let refused = control.execute_batch_from(Some(ip), 1).unwrap_err();
        assert_eq!(refused.kind(), LimitKind::ExecutePerIp);
        assert!(
            control
                .execute_batch_from(Some("192.0.2.10".parse().unwrap()), 11)
                .is_err()
        );
        assert!(
            control.execute_batch_from(None, 1_000).is_ok(),
            "unknown IPs are not keyed"
        );
    }

    #[test]
    fn uploads_are_limited_per_tls_peer_whatever_the_ip() {
        let uploads = FloodControl::new(
            &FloodConfig {
                put_module_per_peer: Some(limit(1, 1.0)),
                ..FloodConfig::local()
            },
            2,
        );
        let peer = PeerId::from_bytes([3; 32]);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(uploads.put_module_from(Some(a), Some(&peer)).is_ok());
        let refused = uploads.put_module_from(Some(b), Some(&peer)).unwrap_err();
        assert_eq!(
            refused.kind(),
            LimitKind::PutModulePerPeer,
            "a new IP does not help"
        );
        assert!(
            refused.to_string().contains("put_module_per_peer"),
            "{refused}"
        );
        assert!(
            uploads.put_module_from(Some(a), None).is_ok(),
            "plaintext: per IP only"
        );
    }
}

//! The job ledger and the reputation store: what a submitting node must not
//! forget across a restart, kept in one embedded [redb] database
//! (`<data-dir>/ledger.redb`).
//!
//! # Tables
//!
//! | table     | key                 | value                                           |
//! |-----------|---------------------|-------------------------------------------------|
//! | `modules` | SHA-256 of a module | the module bytes (content-addressed)            |
//! | `jobs`    | 32-byte job id      | an encoded [`pb::JobRecord`] (`ledger.proto`)   |
//! | `peers`   | 32-byte peer id     | the peer's reputation record, opaque bytes here |
//! | `meta`    | `"schema_version"`  | [`SCHEMA_VERSION`]                              |
//!
//! A [`pb::JobRecord`] holds everything about one job: its definition (module
//! hash, args, stdin, limits, replicas, virtual clock base), its
//! [`pb::JobState`] and a human-readable `state_reason`, every placement,
//! every signed result exactly as received (with its output and stderr),
//! every failure, and the verdict. `peergrid jobs` and `peergrid job ID`
//! explain jobs from it; a restarted node resumes the [`Ledger::unfinished`]
//! ones with [`resume`].
//!
//! # Durability
//!
//! Every mutation is one write transaction committed with
//! [`redb::Durability::Immediate`]: when the call returns, the change is on
//! disk (fsync'd), and a process killed at any instant (`kill -9`) leaves a
//! database that opens with every committed change and none of a half-done
//! one. A read-modify-write ([`Ledger::update_job`]) happens inside one write
//! transaction, so concurrent updates to the same job never lose each other.
//!
//! # Cost and threads
//!
//! [`Ledger`] is a cheap handle (`Clone`, `Send`, `Sync`) over one open
//! database. Each mutation waits for an fsync (a few milliseconds on an SSD)
//! and write transactions are serialized, so async code should call it from
//! `tokio::task::spawn_blocking` (or accept a short block of the executor
//! thread). A job record is rewritten whole on every update; it holds the
//! job's stdin and every returned output, so its size is bounded by the job's
//! input and `replicas × max_output_bytes`.
//!
//! The scheduler's own updates (placements, state notes, verdicts) go
//! through [`Ledger::update_job_shared`]'s group commit instead: changes
//! queued while a commit is under way share the next transaction and its
//! fsync, so a batch of thousands of tasks does not wait for one fsync per
//! task. A verdict is still on disk before the scheduler reports it. Lazy
//! notes are committed by a background blocking task, which may hold the
//! file for a few milliseconds after the last `Ledger` handle is dropped.
//!
//! A corrupt job record (one that does not decode) never panics: listings
//! skip it with a `tracing` warning, and a direct lookup returns
//! [`LedgerError::CorruptJob`].
//!
//! ```no_run
//! use peergrid_proto::{Identity, pb};
//! use scheduler_lib::job::{Job, Submission};
//! use scheduler_lib::ledger::{self, Ledger};
//! use std::time::{Duration, SystemTime};
//!
//! # fn demo(module: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = Ledger::open("/var/lib/peergrid/ledger.redb")?;
//! let job = Job::new(module).replicas(3);
//! let submission = Submission::new(&job, Duration::from_secs(330));
//! ledger.put_module(&job.module_hash(), job.module())?;
//! let now = ledger::unix_ms(SystemTime::now());
//! ledger.insert_job(&ledger::new_job_record(&job, &submission, now))?;
//! ledger.update_job(&submission.job_id, |record| {
//!     record.set_state(pb::JobState::Running);
//!     record.state_reason = "waiting for 3 replicas".into();
//! })?;
//! for summary in ledger.jobs()? {
//!     println!("{} {:?} {}", hex::encode(summary.job_id), summary.state, summary.state_reason);
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peergrid_proto::{PeerId, Sha256Hash, pb, sha256};
use prost::Message;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::warn;

use crate::job::{Job, Submission};
use crate::limits::Limits;
use crate::outcome::outcome_to_claim_fields;
use crate::verdict::{Verdict, WorkerFailure, WorkerRun};

/// Module bytes by their SHA-256.
const MODULES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("modules");
/// Encoded `JobRecord`s by job id.
const JOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("jobs");
/// Opaque reputation records by peer id.
const PEERS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("peers");
/// Bookkeeping: the schema version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Small named values of the scheduler's own state (e.g. fault counts).
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// Batch id → encoded `BatchRecord`.
const BATCHES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("batches");
/// The key of the schema version in `meta`.
const SCHEMA_KEY: &str = "schema_version";

/// The layout of the tables this code reads and writes. A database with a
/// higher version was written by a newer peergrid and is refused.
pub const SCHEMA_VERSION: u64 = 1;

/// The usual file name of the ledger inside a node's data directory.
pub const FILE_NAME: &str = "ledger.redb";

/// Page cache the ledger may use. redb's default (1 GiB) is sized for a
/// database server; the ledger is read rarely and mostly recently written.
const CACHE_BYTES: usize = 64 << 20;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The directory of the ledger file could not be created.
    #[error("cannot create the ledger directory {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database is already open, by another process or another
    /// [`Ledger`] in this one.
    #[error(
        "the ledger {} is already open (is another peergrid node using this data directory?)",
        path.display()
    )]
    Locked {
        /// The ledger file.
        path: PathBuf,
    },
    /// The file could not be opened as a redb database (I/O error, not a
    /// database, a format that needs an upgrade, damage redb cannot repair).
    #[error("cannot open the ledger {}: {source}", path.display())]
    Open {
        /// The ledger file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// The ledger was written by a newer peergrid with another table layout.
    #[error(
        "the ledger {} has schema version {found}; this peergrid understands up to {supported}",
        path.display()
    )]
    UnsupportedSchema {
        /// The ledger file.
        path: PathBuf,
        /// The version found in the file.
        found: u64,
        /// [`SCHEMA_VERSION`].
        supported: u64,
    },
    /// Reading or writing the database failed (I/O error, disk full, a
    /// damaged page, ...).
    #[error("ledger storage: {0}")]
    Storage(#[from] redb::Error),
    /// The stored record of this job does not decode.
    #[error("corrupt ledger record for job {}: {source}", hex::encode(job_id))]
    CorruptJob {
        /// The job.
        job_id: Sha256Hash,
        /// What the decoder said.
        #[source]
        source: prost::DecodeError,
    },
    /// No record of this job.
    #[error("job {} is not in the ledger", hex::encode(job_id))]
    UnknownJob {
        /// The job.
        job_id: Sha256Hash,
    },
    /// A record of this job already exists.
    #[error("job {} is already in the ledger", hex::encode(job_id))]
    DuplicateJob {
        /// The job.
        job_id: Sha256Hash,
    },
    /// A batch with this id already exists.
    #[error("batch {} is already in the ledger", hex::encode(batch_id))]
    DuplicateBatch {
        /// The batch.
        batch_id: Sha256Hash,
    },
    /// The stored record of this batch does not decode.
    #[error("corrupt ledger record for batch {}: {source}", hex::encode(batch_id))]
    CorruptBatch {
        /// The batch.
        batch_id: Sha256Hash,
        /// The decoding error.
        #[source]
        source: prost::DecodeError,
    },
    /// A record or argument the ledger cannot store or use (e.g. a job id
    /// that is not 32 bytes, a module that does not match its hash).
    #[error("invalid ledger record: {0}")]
    InvalidRecord(String),
    /// The write transaction this change shared with others (see
    /// [`Ledger::update_job`]) could not begin or commit.
    #[error("ledger commit failed: {0}")]
    GroupCommit(String),
}

/// redb's per-operation errors all become [`LedgerError::Storage`].
macro_rules! storage_error_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for LedgerError {
            fn from(e: $t) -> Self {
                LedgerError::Storage(e.into())
            }
        }
    )*};
}
storage_error_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

/// One line of `peergrid jobs`: the small facts of a job record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// The job id.
    pub job_id: Sha256Hash,
    /// SHA-256 of the module (zeros if the record holds no valid hash).
    pub module_sha256: Sha256Hash,
    /// Where the job is in its life.
    pub state: pb::JobState,
    /// Why, for people.
    pub state_reason: String,
    /// When it was submitted (ms since the Unix epoch).
    pub created_at_unix_ms: u64,
    /// When it was decided, if it was (ms since the Unix epoch).
    pub decided_at_unix_ms: Option<u64>,
    /// Replicas asked for.
    pub replicas: u32,
    /// Replicas placed so far (replacements included).
    pub placements: usize,
    /// Signed results received.
    pub results: usize,
    /// Replicas that ended without a usable result.
    pub failures: usize,
}

impl JobSummary {
    fn of(job_id: Sha256Hash, record: &pb::JobRecord) -> Self {
        Self {
            job_id,
            module_sha256: peergrid_proto::hash::hash_from_slice(&record.module_sha256)
                .unwrap_or_default(),
            state: record.state(),
            state_reason: record.state_reason.clone(),
            created_at_unix_ms: record.created_at_unix_ms,
            decided_at_unix_ms: record.verdict.as_ref().map(|v| v.decided_at_unix_ms),
            replicas: record.replicas,
            placements: record.placements.len(),
            results: record.results.len(),
            failures: record.failures.len(),
        }
    }
}

/// The open ledger database. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct Ledger {
    db: Arc<Database>,
    path: Arc<Path>,
    /// Job updates that arrive together share a commit.
    group: crate::group_commit::CommitGroup,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the ledger at `path` (usually `<data-dir>/`[`FILE_NAME`]),
    /// creating the file, its directory and the tables if missing. After a
    /// crash, redb repairs the file here, which may take a moment for a large
    /// ledger. Only one `Ledger` may have a file open at a time.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| match source {
                redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::Locked {
                    path: path.to_path_buf(),
                },
                source => LedgerError::Open {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        let ledger = Self {
            db: Arc::new(db),
            path: Arc::from(path),
            group: crate::group_commit::CommitGroup::default(),
        };
        let found = ledger.write(|txn| {
            txn.open_table(MODULES)?;
            txn.open_table(JOBS)?;
            txn.open_table(PEERS)?;
            txn.open_table(STATE)?;
            txn.open_table(BATCHES)?;
            let mut meta = txn.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
            if found.is_none() {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
            Ok(found)
        })?;
        match found {
            Some(found) if found > SCHEMA_VERSION => Err(LedgerError::UnsupportedSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
            _ => Ok(ledger),
        }
    }

    /// The file this ledger is stored in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a module under its SHA-256 `hash` (which the caller computed,
    /// e.g. [`Job::module_hash`]). Idempotent: a module already stored is not
    /// written again. Returns whether it was newly stored.
    pub fn put_module(&self, hash: &Sha256Hash, module: &[u8]) -> Result<bool, LedgerError> {
        {
            let txn = self.db.begin_read()?;
            if txn.open_table(MODULES)?.get(hash)?.is_some() {
                return Ok(false);
            }
        }
        self.write(|txn| {
            let mut modules = txn.open_table(MODULES)?;
            if modules.get(hash)?.is_some() {
                return Ok(false);
            }
            modules.insert(hash, module)?;
            Ok(true)
        })
    }

    /// The module stored under `hash`, if any.
    pub fn module(&self, hash: &Sha256Hash) -> Result<Option<Vec<u8>>, LedgerError> {
        let txn = self.db.begin_read()?;
        let modules = txn.open_table(MODULES)?;
        Ok(modules.get(hash)?.map(|v| v.value().to_vec()))
    }

    /// Records a new job. Fails with [`LedgerError::DuplicateJob`] if its id
    /// is already recorded, and [`LedgerError::InvalidRecord`] if the id is
    /// not 32 bytes.
    pub fn insert_job(&self, record: &pb::JobRecord) -> Result<(), LedgerError> {
        let job_id = job_key(record)?;
        self.write(|txn| {
            let mut jobs = txn.open_table(JOBS)?;
            if jobs.get(&job_id)?.is_some() {
                return Err(LedgerError::DuplicateJob { job_id });
            }
            jobs.insert(&job_id, record.encode_to_vec().as_slice())?;
            Ok(())
        })
    }

    /// Records a new batch and the records of all its jobs in one durable
    /// transaction: after a crash either the whole batch is there to resume
    /// or none of it. Fails (writing nothing) with
    /// [`LedgerError::DuplicateJob`] if a job or the batch id is already
    /// recorded, and [`LedgerError::InvalidRecord`] if an id is not 32 bytes
    /// or the batch does not list exactly these jobs.
    pub fn insert_batch(
        &self,
        batch: &pb::BatchRecord,
        jobs: &[pb::JobRecord],
    ) -> Result<(), LedgerError> {
        let batch_id = &batch_key(batch)?;
        let keys = jobs.iter().map(job_key).collect::<Result<Vec<_>, _>>()?;
        let listed: Vec<&[u8]> = batch.job_ids.iter().map(Vec::as_slice).collect();
        if listed.len() != keys.len() || listed.iter().zip(&keys).any(|(a, b)| *a != b.as_slice()) {
            return Err(LedgerError::InvalidRecord(format!(
                "batch {} lists {} jobs but {} records were given, or in another order",
                hex::encode(batch_id),
                listed.len(),
                keys.len()
            )));
        }
        self.write(|txn| {
            let mut batches = txn.open_table(BATCHES)?;
            if batches.get(batch_id)?.is_some() {
                return Err(LedgerError::DuplicateBatch {
                    batch_id: *batch_id,
                });
            }
            batches.insert(batch_id, batch.encode_to_vec().as_slice())?;
            let mut table = txn.open_table(JOBS)?;
            for (key, record) in keys.iter().zip(jobs) {
                if table.get(key)?.is_some() {
                    return Err(LedgerError::DuplicateJob { job_id: *key });
                }
                table.insert(key, record.encode_to_vec().as_slice())?;
            }
            Ok(())
        })
    }

    /// The record of one batch, or `None` if there is none.
    pub fn batch(&self, batch_id: &Sha256Hash) -> Result<Option<pb::BatchRecord>, LedgerError> {
        let txn = self.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let Some(stored) = batches.get(batch_id)? else {
            return Ok(None);
        };
        pb::BatchRecord::decode(stored.value())
            .map(Some)
            .map_err(|source| LedgerError::CorruptBatch {
                batch_id: *batch_id,
                source,
            })
    }

    /// Every batch, newest first. Records that do not decode are skipped
    /// with a warning.
    pub fn batches(&self) -> Result<Vec<pb::BatchRecord>, LedgerError> {
        let txn = self.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let mut all = Vec::new();
        for entry in batches.iter()? {
            let (key, value) = entry?;
            match pb::BatchRecord::decode(value.value()) {
                Ok(record) => all.push(record),
                Err(e) => warn!(
                    path = %self.path.display(),
                    batch = %hex::encode(key.value()),
                    error = %e,
                    "ledger: skipping a batch record"
                ),
            }
        }
        all.sort_by(|a, b| {
            (b.created_at_unix_ms, &b.batch_id).cmp(&(a.created_at_unix_ms, &a.batch_id))
        });
        Ok(all)
    }

    /// Reads a job's record, lets `f` change it, and writes it back, all in
    /// one durable write transaction; returns what `f` returned.
    ///
    /// Fails with [`LedgerError::UnknownJob`] if there is no such job,
    /// [`LedgerError::CorruptJob`] if its record does not decode, and
    /// [`LedgerError::InvalidRecord`] (writing nothing) if `f` changed the
    /// job id. `f` runs while the ledger's write lock is held: it must not
    /// call the ledger itself (that would deadlock) and should be quick.
    pub fn update_job<R>(
        &self,
        job_id: &Sha256Hash,
        f: impl FnOnce(&mut pb::JobRecord) -> R,
    ) -> Result<R, LedgerError> {
        self.update_job_and_peers(job_id, &[], f)
    }

    /// Like [`Ledger::update_job`], but without waiting for the disk: the
    /// change is visible at once and reaches the disk with the next durable
    /// write, so a crash in between loses it. For notes whose loss costs
    /// nothing but detail (a replica placed: after a crash the job is placed
    /// again anyway), so that they do not cost an fsync each.
    pub fn update_job_lazily<R>(
        &self,
        job_id: &Sha256Hash,
        f: impl FnOnce(&mut pb::JobRecord) -> R,
    ) -> Result<R, LedgerError> {
        self.update(Durability::None, job_id, &[], f)
    }

    /// Like [`Ledger::update_job`], and stores the reputation records
    /// `peers` in the same transaction: a verdict and the reputation changes
    /// it causes reach the disk together or not at all.
    pub fn update_job_and_peers<R>(
        &self,
        job_id: &Sha256Hash,
        peers: &[(PeerId, Vec<u8>)],
        f: impl FnOnce(&mut pb::JobRecord) -> R,
    ) -> Result<R, LedgerError> {
        self.update(Durability::Immediate, job_id, peers, f)
    }

    fn update<R>(
        &self,
        durability: Durability,
        job_id: &Sha256Hash,
        peers: &[(PeerId, Vec<u8>)],
        f: impl FnOnce(&mut pb::JobRecord) -> R,
    ) -> Result<R, LedgerError> {
        self.write_with(durability, |txn| apply_update(txn, job_id, peers, f))
    }

    /// Like [`Ledger::update_job_and_peers`] (`durable`) or
    /// [`Ledger::update_job_lazily`], but the change may share its write
    /// transaction, and its commit, with changes other threads make at the
    /// same time (one thread commits every change queued meanwhile): what a
    /// batch's many tasks use, so that they do not wait for one fsync each.
    /// `f` may run on another thread, hence `Send + 'static`. Blocks until
    /// the change is committed.
    pub fn update_job_shared<R: Send + 'static>(
        &self,
        durable: bool,
        job_id: &Sha256Hash,
        peers: Vec<(PeerId, Vec<u8>)>,
        f: impl FnOnce(&mut pb::JobRecord) -> R + Send + 'static,
    ) -> Result<R, LedgerError> {
        let queued = self.queue_update(durable, job_id, peers, Vec::new(), f);
        if queued.must_commit {
            self.commit_turn().run();
        }
        // (Not `blocking_recv`: that panics when called from async code,
        // where this merely blocks, as `update_job` does.)
        futures::executor::block_on(queued.answer).unwrap_or_else(|_| {
            Err(LedgerError::GroupCommit(
                "the commit it was part of was abandoned (a change panicked)".into(),
            ))
        })
    }

    /// Queues a change for [`Ledger::update_job_shared`]'s shared commits
    /// (with named `state` values, as [`Ledger::put_state`] writes them, in
    /// the same transaction) without waiting: the caller awaits the answer
    /// (or drops it), and must run [`Ledger::commit_turn`] on a blocking
    /// thread if told to.
    pub(crate) fn queue_update<R: Send + 'static>(
        &self,
        durable: bool,
        job_id: &Sha256Hash,
        peers: Vec<(PeerId, Vec<u8>)>,
        state: Vec<(&'static str, Vec<u8>)>,
        f: impl FnOnce(&mut pb::JobRecord) -> R + Send + 'static,
    ) -> crate::group_commit::Queued<R> {
        let job_id = *job_id;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        // `apply_update` checks everything before it writes, so a change
        // that fails leaves the shared transaction as it found it.
        self.group.queue(durability, move |txn| {
            let out = apply_update(txn, &job_id, &peers, f)?;
            let mut table = txn.open_table(STATE)?;
            for (name, value) in &state {
                table.insert(*name, value.as_slice())?;
            }
            Ok(out)
        })
    }

    /// The duty to commit the queued shared changes, to run on a blocking
    /// thread; given back if dropped unrun.
    pub(crate) fn commit_turn(&self) -> crate::group_commit::CommitTurn {
        self.group.turn(Arc::clone(&self.db))
    }

    /// The record of one job, or `None` if there is none; a record that does
    /// not decode is [`LedgerError::CorruptJob`].
    pub fn job(&self, job_id: &Sha256Hash) -> Result<Option<pb::JobRecord>, LedgerError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let Some(stored) = jobs.get(job_id)? else {
            return Ok(None);
        };
        decode_job(job_id, stored.value()).map(Some)
    }

    /// A summary of every job, newest first. Records that do not decode are
    /// skipped with a warning.
    pub fn jobs(&self) -> Result<Vec<JobSummary>, LedgerError> {
        let mut all = Vec::new();
        self.for_each_job(|job_id, record| all.push(JobSummary::of(job_id, &record)))?;
        all.sort_by_key(|s| std::cmp::Reverse((s.created_at_unix_ms, s.job_id)));
        Ok(all)
    }

    /// The full record of every job, newest first, read in one pass.
    /// Records that do not decode are skipped with a warning.
    pub fn records(&self) -> Result<Vec<(Sha256Hash, pb::JobRecord)>, LedgerError> {
        let mut all = Vec::new();
        self.for_each_job(|job_id, record| all.push((job_id, record)))?;
        all.sort_by_key(|(id, r)| std::cmp::Reverse((r.created_at_unix_ms, *id)));
        Ok(all)
    }

    /// The full records of jobs still SUBMITTED or RUNNING, oldest first:
    /// what a restarted node must resume or re-place. Records that do not
    /// decode are skipped with a warning.
    pub fn unfinished(&self) -> Result<Vec<pb::JobRecord>, LedgerError> {
        let mut open = Vec::new();
        self.for_each_job(|_, record| {
            if matches!(
                record.state(),
                pb::JobState::Submitted | pb::JobState::Running
            ) {
                open.push(record);
            }
        })?;
        open.sort_by(|a, b| {
            (a.created_at_unix_ms, &a.job_id).cmp(&(b.created_at_unix_ms, &b.job_id))
        });
        Ok(open)
    }

    /// Stores (or replaces) the reputation record of `peer`. The bytes are
    /// opaque to the ledger.
    pub fn put_peer(&self, peer: &PeerId, record: &[u8]) -> Result<(), LedgerError> {
        self.write(|txn| {
            txn.open_table(PEERS)?.insert(peer.as_bytes(), record)?;
            Ok(())
        })
    }

    /// The reputation record of `peer`, if one is stored.
    pub fn peer(&self, peer: &PeerId) -> Result<Option<Vec<u8>>, LedgerError> {
        let txn = self.db.begin_read()?;
        let peers = txn.open_table(PEERS)?;
        Ok(peers.get(peer.as_bytes())?.map(|v| v.value().to_vec()))
    }

    /// Every stored reputation record, ordered by peer id.
    pub fn peers(&self) -> Result<Vec<(PeerId, Vec<u8>)>, LedgerError> {
        let txn = self.db.begin_read()?;
        let peers = txn.open_table(PEERS)?;
        let mut all = Vec::new();
        for entry in peers.iter()? {
            let (peer, record) = entry?;
            all.push((PeerId::from_bytes(peer.value()), record.value().to_vec()));
        }
        Ok(all)
    }

    /// Stores a named value of the scheduler's state (replacing it).
    pub fn put_state(&self, name: &str, value: &[u8]) -> Result<(), LedgerError> {
        self.write(|txn| {
            txn.open_table(STATE)?.insert(name, value)?;
            Ok(())
        })
    }

    /// A named value of the scheduler's state, if stored.
    pub fn state(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Runs `f` in one write transaction committed with immediate
    /// durability; an error from `f` aborts it and nothing is written.
    fn write<R>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, LedgerError>,
    ) -> Result<R, LedgerError> {
        self.write_with(Durability::Immediate, f)
    }

    fn write_with<R>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, LedgerError>,
    ) -> Result<R, LedgerError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        match f(&txn) {
            Ok(out) => {
                txn.commit()?;
                Ok(out)
            }
            Err(e) => {
                if let Err(abort) = txn.abort() {
                    warn!(error = %abort, "ledger: aborting a write transaction failed");
                }
                Err(e)
            }
        }
    }

    /// Calls `f` with every job record that decodes; warns about the others.
    fn for_each_job(
        &self,
        mut f: impl FnMut(Sha256Hash, pb::JobRecord),
    ) -> Result<(), LedgerError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        for entry in jobs.iter()? {
            let (key, value) = entry?;
            let job_id = key.value();
            match decode_job(&job_id, value.value()) {
                Ok(record) => f(job_id, record),
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "ledger: skipping a job record")
                }
            }
        }
        Ok(())
    }
}

/// The key of a batch record: its batch id, which must be 32 bytes.
fn batch_key(record: &pb::BatchRecord) -> Result<Sha256Hash, LedgerError> {
    peergrid_proto::hash::hash_from_slice(&record.batch_id).ok_or_else(|| {
        LedgerError::InvalidRecord(format!(
            "batch id is {} bytes, not 32",
            record.batch_id.len()
        ))
    })
}

/// The key of a record: its job id, which must be 32 bytes.
fn job_key(record: &pb::JobRecord) -> Result<Sha256Hash, LedgerError> {
    peergrid_proto::hash::hash_from_slice(&record.job_id).ok_or_else(|| {
        LedgerError::InvalidRecord(format!("job id is {} bytes, not 32", record.job_id.len()))
    })
}

fn decode_job(job_id: &Sha256Hash, bytes: &[u8]) -> Result<pb::JobRecord, LedgerError> {
    pb::JobRecord::decode(bytes).map_err(|source| LedgerError::CorruptJob {
        job_id: *job_id,
        source,
    })
}

/// Milliseconds since the Unix epoch (0 before it), the ledger's time unit.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a job's record in `txn`, lets `f` change it, writes it back, and
/// stores `peers`' reputation records. Checks everything before it writes.
fn apply_update<R>(
    txn: &redb::WriteTransaction,
    job_id: &Sha256Hash,
    peers: &[(PeerId, Vec<u8>)],
    f: impl FnOnce(&mut pb::JobRecord) -> R,
) -> Result<R, LedgerError> {
    let mut jobs = txn.open_table(JOBS)?;
    let mut record = {
        let stored = jobs
            .get(job_id)?
            .ok_or(LedgerError::UnknownJob { job_id: *job_id })?;
        decode_job(job_id, stored.value())?
    };
    let out = f(&mut record);
    if record.job_id.as_slice() != job_id.as_slice() {
        return Err(LedgerError::InvalidRecord(format!(
            "an update changed the id of job {}",
            hex::encode(job_id)
        )));
    }
    jobs.insert(job_id, record.encode_to_vec().as_slice())?;
    let mut table = txn.open_table(PEERS)?;
    for (peer, bytes) in peers {
        table.insert(peer.as_bytes(), bytes.as_slice())?;
    }
    Ok(out)
}

/// The record of a job about to be placed: its definition, state SUBMITTED.
pub fn new_job_record(job: &Job, submission: &Submission, now_unix_ms: u64) -> pb::JobRecord {
    let mut record = pb::JobRecord {
        job_id: submission.job_id.to_vec(),
        module_sha256: job.module_hash().to_vec(),
        args: job.args.clone(),
        stdin: job.stdin.clone(),
        limits: Some(job.limits.to_pb()),
        replicas: u32::try_from(job.replicas).unwrap_or(u32::MAX),
        clock_base_unix_ns: submission.clock_base_unix_ns,
        created_at_unix_ms: now_unix_ms,
        state_reason: "waiting for workers".into(),
        ..Default::default()
    };
    record.set_state(pb::JobState::Submitted);
    record
}

/// The record of one replica sent to `peer` at `address` with envelope
/// nonce `nonce`.
pub fn placement_record(
    peer: PeerId,
    address: &str,
    nonce: &[u8; 16],
    now_unix_ms: u64,
) -> pb::PlacementRecord {
    pb::PlacementRecord {
        peer_id: peer.as_bytes().to_vec(),
        address: address.to_string(),
        nonce: nonce.to_vec(),
        placed_at_unix_ms: now_unix_ms,
    }
}

/// The record of one verified result: the run, and the stdout and stderr
/// that came with its signed claim.
pub fn result_record(
    run: &WorkerRun,
    output: &[u8],
    stderr: &[u8],
    now_unix_ms: u64,
) -> pb::ResultRecord {
    pb::ResultRecord {
        peer_id: run.worker.as_bytes().to_vec(),
        address: run.addr.clone(),
        signed_claim: Some(run.signed_claim.clone()),
        output: output.to_vec(),
        stderr: stderr.to_vec(),
        received_at_unix_ms: now_unix_ms,
        round_trip_ms: duration_ms(run.round_trip),
    }
}

/// The record of one replica that ended without a usable result.
pub fn failure_record(failure: &WorkerFailure, now_unix_ms: u64) -> pb::FailureRecord {
    pb::FailureRecord {
        peer_id: failure
            .worker
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        address: failure.addr.clone(),
        error: failure.error.to_string(),
        at_unix_ms: now_unix_ms,
    }
}

/// Writes a verdict into a job record: its state (ACCEPTED or NO_QUORUM),
/// a `state_reason` that says how the votes fell, and the
/// [`pb::VerdictRecord`] with `certificate` (opaque; empty for none).
pub fn record_verdict(
    record: &mut pb::JobRecord,
    verdict: &Verdict,
    certificate: Vec<u8>,
    now_unix_ms: u64,
) {
    let peers = |runs: &[WorkerRun]| -> Vec<Vec<u8>> {
        runs.iter().map(|r| r.worker.as_bytes().to_vec()).collect()
    };
    let shorts = |runs: &[WorkerRun]| -> String {
        runs.iter()
            .map(|r| r.worker.short())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match verdict {
        Verdict::Accepted {
            output,
            agreeing_workers,
            dissenting_workers,
            failed_workers,
        } => {
            let (outcome, exit_code, detail) = outcome_to_claim_fields(&output.result);
            let mut reason = format!("{} workers agreed", agreeing_workers.len());
            if !dissenting_workers.is_empty() {
                reason += &format!(
                    "; {} dissented ({})",
                    dissenting_workers.len(),
                    shorts(dissenting_workers)
                );
            }
            if !failed_workers.is_empty() {
                reason += &format!("; {} replicas failed", failed_workers.len());
            }
            if let Err(failure) = &output.result {
                reason += &format!("; the job itself failed: {failure}");
            }
            record.set_state(pb::JobState::Accepted);
            record.state_reason = reason;
            let mut v = pb::VerdictRecord {
                exit_code,
                detail,
                output: output.stdout.clone(),
                output_sha256: sha256(&output.stdout).to_vec(),
                stderr: output.stderr.clone(),
                fuel_used: output.fuel_used,
                agreeing_peers: peers(agreeing_workers),
                dissenting_peers: peers(dissenting_workers),
                certificate,
                decided_at_unix_ms: now_unix_ms,
                ..Default::default()
            };
            v.set_outcome(outcome);
            record.verdict = Some(v);
        }
        Verdict::NoQuorum { needed, .. } => {
            record.set_state(pb::JobState::NoQuorum);
            record.state_reason = verdict.no_quorum_reason().unwrap_or_default();
            record.verdict = Some(pb::VerdictRecord {
                needed: u32::try_from(*needed).unwrap_or(u32::MAX),
                certificate,
                decided_at_unix_ms: now_unix_ms,
                ..Default::default()
            });
        }
    }
}

/// Rebuilds the job of an unfinished record, with the module bytes from
/// [`Ledger::module`], and a [`Submission`] with the same job id and
/// virtual clock (so new replicas compute the same answer as earlier ones)
/// whose envelopes expire at `expires_at`.
///
/// Fails with [`LedgerError::InvalidRecord`] if the module does not match
/// the record's hash or the record has no valid job id.
pub fn resume(
    record: &pb::JobRecord,
    module: Vec<u8>,
    expires_at: SystemTime,
) -> Result<(Job, Submission), LedgerError> {
    let job_id = job_key(record)?;
    let job = Job::new(module)
        .args(record.args.iter().cloned())
        .stdin(record.stdin.clone())
        .limits(
            record
                .limits
                .as_ref()
                .map(|l| Limits::from_pb(l, &Limits::default()))
                .unwrap_or_default(),
        )
        .replicas(record.replicas as usize);
    if job.module_hash().as_slice() != record.module_sha256.as_slice() {
        return Err(LedgerError::InvalidRecord(format!(
            "the module given to resume job {} does not match its hash",
            hex::encode(job_id)
        )));
    }
    let submission = Submission {
        job_id,
        clock_base_unix_ns: record.clock_base_unix_ns,
        expires_at,
        input_hash: sha256(&record.stdin),
        batched: false,
    };
    Ok((job, submission))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    use peergrid_proto::{Domain, Identity, envelope};

    use super::*;
    use crate::error::WorkerError;
    use crate::outcome::JobFailure;
    use crate::verdict::AgreedOutput;

    fn temp_ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join(FILE_NAME)).unwrap();
        (dir, ledger)
    }

    fn job_with(module: &[u8], stdin: &[u8]) -> (Job, Submission) {
        let job = Job::new(module.to_vec())
            .args(["a", "b"])
            .stdin(stdin.to_vec())
            .replicas(3);
        let submission = Submission::new(&job, Duration::from_secs(60));
        (job, submission)
    }

    fn record_at(created: u64, state: pb::JobState) -> pb::JobRecord {
        let (job, submission) = job_with(b"\0asm module", b"input");
        let mut record = new_job_record(&job, &submission, created);
        record.set_state(state);
        record
    }

    /// A verified run by a fresh worker, with its signed claim.
    fn run(job_id: &Sha256Hash, output: &[u8]) -> WorkerRun {
        let worker = Identity::generate();
        let claim = pb::ResultClaim {
            job_id: job_id.to_vec(),
            worker_id: worker.peer_id().as_bytes().to_vec(),
            output_sha256: sha256(output).to_vec(),
            fuel_used: 42,
            outcome: pb::Outcome::Success as i32,
            ..Default::default()
        };
        WorkerRun {
            worker: worker.peer_id(),
            addr: format!("127.0.0.1:{}", 7000 + output.len()),
            result: Ok(()),
            output_sha256: sha256(output),
            fuel_used: 42,
            cpu_time: Duration::from_millis(4),
            wall_time: Duration::from_millis(5),
            round_trip: Duration::from_millis(9),
            signed_claim: envelope::sign(&worker, Domain::Result, claim.encode_to_vec()),
        }
    }

    #[test]
    fn concurrent_durable_updates_share_commits_and_a_failing_one_fails_alone() {
        let (_dir, ledger) = temp_ledger();
        let ids: Vec<Sha256Hash> = (0..32)
            .map(|_| {
                let (job, submission) = job_with(b"\0asm", b"in");
                ledger
                    .insert_job(&new_job_record(&job, &submission, 1))
                    .unwrap();
                submission.job_id
            })
            .collect();
        let before = ledger.group.commits();
        // The first change holds its transaction open for a moment: the
        // others arrive meanwhile and must share the next commit.
        let slow = {
            let (ledger, id) = (ledger.clone(), ids[0]);
            std::thread::spawn(move || {
                ledger.update_job_shared(true, &id, Vec::new(), move |r| {
                    std::thread::sleep(Duration::from_millis(300));
                    r.state_reason = format!("noted {}", hex::encode(&id[..4]));
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let threads: Vec<_> = ids[1..]
            .iter()
            .map(|&id| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    ledger.update_job_shared(true, &id, Vec::new(), move |r| {
                        r.state_reason = format!("noted {}", hex::encode(&id[..4]));
                    })
                })
            })
            .collect();
        let unknown = ledger.update_job_shared(true, &[7; 32], Vec::new(), |r| {
            r.state_reason = "never".into()
        });
        assert!(
            matches!(unknown, Err(LedgerError::UnknownJob { .. })),
            "{unknown:?}"
        );
        for thread in threads.into_iter().chain([slow]) {
            thread.join().unwrap().unwrap();
        }
        for id in &ids {
            let record = ledger.job(id).unwrap().unwrap();
            assert_eq!(
                record.state_reason,
                format!("noted {}", hex::encode(&id[..4]))
            );
        }
        let commits = ledger.group.commits() - before;
        assert!(
            commits < ids.len() as u64 / 2,
            "{commits} commits for {} updates",
            ids.len() + 1
        );
        // Durable: a reopened ledger has every change.
        let path = ledger.path().to_path_buf();
        drop(ledger);
        let reopened = Ledger::open(&path).unwrap();
        for id in &ids {
            assert!(
                reopened
                    .job(id)
                    .unwrap()
                    .unwrap()
                    .state_reason
                    .starts_with("noted")
            );
        }
    }

    #[test]
    fn a_commit_turn_dropped_unrun_leaves_nothing_waiting() {
        let (_dir, ledger) = temp_ledger();
        let (job, submission) = job_with(b"\0asm", b"in");
        let id = submission.job_id;
        ledger
            .insert_job(&new_job_record(&job, &submission, 1))
            .unwrap();
        // As when the runtime that was to commit shuts down first.
        let queued = ledger.queue_update(false, &id, Vec::new(), Vec::new(), |r| {
            r.state_reason = "first".into();
        });
        assert!(queued.must_commit);
        drop(ledger.commit_turn());
        // The next change commits both, in order, instead of waiting.
        ledger
            .update_job_shared(true, &id, Vec::new(), |r| {
                assert_eq!(r.state_reason, "first");
                r.state_reason.push_str(", second");
            })
            .unwrap();
        assert_eq!(queued.answer.blocking_recv().unwrap().ok(), Some(()));
        assert_eq!(
            ledger.job(&id).unwrap().unwrap().state_reason,
            "first, second"
        );
    }

    #[test]
    fn a_job_goes_from_submitted_through_running_to_accepted() {
        let (_dir, ledger) = temp_ledger();
        let (job, submission) = job_with(b"\0asm primes", b"1000");
        let id = submission.job_id;
        assert!(ledger.put_module(&job.module_hash(), job.module()).unwrap());
        ledger
            .insert_job(&new_job_record(&job, &submission, 1_000))
            .unwrap();
        let stored = ledger.job(&id).unwrap().unwrap();
        assert_eq!(stored.state(), pb::JobState::Submitted);
        assert_eq!(stored.args, ["a", "b"]);
        assert_eq!(stored.stdin, b"1000");
        assert_eq!(stored.limits, Some(job.limits.to_pb()));
        assert_eq!(stored.replicas, 3);
        assert_eq!(stored.clock_base_unix_ns, submission.clock_base_unix_ns);

        let good = [run(&id, b"42\n"), run(&id, b"42\n")];
        let bad = run(&id, b"43\n");
        ledger
            .update_job(&id, |r| {
                r.set_state(pb::JobState::Running);
                r.state_reason = "waiting for 3 replicas".into();
                for w in good.iter().chain([&bad]) {
                    r.placements
                        .push(placement_record(w.worker, &w.addr, &[7; 16], 1_001));
                }
            })
            .unwrap();
        let failure = WorkerFailure {
            worker: None,
            addr: "10.0.0.9:7400".into(),
            error: WorkerError::Busy,
        };
        let results = ledger
            .update_job(&id, |r| {
                for w in &good {
                    r.results.push(result_record(w, b"42\n", b"", 1_002));
                }
                r.results.push(result_record(&bad, b"43\n", b"warn", 1_003));
                r.failures.push(failure_record(&failure, 1_004));
                r.results.len()
            })
            .unwrap();
        assert_eq!(results, 3);
        let running = ledger.job(&id).unwrap().unwrap();
        assert_eq!(running.state(), pb::JobState::Running);
        assert_eq!(running.placements.len(), 3);
        assert_eq!(running.placements[0].nonce, [7; 16]);
        assert_eq!(
            running.results[2].signed_claim,
            Some(bad.signed_claim.clone())
        );
        assert_eq!(running.results[2].stderr, b"warn");
        assert_eq!(running.results[0].round_trip_ms, 9);
        assert!(running.failures[0].peer_id.is_empty());
        assert!(
            running.failures[0].error.contains("busy"),
            "{:?}",
            running.failures[0]
        );
        assert_eq!(ledger.unfinished().unwrap(), vec![running]);

        let verdict = Verdict::Accepted {
            output: AgreedOutput {
                result: Ok(()),
                stdout: b"42\n".to_vec(),
                stderr: Vec::new(),
                fuel_used: 42,
            },
            agreeing_workers: good.to_vec(),
            dissenting_workers: vec![bad.clone()],
            failed_workers: vec![failure],
        };
        ledger
            .update_job(&id, |r| {
                record_verdict(r, &verdict, b"cert".to_vec(), 1_005)
            })
            .unwrap();
        let done = ledger.job(&id).unwrap().unwrap();
        assert_eq!(done.state(), pb::JobState::Accepted);
        assert!(
            done.state_reason.contains("2 workers agreed"),
            "{}",
            done.state_reason
        );
        assert!(
            done.state_reason.contains(&bad.worker.short()),
            "{}",
            done.state_reason
        );
        let v = done.verdict.unwrap();
        assert_eq!(v.outcome(), pb::Outcome::Success);
        assert_eq!(v.output, b"42\n");
        assert_eq!(v.output_sha256, sha256(b"42\n"));
        assert_eq!(v.agreeing_peers.len(), 2);
        assert_eq!(v.dissenting_peers, vec![bad.worker.as_bytes().to_vec()]);
        assert_eq!(v.certificate, b"cert");
        assert_eq!(v.decided_at_unix_ms, 1_005);
        assert!(ledger.unfinished().unwrap().is_empty());
        let summary = &ledger.jobs().unwrap()[0];
        assert_eq!(summary.state, pb::JobState::Accepted);
        assert_eq!(
            (summary.placements, summary.results, summary.failures),
            (3, 3, 1)
        );
        assert_eq!(summary.decided_at_unix_ms, Some(1_005));
        assert_eq!(summary.module_sha256, job.module_hash());
    }

    #[test]
    fn no_quorum_and_agreed_failures_explain_themselves() {
        let mut record = record_at(1, pb::JobState::Running);
        let id = job_key(&record).unwrap();
        let verdict = Verdict::NoQuorum {
            needed: 2,
            runs: vec![run(&id, b"a"), run(&id, b"b")],
            failed_workers: Vec::new(),
        };
        record_verdict(&mut record, &verdict, Vec::new(), 9);
        assert_eq!(record.state(), pb::JobState::NoQuorum);
        assert!(
            record
                .state_reason
                .contains("2 results in 2 different outputs"),
            "{}",
            record.state_reason
        );
        assert_eq!(record.verdict.as_ref().unwrap().needed, 2);

        let verdict = Verdict::Accepted {
            output: AgreedOutput {
                result: Err(JobFailure::ExitCode(3)),
                stdout: Vec::new(),
                stderr: b"boom".to_vec(),
                fuel_used: 1,
            },
            agreeing_workers: vec![run(&id, b""), run(&id, b"")],
            dissenting_workers: Vec::new(),
            failed_workers: Vec::new(),
        };
        record_verdict(&mut record, &verdict, Vec::new(), 10);
        assert!(
            record.state_reason.contains("exit code 3"),
            "{}",
            record.state_reason
        );
        let v = record.verdict.unwrap();
        assert_eq!((v.outcome(), v.exit_code), (pb::Outcome::ExitCode, 3));
        assert_eq!(v.stderr, b"boom");
    }

    #[test]
    fn unfinished_lists_submitted_and_running_oldest_first_and_jobs_newest_first() {
        let (_dir, ledger) = temp_ledger();
        let records = [
            record_at(30, pb::JobState::Running),
            record_at(10, pb::JobState::Submitted),
            record_at(20, pb::JobState::Accepted),
            record_at(40, pb::JobState::NoQuorum),
            record_at(50, pb::JobState::Failed),
        ];
        for r in &records {
            ledger.insert_job(r).unwrap();
        }
        let open: Vec<u64> = ledger
            .unfinished()
            .unwrap()
            .iter()
            .map(|r| r.created_at_unix_ms)
            .collect();
        assert_eq!(open, [10, 30]);
        let all: Vec<u64> = ledger
            .jobs()
            .unwrap()
            .iter()
            .map(|s| s.created_at_unix_ms)
            .collect();
        assert_eq!(all, [50, 40, 30, 20, 10]);
    }

    #[test]
    fn jobs_are_inserted_once_and_updated_only_if_present() {
        let (_dir, ledger) = temp_ledger();
        let record = record_at(1, pb::JobState::Submitted);
        let id = job_key(&record).unwrap();
        ledger.insert_job(&record).unwrap();
        assert!(matches!(
            ledger.insert_job(&record),
            Err(LedgerError::DuplicateJob { job_id }) if job_id == id
        ));
        assert!(matches!(
            ledger.update_job(&[9; 32], |_| ()),
            Err(LedgerError::UnknownJob { .. })
        ));
        assert!(ledger.job(&[9; 32]).unwrap().is_none());
        // An update that changes the id is refused and writes nothing.
        let changed = ledger.update_job(&id, |r| {
            r.state_reason = "lost".into();
            r.job_id = vec![1; 32];
        });
        assert!(matches!(changed, Err(LedgerError::InvalidRecord(_))));
        assert_eq!(ledger.job(&id).unwrap().unwrap(), record);
        let short_id = pb::JobRecord {
            job_id: vec![1, 2, 3],
            ..Default::default()
        };
        assert!(matches!(
            ledger.insert_job(&short_id),
            Err(LedgerError::InvalidRecord(_))
        ));
    }

    #[test]
    fn peers_store_opaque_records_and_replace_them() {
        let (_dir, ledger) = temp_ledger();
        let (a, b) = (PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32]));
        assert!(ledger.peers().unwrap().is_empty());
        ledger.put_peer(&b, b"b1").unwrap();
        ledger.put_peer(&a, b"a1").unwrap();
        ledger.put_peer(&b, b"b2").unwrap();
        assert_eq!(
            ledger.peers().unwrap(),
            vec![(a, b"a1".to_vec()), (b, b"b2".to_vec())]
        );
        assert_eq!(ledger.peer(&a).unwrap(), Some(b"a1".to_vec()));
        assert_eq!(ledger.peer(&PeerId::from_bytes([3; 32])).unwrap(), None);

        // A verdict and its reputation changes land together.
        let record = record_at(1, pb::JobState::Running);
        let id = job_key(&record).unwrap();
        ledger.insert_job(&record).unwrap();
        ledger
            .update_job_and_peers(&id, &[(a, b"a2".to_vec())], |r| {
                r.set_state(pb::JobState::Accepted);
            })
            .unwrap();
        assert_eq!(ledger.peer(&a).unwrap(), Some(b"a2".to_vec()));
        // ... or not at all.
        let failed = ledger.update_job_and_peers(&[9; 32], &[(a, b"a3".to_vec())], |_| ());
        assert!(failed.is_err());
        assert_eq!(ledger.peer(&a).unwrap(), Some(b"a2".to_vec()));
    }

    #[test]
    fn modules_are_stored_once() {
        let (_dir, ledger) = temp_ledger();
        let module = b"\0asm some module".to_vec();
        let hash = sha256(&module);
        assert_eq!(ledger.module(&hash).unwrap(), None);
        assert!(ledger.put_module(&hash, &module).unwrap());
        assert!(!ledger.put_module(&hash, &module).unwrap());
        assert_eq!(ledger.module(&hash).unwrap(), Some(module));
    }

    #[test]
    fn everything_survives_closing_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(FILE_NAME);
        let (job, submission) = job_with(b"\0asm persisted", b"in");
        let peer = PeerId::from_bytes([5; 32]);
        {
            let ledger = Ledger::open(&path).unwrap();
            ledger.put_module(&job.module_hash(), job.module()).unwrap();
            ledger
                .insert_job(&new_job_record(&job, &submission, 7))
                .unwrap();
            ledger
                .update_job(&submission.job_id, |r| r.set_state(pb::JobState::Running))
                .unwrap();
            ledger.put_peer(&peer, b"trusted").unwrap();
            // A second handle on the same file is refused while this one lives.
            assert!(matches!(
                Ledger::open(&path),
                Err(LedgerError::Locked { .. })
            ));
        }
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.path(), path);
        let open = ledger.unfinished().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].state(), pb::JobState::Running);
        let module = ledger
            .module(&hash_of(&open[0].module_sha256))
            .unwrap()
            .unwrap();
        assert_eq!(ledger.peers().unwrap(), vec![(peer, b"trusted".to_vec())]);

        // The job can be rebuilt from the ledger alone.
        let expires = SystemTime::now() + Duration::from_secs(60);
        let (again, resumed) = resume(&open[0], module, expires).unwrap();
        assert_eq!(again.module_hash(), job.module_hash());
        assert_eq!((again.args, again.stdin), (job.args, job.stdin));
        assert_eq!((again.limits, again.replicas), (job.limits, job.replicas));
        assert_eq!(resumed.job_id, submission.job_id);
        assert_eq!(resumed.clock_base_unix_ns, submission.clock_base_unix_ns);
        assert_eq!(resumed.input_hash, submission.input_hash);
        assert_eq!(resumed.expires_at, expires);
        assert!(matches!(
            resume(&open[0], b"another module".to_vec(), expires),
            Err(LedgerError::InvalidRecord(_))
        ));
    }

    fn hash_of(bytes: &[u8]) -> Sha256Hash {
        peergrid_proto::hash::hash_from_slice(bytes).unwrap()
    }

    #[test]
    fn a_corrupt_job_record_is_skipped_in_listings_and_named_on_lookup() {
        let (_dir, ledger) = temp_ledger();
        let good = record_at(5, pb::JobState::Running);
        ledger.insert_job(&good).unwrap();
        let bad_id = [0xee; 32];
        ledger
            .write(|txn| {
                // A length-delimited field whose length runs past the end.
                txn.open_table(JOBS)?
                    .insert(&bad_id, [0x0a, 0xff, 0x01, 0x02].as_slice())?;
                Ok(())
            })
            .unwrap();
        assert_eq!(ledger.jobs().unwrap().len(), 1);
        assert_eq!(ledger.unfinished().unwrap(), vec![good]);
        let err = ledger.job(&bad_id).unwrap_err();
        assert!(matches!(err, LedgerError::CorruptJob { job_id, .. } if job_id == bad_id));
        assert!(err.to_string().contains(&hex::encode(bad_id)), "{err}");
        assert!(matches!(
            ledger.update_job(&bad_id, |_| ()),
            Err(LedgerError::CorruptJob { .. })
        ));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let ledger = Ledger::open(&path).unwrap();
            ledger
                .write(|txn| {
                    txn.open_table(META)?
                        .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)?;
                    Ok(())
                })
                .unwrap();
        }
        assert!(matches!(
            Ledger::open(&path),
            Err(LedgerError::UnsupportedSchema { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    /// Set in the child process of the crash test: the ledger path to write.
    const CRASH_CHILD_ENV: &str = "PEERGRID_LEDGER_CRASH_CHILD";

    /// The child role of [`a_ledger_killed_mid_write_keeps_every_committed_record`]:
    /// does nothing unless [`CRASH_CHILD_ENV`] is set; then writes jobs,
    /// updates and peers in a loop and announces each one on stdout only
    /// after its call returned, until it is killed.
    #[test]
    fn crash_child_writer() {
        let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
            return;
        };
        let ledger = Ledger::open(path).unwrap();
        let mut out = std::io::stdout().lock();
        for i in 0..100_000u64 {
            let mut record = record_at(i, pb::JobState::Submitted);
            record.stdin = vec![i as u8; 8 << 10];
            let id = job_key(&record).unwrap();
            ledger.insert_job(&record).unwrap();
            writeln!(out, "committed job {}", hex::encode(id)).unwrap();
            ledger
                .update_job(&id, |r| r.set_state(pb::JobState::Running))
                .unwrap();
            writeln!(out, "committed running {}", hex::encode(id)).unwrap();
            let peer = PeerId::from_bytes(id);
            ledger.put_peer(&peer, &i.to_le_bytes()).unwrap();
            writeln!(out, "committed peer {}", hex::encode(id)).unwrap();
            out.flush().unwrap();
        }
    }

    #[test]
    fn a_ledger_killed_mid_write_keeps_every_committed_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "ledger::tests::crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut committed = Vec::new();
        let mut read = |committed: &mut Vec<String>, stop_after: usize| {
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(rest) = line.strip_prefix("committed ") {
                    committed.push(rest.to_string());
                    if committed.len() >= stop_after {
                        return;
                    }
                }
            }
        };
        read(&mut committed, 60);
        // SIGKILL on Unix: no destructor, no flush, mid-loop.
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the child announced before it died was committed too.
        read(&mut committed, usize::MAX);
        assert!(
            committed.len() >= 60,
            "the child announced only {committed:?}"
        );

        let ledger = Ledger::open(&path).unwrap();
        let peers: std::collections::HashMap<PeerId, Vec<u8>> =
            ledger.peers().unwrap().into_iter().collect();
        let jobs = ledger.jobs().unwrap();
        for entry in &committed {
            let (what, id) = entry.split_once(' ').unwrap();
            let id = hash_of(&hex::decode(id).unwrap());
            let record = ledger
                .job(&id)
                .unwrap()
                .unwrap_or_else(|| panic!("lost {entry}"));
            assert_eq!(record.stdin.len(), 8 << 10);
            match what {
                "job" => {}
                "running" => assert_eq!(record.state(), pb::JobState::Running, "{entry}"),
                "peer" => assert!(peers.contains_key(&PeerId::from_bytes(id)), "lost {entry}"),
                other => panic!("unexpected line {other}"),
            }
        }
        // At most the one job in flight at the kill went unannounced.
        let announced = committed.iter().filter(|c| c.starts_with("job ")).count();
        assert!(jobs.len() == announced || jobs.len() == announced + 1);
    }
}

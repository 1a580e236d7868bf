//! # scheduler-lib: farm WASM jobs out to peergrid workers and trust only
//! what a quorum agrees on
//!
//! A [`Job`] is a WASI command module plus its input, limits and a replica
//! count `k`. A [`Scheduler`] signs one envelope per replica with the
//! submitter's [`Identity`](peergrid_proto::Identity), places the replicas on
//! `k` distinct workers ([`placement`]), uploads the module to workers that
//! lack it, checks every signed result ([`result`]), and accepts an output only
//! when enough credible workers agree on it ([`adaptive`]: a strict majority
//! of `k` while their credibility is unknown, fewer once this node trusts
//! them from its own observations, [`reputation`]). The [`Verdict`]
//! names the agreeing and the dissenting workers, so a cheater is caught by
//! its own signature.
//!
//! Placement, verification, reputation and spot-checks are plain functions
//! and structs with no I/O (the clock and random draws are passed in); the
//! async [`Scheduler`] only moves bytes between them and the network.
//!
//! ```no_run
//! use peergrid_proto::Identity;
//! use scheduler_lib::{Job, Scheduler, SchedulerConfig, Verdict};
//!
//! # async fn demo(module: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let scheduler = Scheduler::new(
//!     Identity::generate(),
//!     SchedulerConfig {
//!         peers: vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into(), "127.0.0.1:7003".into()],
//!         ..SchedulerConfig::default()
//!     },
//! );
//! let job = Job::new(module).stdin(b"1000000".to_vec()).replicas(3);
//! let report = scheduler.submit(&job).await?;
//! match &report.verdict {
//!     Verdict::Accepted { output, dissenting_workers, .. } => {
//!         println!("{}", String::from_utf8_lossy(&output.stdout));
//!         for cheat in dissenting_workers {
//!             eprintln!("worker {} disagreed", cheat.worker);
//!         }
//!     }
//!     Verdict::NoQuorum { .. } => eprintln!("no quorum: nothing accepted"),
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod adaptive;
pub mod batch;
pub mod certificate;
pub mod client;
pub mod error;
mod group_commit;
pub mod job;
pub mod ledger;
pub mod limits;
pub mod membership;
pub mod outcome;
pub mod pipeline;
pub mod placement;
pub mod reputation;
pub mod reputation_store;
pub mod result;
pub mod scheduler;
pub mod spot_check;
mod trust;
pub mod verdict;

pub use adaptive::{AdaptiveConfig, Decision, JobVerification, Plan, WorkerStanding};
pub use batch::{Batch, BatchProgress, BatchRun, Task, TaskOutcome, TaskResult};
pub use certificate::{Certificate, CertificateError, VerifiedCertificate, VerifyPolicy};
pub use error::{SchedulerError, WorkerError};
pub use job::Job;
pub use ledger::{JobSummary, Ledger, LedgerError};
pub use limits::{Budget, Limits};
pub use outcome::{JobFailure, VoteKey};
pub use reputation::{Change, Observation, PeerReputation, Reputation, ReputationConfig};
pub use scheduler::{Scheduler, SchedulerConfig};
pub use spot_check::{SpotCheckConfig, SpotChecks};
pub use verdict::{AgreedOutput, JobReport, Verdict, WorkerFailure, WorkerRun};

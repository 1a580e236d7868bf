//! The reputations the status page shows: the scores in this data
//! directory's ledger (`ledger.redb`, kept by `peergrid submit`), read
//! rarely and never while a submit is writing.
//!
//! A worker does not know how others rate it (see
//! [`REPUTATION_UNKNOWN`](crate::status::REPUTATION_UNKNOWN)). What it can
//! show is how *this* data directory, as a submitter, rated the workers it
//! sent jobs to — when the volunteer also submits from it. Only one process
//! may have the ledger open at a time, and a `peergrid submit` that finds it
//! open fails, so the page must hold it as little as possible: it opens the
//! ledger only when the file changed since the page last read it, only once
//! the file has been left alone for [`QUIET`] (a submit running writes it;
//! a loop of submits keeps it busy), and at most once per [`RETRY`]. It
//! holds it for the few milliseconds one read of the peers table takes, in
//! a blocking thread. Between reads it shows the scores as last read, and
//! says when that was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use peergrid_proto::PeerId;
use scheduler_lib::ledger::{self, Ledger, LedgerError};
use scheduler_lib::reputation_store;
use serde::Serialize;

/// How long the ledger file must have been left unmodified before the page
/// opens it.
pub const QUIET: Duration = Duration::from_secs(10);

/// The least time between two attempts to read the ledger.
pub const RETRY: Duration = Duration::from_secs(30);

/// How this data directory's submitter rated one worker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LedgerScore {
    /// Its trust: the beta reputation's expected probability of a good
    /// result, (good + 1) / (good + bad + 2), with decay.
    pub trust: f64,
    /// Times it agreed with an accepted result.
    pub agreed: u64,
    /// Times it dissented from an accepted result.
    pub dissented: u64,
    /// Whether it is banned now.
    pub banned: bool,
}

/// What the page knows of the ledger's scores, at one moment.
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    /// The scores as last read (empty if never read or no ledger).
    pub scores: Arc<HashMap<PeerId, LedgerScore>>,
    /// When they were read, in ms since the Unix epoch.
    pub read_at_unix_ms: Option<u64>,
    /// Whether a ledger file exists in the data directory.
    pub exists: bool,
    /// Why the newest scores could not be read, if they could not.
    pub problem: Option<String>,
}

/// The ledger of one data directory, read as the module docs say.
#[derive(Debug)]
pub struct LedgerScores {
    path: PathBuf,
    view: Mutex<Cached>,
    reading: AtomicBool,
}

#[derive(Debug, Default)]
struct Cached {
    view: LedgerView,
    /// The file's modification time after the last read.
    read_mtime: Option<SystemTime>,
    /// When the last attempt was.
    last_try: Option<SystemTime>,
}

/// Whether to open the ledger now: the file changed since it was read
/// (`mtime` vs `read_mtime`), has been quiet for [`QUIET`], and the last
/// attempt is [`RETRY`] old.
pub fn should_read(
    now: SystemTime,
    mtime: SystemTime,
    read_mtime: Option<SystemTime>,
    last_try: Option<SystemTime>,
) -> bool {
    let older_than = |t: SystemTime, d: Duration| now.duration_since(t).is_ok_and(|age| age >= d);
    read_mtime != Some(mtime)
        && older_than(mtime, QUIET)
        && last_try.is_none_or(|t| older_than(t, RETRY))
}

impl LedgerScores {
    /// The scores of the ledger in `data_dir` (which need not exist).
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            path: data_dir.join(ledger::FILE_NAME),
            view: Mutex::new(Cached::default()),
            reading: AtomicBool::new(false),
        }
    }

    /// The scores now: as last read, after reading the ledger afresh first
    /// if [`should_read`] says so (in a blocking thread).
    pub async fn view(self: &Arc<Self>) -> LedgerView {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.refresh())
            .await
            .unwrap_or_default()
    }

    fn cached(&self) -> LedgerView {
        self.view.lock().map(|c| c.view.clone()).unwrap_or_default()
    }

    fn refresh(&self) -> LedgerView {
        let mtime = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.modified().ok(),
            Err(_) => {
                // No ledger (any more): nothing to show.
                if let Ok(mut cached) = self.view.lock() {
                    *cached = Cached::default();
                }
                return LedgerView::default();
            }
        };
        let Some(mtime) = mtime else {
            return LedgerView {
                exists: true,
                problem: Some("the ledger's modification time is unknown".into()),
                ..self.cached()
            };
        };
        let now = SystemTime::now();
        {
            let Ok(cached) = self.view.lock() else {
                return LedgerView::default();
            };
            if !should_read(now, mtime, cached.read_mtime, cached.last_try) {
                let mut view = cached.view.clone();
                view.exists = true;
                if cached.read_mtime != Some(mtime) && view.problem.is_none() {
                    view.problem = Some(if view.read_at_unix_ms.is_some() {
                        "the ledger changed since (a submit is writing it); read again once it is idle"
                            .into()
                    } else {
                        "not read yet: it is being written (a submit is running); read once it is idle"
                            .into()
                    });
                }
                return view;
            }
        }
        // One reader at a time; the others show what was read last.
        if self.reading.swap(true, Ordering::AcqRel) {
            return LedgerView {
                exists: true,
                ..self.cached()
            };
        }
        let read = read_scores(&self.path);
        let after = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let view = match self.view.lock() {
            Ok(mut cached) => {
                cached.last_try = Some(now);
                match read {
                    Ok(scores) => {
                        cached.read_mtime = after;
                        cached.view = LedgerView {
                            scores: Arc::new(scores),
                            read_at_unix_ms: Some(ledger::unix_ms(now)),
                            exists: true,
                            problem: None,
                        };
                    }
                    Err(problem) => {
                        cached.view.exists = true;
                        cached.view.problem = Some(problem);
                    }
                }
                cached.view.clone()
            }
            Err(_) => LedgerView::default(),
        };
        self.reading.store(false, Ordering::Release);
        view
    }
}

/// Reads every peer's score from the ledger at `path`; the error in words.
fn read_scores(path: &std::path::Path) -> Result<HashMap<PeerId, LedgerScore>, String> {
    let ledger = Ledger::open(path).map_err(|error| match error {
        LedgerError::Locked { .. } => {
            "the ledger is in use by another peergrid process (a running submit); \
             read again when it has finished"
                .to_string()
        }
        error => error.to_string(),
    })?;
    let peers = ledger.peers().map_err(|e| e.to_string())?;
    drop(ledger);
    Ok(peers
        .into_iter()
        .filter_map(|(peer, bytes)| {
            let record = reputation_store::decode_peer(&bytes)?;
            Some((
                peer,
                LedgerScore {
                    trust: record.trust(),
                    agreed: record.agreed,
                    dissented: record.dissented,
                    banned: record.banned,
                },
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_is_read_only_when_changed_quiet_and_not_tried_lately() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = Duration::from_secs;
        // Never read, quiet for a minute: read.
        assert!(should_read(t, t - secs(60), None, None));
        // Written 2 s ago (a submit is running): wait.
        assert!(!should_read(t, t - secs(2), None, None));
        // Unchanged since the last read: no need.
        assert!(!should_read(t, t - secs(60), Some(t - secs(60)), None));
        // Changed and quiet, but tried 5 s ago: wait for RETRY.
        assert!(!should_read(
            t,
            t - secs(60),
            Some(t - secs(600)),
            Some(t - secs(5))
        ));
        assert!(should_read(
            t,
            t - secs(60),
            Some(t - secs(600)),
            Some(t - secs(31))
        ));
        // A modification time in the future (clock stepped back): not quiet.
        assert!(!should_read(t, t + secs(5), None, None));
    }

    #[tokio::test]
    async fn scores_come_from_the_ledger_and_no_ledger_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let scores = Arc::new(LedgerScores::new(dir.path()));
        let view = scores.view().await;
        assert!(!view.exists && view.scores.is_empty());
        assert!(
            !dir.path().join(ledger::FILE_NAME).exists(),
            "looking must not create a ledger"
        );

        let peer = PeerId::from_bytes([9; 32]);
        let path = dir.path().join(ledger::FILE_NAME);
        {
            let ledger = Ledger::open(&path).unwrap();
            let mut record = scheduler_lib::PeerReputation::new(1);
            record.good = 8.0;
            record.agreed = 8;
            ledger
                .put_peer(&peer, &reputation_store::encode_peer(&record))
                .unwrap();
        }
        // Just written: not quiet yet, so not read.
        let view = scores.view().await;
        assert!(view.exists && view.scores.is_empty());
        assert!(view.problem.unwrap().contains("not read yet"));
        // Left alone for a minute: read.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        drop(file);
        let view = scores.view().await;
        let score = view.scores.get(&peer).copied().unwrap();
        assert_eq!(score.agreed, 8);
        assert!((score.trust - 0.9).abs() < 1e-9, "{score:?}");
        assert!(view.read_at_unix_ms.is_some() && view.problem.is_none());
    }
}

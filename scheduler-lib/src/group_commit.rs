//! Group commit for the ledger: changes queued while a commit is under way
//! share the next one.
//!
//! A durable commit waits for an fsync (milliseconds) and write transactions
//! are serialized, so a batch whose every task recorded its verdict in its
//! own transaction would run at one fsync per task. Here a change is queued
//! ([`CommitGroup::queue`]); whoever finds no commit under way starts one
//! ([`CommitGroup::commit_queued`], on a blocking thread), which takes every
//! queued change, applies them in order in one write transaction, commits
//! once, answers each change, and goes on until the queue is empty. Callers
//! wait for their answer without holding a thread, or not at all (notes
//! whose loss costs only detail). Alone, a change costs what it cost before:
//! one transaction.
//!
//! A change that fails leaves the transaction as it found it (the ledger's
//! read-modify-writes check everything before they write), so it fails
//! alone; a failed commit fails every change of its group.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use crate::ledger::LedgerError;

/// A queued change: applied in the group's transaction (or told why there
/// is none), it gives back what to do once the commit's fate is known.
type Change = Box<dyn FnOnce(Result<&WriteTransaction, &str>) -> Finish + Send>;

/// Reports a change's result, given how the commit went.
type Finish = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// The queue of changes waiting for a commit, and whether one is under way.
#[derive(Default)]
struct Queue {
    changes: Vec<(Durability, Change)>,
    committing: bool,
}

/// Shares write transactions between concurrent changes to one database.
#[derive(Clone, Default)]
pub(crate) struct CommitGroup {
    queue: Arc<Mutex<Queue>>,
    /// Transactions begun so far.
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for CommitGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitGroup").finish_non_exhaustive()
    }
}

/// Clears the committing flag if a change panics, so that the next caller
/// to queue starts a commit. Only then: on a normal end the flag was
/// cleared under the lock when the queue was found empty, and another
/// caller may already have taken the duty since; clearing it again would
/// let two commits run at once and apply later changes before earlier
/// ones.
struct Committing<'a>(&'a Mutex<Queue>);

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            queue.committing = false;
        }
    }
}

/// A queued change's answer, and whether its caller must start the commit.
pub(crate) struct Queued<R> {
    /// The change's result once its transaction is committed.
    pub(crate) answer: oneshot::Receiver<Result<R, LedgerError>>,
    /// No commit was under way: the caller must call
    /// [`CommitGroup::commit_queued`] (on a thread that may block).
    pub(crate) must_commit: bool,
}

impl CommitGroup {
    /// Queues `change` for the next write transaction, which is committed
    /// with at least `durability` (a group is as durable as its most
    /// demanding change).
    pub(crate) fn queue<R: Send + 'static>(
        &self,
        durability: Durability,
        change: impl FnOnce(&WriteTransaction) -> Result<R, LedgerError> + Send + 'static,
    ) -> Queued<R> {
        let (done, answer) = oneshot::channel();
        let queued: Change = Box::new(move |txn| {
            let applied = match txn {
                Ok(txn) => change(txn),
                Err(why) => Err(LedgerError::GroupCommit(why.to_string())),
            };
            finisher(applied, done)
        });
        let mut queue = self.lock();
        queue.changes.push((durability, queued));
        let must_commit = !std::mem::replace(&mut queue.committing, true);
        Queued {
            answer,
            must_commit,
        }
    }

    /// Commits queued changes, a group per transaction, until none is
    /// left. Blocks on the disk: call it where blocking is allowed.
    pub(crate) fn commit_queued(&self, db: &Database) {
        let _committing = Committing(&self.queue);
        while let Some(group) = self.take() {
            self.commits.fetch_add(1, Ordering::Relaxed);
            commit(db, group);
        }
    }

    /// The duty to run [`CommitGroup::commit_queued`] that a
    /// [`Queued::must_commit`] caller holds, as a value to move to a
    /// blocking thread: if that thread never runs it (its runtime shut
    /// down first), dropping it gives the duty back, so the next change
    /// queued commits everything instead of waiting forever.
    pub(crate) fn turn(&self, db: Arc<Database>) -> CommitTurn {
        CommitTurn {
            group: self.clone(),
            db,
            done: false,
        }
    }

    /// Transactions begun so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queued changes, or `None` (and no commit under way) when there
    /// are none.
    fn take(&self) -> Option<Vec<(Durability, Change)>> {
        let mut queue = self.lock();
        if queue.changes.is_empty() {
            queue.committing = false;
            return None;
        }
        Some(std::mem::take(&mut queue.changes))
    }
}

/// A duty to commit the queued changes (see [`CommitGroup::turn`]).
pub(crate) struct CommitTurn {
    group: CommitGroup,
    db: Arc<Database>,
    done: bool,
}

impl CommitTurn {
    /// Commits the queued changes (blocks on the disk).
    pub(crate) fn run(mut self) {
        self.done = true;
        self.group.commit_queued(&self.db);
    }
}

impl Drop for CommitTurn {
    fn drop(&mut self) {
        if !self.done {
            self.group.lock().committing = false;
        }
    }
}

/// What to report for one change once its transaction's commit is known.
fn finisher<R: Send + 'static>(
    applied: Result<R, LedgerError>,
    done: oneshot::Sender<Result<R, LedgerError>>,
) -> Finish {
    Box::new(move |committed| {
        let result = match (applied, committed) {
            (Err(e), _) => Err(e),
            (Ok(out), Ok(())) => Ok(out),
            (Ok(_), Err(why)) => Err(LedgerError::GroupCommit(why.to_string())),
        };
        // A caller that does not wait for its answer has dropped it.
        let _ = done.send(result);
    })
}

/// Applies a group of changes in one transaction and commits it.
fn commit(db: &Database, group: Vec<(Durability, Change)>) {
    let durability = if group
        .iter()
        .any(|(d, _)| matches!(d, Durability::Immediate))
    {
        Durability::Immediate
    } else {
        Durability::None
    };
    let begun = db
        .begin_write()
        .map_err(|e| e.to_string())
        .and_then(|mut txn| {
            txn.set_durability(durability).map_err(|e| e.to_string())?;
            Ok(txn)
        });
    let txn = match begun {
        Ok(txn) => txn,
        Err(why) => {
            // No transaction: every change fails with the reason.
            for (_, change) in group {
                change(Err(&why))(Err(&why));
            }
            return;
        }
    };
    let finishes: Vec<Finish> = group
        .into_iter()
        .map(|(_, change)| change(Ok(&txn)))
        .collect();
    let committed = txn.commit().map_err(|e| e.to_string());
    for finish in finishes {
        finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
}

//! The job pool: a fixed number of OS threads that run WASM jobs, and the
//! slots that admit work to them.
//!
//! Jobs never run on the async runtime's threads (the WASI sync bindings
//! block, and a long job would starve the gRPC server). Admission is
//! non-blocking: [`JobPool::try_acquire`] hands out a [`Slot`] or nothing,
//! so the node sheds load instead of queueing without bound. A caller that
//! may wait (a job of a batch) waits on [`JobPool::freed`], which is
//! notified whenever a slot comes free.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{Notify, oneshot};

/// Stack size of pool threads: room for wasmtime's guest stack limit plus
/// the host frames beneath it.
const THREAD_STACK_BYTES: usize = 16 << 20;

type Task = Box<dyn FnOnce() + Send>;

/// A fixed-size pool of job threads.
#[derive(Debug)]
pub struct JobPool {
    tx: Mutex<Option<mpsc::Sender<Task>>>,
    free: Arc<AtomicUsize>,
    freed: Arc<Notify>,
    total: usize,
}

/// Permission to run one job; frees its slot when dropped.
#[derive(Debug)]
pub struct Slot {
    free: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free.fetch_add(1, Ordering::AcqRel);
        self.freed.notify_waiters();
    }
}

/// The job's closure panicked; the pool thread survived.
#[derive(Debug, thiserror::Error)]
#[error("the job thread panicked: {0}")]
pub struct Panicked(pub String);

impl JobPool {
    /// Starts `slots` threads (at least one).
    pub fn new(slots: usize) -> std::io::Result<Self> {
        let slots = slots.max(1);
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..slots {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("peergrid-job-{i}"))
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || {
                    loop {
                        let task = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match task {
                            Ok(task) => task(),
                            Err(_) => return, // pool dropped
                        }
                    }
                })?;
        }
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            free: Arc::new(AtomicUsize::new(slots)),
            freed: Arc::new(Notify::new()),
            total: slots,
        })
    }

    /// Total slots.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Slots free right now.
    pub fn free(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(&self) -> Option<Slot> {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| f.checked_sub(1))
            .ok()
            .map(|_| Slot {
                free: Arc::clone(&self.free),
                freed: Arc::clone(&self.freed),
            })
    }

    /// Notified (all waiters) whenever a slot comes free. Create the
    /// `Notified` future and `enable` it before [`JobPool::try_acquire`], so
    /// a slot freed in between is not missed.
    pub fn freed(&self) -> &Notify {
        &self.freed
    }

    /// Runs `f` on a pool thread; the slot is released when `f` returns.
    /// The receiver yields `f`'s value, or [`Panicked`] if it panicked.
    pub fn run<R, F>(&self, slot: Slot, f: F) -> oneshot::Receiver<Result<R, Panicked>>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (done, rx) = oneshot::channel();
        let task: Task = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                Panicked(
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into()),
                )
            });
            drop(slot);
            let _ = done.send(result);
        });
        if let Ok(tx) = self.tx.lock()
            && let Some(tx) = tx.as_ref()
        {
            // Sending fails only if every thread is gone; the receiver then
            // sees a closed channel, which callers report as an error.
            let _ = tx.send(task);
        }
        rx
    }
}

impl Drop for JobPool {
    fn drop(&mut self) {
        // Closing the channel lets idle threads exit; running jobs finish.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_bound_admission_and_come_back() {
        let pool = JobPool::new(2).unwrap();
        let a = pool.try_acquire().unwrap();
        let b = pool.try_acquire().unwrap();
        assert!(pool.try_acquire().is_none());
        assert_eq!(pool.free(), 0);
        let got = pool.run(a, || 40 + 2).await.unwrap().unwrap();
        assert_eq!(got, 42);
        assert_eq!(pool.free(), 1);
        drop(b);
        assert_eq!(pool.free(), 2);
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_kill_the_pool() {
        let pool = JobPool::new(1).unwrap();
        let slot = pool.try_acquire().unwrap();
        let err = pool.run(slot, || -> u8 { panic!("boom") }).await.unwrap();
        assert!(err.unwrap_err().0.contains("boom"));
        let slot = pool.try_acquire().unwrap();
        assert_eq!(pool.run(slot, || 7).await.unwrap().unwrap(), 7);
    }

    #[tokio::test]
    async fn runs_off_the_runtime_threads() {
        let pool = JobPool::new(1).unwrap();
        let slot = pool.try_acquire().unwrap();
        let in_runtime = pool
            .run(slot, || tokio::runtime::Handle::try_current().is_ok())
            .await
            .unwrap()
            .unwrap();
        assert!(!in_runtime);
    }
}

//! The epoch ticker: a thread that advances the engines' epochs every
//! `epoch_tick`, which is what makes wall-time deadlines fire. It stops
//! (and is joined) when its owner is dropped.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use wasmtime::Engine;

/// Handle of the ticker thread; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts a thread calling `increment_epoch()` on each of `engines`
    /// every `tick`.
    pub(crate) fn start(engines: Vec<Engine>, tick: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("peergrid-epoch".into())
            .spawn(move || {
                // Any message or a dropped sender ends the loop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread cannot panic; nothing useful to do if it did.
            let _ = thread.join();
        }
    }
}

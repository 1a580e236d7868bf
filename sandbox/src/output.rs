//! Capped in-memory stdout/stderr for the guest.
//!
//! wasmtime-wasi's own `MemoryOutputPipe` reports a full pipe to the guest
//! as an I/O error, which most guests turn into a crash (a Rust guest
//! panics and aborts). We want two other behaviours instead:
//! stdout stops the job at the first byte past the cap (a trap the guest
//! cannot observe or handle, classified as
//! [`ExecError::OutputTooLarge`](crate::ExecError::OutputTooLarge)), and
//! stderr keeps its first bytes and silently drops the rest.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Largest write permit handed out; wasmtime-wasi writes in 4 KiB chunks.
const WRITE_PERMIT: usize = 64 * 1024;

/// What happens to bytes written past the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Keep what fits, then trap the guest.
    Trap,
    /// Keep what fits, silently drop the rest.
    Truncate,
}

#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

/// One capped output stream. Clones share the same buffer.
#[derive(Debug, Clone)]
pub(crate) struct OutputCapture {
    buffer: Arc<Mutex<Buffer>>,
    overflow: Overflow,
}

impl OutputCapture {
    /// An empty stream holding at most `cap` bytes.
    pub(crate) fn new(cap: usize, overflow: Overflow) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(Buffer {
                bytes: Vec::new(),
                cap,
                overflowed: false,
            })),
            overflow,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // The buffer stays consistent even if a holder panicked.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the guest tried to write past the cap.
    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Takes the bytes written so far.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.lock().bytes)
    }

    /// Appends what fits of `data`; returns how much was kept and whether
    /// anything was dropped.
    fn append(&self, data: &[u8]) -> (usize, bool) {
        let mut buffer = self.lock();
        let room = buffer.cap.saturating_sub(buffer.bytes.len());
        let kept = data.len().min(room);
        buffer
            .bytes
            .extend_from_slice(data.get(..kept).unwrap_or_default());
        let dropped = kept < data.len();
        if dropped {
            buffer.overflowed = true;
        }
        (kept, dropped)
    }
}

impl OutputStream for OutputCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let (_, dropped) = self.append(&bytes);
        if dropped && self.overflow == Overflow::Trap {
            return Err(StreamError::trap("stdout exceeded its size limit"));
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputCapture {
    async fn ready(&mut self) {}
}

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Used only by WASIp3-style consumers; WASIp1 goes through
/// [`OutputStream`]. Bytes past the cap fail the write in trap mode.
impl AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let (kept, dropped) = self.append(buf);
        Poll::Ready(match (dropped, self.overflow) {
            (true, Overflow::Trap) => Err(std::io::Error::other("stdout exceeded its size limit")),
            (true, Overflow::Truncate) => Ok(buf.len()),
            (false, _) => Ok(kept),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_mode_keeps_prefix_and_fails() {
        let mut out = OutputCapture::new(5, Overflow::Trap);
        assert!(OutputStream::write(&mut out, Bytes::from_static(b"abc")).is_ok());
        assert!(!out.overflowed());
        assert!(OutputStream::write(&mut out, Bytes::from_static(b"defg")).is_err());
        assert!(out.overflowed());
        assert_eq!(out.take(), b"abcde");
    }

    #[test]
    fn truncate_mode_is_silent() {
        let mut err = OutputCapture::new(2, Overflow::Truncate);
        assert!(OutputStream::write(&mut err, Bytes::from_static(b"xyz")).is_ok());
        assert!(OutputStream::write(&mut err, Bytes::from_static(b"w")).is_ok());
        assert_eq!(err.take(), b"xy");
    }

    #[test]
    fn exactly_the_cap_is_fine() {
        let mut out = OutputCapture::new(3, Overflow::Trap);
        assert!(OutputStream::write(&mut out, Bytes::from_static(b"abc")).is_ok());
        assert!(!out.overflowed());
        assert!(OutputStream::write(&mut out, Bytes::new()).is_ok());
        assert!(!out.overflowed());
    }
}

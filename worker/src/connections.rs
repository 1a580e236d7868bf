//! Connection limits: a cap on the connections a node holds open, in total
//! and per source IP, and a deadline on silent connections (a client that
//! connects and never sends, or goes quiet for good).
//!
//! [`limit_connections`] wraps any stream of accepted connections, so it
//! composes with whatever accepts them: put it on the raw TCP stream,
//! *before* a TLS handshake, so a flooder is refused before it costs a
//! handshake. A connection over a cap is closed at once (the client sees
//! its connection reset, not a hang); an admitted one is a [`Limited`]
//! wrapper that frees its place when dropped and fails its reads with
//! `TimedOut` after [`ConnectionLimits::first_byte_timeout`] without a first
//! byte, or [`ConnectionLimits::idle_timeout`] without any byte (hyper then
//! closes it). The server's HTTP/2 keepalive pings make an honest client
//! answer well within the idle timeout, even while it waits for a long job.
//!
//! ```ignore
//! // A stream of accepted connections (plaintext):
//! let incoming = limit_connections(TcpListenerStream::new(listener), gate);
//! server.serve_with_incoming_shutdown(incoming, shutdown)
//! // An accept loop (TLS): admit the TCP stream before the handshake.
//! let Ok(tcp) = connections::admit(tcp, &gate) else { continue };
//! let tls = acceptor.accept(tcp).await?;
//! ```

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;
use tracing::debug;

use crate::flood::ip_key;

/// Connection knobs of a node (part of [`crate::NodeConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, in total (default 1,024).
    pub max_connections: usize,
    /// Connections open at once from one source IP (IPv6: one /64;
    /// default 64).
    pub max_connections_per_ip: usize,
    /// A new connection that sends nothing for this long is closed
    /// (default 10 s).
    pub first_byte_timeout: Duration,
    /// A connection that sends nothing for this long is closed (default
    /// 120 s; keep it well above the HTTP/2 keepalive interval, which makes
    /// honest clients send a ping acknowledgement).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_ip: 64,
            first_byte_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The source IP of an accepted connection, for the per-IP cap.
pub trait RemoteIp {
    /// The peer's IP address, if known.
    fn remote_ip(&self) -> Option<IpAddr>;
}

impl RemoteIp for tokio::net::TcpStream {
    fn remote_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|a| a.ip())
    }
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionRefusal {
    /// The node holds `max_connections` already.
    #[error("max_connections ({0}) reached")]
    Total(usize),
    /// This IP holds `max_connections_per_ip` already.
    #[error("max_connections_per_ip ({0}) reached")]
    PerIp(usize),
}

/// Counts open connections and admits new ones under the caps.
#[derive(Debug)]
pub struct ConnectionGate {
    limits: ConnectionLimits,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ConnectionGate {
    /// A gate with these limits.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections closed at once because a cap was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections closed for sending nothing in time.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip` (unknown: counted in the total only).
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Permit, ConnectionRefusal> {
        let key = ip.map(ip_key);
        let mut per_ip = lock(&self.per_ip);
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ConnectionRefusal::Total(self.limits.max_connections));
        }
        if let Some(key) = key {
            let count = per_ip.entry(key).or_insert(0);
            if *count >= self.limits.max_connections_per_ip {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(ConnectionRefusal::PerIp(self.limits.max_connections_per_ip));
            }
            *count += 1;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            gate: Arc::clone(self),
            key,
        })
    }
}

/// One admitted connection's place; freed when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<ConnectionGate>,
    key: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per_ip = lock(&self.gate.per_ip);
        if let Some(key) = self.key
            && let Some(count) = per_ip.get_mut(&key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&key);
            }
        }
        self.gate.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits one accepted connection through `gate`, for accept loops that
/// are not a stream (a TLS acceptor's): wrap the TCP stream before the
/// handshake, and drop it (closing it) when this refuses.
pub fn admit<IO: RemoteIp>(
    io: IO,
    gate: &Arc<ConnectionGate>,
) -> Result<Limited<IO>, ConnectionRefusal> {
    let permit = gate.admit(io.remote_ip())?;
    Ok(Limited::new(io, permit))
}

/// Admits each accepted connection through `gate`: those over a cap are
/// dropped (closed) at once, the rest come out as [`Limited`]. Accept
/// errors pass through unchanged.
pub fn limit_connections<S, IO, E>(
    incoming: S,
    gate: Arc<ConnectionGate>,
) -> impl Stream<Item = Result<Limited<IO>, E>>
where
    S: Stream<Item = Result<IO, E>>,
    IO: RemoteIp,
{
    incoming.filter_map(move |accepted| {
        let admitted = match accepted {
            Err(e) => Some(Err(e)),
            Ok(io) => {
                let ip = io.remote_ip();
                match admit(io, &gate) {
                    Ok(limited) => Some(Ok(limited)),
                    Err(refusal) => {
                        debug!(?ip, %refusal, "connection closed at once");
                        None
                    }
                }
            }
        };
        std::future::ready(admitted)
    })
}

/// An admitted connection: the I/O object, its place under the caps, and
/// the deadline by which it must send its next byte.
#[derive(Debug)]
pub struct Limited<IO> {
    io: IO,
    permit: Permit,
    deadline: Pin<Box<Sleep>>,
    idle: Duration,
}

impl<IO> Limited<IO> {
    fn new(io: IO, permit: Permit) -> Self {
        let first = permit.gate.limits.first_byte_timeout;
        let idle = permit.gate.limits.idle_timeout;
        Self {
            io,
            permit,
            deadline: Box::pin(tokio::time::sleep(first)),
            idle,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.permit.gate.timed_out.fetch_add(1, Ordering::Relaxed);
                    debug!("closing a connection that sent nothing in time");
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection sent nothing within its deadline",
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: RemoteIp> RemoteIp for Limited<IO> {
    fn remote_ip(&self) -> Option<IpAddr> {
        self.io.remote_ip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(total: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            first_byte_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
        }
    }

    #[test]
    fn caps_count_total_and_per_ip_and_free_on_drop() {
        let gate = Arc::new(ConnectionGate::new(limits(3, 2)));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = gate.admit(Some(a)).unwrap();
        let _a2 = gate.admit(Some(a)).unwrap();
        assert_eq!(
            gate.admit(Some(a)).unwrap_err(),
            ConnectionRefusal::PerIp(2)
        );
        let _b1 = gate.admit(Some(b)).unwrap();
        assert_eq!(
            gate.admit(Some(b)).unwrap_err(),
            ConnectionRefusal::Total(3)
        );
        assert_eq!(gate.open(), 3);
        drop(a1);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(Some(a)).is_ok());
        assert_eq!(gate.refused(), 2);
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_a_talking_one_does_not() {
        let gate = Arc::new(ConnectionGate::new(limits(8, 8)));
        let (client, server) = tokio::io::duplex(64);
        let mut limited = Limited::new(server, gate.admit(None).unwrap());
        let mut buf = [0u8; 8];
        let started = std::time::Instant::now();
        let err = limited.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(gate.timed_out(), 1);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut limited = Limited::new(server, gate.admit(None).unwrap());
        for _ in 0..4 {
            client.write_all(b"x").await.unwrap();
            assert_eq!(limited.read(&mut buf).await.unwrap(), 1);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(
            gate.timed_out(),
            1,
            "bytes within the idle timeout keep it open"
        );
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_dropped_from_the_stream() {
        let gate = Arc::new(ConnectionGate::new(limits(2, 2)));
        struct Fake(IpAddr);
        impl RemoteIp for Fake {
            fn remote_ip(&self) -> Option<IpAddr> {
                Some(self.0)
            }
        }
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let accepted = futures::stream::iter((0..5).map(|_| Ok::<_, io::Error>(Fake(ip))));
        let admitted: Vec<_> = limit_connections(accepted, Arc::clone(&gate))
            .collect()
            .await;
        assert_eq!(admitted.len(), 2);
        assert_eq!(gate.refused(), 3);
    }
}

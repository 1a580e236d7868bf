//! Accepting connections for the gRPC server: TCP with Nagle off, then —
//! unless the node runs `insecure` — the TLS 1.3 handshake.
//!
//! Handshakes run concurrently, each in its own task under a deadline and
//! a cap on how many may be in progress, so a client that connects and
//! never finishes its handshake (or thousands of them) holds one bounded
//! task each and never delays anyone else's connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::connections::{self, ConnectionGate, Limited};

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at most; connections beyond it are closed.
pub const MAX_HANDSHAKES: usize = 256;

/// Accepted plaintext connections, admitted by `gate`, with Nagle's
/// algorithm off: the server
/// builder's `tcp_nodelay` only applies to sockets it accepts itself, and
/// small request/response messages would otherwise wait for delayed ACKs
/// (~40 ms).
pub fn plain(
    listener: TcpListener,
    gate: Arc<ConnectionGate>,
) -> impl tokio_stream::Stream<Item = io::Result<Limited<TcpStream>>> {
    let accepted = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        if let Ok(s) = &stream {
            nodelay(s);
        }
        stream
    });
    connections::limit_connections(accepted, gate)
}

/// Connections admitted by `gate` (see [`crate::connections`]) that then
/// completed the TLS handshake with `acceptor`. The gate is applied to the
/// raw TCP connection, so a flooder over its cap costs no handshake. The
/// accept loop stops when the returned stream is dropped (server shutdown).
pub fn tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    gate: Arc<ConnectionGate>,
) -> ReceiverStream<io::Result<TlsStream<Limited<TcpStream>>>> {
    let (tx, rx) = mpsc::channel(64);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            nodelay(&tcp);
            let tcp = match connections::admit(tcp, &gate) {
                Ok(limited) => limited,
                Err(refusal) => {
                    debug!(%remote, %refusal, "connection closed at once");
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                debug!(%remote, "too many TLS handshakes in progress; connection closed");
                continue;
            };
            let tx = tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        // The server may have shut down meanwhile.
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn nodelay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        warn!(error = %e, "could not disable Nagle on an accepted connection");
    }
}

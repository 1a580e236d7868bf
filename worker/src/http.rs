//! The small HTTP/1.1 server behind a node's side endpoints: the Prometheus
//! metrics ([`crate::metrics`]) and the status page ([`crate::ui`]). Both
//! are off by default and meant for the operator, not for peers.
//!
//! One accept loop for both, so they share their limits: at most
//! [`MAX_CONNECTIONS`] connections served at once (more are closed at once,
//! not queued), [`HEADER_TIMEOUT`] to send the request headers and
//! [`CONNECTION_TIMEOUT`] for a whole connection, so a slow client cannot
//! hold the endpoint open.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// Connections served at once by one endpoint.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection may stay open, keep-alive included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, answering
/// every request with `handle` (`what` names the endpoint in logs).
pub(crate) async fn serve<H, F>(
    what: &'static str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    handle: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            debug!(%remote, "{what} busy; connection closed");
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = handle(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Err(e)) => debug!(%remote, error = %e, "{what} connection failed"),
                Err(_) => debug!(%remote, "{what} connection closed after its time limit"),
                Ok(Ok(())) => {}
            }
        });
    }
}

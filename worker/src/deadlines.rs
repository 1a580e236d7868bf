//! Server-side deadlines on every call and the HTTP/2 limits of the gRPC
//! server, so no client can hold a handler, a stream or a slot forever.
//!
//! [`DeadlineLayer`] (a tower layer for `Server::layer`) gives each method
//! its own deadline — short calls (`Hello`, `HasModules`, gossip, status,
//! health, reflection) seconds, `Execute` the longest job plus compile
//! time, `PutModule` the largest upload at a slow rate — and answers
//! `DEADLINE_EXCEEDED` naming the limit when it passes. The request body of a unary call must arrive
//! within [`CallLimits::request_body`]: tonic reads it before any handler
//! runs, so a client that opens a stream and never sends its message is
//! cut off here. [`server_builder`] sets the HTTP/2 limits and installs the
//! layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;
use tower::layer::util::{Identity, Stack};

/// Deadlines and HTTP/2 limits of the gRPC server (part of
/// [`crate::NodeConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLimits {
    /// Short calls: `Hello`, `HasModules`, `Gossip`, `Members`, `Status`,
    /// health checks, and a whole server-reflection stream (default 10 s).
    pub short_call: Duration,
    /// A whole `Execute` call, queueing, compiling and running included
    /// (default 15 min: the 10-minute job cap plus compile time).
    pub execute: Duration,
    /// A whole `PutModule` upload (default 20 min: 256 MiB at 256 KiB/s).
    pub upload: Duration,
    /// The longest wait for the next chunk of a `PutModule` stream
    /// (default 15 s).
    pub upload_chunk: Duration,
    /// The request message of a unary call must arrive within this long
    /// of its headers (default 30 s).
    pub request_body: Duration,
    /// Any other method (default 60 s).
    pub other: Duration,
    /// Concurrent HTTP/2 streams per connection (default 256).
    pub max_concurrent_streams: u32,
    /// Requests served at once per connection (default 64).
    pub concurrency_per_connection: usize,
    /// HTTP/2 keepalive ping interval (default 30 s).
    pub keepalive_interval: Duration,
    /// A keepalive ping unanswered this long closes the connection
    /// (default 20 s).
    pub keepalive_timeout: Duration,
    /// Largest HTTP/2 header list accepted, in bytes (default 16 KiB).
    pub max_header_list_bytes: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            short_call: Duration::from_secs(10),
            execute: Duration::from_secs(15 * 60),
            upload: Duration::from_secs(20 * 60),
            upload_chunk: Duration::from_secs(15),
            request_body: Duration::from_secs(30),
            other: Duration::from_secs(60),
            max_concurrent_streams: 256,
            concurrency_per_connection: 64,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_header_list_bytes: 16 << 10,
        }
    }
}

/// What a method is, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Short,
    Execute,
    Upload,
    Other,
}

fn kind_of(path: &str) -> Kind {
    match path {
        "/peergrid.v1.Worker/Execute" => Kind::Execute,
        "/peergrid.v1.Worker/PutModule" => Kind::Upload,
        "/peergrid.v1.Worker/Hello"
        | "/peergrid.v1.Worker/HasModules"
        | "/peergrid.v1.Membership/Gossip"
        | "/peergrid.v1.Membership/Members"
        | "/peergrid.v1.Node/Status"
        | "/grpc.health.v1.Health/Check"
        | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => Kind::Short,
        _ => Kind::Other,
    }
}

impl CallLimits {
    fn deadline(&self, kind: Kind) -> (Duration, &'static str) {
        match kind {
            Kind::Short => (self.short_call, "short_call"),
            Kind::Execute => (self.execute, "execute"),
            Kind::Upload => (self.upload, "upload"),
            Kind::Other => (self.other, "other"),
        }
    }
}

/// The tower layer that puts a deadline on every call.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    limits: Arc<CallLimits>,
}

impl DeadlineLayer {
    /// A layer enforcing `limits`.
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits: Arc::new(limits),
        }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadlines<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadlines {
            inner,
            limits: Arc::clone(&self.limits),
        }
    }
}

/// The service [`DeadlineLayer`] wraps around the gRPC routes.
#[derive(Debug, Clone)]
pub struct Deadlines<S> {
    inner: S,
    limits: Arc<CallLimits>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ResBody> Service<http::Request<Body>> for Deadlines<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let kind = kind_of(request.uri().path());
        let (limit, name) = self.limits.deadline(kind);
        let request = if kind == Kind::Upload {
            request
        } else {
            let within = self.limits.request_body;
            request.map(|body| Body::new(TimedBody::new(body, within)))
        };
        // The clone that was made ready is the one called (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, call).await {
                Ok(response) => response,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "call exceeded the server's {name} deadline of {} s",
                    limit.as_secs_f64()
                ))
                .into_http()),
            }
        })
    }
}

/// A request body that fails with `DEADLINE_EXCEEDED` if it has not ended
/// within its deadline.
struct TimedBody {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    within: Duration,
}

impl TimedBody {
    fn new(body: Body, within: Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(within)),
            within,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                    "request message not received within the server's request_body \
                     deadline of {} s",
                    this.within.as_secs_f64()
                ))))),
                Poll::Pending => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The gRPC server builder with every limit of `limits`: HTTP/2 streams,
/// keepalive, header list size, per-connection concurrency, the overall
/// handler timeout and the [`DeadlineLayer`].
pub fn server_builder(
    limits: &CallLimits,
) -> tonic::transport::Server<Stack<DeadlineLayer, Identity>> {
    let longest = limits
        .execute
        .max(limits.upload)
        .max(limits.short_call)
        .max(limits.other);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_adaptive_window(Some(true))
        .max_concurrent_streams(Some(limits.max_concurrent_streams))
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .http2_max_header_list_size(Some(limits.max_header_list_bytes))
        .timeout(longest)
        .layer(DeadlineLayer::new(limits.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_deadline() {
        let limits = CallLimits::default();
        assert_eq!(
            limits.deadline(kind_of("/peergrid.v1.Worker/Hello")).0,
            limits.short_call
        );
        assert_eq!(
            limits.deadline(kind_of("/peergrid.v1.Membership/Gossip")).0,
            limits.short_call
        );
        assert_eq!(
            limits.deadline(kind_of("/peergrid.v1.Node/Status")).0,
            limits.short_call
        );
        assert_eq!(
            limits
                .deadline(kind_of(
                    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
                ))
                .0,
            limits.short_call
        );
        assert_eq!(
            limits.deadline(kind_of("/peergrid.v1.Worker/Execute")).0,
            limits.execute
        );
        assert_eq!(
            limits.deadline(kind_of("/peergrid.v1.Worker/PutModule")).0,
            limits.upload
        );
        assert_eq!(limits.deadline(kind_of("/x.Y/Z")).0, limits.other);
    }

    #[tokio::test]
    async fn a_slow_handler_gets_deadline_exceeded_naming_the_limit() {
        use tower::Layer;
        let limits = CallLimits {
            short_call: Duration::from_millis(50),
            ..CallLimits::default()
        };
        let slow = tower::service_fn(|_: http::Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        });
        let mut svc = DeadlineLayer::new(limits).layer(slow);
        let request = http::Request::builder()
            .uri("/peergrid.v1.Worker/Hello")
            .body(Body::empty())
            .unwrap();
        let response = svc.call(request).await.unwrap();
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(
            status.message().contains("short_call"),
            "{}",
            status.message()
        );
    }
}

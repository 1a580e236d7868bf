//! peergrid's multi-node integration tests: real nodes on 127.0.0.1
//! ephemeral ports, real gRPC, real signatures, real wasmtime.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod batch;
mod certificates;
mod embed;
mod execute_batch;
mod failover;
mod flood;
mod hostile;
mod malformed;
mod membership;
mod persistence;
mod quorum;
mod reputation;
mod signatures;
mod status;
mod tls;
mod transport;

//! A gRPC client that sends raw bytes as the request message: for garbage
//! and truncated protobufs that a generated client cannot produce.

use bytes::{Buf, BufMut};
use peergrid_proto::Identity;
use peergrid_proto::tls::Transport;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// Passes bytes through unchanged in both directions.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// Sends `body` as the request message of unary method `path`
/// (e.g. `/peergrid.v1.Worker/Execute`) to `addr`, over TLS with a fresh
/// identity.
pub async fn call(addr: &str, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let endpoint = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::internal(e.to_string()))?;
    let transport =
        Transport::tls(&Identity::generate()).map_err(|e| Status::internal(e.to_string()))?;
    let channel = transport
        .connect(endpoint, None)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?
        .channel;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

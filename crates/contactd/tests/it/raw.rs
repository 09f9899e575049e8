//! Calls of any RPC by its path with whatever bytes the test chooses, as a hostile or merely
//! generic client would send them: the bytes are framed as gRPC messages but never checked
//! against the RPC's message type on the way out.

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// Sends and receives messages as raw bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// Calls the unary RPC at `path` (`/package.Service/Method`) with `request`'s bytes.
pub async fn unary(
    channel: &Channel,
    path: &str,
    request: Request<Vec<u8>>,
) -> Result<Response<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    grpc.unary(
        request,
        http::uri::PathAndQuery::try_from(path).map_err(|_| Status::internal("a path"))?,
        RawCodec,
    )
    .await
}

/// Opens the server-streaming RPC at `path` with `request`'s bytes.
pub async fn server_streaming(
    channel: &Channel,
    path: &str,
    request: Request<Vec<u8>>,
) -> Result<Response<Streaming<Vec<u8>>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    grpc.server_streaming(
        request,
        http::uri::PathAndQuery::try_from(path).map_err(|_| Status::internal("a path"))?,
        RawCodec,
    )
    .await
}

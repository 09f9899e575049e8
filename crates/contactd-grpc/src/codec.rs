//! The protobuf codec of every service and client: prost's, with smaller buffers. tonic's
//! default gives each call 8 KiB to encode into and 8 KiB to decode from, and lets 32 KiB
//! pile up before it hands a streamed response to HTTP/2. Requests and answers here are a few
//! hundred bytes, and 400 live streams whose clients do not read would hold those buffers all
//! the while; the buffers grow when a message needs more.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Bytes each call's encoder and decoder start with.
const BUFFER_BYTES: usize = 1024;
/// Bytes of a streamed response gathered before they go out.
const YIELD_BYTES: usize = 8 * 1024;

/// prost with [`BUFFER_BYTES`] and [`YIELD_BYTES`].
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(BUFFER_BYTES, YIELD_BYTES))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::new(BUFFER_BYTES, YIELD_BYTES))
    }
}

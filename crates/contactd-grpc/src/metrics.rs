//! The one layer that counts calls: around the access layer, so that every answer is counted
//! (refused callers, throttled ones and calls failed fast while the database is out of reach
//! too), each by its RPC and its gRPC status code, with the time from its arrival to its
//! answer. A unary error is answered in the headers (`grpc-status`, trailers-only); every
//! other answer, streams included, carries its code in the trailers at the end of the body,
//! so the call is counted when its body ends, or as `CANCELLED` when the body is dropped
//! before (the client went away). Health and reflection are not counted.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use contactd_access::Rpc;
use contactd_app::Recording;
use http::{HeaderMap, Request, Response};
use tonic::Code;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

use crate::access::BoxFuture;

const STATUS_HEADER: &str = "grpc-status";

#[derive(Debug, Clone)]
pub(crate) struct MetricsLayer {
    recording: Recording,
}

impl MetricsLayer {
    pub(crate) fn new(recording: Recording) -> Self {
        Self { recording }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            recording: self.recording.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MetricsService<S> {
    inner: S,
    recording: Recording,
}

impl<S, B> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let arrived = Instant::now();
        // The clone that was made ready serves this call; the fresh one waits for the next.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let Some(rpc) = Rpc::from_path(request.uri().path()) else {
            return Box::pin(inner.oneshot(request));
        };
        let recording = self.recording.clone();
        Box::pin(async move {
            let response = inner.oneshot(request).await?;
            let call = Call {
                rpc: rpc.name(),
                arrived,
                recording,
            };
            if let Some(code) = status_code(response.headers()) {
                call.answered(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(CountedBody {
                    body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// A call not yet counted.
#[derive(Debug)]
struct Call {
    rpc: &'static str,
    arrived: Instant,
    recording: Recording,
}

impl Call {
    fn answered(self, code: Code) {
        self.recording
            .call_answered(self.rpc, code_name(code), self.arrived.elapsed());
    }
}

/// The code of a `grpc-status` header, if there is one.
fn status_code(headers: &HeaderMap) -> Option<Code> {
    let raw = headers.get(STATUS_HEADER)?.to_str().ok()?;
    Some(Code::from_i32(raw.trim().parse().ok()?))
}

/// The code's name as gRPC writes it (`OK`, `INVALID_ARGUMENT`, …).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A response body that counts its call from its trailers when it ends.
#[derive(Debug)]
struct CountedBody {
    body: Body,
    call: Option<Call>,
}

impl CountedBody {
    fn count(&mut self, code: Code) {
        if let Some(call) = self.call.take() {
            call.answered(code);
        }
    }
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    // Trailers without a status are not gRPC's: as a client would, call it so.
                    let code = status_code(trailers).unwrap_or(Code::Unknown);
                    self.count(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.count(Code::Internal),
            Poll::Ready(None) => self.count(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        // Dropped before its trailers: the client reset the stream or the connection closed.
        self.count(Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_status_header_gives_its_code_and_its_name() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert(STATUS_HEADER, HeaderValue::from_static("3"));
        assert_eq!(status_code(&headers), Some(Code::InvalidArgument));
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        headers.insert(STATUS_HEADER, HeaderValue::from_static("nonsense"));
        assert_eq!(status_code(&headers), None);
    }
}

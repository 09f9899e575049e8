//! The one identity layer in front of every service (contacts, audit, directory mirror): a
//! tower layer that, before a request's bytes are decoded, gives the call its request id,
//! proves who is calling (a trusted header, a bearer token or a client certificate), spends
//! one unit of the caller's rate limits and sets the call's deadline. The handler then checks
//! the RPC's action and resource against the policies ([`admitted`]) before it touches state.
//! Answers raised before the handler (a request whose bytes do not decode, one too large, an
//! unknown method, a deadline) get the request id too, and undecodable bytes answer
//! `INVALID_ARGUMENT` instead of tonic's `INTERNAL`. Health and reflection pass unchecked.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use contactd_access::{Authorizer, CertificateAccounts, RateLimiter, Rpc, TokenVerifier, Watched};
use contactd_app::{CallContext, DatabaseHealth, Principal, RequestId};
use contactd_domain::AccountId;
use contactd_net::{CallGuard, ConnectionInfo};
use http::{HeaderMap, Request, Response};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer, Service, ServiceExt};

use crate::status::{self, REQUEST_ID_HEADER};

pub(crate) const ACCOUNT_HEADER: &str = "x-acs-account-id";
pub(crate) const CORRELATION_HEADER: &str = "x-acs-correlation-id";
const TRACEPARENT_HEADER: &str = "traceparent";
const TRACESTATE_HEADER: &str = "tracestate";
const AUTHORIZATION_HEADER: &str = "authorization";
const TIMEOUT_HEADER: &str = "grpc-timeout";

/// How callers prove who they are.
#[derive(Debug)]
pub enum Identity {
    /// The account named by metadata `x-acs-account-id`, trusted as given.
    TrustedHeader,
    /// A JWT in `authorization: Bearer …`, naming the principal (`sub`) and the account.
    BearerToken(TokenVerifier),
    /// The client certificate of the connection; the mapping file says which account each
    /// certificate acts for.
    ClientCertificate(Watched<CertificateAccounts>),
}

/// Everything the layer checks a call against.
#[derive(Debug)]
pub struct Access {
    pub identity: Identity,
    pub authorizer: Authorizer,
    pub limits: RateLimiter,
    /// The longest a call may run; a client's shorter `grpc-timeout` wins.
    pub call_timeout: Duration,
}

/// Why a caller was not let in: logged at debug level, never told beyond "missing or invalid".
#[derive(Debug)]
enum NotProven {
    Missing(&'static str),
    Invalid(String),
}

impl std::fmt::Display for NotProven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(what) => write!(f, "missing {what}"),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

impl Access {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        connection: Option<&ConnectionInfo>,
    ) -> Result<Principal, NotProven> {
        match &self.identity {
            Identity::TrustedHeader => {
                let raw = single(headers, ACCOUNT_HEADER)?;
                let account = AccountId::parse(raw)
                    .map_err(|_| NotProven::Invalid("malformed account header".to_owned()))?;
                Ok(Principal::trusted_account(account))
            }
            Identity::BearerToken(verifier) => {
                let raw = single(headers, AUTHORIZATION_HEADER)?;
                let token = contactd_access::bearer(raw)
                    .ok_or_else(|| NotProven::Invalid("not a bearer token".to_owned()))?;
                verifier
                    .verify(token, SystemTime::now())
                    .map_err(|reason| NotProven::Invalid(reason.to_string()))
            }
            Identity::ClientCertificate(accounts) => {
                let name = connection
                    .and_then(|connection| connection.peer.as_ref())
                    .map(|peer| peer.name.as_str())
                    .ok_or(NotProven::Missing("client certificate"))?;
                accounts.current().principal(name).ok_or_else(|| {
                    NotProven::Invalid(format!("certificate {name:?} is mapped to no account"))
                })
            }
        }
    }
}

/// The one value of a header that must appear exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, NotProven> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(NotProven::Missing(name)),
        (Some(value), None) => value
            .to_str()
            .map_err(|_| NotProven::Invalid(format!("{name} is not text"))),
        (Some(_), Some(_)) => Err(NotProven::Invalid(format!("{name} given more than once"))),
    }
}

/// A correlation id the caller passes along, if it is a short printable token; else the trace
/// id of the W3C `traceparent` it sent, so that the events of a traced call name its trace;
/// otherwise the request id stands in for it.
fn correlation_id(headers: &HeaderMap) -> Option<String> {
    let given = headers
        .get(CORRELATION_HEADER)
        .and_then(|raw| raw.to_str().ok())
        .filter(|raw| (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()));
    match given {
        Some(given) => Some(given.to_owned()),
        None => Some(TraceParent::of(headers)?.trace_id.to_owned()),
    }
}

/// A valid W3C `traceparent`: the trace a call is part of and the caller's span in it. The one
/// reading of the header, for the correlation id and the call's OpenTelemetry parent alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TraceParent<'a> {
    trace_id: &'a str,
    parent_id: &'a str,
    flags: &'a str,
}

impl<'a> TraceParent<'a> {
    fn of(headers: &'a HeaderMap) -> Option<Self> {
        Self::parse(headers.get(TRACEPARENT_HEADER)?.to_str().ok()?)
    }

    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase; ids of zeros are
    /// invalid; later versions may append fields. (OpenTelemetry's own propagator takes ids
    /// shorter than that, which the standard refuses.)
    fn parse(traceparent: &'a str) -> Option<Self> {
        let mut fields = traceparent.trim().split('-');
        let (version, trace_id, parent_id, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let hex = |field: &str, len: usize| {
            field.len() == len
                && field
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let zero = |field: &str| field.bytes().all(|b| b == b'0');
        let valid = hex(version, 2)
            && version != "ff"
            && (version != "00" || fields.next().is_none())
            && hex(trace_id, 32)
            && !zero(trace_id)
            && hex(parent_id, 16)
            && !zero(parent_id)
            && hex(flags, 2);
        valid.then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The caller's span, as the parent the call's span continues the trace from (with the
    /// caller's sampling decision and `tracestate`).
    fn remote_context(self, headers: &HeaderMap) -> Option<opentelemetry::Context> {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        let flags = TraceFlags::new(u8::from_str_radix(self.flags, 16).ok()?) & TraceFlags::SAMPLED;
        let state = headers
            .get(TRACESTATE_HEADER)
            .and_then(|raw| raw.to_str().ok())
            .and_then(|raw| raw.parse::<TraceState>().ok())
            .unwrap_or_default();
        let caller = SpanContext::new(
            TraceId::from_hex(self.trace_id).ok()?,
            SpanId::from_hex(self.parent_id).ok()?,
            flags,
            true,
            state,
        );
        Some(opentelemetry::Context::new().with_remote_span_context(caller))
    }
}

/// The time a client allows its call (`grpc-timeout`: at most 8 digits and a unit).
fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(TIMEOUT_HEADER)?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// What the layer hands the handler of a call it let in.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    ctx: CallContext,
    rpc: Rpc,
    source: Option<IpAddr>,
    access: Arc<Access>,
}

/// The request a handler may serve: its context and message, once the principal may do the
/// RPC's action on its resource. Without an admission (a service served without the layer)
/// nothing is let in.
pub(crate) fn admitted<Req: Target>(
    request: tonic::Request<Req>,
) -> Result<(CallContext, Req), Status> {
    let Some(admission) = request.extensions().get::<Admission>().cloned() else {
        return Err(status::unauthenticated(&RequestId::generate().to_string()));
    };
    let message = request.into_inner();
    let Admission {
        ctx,
        rpc,
        source,
        access,
    } = admission;
    match access
        .authorizer
        .authorize(&ctx.principal, rpc, message.contact_id(), source)
    {
        Ok(()) => Ok((ctx, message)),
        Err(_denied) => Err(status::no_permission(&ctx.request_id.to_string())),
    }
}

/// Requests name the contact their resource is about, if any.
pub(crate) trait Target {
    fn contact_id(&self) -> &str;
}

macro_rules! targets {
    (contact: $($with:ty),*; none: $($without:ty),*) => {
        $(impl Target for $with {
            fn contact_id(&self) -> &str {
                &self.contact_id
            }
        })*
        $(impl Target for $without {
            fn contact_id(&self) -> &str {
                ""
            }
        })*
    };
}

use crate::proto::*;

targets!(
    contact: UpdateMessageContactRequest, DeleteMessageContactRequest, GetMessageContactRequest,
        ListMessageContactsRequest, GetMessageContactDeletionStatusRequest,
        SendEmailVerificationForMessageContactRequest,
        SendPhoneVerificationForMessageContactRequest, ListMessageContactVerificationsRequest,
        CancelMessageContactUpdateRequest, ConfirmMessageContactVerificationRequest,
        AssociateMembersRequest, DisassociateMembersRequest, ListMessageContactEventsRequest,
        GetMessageContactAsOfRequest, ForgetMessageContactRequest;
    none: AddMessageContactRequest, StreamEventsRequest, GetResourceDirectoryRequest,
        RegisterFolderRequest, RemoveFolderRequest, RegisterMemberRequest, MoveMemberRequest,
        RemoveMemberRequest
);

/// The layer, applied to the server's routes.
#[derive(Debug, Clone)]
pub(crate) struct AccessLayer {
    access: Arc<Access>,
    /// The server's request size limit, for the answer to a larger request.
    max_request_bytes: usize,
    /// While the database is known not to answer, calls fail at once rather than wait for it.
    database: DatabaseHealth,
}

impl AccessLayer {
    pub(crate) fn new(
        access: Arc<Access>,
        max_request_bytes: usize,
        database: DatabaseHealth,
    ) -> Self {
        Self {
            access,
            max_request_bytes,
            database,
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            access: Arc::clone(&self.access),
            max_request_bytes: self.max_request_bytes,
            database: self.database.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AccessService<S> {
    inner: S,
    access: Arc<Access>,
    max_request_bytes: usize,
    database: DatabaseHealth,
}

/// The future of a layer's call (this one's and the metrics layer's).
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for AccessService<S>
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
        // The clone that was made ready serves this call; the fresh one waits for the next.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let access = Arc::clone(&self.access);
        let max_request_bytes = self.max_request_bytes;
        let database_up = self.database.is_up();
        Box::pin(
            async move { Ok(admit(access, max_request_bytes, database_up, inner, request).await) },
        )
    }
}

async fn admit<S, B>(
    access: Arc<Access>,
    max_request_bytes: usize,
    database_up: bool,
    inner: S,
    mut request: Request<B>,
) -> Response<Body>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Send,
    S::Future: Send,
{
    let connection = request.extensions().get::<ConnectionInfo>().cloned();
    // Every call, health checks included, keeps its connection from counting as idle.
    let guard = connection.as_ref().map(ConnectionInfo::begin_call);
    let Some(rpc) = Rpc::from_path(request.uri().path()) else {
        let response = inner.oneshot(request).await;
        return guarded(into_response(response), guard);
    };
    let request_id = RequestId::generate();
    let id = request_id.to_string();
    let principal = match access.authenticate(request.headers(), connection.as_ref()) {
        Ok(principal) => principal,
        Err(reason) => {
            tracing::debug!(request_id = %id, rpc = rpc.name(), %reason, "caller not proven");
            return guarded(status::unauthenticated(&id).into_http(), guard);
        }
    };
    if let Err(retry) = access.limits.check(&principal, rpc.class(), Instant::now()) {
        tracing::info!(
            request_id = %id, rpc = rpc.name(), principal = %principal,
            retry_after_ms = retry.0.as_millis() as u64, "call throttled"
        );
        return guarded(status::throttled(&id, retry.0).into_http(), guard);
    }
    if !database_up {
        return guarded(status::database_unavailable(&id).into_http(), guard);
    }
    let client_timeout = client_timeout(request.headers()).filter(|t| *t < access.call_timeout);
    let timeout = client_timeout.unwrap_or(access.call_timeout);
    let ctx = CallContext::for_principal(principal, request_id, correlation_id(request.headers()));
    let source = connection.as_ref().map(|c| c.remote_addr.ip());
    // Every line logged within the call names it, its request and its account.
    let span = tracing::info_span!(
        "call", rpc = rpc.name(), request_id = %id, account = %ctx.account_id
    );
    // Traced (an OpenTelemetry layer is installed), the call's span continues the caller's
    // trace; otherwise this does nothing.
    if let Some(caller) = TraceParent::of(request.headers())
        .and_then(|parent| parent.remote_context(request.headers()))
    {
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, caller);
    }
    request.extensions_mut().insert(Admission {
        ctx,
        rpc,
        source,
        access,
    });
    let deadline = tokio::time::Instant::now() + timeout;
    // A client's shorter deadline reaches the store, which stops its statements then; the
    // server's own is the database session's `statement_timeout` already, at no cost per call.
    let call = async {
        match client_timeout {
            Some(_) => {
                contactd_app::deadline::within(deadline.into_std(), inner.oneshot(request)).await
            }
            None => inner.oneshot(request).await,
        }
    };
    let call = tracing::Instrument::instrument(call, span);
    let response = match tokio::time::timeout_at(deadline, call).await {
        Ok(response) => into_response(response),
        Err(_) => status::with_request_id(
            Status::deadline_exceeded("The call did not complete within its deadline."),
            &id,
        )
        .into_http(),
    };
    guarded(
        answered_before_handler(response, &id, max_request_bytes),
        guard,
    )
}

fn into_response(response: Result<Response<Body>, Infallible>) -> Response<Body> {
    match response {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// An error answered before the handler ran carries no request id: tonic's own, mostly about
/// the request's bytes. Those answer as the contract says, with the request id.
fn answered_before_handler(
    response: Response<Body>,
    request_id: &str,
    max_request_bytes: usize,
) -> Response<Body> {
    let headers = response.headers();
    if headers.contains_key(REQUEST_ID_HEADER) {
        return response;
    }
    let Some(raised) = Status::from_header_map(headers) else {
        return response;
    };
    let answer = match raised.code() {
        Code::Ok => return response,
        // Undecodable bytes, a frame shorter than it declares, a missing message.
        Code::Internal | Code::Unknown => {
            tracing::debug!(request_id, cause = raised.message(), "request not decoded");
            status::undecodable(request_id, "its bytes are not the RPC's message")
        }
        // Refused from the length prefix, before anything was allocated for it.
        Code::OutOfRange | Code::ResourceExhausted => status::with_request_id(
            Status::resource_exhausted(format!(
                "The request is larger than the limit of {max_request_bytes} bytes."
            )),
            request_id,
        ),
        _ => status::with_request_id(raised, request_id),
    };
    answer.into_http()
}

/// Holds the connection's call guard until the response's body has been sent.
fn guarded(response: Response<Body>, guard: Option<CallGuard>) -> Response<Body> {
    match guard {
        None => response,
        Some(guard) => response.map(|body| {
            Body::new(GuardedBody {
                body,
                _guard: guard,
            })
        }),
    }
}

#[derive(Debug)]
struct GuardedBody {
    body: Body,
    _guard: CallGuard,
}

impl http_body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn a_client_timeout_is_read_in_each_unit_and_nonsense_is_ignored() {
        let timeout = |raw| client_timeout(&headers(&[(TIMEOUT_HEADER, raw)]));
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("10u"), Some(Duration::from_micros(10)));
        assert_eq!(timeout("10n"), Some(Duration::from_nanos(10)));
        assert_eq!(timeout("S"), None);
        assert_eq!(timeout("123456789S"), None);
        assert_eq!(timeout("1x"), None);
        assert_eq!(timeout("-1S"), None);
        assert_eq!(client_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn the_account_header_must_appear_once() {
        assert!(matches!(
            single(&HeaderMap::new(), ACCOUNT_HEADER),
            Err(NotProven::Missing(_))
        ));
        assert!(matches!(
            single(
                &headers(&[(ACCOUNT_HEADER, "1"), (ACCOUNT_HEADER, "2")]),
                ACCOUNT_HEADER
            ),
            Err(NotProven::Invalid(_))
        ));
        assert_eq!(
            single(&headers(&[(ACCOUNT_HEADER, "1")]), ACCOUNT_HEADER).ok(),
            Some("1")
        );
    }

    #[test]
    fn without_a_correlation_id_a_valid_traceparent_gives_its_trace_id() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent = format!("00-{trace}-00f067aa0ba902b7-01");
        assert_eq!(
            correlation_id(&headers(&[(TRACEPARENT_HEADER, &parent)])),
            Some(trace.to_owned())
        );
        assert_eq!(
            correlation_id(&headers(&[
                (TRACEPARENT_HEADER, &parent),
                (CORRELATION_HEADER, "mine")
            ])),
            Some("mine".to_owned()),
            "the caller's own correlation id wins"
        );
        for invalid in [
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{trace}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", trace.to_uppercase()),
            format!("ff-{trace}-00f067aa0ba902b7-01"),
            format!("00-{trace}-00f067aa0ba902b7-01-extra"),
            format!("00-{trace}-00f067aa0ba902b7"),
            "garbage".to_owned(),
        ] {
            assert_eq!(
                correlation_id(&headers(&[(TRACEPARENT_HEADER, &invalid)])),
                None,
                "{invalid}"
            );
        }
        let later_version = format!("01-{trace}-00f067aa0ba902b7-01-more");
        assert_eq!(
            TraceParent::parse(&later_version).map(|parent| parent.trace_id),
            Some(trace)
        );
    }

    #[test]
    fn a_correlation_id_must_be_short_and_printable() {
        assert_eq!(
            correlation_id(&headers(&[(CORRELATION_HEADER, "abc-1")])),
            Some("abc-1".to_owned())
        );
        assert_eq!(
            correlation_id(&headers(&[(CORRELATION_HEADER, &"x".repeat(129))])),
            None
        );
    }
}

//! Traces: the real binary exports its spans over OTLP/gRPC to a collector stand-in served
//! here; a call's spans arrive in the caller's trace, parent-linked, the group that wrote an
//! update linked to it, and no span holds personal data.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::wrappers::TcpListenerStream;

use crate::support::*;

/// What a collector received: each span with the `service.name` of its resource.
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| text(attribute.value.as_ref()))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                spans.extend(scope_spans.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves the collector on a port of its own; its endpoint.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        endpoint
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
}

fn text(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        other => Some(format!("{other:?}")),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute: &&KeyValue| attribute.key == key)
        .and_then(|attribute| text(attribute.value.as_ref()))
}

/// The one span named `name` in `trace`.
fn the_span<'a>(spans: &'a [(String, Span)], trace: &[u8], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .map(|(_, span)| span)
        .filter(|span| span.trace_id == trace && span.name == name)
        .collect();
    match found[..] {
        [span] => span,
        _ => panic!(
            "{} spans named {name:?} in the trace; received: {:?}",
            found.len(),
            spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
        ),
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `request` as part of the trace `trace_id`, called from its span `parent_id`.
fn traced<T>(mut request: tonic::Request<T>, trace_id: &str, parent_id: &str) -> tonic::Request<T> {
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    request
}

async fn a_call_is_traced_in_the_callers_trace_down_to_its_append_and_group(db: TestDb) {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    // Traced whatever the log level.
    let mut server = Process::start_with(&db, &["--otlp-endpoint", &endpoint], "warn");
    let mut client = server.client().await;
    let (trace_id, parent_id) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let name = "Traceable";
    let request = traced(as_account(ACCOUNT, add_request(name)), trace_id, parent_id);
    let contact_id = client
        .add_message_contact(request)
        .await
        .expect("add")
        .into_inner()
        .contact
        .expect("the added contact")
        .contact_id;
    // A plain update is written by a group (on either store), in a trace of its own.
    let (update_trace_id, update_parent_id) =
        ("5bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut update = update_request(&contact_id);
    update.title = Some("CEO".into());
    client
        .update_message_contact(traced(
            as_account(ACCOUNT, update),
            update_trace_id,
            update_parent_id,
        ))
        .await
        .expect("update");
    // Shutting down exports what is still buffered.
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}: {}", server.log());

    let spans = collector.spans();
    let trace = hex(trace_id);
    let call = the_span(&spans, &trace, "call");
    assert_eq!(call.parent_span_id, hex(parent_id), "the caller's span");
    assert_eq!(attribute(call, "rpc").as_deref(), Some("AddMessageContact"));
    assert_eq!(attribute(call, "account").as_deref(), Some(ACCOUNT));
    let command = the_span(&spans, &trace, "command");
    assert_eq!(
        command.parent_span_id, call.span_id,
        "the command is the call's"
    );
    assert_eq!(
        attribute(command, "command").as_deref(),
        Some("AddMessageContact")
    );
    assert_eq!(attribute(command, "contact_id"), Some(contact_id.clone()));
    let append = the_span(&spans, &trace, "append");
    assert_eq!(
        append.parent_span_id, command.span_id,
        "the append is the command's"
    );
    assert_eq!(attribute(append, "contact_id"), Some(contact_id.clone()));
    let update_append = the_span(&spans, &hex(update_trace_id), "append");
    let group = spans
        .iter()
        .map(|(_, span)| span)
        .find(|span| {
            span.name == "group"
                && span.links.iter().any(|link| {
                    link.trace_id == hex(update_trace_id) && link.span_id == update_append.span_id
                })
        })
        .expect("a group span linked to the update's append");
    assert!(
        group.parent_span_id.is_empty(),
        "a group is a root of its own"
    );
    assert!(
        spans.iter().all(|(service, _)| service == "contactd"),
        "service.name"
    );

    let request = add_request(name);
    let phone = request.phone_number.expect("a phone number");
    let national = phone.rsplit('-').next().expect("the national number");
    let exported = format!("{spans:?}");
    for personal in [name, &request.email_address, national] {
        assert!(!exported.contains(personal), "{personal:?} was exported");
    }
    let correlation: Vec<String> = db
        .scalars(
            "SELECT correlation_id FROM events WHERE stream_id = $1 ORDER BY stream_version",
            &[&contact_id],
        )
        .await;
    assert_eq!(
        correlation,
        [trace_id, update_trace_id],
        "each call's trace id is its events' correlation id"
    );
}

both_backends!(a_call_is_traced_in_the_callers_trace_down_to_its_append_and_group);

//! Logging and traces. Log lines go to stderr filtered by `RUST_LOG` (default `info`), as JSON
//! objects (one per line, with the fields of the spans they are in) when stderr is not a
//! terminal or `--log-format json`, as text for a person otherwise. Email addresses, phone
//! numbers, names and codes are never logged. Each call has a span at `info` with its RPC,
//! request id and account (the access layer's), so every line of a call names them; the
//! application's spans below it (contact ids) are at `debug`. A failed call is logged at
//! `error` with its request id.
//!
//! With `--otlp-endpoint`, the spans of the contactd crates, `debug` ones included whatever
//! `RUST_LOG` says, are also exported as OpenTelemetry spans over OTLP/gRPC, in batches; without
//! it no such layer exists, so the `debug` spans are not even created at the default level.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{EnvFilter, Filtered, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, fmt};
use url::Url;

use crate::settings::LogFormat;

/// The name the exported spans' resource carries (`service.name`).
const SERVICE_NAME: &str = "contactd";

/// The longest the last spans may take to leave at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `format` writes JSON, given whether stderr is a terminal.
fn writes_json(format: LogFormat, terminal: bool) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    }
}

/// What must outlive the process's work: the exporter of its traces, if any.
#[derive(Debug)]
#[must_use = "spans still buffered are lost unless it is shut down"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (within [`FLUSH_TIMEOUT`]) and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else {
            return;
        };
        // The flush blocks its thread until the batch has been exported over the runtime's
        // gRPC channel, which needs the runtime's other threads.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the last spans may not have been exported"),
            Err(error) => tracing::warn!(%error, "the last spans were not exported"),
        }
    }
}

type TracesLayer<S> = Filtered<OpenTelemetryLayer<S, SdkTracer>, Targets, S>;

/// The layer exporting the contactd crates' spans to `endpoint`, and the provider to shut down
/// at the end; none without an endpoint. Must run within the Tokio runtime the exporter's
/// channel is to use.
fn traces<S>(endpoint: Option<&Url>) -> anyhow::Result<Option<(TracesLayer<S>, SdkTracerProvider)>>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str().trim_end_matches('/'))
        .build()
        .context("the OTLP exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .with_batch_exporter(exporter)
        .build();
    // Only this service's own spans and events, whose fields are chosen to hold no personal
    // data; the libraries' (the exporter's own gRPC calls among them) stay out.
    let ours = Targets::new().with_target("contactd", LevelFilter::DEBUG);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SERVICE_NAME))
        .with_filter(ours);
    Ok(Some((layer, provider)))
}

/// Installs the process's subscriber: the log lines, and the traces' exporter when there is
/// an endpoint. Within the Tokio runtime.
pub fn init(format: LogFormat, otlp_endpoint: Option<&Url>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer().with_writer(std::io::stderr);
    let logs = if writes_json(format, std::io::stderr().is_terminal()) {
        // Every span the line is in, outermost first: the call's own carries its RPC, request
        // id and account.
        logs.json()
            .with_current_span(false)
            .with_span_list(true)
            .boxed()
    } else {
        logs.boxed()
    };
    let (layer, provider) = traces(otlp_endpoint)?.unzip();
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(layer)
        .try_init();
    Ok(Telemetry { traces: provider })
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::Registry;

    use super::*;

    #[test]
    fn auto_writes_json_only_when_no_one_reads_a_terminal() {
        assert!(writes_json(LogFormat::Auto, false));
        assert!(!writes_json(LogFormat::Auto, true));
        assert!(writes_json(LogFormat::Json, true));
        assert!(!writes_json(LogFormat::Text, false));
    }

    #[test]
    fn without_an_endpoint_no_traces_layer_is_installed() {
        let layer = traces::<Registry>(None).expect("no exporter to build");
        assert!(layer.is_none());
    }
}

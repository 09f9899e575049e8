//! Logging: lines on stderr filtered by `RUST_LOG` (default `info`), as JSON objects (one per
//! line, with the fields of the spans they are in) when stderr is not a terminal or
//! `--log-format json`, as text for a person otherwise. Email addresses, phone numbers, names
//! and codes are never logged. Each call has a span at `info` with its RPC, request id and
//! account (the access layer's), so every line of a call names them; the application's spans
//! below it (contact ids) are at `debug`. A failed call is logged at `error` with its request
//! id.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Whether `format` writes JSON, given whether stderr is a terminal.
fn writes_json(format: LogFormat, terminal: bool) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if writes_json(format, std::io::stderr().is_terminal()) {
        // Every span the line is in, outermost first: the call's own carries its RPC, request
        // id and account.
        logs.json()
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
    } else {
        logs.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_writes_json_only_when_no_one_reads_a_terminal() {
        assert!(writes_json(LogFormat::Auto, false));
        assert!(!writes_json(LogFormat::Auto, true));
        assert!(writes_json(LogFormat::Json, true));
        assert!(!writes_json(LogFormat::Text, false));
    }
}

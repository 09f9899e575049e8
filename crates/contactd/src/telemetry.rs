//! Logging: human-readable lines on stderr, filtered by `RUST_LOG` (default `info`). Email
//! addresses, phone numbers and codes are never logged. Each call has a span with its request and
//! contact ids at `debug` (at `info` a span per call would cost every call for nothing shown);
//! a failed call is logged at `error` with its request id.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

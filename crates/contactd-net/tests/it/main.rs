//! The listener over real sockets on 127.0.0.1: TLS, client certificates, reloading, limits,
//! timeouts, and tonic and axum serving through it.

// The helpers outside `#[test]` functions fail the test as loudly as the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod limits;
mod serving;
mod support;
mod timeouts;
mod tls;

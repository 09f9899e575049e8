//! The delivery adapter against real peers on loopback, contactd-testkit's: an SMTP server
//! (scripts/smtp-sink.py, on aiosmtpd), an HTTP server standing in for the SMS gateway, peers
//! that never answer; and the file sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sink;
mod sms;
mod smtp;
mod support;

//! The delivery adapter against real peers on loopback: an SMTP server (scripts/smtp-sink.py,
//! on aiosmtpd), an HTTP server standing in for the SMS gateway, and the file sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sink;
mod sms;
mod smtp;
mod support;

//! The real peers that tests run against, each on loopback and gone when dropped: an SMTP server
//! ([`SmtpSink`], `scripts/smtp-sink.py` on aiosmtpd), an HTTP server standing in for the SMS
//! gateway ([`Gateway`]), a NATS server with JetStream and the messages its streams hold
//! ([`NatsServer`], Debian's `nats-server -js`), a PostgreSQL cluster of the test's own that it
//! may crash and start again ([`PostgresCluster`], the installed `initdb` and `pg_ctl`), peers
//! that accept connections and never answer ([`SilentPeer`]), an address where nothing listens
//! ([`closed_port`]), and Debian's Chromium driven headless over WebDriver ([`Browser`]), and
//! certificates and signed tokens made on the spot ([`pki`]). What a verification message
//! carries is read with [`verification_code`] and [`verification_link`].
//!
//! For tests only (a dev-dependency): every constructor panics when its peer cannot be set up.
// A peer that cannot be set up, or a directory that cannot be read, is a failed test: panicking
// with the cause is what a test wants, so unwrap and expect are the way here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod extract;
mod gateway;
mod nats;
mod peer;
pub mod pki;
mod postgres;
mod smtp;

use std::time::Duration;

pub use browser::Browser;
pub use extract::{verification_code, verification_link};
/// The WebDriver client that [`Browser::client`] is, re-exported so that tests name its
/// `Locator`, `Client` and errors without depending on it themselves.
pub use fantoccini;
pub use gateway::{Gateway, RecordedRequest};
pub use nats::{DEFAULT_NATS_STREAM, NatsMessage, NatsServer};
pub use peer::{SilentPeer, closed_port};
pub use postgres::PostgresCluster;
pub use smtp::{ReceivedMail, SmtpSink};

/// How often the `wait_for` methods look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Calls `current` every [`POLL_INTERVAL`] until it returns at least `count` items, and returns
/// them; panics once `timeout` has passed, naming how many `what` arrived.
async fn wait_for_count<T>(
    count: usize,
    timeout: Duration,
    what: &str,
    mut current: impl FnMut() -> Vec<T>,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let items = current();
        if items.len() >= count {
            return items;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "waited {timeout:?} for {count} {what}, but {} arrived",
                items.len()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

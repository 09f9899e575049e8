//! [`NatsPublisher`]: the integration messages into the JetStream stream, each acknowledged.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::connection::State;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, Event, HeaderMap};
use contactd_app::{IntegrationMessage, IntegrationPublisher, PublishError};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::NatsSettings;

/// Publishes integration messages into a JetStream stream and waits for the broker to store
/// each ([`IntegrationPublisher`]). Cheap to share behind an `Arc`; dropping it closes the
/// connection.
///
/// Each message carries `Nats-Msg-Id: <message_id>` and `Content-Type: application/json`; a
/// message whose id the stream already holds (within the duplicate window) is acknowledged as a
/// duplicate, not stored again, and counts as published.
pub struct NatsPublisher {
    shared: Arc<Shared>,
    /// Creates the stream when the broker first answers; aborted on drop.
    stream_task: JoinHandle<()>,
}

/// What the publishes and the stream task share.
struct Shared {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    settings: NatsSettings,
    /// Set once the stream is known to exist; cleared when the broker says no stream takes a
    /// subject (it may have been deleted), so that the next publish creates it again.
    stream_ready: AtomicBool,
    /// One stream creation at a time.
    creating: Mutex<()>,
}

impl NatsPublisher {
    /// Sets up the connection to `settings.url` and returns at once, whether the broker answers
    /// or not: the connection is made, and remade after each loss, in the background, for as
    /// long as the publisher lives. When it is first made the stream is created if missing.
    ///
    /// Fails only when the settings are unusable (no URL, or one that does not parse).
    pub async fn connect(settings: NatsSettings) -> Result<Self, PublishError> {
        let urls = settings.urls();
        if urls.is_empty() {
            return Err(PublishError("no NATS server URL configured".to_owned()));
        }
        let connected = Arc::new(Notify::new());
        let on_connected = Arc::clone(&connected);
        let client = ConnectOptions::new()
            .name("contactd")
            .retry_on_initial_connect()
            .connection_timeout(settings.timeout)
            .request_timeout(Some(settings.timeout))
            .event_callback(move |event| {
                if matches!(event, Event::Connected) {
                    on_connected.notify_one();
                }
                async {}
            })
            .connect(urls)
            .await
            .map_err(|error| PublishError(format!("NATS connection settings: {error}")))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(settings.timeout);
        let shared = Arc::new(Shared {
            client,
            jetstream,
            settings,
            stream_ready: AtomicBool::new(false),
            creating: Mutex::new(()),
        });
        let stream_task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                // Each (re)connection until the stream exists; a publish may get there first.
                while !shared.stream_ready.load(Ordering::Acquire) {
                    connected.notified().await;
                    let timeout = shared.settings.timeout;
                    match tokio::time::timeout(timeout, shared.ensure_stream()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::warn!(%error, "NATS JetStream stream not ready"),
                        Err(_) => tracing::warn!(
                            ?timeout,
                            "NATS JetStream stream not ready: no answer in time"
                        ),
                    }
                }
            }
        });
        Ok(Self {
            shared,
            stream_task,
        })
    }
}

impl Shared {
    /// Creates the stream unless it is known to exist: with the configured subjects, on file
    /// storage, with the duplicate window. A stream of that name that exists already is used as
    /// it is.
    async fn ensure_stream(&self) -> Result<(), PublishError> {
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _creating = self.creating.lock().await;
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let settings = &self.settings;
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: settings.stream.clone(),
                subjects: settings.subjects.clone(),
                storage: stream::StorageType::File,
                duplicate_window: settings.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|error| {
                PublishError(format!(
                    "NATS JetStream stream {} not created: {error}",
                    settings.stream
                ))
            })?;
        self.stream_ready.store(true, Ordering::Release);
        tracing::info!(stream = %settings.stream, "NATS JetStream stream ready");
        Ok(())
    }

    /// Ensures the stream, publishes and waits for the acknowledgement; not bounded in time.
    async fn publish(&self, message: &IntegrationMessage) -> Result<(), PublishError> {
        self.ensure_stream().await?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, message.message_id.as_str());
        headers.insert("Content-Type", "application/json");
        let ack = self
            .jetstream
            .publish_with_headers(
                message.subject.clone(),
                headers,
                message.payload.clone().into(),
            )
            .await
            .map_err(|error| self.failure(error))?
            .await
            .map_err(|error| self.failure(error))?;
        if ack.duplicate {
            tracing::debug!(
                message_id = %message.message_id,
                stream = %ack.stream,
                sequence = ack.sequence,
                "NATS JetStream had the message already"
            );
        }
        Ok(())
    }

    /// The reason of a failed publish; never the payload.
    fn failure(&self, error: jetstream::context::PublishError) -> PublishError {
        PublishError(match error.kind() {
            PublishErrorKind::StreamNotFound => {
                self.stream_ready.store(false, Ordering::Release);
                "no NATS JetStream stream takes the subject (no responders)".to_owned()
            }
            PublishErrorKind::TimedOut => "NATS JetStream did not acknowledge in time".to_owned(),
            PublishErrorKind::BrokenPipe => {
                "the NATS connection was lost before the acknowledgement".to_owned()
            }
            PublishErrorKind::MaxPayloadExceeded => {
                "the message exceeds the NATS server's max_payload".to_owned()
            }
            _ => format!("NATS JetStream publish failed: {error}"),
        })
    }
}

/// How often a publish waiting for the first connection looks at it again.
const CONNECTION_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl IntegrationPublisher for NatsPublisher {
    /// Publishes within [`NatsSettings::timeout`], counting the stream's creation if still due
    /// and the wait for the acknowledgement; a duplicate's acknowledgement is success.
    ///
    /// Nothing is handed to the client while its connection is lost: the client would queue
    /// the message and send it once the connection is back, whatever happened meanwhile, and
    /// its job may be gone by then (a forgotten contact's messages must never leave; ADR 13).
    /// The job fails at once and is tried again later. Only before the first connection, at
    /// start-up, does a publish wait for it (within the timeout). A message handed over just
    /// before the connection drops may still reach the broker after its timeout: publishing
    /// it again under the same id stores it once.
    async fn publish(&self, message: &IntegrationMessage) -> Result<(), PublishError> {
        let timeout = self.shared.settings.timeout;
        let started = tokio::time::Instant::now();
        while self.shared.client.connection_state() == State::Pending {
            if started.elapsed() >= timeout {
                return Err(PublishError(format!(
                    "NATS not connected within {timeout:?}: the message was not handed over"
                )));
            }
            tokio::time::sleep(CONNECTION_POLL).await;
        }
        if self.shared.client.connection_state() != State::Connected {
            return Err(PublishError(
                "NATS not connected: the message was not handed over".to_owned(),
            ));
        }
        let timeout = timeout.saturating_sub(started.elapsed());
        let result = tokio::time::timeout(timeout, self.shared.publish(message))
            .await
            .unwrap_or_else(|_| {
                Err(PublishError(format!(
                    "NATS JetStream did not acknowledge within {timeout:?}"
                )))
            });
        result.map_err(|PublishError(reason)| {
            // A timeout, whichever ran out first, is best explained by the connection if it is
            // down.
            PublishError(match self.shared.client.connection_state() {
                State::Connected => reason,
                State::Pending | State::Disconnected => format!("NATS not connected: {reason}"),
            })
        })
    }
}

impl fmt::Debug for NatsPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsPublisher")
            .field("settings", &self.shared.settings)
            .field("connection", &self.shared.client.connection_state())
            .field(
                "stream_ready",
                &self.shared.stream_ready.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for NatsPublisher {
    fn drop(&mut self) {
        self.stream_task.abort();
    }
}

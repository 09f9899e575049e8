//! The adapter of the [`IntegrationPublisher`](contactd_app::IntegrationPublisher) port, and the
//! only crate that knows NATS: [`NatsPublisher`] publishes each integration message into a
//! JetStream stream ([`NatsSettings`]: by default `CONTACTD_CONTACTS` on
//! `contactd.*.member.*.contacts`, file storage), with its message id as `Nats-Msg-Id`, so that
//! the broker stores a message published twice within the duplicate window once, and waits for
//! the broker's acknowledgement.
//!
//! The service starts while NATS is down: the connection is made, and remade, in the background;
//! the stream is created if missing as soon as the broker answers (and before each publish until
//! that succeeded once). A publish fails, within the configured timeout, with a short reason
//! that never carries the payload; the caller retries it under the same id.

mod publisher;
mod settings;

pub use publisher::NatsPublisher;
pub use settings::{DEFAULT_STREAM, DEFAULT_SUBJECT, NatsSettings};

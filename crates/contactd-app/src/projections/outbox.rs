//! `verification_outbox`: the projection that records each verification message a send asked
//! for, in its own unit of work after the send committed (never in the command's), for the
//! dispatchers to claim and send.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use contactd_domain::{AccountId, Channel, ContactEvent, VerificationId};
use tokio::sync::watch;
use uuid::Uuid;

use crate::port::{Opened, RecordedEvent, StoreError};
use crate::projection::Projection;

/// The projection that fills the outbox. It has side effects outside the store (the
/// messages), so it is never rebuilt: a rebuild or a replay sends nothing.
#[derive(Debug)]
pub struct VerificationOutbox {
    recorded: Arc<watch::Sender<u64>>,
}

impl VerificationOutbox {
    pub const NAME: &'static str = "verification_outbox";

    /// Wakes the dispatcher of this process (the store's [`crate::Outbox::recorded_messages`])
    /// after each batch that recorded messages.
    pub fn new(recorded: Arc<watch::Sender<u64>>) -> Self {
        Self { recorded }
    }
}

/// A message an event asked for, as the outbox records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedMessage {
    /// The id of the event that asked for it: a redelivered batch records nothing twice.
    pub message_id: Uuid,
    pub account_id: AccountId,
    /// The stream of the event: the contact's id.
    pub contact_id: String,
    pub channel: Channel,
    /// The address or number, as the event holds it.
    pub recipient: String,
    pub verification_id: VerificationId,
    pub expires_at: DateTime<Utc>,
    /// The correlation id of the request that asked for it, carried on to its outcomes.
    pub correlation_id: String,
}

/// The outbox, as its projection writes it inside a unit of work.
pub trait OutboxModel: Send {
    /// Records each message as pending and due now, with the contact's name as the inline
    /// read model holds it now (empty if it holds none); a message already recorded is left
    /// as it is.
    fn record_requested(
        &mut self,
        messages: &[RequestedMessage],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The message the event asks for, if it asks for one. A contact forgotten before its
/// message was recorded gets none: its target reads as redacted.
fn requested(event: &RecordedEvent) -> Option<RequestedMessage> {
    let (channel, recipient, verification_id, expires_at) = match event.contact_event()? {
        ContactEvent::EmailVerificationRequested {
            verification_id,
            email_address,
            expires_at,
        } if !email_address.is_redacted() => (
            Channel::Email,
            email_address.as_str(),
            verification_id,
            expires_at,
        ),
        ContactEvent::PhoneVerificationRequested {
            verification_id,
            phone_number,
            expires_at,
        } if !phone_number.is_redacted() => (
            Channel::Phone,
            phone_number.as_str(),
            verification_id,
            expires_at,
        ),
        _ => return None,
    };
    Some(RequestedMessage {
        message_id: event.event_id,
        account_id: event.metadata.account_id.clone(),
        contact_id: event.stream_id.clone(),
        channel,
        recipient: recipient.to_owned(),
        verification_id: *verification_id,
        expires_at: *expires_at,
        correlation_id: event.metadata.correlation_id.clone(),
    })
}

/// Whether the event asks for a message: the same test as [`requested`], without its copies.
fn asks_for_message(event: &RecordedEvent) -> bool {
    matches!(
        event.contact_event(),
        Some(
            ContactEvent::EmailVerificationRequested { .. }
                | ContactEvent::PhoneVerificationRequested { .. }
        )
    )
}

impl<W: OutboxModel> Projection<W> for VerificationOutbox {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn apply(&self, work: &mut W, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let messages: Vec<RequestedMessage> = events.iter().filter_map(requested).collect();
        if messages.is_empty() {
            return Ok(());
        }
        work.record_requested(&messages).await
    }

    fn clear(&self, _: &mut W) -> Option<impl Future<Output = Result<(), StoreError>> + Send> {
        None::<std::future::Ready<Result<(), StoreError>>>
    }

    fn committed(&self, events: &[RecordedEvent]) {
        if events.iter().any(asks_for_message) {
            self.recorded.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Most of the log is of no concern here: only the events that ask for a message.
    fn concerns(&self, event: &RecordedEvent) -> bool {
        asks_for_message(event)
    }

    /// The target of a verification request is what the message goes to.
    fn opened(&self) -> Opened {
        Opened::Only(&["EmailVerificationRequested", "PhoneVerificationRequested"])
    }
}

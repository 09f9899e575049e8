//! What became of the messages that carry verification codes: facts the dispatcher records in
//! a stream of each message's own, so that a contact's version counts only what its callers
//! did, while the log (and so the audit service) still shows every attempt.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Channel, ContactEvent, ContactId, DirectoryEvent};

/// One attempt to deliver a verification message, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    /// The id of the event that asked for the message: also the idempotency key of its send.
    pub message_id: Uuid,
    pub contact_id: ContactId,
    pub channel: Channel,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The mail server or the SMS gateway accepted the message.
    Sent,
    /// The attempt failed and another one follows; `reason` names the failure without any
    /// personal data.
    Failed {
        reason: String,
        retry_at: DateTime<Utc>,
    },
    /// No attempt follows: too many failed, the failure was permanent, or the code expired.
    DeadLettered { reason: String },
}

impl DeliveryEvent {
    pub fn event_type(&self) -> &'static str {
        match self.outcome {
            DeliveryOutcome::Sent => "VerificationMessageSent",
            DeliveryOutcome::Failed { .. } => "VerificationMessageFailed",
            DeliveryOutcome::DeadLettered { .. } => "VerificationMessageDeadLettered",
        }
    }

    /// The stream of one message's delivery.
    pub fn stream_id(message_id: Uuid) -> String {
        format!("delivery-{message_id}")
    }
}

/// Any event of the log: a contact's, a directory's, or a message delivery's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    Contact(ContactEvent),
    Directory(DirectoryEvent),
    Delivery(DeliveryEvent),
}

impl DomainEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::Contact(event) => event.event_type(),
            DomainEvent::Directory(event) => event.event_type(),
            DomainEvent::Delivery(event) => event.event_type(),
        }
    }

    pub fn as_contact(&self) -> Option<&ContactEvent> {
        match self {
            DomainEvent::Contact(event) => Some(event),
            _ => None,
        }
    }

    pub fn as_directory(&self) -> Option<&DirectoryEvent> {
        match self {
            DomainEvent::Directory(event) => Some(event),
            _ => None,
        }
    }
}

impl From<DirectoryEvent> for DomainEvent {
    fn from(event: DirectoryEvent) -> Self {
        DomainEvent::Directory(event)
    }
}

impl From<ContactEvent> for DomainEvent {
    fn from(event: ContactEvent) -> Self {
        DomainEvent::Contact(event)
    }
}

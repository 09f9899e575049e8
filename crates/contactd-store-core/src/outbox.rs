//! A claimed verification message as both stores select it, and its reading back into the
//! application's [`OutboxMessage`]: integers are selected as 64 bits, ids as UUIDs.

use chrono::{DateTime, Utc};
use contactd_app::{OutboxMessage, StoreError};
use contactd_domain::{
    AccountId, Channel, ContactId, EmailAddress, PhoneNumber, VerificationId, VerificationTarget,
};
use uuid::Uuid;

/// The columns a claim returns.
pub const CLAIMED_MESSAGE_COLUMNS: &str = "message_id, account_id, contact_id, contact_name, \
     channel, recipient, verification_id, expires_at, attempts, recorded, correlation_id, \
     next_attempt_at";

/// A message as its claim returned it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedMessage {
    pub message_id: Uuid,
    pub account_id: String,
    pub contact_id: String,
    pub contact_name: String,
    pub channel: String,
    pub recipient: String,
    pub verification_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub attempts: i64,
    pub recorded: i64,
    pub correlation_id: String,
    pub next_attempt_at: DateTime<Utc>,
}

impl ClaimedMessage {
    /// Values were parsed before they were stored; one that no longer parses means the data
    /// was changed behind the service's back.
    pub fn into_message(self) -> Result<OutboxMessage, StoreError> {
        let corrupt = |what: &str| {
            StoreError::internal(
                format!(
                    "outbox message {} has an unreadable {what}",
                    self.message_id
                ),
                None,
            )
        };
        let recipient = match Channel::parse(&self.channel) {
            Some(Channel::Email) => EmailAddress::parse(&self.recipient)
                .map(VerificationTarget::Email)
                .map_err(|_| corrupt("recipient"))?,
            Some(Channel::Phone) => PhoneNumber::restore(&self.recipient)
                .map(VerificationTarget::Phone)
                .map_err(|_| corrupt("recipient"))?,
            None => return Err(corrupt("channel")),
        };
        Ok(OutboxMessage {
            message_id: self.message_id,
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("account id"))?,
            contact_id: ContactId::parse(&self.contact_id).map_err(|_| corrupt("contact id"))?,
            contact_name: self.contact_name,
            recipient,
            verification_id: VerificationId::from_uuid(self.verification_id),
            expires_at: self.expires_at,
            attempt: u32::try_from(self.attempts).map_err(|_| corrupt("attempt"))?,
            recorded: u64::try_from(self.recorded).map_err(|_| corrupt("outcome count"))?,
            correlation_id: self.correlation_id,
        })
    }
}

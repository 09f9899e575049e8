//! The outbox on SQLite, as the `verification_outbox` projection
//! ([`contactd_app::VerificationOutbox`]) writes it: each message a send asked for, recorded
//! in the projection's own transaction after the send committed.

use chrono::Utc;
use contactd_app::{OutboxModel, RequestedMessage, StoreError};

use super::work::SqliteWork;
use crate::error::failed;

impl OutboxModel for SqliteWork<'_> {
    async fn record_requested(&mut self, messages: &[RequestedMessage]) -> Result<(), StoreError> {
        // Due at once. SQLite's clock writes another format than the stored times'; the
        // service's is bound instead.
        let now = Utc::now();
        for message in messages {
            // Redelivered batches record nothing twice: the message's id is the event's. (The
            // `WHERE true` tells SQLite's parser that `ON CONFLICT` is the upsert's.)
            sqlx::query(
                "INSERT INTO outbox_messages (message_id, account_id, contact_id, contact_name, \
                     channel, recipient, verification_id, expires_at, correlation_id, \
                     next_attempt_at, created_at, updated_at) \
                 SELECT ?1, ?2, ?3, coalesce((SELECT json_extract(c.state, '$.name') FROM contacts c \
                         WHERE c.contact_id = ?3 AND c.account_id = ?2), ''), \
                     ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9 WHERE true \
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(message.message_id)
            .bind(message.account_id.as_str())
            .bind(message.contact_id.as_str())
            .bind(message.channel.as_str())
            .bind(message.recipient.as_str())
            .bind(message.verification_id.as_uuid())
            .bind(message.expires_at)
            .bind(message.correlation_id.as_str())
            .bind(now)
            .execute(&mut *self.connection())
            .await
            .map_err(failed("recording verification messages failed"))?;
        }
        Ok(())
    }
}

//! The outbox of verification messages on PostgreSQL: the statement with which the
//! `verification_outbox` projection ([`contactd_app::VerificationOutbox`]) records each
//! message a send asked for, in its own transaction after the send committed (never in the
//! command's); and the dispatchers' claims of due messages with a lease that commits at once,
//! and each outcome recorded with its event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contactd_app::{EventMetadata, OutboxMessage, OutboxModel, RequestedMessage, StoreError};
use contactd_domain::{DeliveryEvent, DeliveryOutcome};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::store_error;
use crate::work::PgWork;
use contactd_store_core::events::encode_delivery_event;
use contactd_store_core::outbox::ClaimedMessage;

impl OutboxModel for PgWork<'_> {
    async fn record_requested(&mut self, messages: &[RequestedMessage]) -> Result<(), StoreError> {
        // Redelivered batches record nothing twice: the message's id is the event's.
        sqlx::query(
            "INSERT INTO outbox_messages (message_id, account_id, contact_id, contact_name, channel, \
                 recipient, verification_id, expires_at, correlation_id, next_attempt_at) \
             SELECT i.message_id, i.account_id, i.contact_id, coalesce(c.state->>'name', ''), i.channel, \
                    i.recipient, i.verification_id, i.expires_at, i.correlation_id, now() \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], \
                         $7::timestamptz[], $8::text[]) \
                  AS i(message_id, account_id, contact_id, channel, recipient, verification_id, \
                       expires_at, correlation_id) \
             LEFT JOIN contacts c ON c.contact_id = i.contact_id AND c.account_id = i.account_id \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(messages.iter().map(|m| m.message_id).collect::<Vec<_>>())
        .bind(
            messages
                .iter()
                .map(|m| m.account_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            messages
                .iter()
                .map(|m| m.contact_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(messages.iter().map(|m| m.channel.as_str()).collect::<Vec<_>>())
        .bind(
            messages
                .iter()
                .map(|m| m.recipient.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            messages
                .iter()
                .map(|m| m.verification_id.as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(messages.iter().map(|m| m.expires_at).collect::<Vec<_>>())
        .bind(
            messages
                .iter()
                .map(|m| m.correlation_id.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(self.connection())
        .await
        .map_err(|e| store_error("recording verification messages failed", e))?;
        Ok(())
    }
}

/// Leases due messages to `owner`: one statement, so the lease commits before anything is sent.
pub(crate) async fn claim_due(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let rows: Vec<ClaimedMessage> = sqlx::query_as(
        "UPDATE outbox_messages AS o SET lease_owner = $1, \
             lease_until = now() + make_interval(secs => $2), attempts = o.attempts + 1, updated_at = now() \
         FROM (SELECT message_id FROM outbox_messages \
               WHERE state = 'pending' AND next_attempt_at <= now() \
                 AND (lease_until IS NULL OR lease_until <= now()) \
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) AS due \
         WHERE o.message_id = due.message_id \
         RETURNING o.message_id, o.account_id, o.contact_id, o.contact_name, o.channel, o.recipient, \
                   o.verification_id, o.expires_at, o.attempts::bigint AS attempts, \
                   o.recorded::bigint AS recorded, o.correlation_id, o.next_attempt_at",
    )
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| store_error("claiming outbox messages failed", e))?;
    rows.into_iter().map(ClaimedMessage::into_message).collect()
}

/// The outcome and its event in one statement, only while `owner` holds the lease and no
/// other outcome was recorded since the claim. A finished message keeps no personal data.
pub(crate) async fn record(
    pool: &PgPool,
    owner: &str,
    message: &OutboxMessage,
    event: &DeliveryEvent,
    event_id: Uuid,
    metadata: &EventMetadata,
) -> Result<bool, StoreError> {
    let (state, retry_at, reason) = match &event.outcome {
        DeliveryOutcome::Sent => ("sent", None, None),
        DeliveryOutcome::Failed { reason, retry_at } => ("pending", Some(*retry_at), Some(reason)),
        DeliveryOutcome::DeadLettered { reason } => ("dead", None, Some(reason)),
    };
    let (event_type, schema_version, payload) = encode_delivery_event(event);
    let recorded = i64::try_from(message.recorded).unwrap_or(i64::MAX);
    let appended: i64 = sqlx::query_scalar(
        "WITH moved AS ( \
             UPDATE outbox_messages SET state = $3::text, recorded = recorded + 1, \
                 next_attempt_at = coalesce($4, next_attempt_at), last_error = $5, \
                 lease_owner = NULL, lease_until = NULL, updated_at = now(), \
                 recipient = CASE WHEN $3::text = 'pending' THEN recipient ELSE '' END, \
                 contact_name = CASE WHEN $3::text = 'pending' THEN contact_name ELSE '' END \
             WHERE message_id = $1 AND lease_owner = $2 AND recorded = $6 \
             RETURNING account_id \
         ), appended AS ( \
             INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
                                 schema_version, payload, request_id, caller, correlation_id, \
                                 causation_id, recorded_at) \
             SELECT $7, account_id, $8, $6 + 1, $9, $10, $11, $12, $13, $14, $15, $16 FROM moved \
             RETURNING 1 \
         ) \
         SELECT count(*) FROM appended",
    )
    .bind(message.message_id)
    .bind(owner)
    .bind(state)
    .bind(retry_at)
    .bind(reason)
    .bind(recorded)
    .bind(event_id)
    .bind(DeliveryEvent::stream_id(message.message_id))
    .bind(event_type)
    .bind(schema_version)
    .bind(payload)
    .bind(&metadata.request_id)
    .bind(&metadata.caller)
    .bind(&metadata.correlation_id)
    .bind(&metadata.causation_id)
    .bind(metadata.recorded_at)
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("recording a delivery failed", e))?;
    Ok(appended == 1)
}

/// When the next pending message can be claimed: when it falls due and no lease holds it.
pub(crate) async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(
        "SELECT min(GREATEST(next_attempt_at, coalesce(lease_until, next_attempt_at))) \
         FROM outbox_messages WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("reading the outbox failed", e))
}

/// How many messages wait to be sent.
pub(crate) async fn pending(pool: &PgPool) -> Result<u64, StoreError> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE state = 'pending'")
            .fetch_one(pool)
            .await
            .map_err(|e| store_error("counting the outbox failed", e))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

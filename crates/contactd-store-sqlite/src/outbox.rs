//! The outbox of verification messages, as the dispatcher uses it: due messages claimed with a
//! lease that commits at once, each attempt's outcome recorded with its event, and when the
//! next message falls due. (Recording the messages is the `verification_outbox` projection's.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use contactd_app::{EventMetadata, OutboxMessage, StoreError};
use contactd_domain::{DeliveryEvent, DeliveryOutcome};
use contactd_store_core::events::encode_delivery_event;
use contactd_store_core::outbox::{CLAIMED_MESSAGE_COLUMNS, ClaimedMessage};
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::append::{EncodedEvent, insert_events};
use crate::error::failed;
use crate::later;

/// Leases due messages to `owner`: one statement, so the lease commits before anything is sent.
pub(crate) async fn claim_due(
    writes: &SqlitePool,
    owner: &str,
    lease: Duration,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let now = Utc::now();
    let mut rows: Vec<ClaimedMessage> = sqlx::query_as(&format!(
        "UPDATE outbox_messages SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, \
             updated_at = ?3 \
         WHERE message_id IN (SELECT message_id FROM outbox_messages \
               WHERE state = 'pending' AND next_attempt_at <= ?3 \
                 AND (lease_until IS NULL OR lease_until <= ?3) \
               ORDER BY next_attempt_at LIMIT ?4) \
         RETURNING {CLAIMED_MESSAGE_COLUMNS}"
    ))
    .bind(owner)
    .bind(later(now, lease))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(writes)
    .await
    .map_err(failed("claiming outbox messages failed"))?;
    // RETURNING keeps no order: hand the messages out in the order they fell due.
    rows.sort_by_key(|row| row.next_attempt_at);
    rows.into_iter().map(ClaimedMessage::into_message).collect()
}

/// The outcome and its event in one transaction, only while `owner` holds the lease and no
/// other outcome was recorded since the claim. A finished message keeps no personal data.
pub(crate) async fn record(
    writes: &SqlitePool,
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
    let recorded = i64::try_from(message.recorded).unwrap_or(i64::MAX);
    let failure = failed("recording a delivery failed");
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(&failure)?;
    let moved: Option<String> = sqlx::query_scalar(
        "UPDATE outbox_messages SET state = ?3, recorded = recorded + 1, \
             next_attempt_at = coalesce(?4, next_attempt_at), last_error = ?5, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?7, \
             recipient = CASE WHEN ?3 = 'pending' THEN recipient ELSE '' END, \
             contact_name = CASE WHEN ?3 = 'pending' THEN contact_name ELSE '' END \
         WHERE message_id = ?1 AND lease_owner = ?2 AND recorded = ?6 \
         RETURNING account_id",
    )
    .bind(message.message_id)
    .bind(owner)
    .bind(state)
    .bind(retry_at)
    .bind(reason)
    .bind(recorded)
    .bind(Utc::now())
    .fetch_optional(&mut *tx)
    .await
    .map_err(&failure)?;
    let Some(account_id) = moved else {
        return Ok(false);
    };
    let (event_type, schema_version, payload) = encode_delivery_event(event);
    insert_events(
        &mut tx,
        &account_id,
        &DeliveryEvent::stream_id(message.message_id),
        message.recorded,
        &[EncodedEvent {
            event_id,
            event_type,
            schema_version,
            payload: payload.to_string(),
        }],
        metadata,
    )
    .await
    .map_err(&failure)?;
    tx.commit().await.map_err(&failure)?;
    Ok(true)
}

/// When the next pending message can be claimed: when it falls due and no lease holds it.
pub(crate) async fn next_due(reads: &SqlitePool) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(
        "SELECT min(max(next_attempt_at, coalesce(lease_until, next_attempt_at))) \
         FROM outbox_messages WHERE state = 'pending'",
    )
    .fetch_one(reads)
    .await
    .map_err(failed("reading the outbox failed"))
}

/// How many messages wait to be sent.
pub(crate) async fn pending(reads: &SqlitePool) -> Result<u64, StoreError> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE state = 'pending'")
            .fetch_one(reads)
            .await
            .map_err(failed("counting the outbox failed"))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

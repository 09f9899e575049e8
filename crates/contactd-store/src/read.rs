//! Reads: a contact's state, pages of contacts, remembered calls, and a stream's events.

use chrono::{DateTime, Utc};
use contactd_app::{IdempotencyKey, Page, PageRequest, RememberedCall, StoreError};
use contactd_domain::{AccountId, Contact, ContactEvent, ContactId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::store_error;
use crate::rows::{CONTACT_COLUMNS, StoredContact, outcome_from_json};
use crate::schema::decode_event;

pub(crate) async fn load_contact(
    pool: &PgPool,
    account_id: &AccountId,
    contact_id: &ContactId,
) -> Result<Option<Contact>, StoreError> {
    let sql =
        format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE contact_id = $1 AND account_id = $2");
    sqlx::query_as::<_, StoredContact>(&sql)
        .bind(contact_id.as_str())
        .bind(account_id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(|e| store_error("loading a contact failed", e))?
        .map(StoredContact::into_contact)
        .transpose()
}

pub(crate) async fn list_contacts(
    pool: &PgPool,
    account_id: &AccountId,
    only: Option<&ContactId>,
    page: PageRequest,
) -> Result<Page<Contact>, StoreError> {
    let only = only.map(ContactId::as_str);
    let total_count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE account_id = $1 AND ($2::text IS NULL OR contact_id = $2)",
    )
    .bind(account_id.as_str())
    .bind(only)
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("counting contacts failed", e))?;
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND ($2::text IS NULL OR contact_id = $2) \
         ORDER BY created_at, contact_id LIMIT $3 OFFSET $4"
    );
    let items = sqlx::query_as::<_, StoredContact>(&sql)
        .bind(account_id.as_str())
        .bind(only)
        .bind(i64::from(page.size))
        .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(|e| store_error("listing contacts failed", e))?
        .into_iter()
        .map(StoredContact::into_contact)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        request: page,
        total_count: u64::try_from(total_count).unwrap_or(0),
        items,
    })
}

pub(crate) async fn recall(
    pool: &PgPool,
    key: &IdempotencyKey,
    since: DateTime<Utc>,
) -> Result<Option<RememberedCall>, StoreError> {
    let row: Option<(Vec<u8>, serde_json::Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT fingerprint, outcome, recorded_at FROM idempotency_records \
         WHERE account_id = $1 AND operation = $2 AND client_token = $3",
    )
    .bind(key.account_id.as_str())
    .bind(key.operation.as_str())
    .bind(key.token.as_str())
    .fetch_optional(pool)
    .await
    .map_err(|e| store_error("recalling a client token failed", e))?;
    match row {
        None => Ok(None),
        Some((_, _, recorded_at)) if recorded_at < since => {
            // Expired: forget it now, so that the token is free for the call about to use it.
            sqlx::query(
                "DELETE FROM idempotency_records \
                 WHERE account_id = $1 AND operation = $2 AND client_token = $3 AND recorded_at < $4",
            )
            .bind(key.account_id.as_str())
            .bind(key.operation.as_str())
            .bind(key.token.as_str())
            .bind(since)
            .execute(pool)
            .await
            .map_err(|e| store_error("forgetting an expired client token failed", e))?;
            Ok(None)
        }
        Some((fingerprint, outcome, recorded_at)) => Ok(Some(RememberedCall {
            key: key.clone(),
            fingerprint,
            outcome: outcome_from_json(outcome)?,
            recorded_at,
        })),
    }
}

/// An event as read back from the log, with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub global_position: i64,
    pub event_id: Uuid,
    pub account_id: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub request_id: String,
    pub caller: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    global_position: i64,
    event_id: Uuid,
    account_id: String,
    stream_id: String,
    stream_version: i64,
    event_type: String,
    schema_version: i32,
    payload: serde_json::Value,
    request_id: String,
    caller: String,
    correlation_id: String,
    causation_id: String,
    recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The domain event, read through the upcasting seam.
    pub fn decode(&self) -> Result<ContactEvent, StoreError> {
        decode_event(&self.event_type, self.schema_version, self.payload.clone())
    }
}

impl crate::PgStore {
    /// A stream's events in version order, scoped to the account like every read.
    pub async fn read_stream(
        &self,
        account_id: &AccountId,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT global_position, event_id, account_id, stream_id, stream_version, event_type, schema_version, \
                    payload, request_id, caller, correlation_id, causation_id, recorded_at \
             FROM events WHERE account_id = $1 AND stream_id = $2 ORDER BY stream_version",
        )
        .bind(account_id.as_str())
        .bind(stream_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| store_error("reading a stream failed", e))?;
        Ok(rows
            .into_iter()
            .map(|r| StoredEvent {
                global_position: r.global_position,
                event_id: r.event_id,
                account_id: r.account_id,
                stream_id: r.stream_id,
                stream_version: r.stream_version,
                event_type: r.event_type,
                schema_version: r.schema_version,
                payload: r.payload,
                request_id: r.request_id,
                caller: r.caller,
                correlation_id: r.correlation_id,
                causation_id: r.causation_id,
                recorded_at: r.recorded_at,
            })
            .collect())
    }
}

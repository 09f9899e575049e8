//! A stored event as a store selects it, turned into the application's [`RecordedEvent`], and
//! the renderings of one that auditors read. The payload is rendered from its parsed value,
//! never as the database printed it, so that the audit service and `events replay` print the
//! same JSON for the same event on every backend. A sealed payload is read opened (or, once its
//! contact is forgotten, redacted) at the clear version it was sealed from: readers never see
//! whether an event was stored sealed.

use chrono::{DateTime, Utc};
use contactd_app::{EventMetadata, LogPosition, Opened, RecordedEvent, StoreError};
use contactd_domain::AccountId;
use uuid::Uuid;

use crate::events::decode_event;
use crate::sealing::{DataKey, OpenKeys, is_sealed, open_payload, seal_payload};

/// An event's row: the columns every store keeps, with the payload as text and the store's
/// log order in `log_order` (see [`LogPosition`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub global_position: i64,
    /// The first part of the store's log order: PostgreSQL's writing transaction; for a store
    /// whose positions commit in order, the position again.
    pub log_order: i64,
    pub event_id: Uuid,
    pub account_id: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub request_id: String,
    pub caller: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: DateTime<Utc>,
}

/// The payload in its one rendering: compact, keys in order.
pub fn canonical_payload(payload: &serde_json::Value) -> String {
    // serde_json's maps are ordered by key (the `preserve_order` feature is off in this tree).
    payload.to_string()
}

/// The contacts whose data keys a batch of stored events needs to be read by a reader that
/// opens `opened`: those with such sealed events in it, each once.
pub fn needed_keys(rows: &[StoredEvent], opened: Opened) -> Vec<String> {
    let mut needed: Vec<String> = rows
        .iter()
        .filter(|row| {
            is_sealed(&row.event_type, row.schema_version) && opened.opens(&row.event_type)
        })
        .map(|row| row.stream_id.clone())
        .collect();
    needed.sort_unstable();
    needed.dedup();
    needed
}

/// An event stored in clear before sealing began, sealed under `key`: its id, and the schema
/// version and payload to store in place of its own (the one change the log allows; ADR 13).
/// The payload keeps its shape and version, only sealed: it reads back exactly as before. It
/// must read before it is sealed: an unreadable event is refused, not sealed.
pub fn sealed_in_place(
    row: StoredEvent,
    key: &DataKey,
) -> Result<(Uuid, i32, serde_json::Value), StoreError> {
    let (event_id, event_type, schema_version) =
        (row.event_id, row.event_type.clone(), row.schema_version);
    let mut payload: serde_json::Value = serde_json::from_str(&row.payload).map_err(|_| {
        StoreError::internal(format!("event {event_id} has an unreadable payload"), None)
    })?;
    row.into_recorded(&OpenKeys::default())?;
    let sealed = seal_payload(&event_type, schema_version, &mut payload, event_id, key);
    Ok((event_id, sealed, payload))
}

impl StoredEvent {
    /// Opens the sealed fields with the contact's key from `keys` and decodes the payload
    /// through the upcasters. A value that does not read (or does not open) means the data
    /// was changed behind the service's back: it is refused, never guessed.
    pub fn into_recorded(self, keys: &OpenKeys) -> Result<RecordedEvent, StoreError> {
        let corrupt = |what: &str| {
            StoreError::internal(
                format!("event {} has an unreadable {what}", self.event_id),
                None,
            )
        };
        let mut payload: serde_json::Value =
            serde_json::from_str(&self.payload).map_err(|_| corrupt("payload"))?;
        let schema_version = open_payload(
            &self.event_type,
            self.schema_version,
            &mut payload,
            self.event_id,
            keys.get(&self.stream_id),
        )?;
        let payload_json = canonical_payload(&payload);
        let event = decode_event(&self.event_type, schema_version, payload, &self.account_id)?;
        Ok(RecordedEvent {
            position: LogPosition::from_parts(self.log_order, self.global_position),
            global_position: self.global_position,
            event_id: self.event_id,
            stream_version: u64::try_from(self.stream_version)
                .map_err(|_| corrupt("stream version"))?,
            event,
            metadata: EventMetadata {
                request_id: self.request_id,
                account_id: AccountId::parse(&self.account_id)
                    .map_err(|_| corrupt("account id"))?,
                caller: self.caller,
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                recorded_at: self.recorded_at,
            },
            stream_id: self.stream_id,
            event_type: self.event_type,
            schema_version,
            payload_json,
        })
    }
}

/// An event as one line of JSON, for offline audits: its place, its metadata, and its payload
/// as stored. The same on every backend: the log order a store keeps internally is not in it.
pub fn event_json_line(event: &RecordedEvent) -> String {
    let payload: serde_json::Value =
        serde_json::from_str(&event.payload_json).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "global_position": event.global_position,
        "event_id": event.event_id.to_string(),
        "account_id": event.metadata.account_id.as_str(),
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "recorded_at": event.metadata.recorded_at,
        "request_id": event.metadata.request_id,
        "caller": event.metadata.caller,
        "correlation_id": event.metadata.correlation_id,
        "causation_id": event.metadata.causation_id,
        "payload": payload,
    })
    .to_string()
}

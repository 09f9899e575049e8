//! Forgetting a contact on SQLite (ADR 13), in one transaction on the writer: its events, its
//! row gone if it was still there, what its stream held in clear sealed in place, its data key
//! destroyed, and what the read models kept of the person dropped. Also the sealing in place
//! of every event stored in clear before encryption (`contactd events encrypt`).

use std::collections::HashMap;

use contactd_app::{AppendError, Forget, StoreError};
use contactd_store_core::events::encode_sealed_contact_event;
use contactd_store_core::sealing::{is_clear_personal, sealing_moves};
use contactd_store_core::{DataKey, EventSealing, Keyring, StoredEvent, sealed_in_place};
use sqlx::{SqliteConnection, SqlitePool};

use crate::append::{EncodedEvent, insert_events, version};
use crate::error::{append_error, failed};
use crate::keys::stored_key;
use crate::log::EVENT_COLUMNS;

pub(crate) async fn forget(
    writes: &SqlitePool,
    keyring: &Keyring,
    forget: Forget<'_>,
) -> Result<(), AppendError> {
    let contact_id = forget.contact_id.as_str();
    let metadata = forget.metadata;
    let account_id = metadata.account_id.as_str();
    // The forgetting's own events name no one: no key seals them.
    let encoded = forget
        .events
        .iter()
        .map(|new| {
            let (event_type, schema_version, payload) =
                encode_sealed_contact_event(&new.event, new.event_id, None)?;
            Ok(EncodedEvent {
                event_id: new.event_id,
                event_type,
                schema_version,
                payload: payload.to_string(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map_err(AppendError::Store)?;
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(append_error)?;
    insert_events(
        &mut tx,
        account_id,
        contact_id,
        forget.expected_version,
        &encoded,
        metadata,
    )
    .await
    .map_err(append_error)?;
    if let Some(name_key) = &forget.live_name_key {
        let removed = sqlx::query(
            "DELETE FROM contacts WHERE contact_id = ?1 AND account_id = ?2 AND version = ?3",
        )
        .bind(contact_id)
        .bind(account_id)
        .bind(version(forget.expected_version))
        .execute(&mut *tx)
        .await
        .map_err(append_error)?;
        if removed.rows_affected() != 1 {
            return Err(AppendError::VersionConflict);
        }
        sqlx::query(
            "DELETE FROM contact_names WHERE account_id = ?1 AND name_key = ?2 AND contact_id = ?3",
        )
        .bind(account_id)
        .bind(name_key)
        .bind(contact_id)
        .execute(&mut *tx)
        .await
        .map_err(append_error)?;
        sqlx::query(
            "UPDATE contact_quotas SET contacts = contacts - 1 WHERE account_id = ?1 AND contacts > 0",
        )
        .bind(account_id)
        .execute(&mut *tx)
        .await
        .map_err(append_error)?;
    }
    seal_stream_in_place(&mut tx, contact_id, account_id, keyring)
        .await
        .map_err(AppendError::Store)?;
    sqlx::query(
        "INSERT INTO contact_keys (contact_id, account_id, created_at, forgotten_at) \
         VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (contact_id) DO UPDATE \
             SET master_key_id = NULL, wrapped_key = NULL, forgotten_at = excluded.forgotten_at",
    )
    .bind(contact_id)
    .bind(account_id)
    .bind(metadata.recorded_at)
    .execute(&mut *tx)
    .await
    .map_err(append_error)?;
    // What the read models kept of the person: the messages to send it (and those sent), the
    // integration events about it not yet published (a removal names no one and goes out),
    // and the remembered answer of its Add, which holds the contact as added.
    for (purge, sql) in [
        (
            "dropping the contact's verification messages failed",
            "DELETE FROM outbox_messages WHERE contact_id = ?1 AND account_id = ?2",
        ),
        (
            "dropping the contact's integration events failed",
            "DELETE FROM lifecycle_jobs WHERE contact_id = ?1 AND account_id = ?2 \
             AND kind = 'publish' AND state IN ('pending', 'failed') \
             AND json_extract(payload, '$.type') IS NOT 'MemberContactRemoved'",
        ),
        (
            "dropping the contact's remembered add failed",
            "DELETE FROM idempotency_records WHERE account_id = ?2 \
             AND json_extract(outcome, '$.kind') = 'Added' \
             AND json_extract(outcome, '$.contact.contact_id') = ?1",
        ),
    ] {
        sqlx::query(sql)
            .bind(contact_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| AppendError::Store(crate::error::store_error(purge, e)))?;
    }
    tx.commit().await.map_err(append_error)
}

/// Seals what the contact's stream still holds in clear under a key that is never stored: the
/// forgetting destroys the contact's own key in the same transaction, so neither opens again.
async fn seal_stream_in_place(
    conn: &mut SqliteConnection,
    contact_id: &str,
    account_id: &str,
    keyring: &Keyring,
) -> Result<(), StoreError> {
    let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND account_id = ?2 \
         ORDER BY stream_version"
    ))
    .bind(contact_id)
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(failed("reading the stream to forget failed"))?;
    let (throwaway, _) = keyring.new_data_key(contact_id);
    for row in rows
        .into_iter()
        .filter(|row| is_clear_personal(&row.event_type, row.schema_version))
    {
        reseal(&mut *conn, row, &throwaway).await?;
    }
    Ok(())
}

/// Stores `row` sealed under `key` in its place: the one change the log allows (its guard
/// lets nothing else through), and only while the row is still in clear.
async fn reseal(
    conn: &mut SqliteConnection,
    row: StoredEvent,
    key: &DataKey,
) -> Result<bool, StoreError> {
    let stored_version = row.schema_version;
    let (event_id, version, payload) = sealed_in_place(row, key)?;
    let sealed = sqlx::query(
        "UPDATE events SET payload = ?1, schema_version = ?2 \
         WHERE event_id = ?3 AND schema_version = ?4",
    )
    .bind(payload.to_string())
    .bind(version)
    .bind(event_id)
    .bind(stored_version)
    .execute(conn)
    .await
    .map_err(failed("sealing an event in place failed"))?;
    Ok(sealed.rows_affected() == 1)
}

/// Events sealed per transaction: the writer is held for one batch at a time, so appends go
/// on between them.
const SEALING_BATCH: i64 = 500;

/// Seals in place every event stored in clear, by position, a batch per transaction on the
/// writer, each under its contact's key (created if it has none; a forgotten contact's under
/// a key never stored, as forgetting does). A second run finds nothing to seal.
pub(crate) async fn seal_clear_events(
    writes: &SqlitePool,
    keyring: &Keyring,
) -> Result<EventSealing, StoreError> {
    // The clear `(type, version)` pairs, as one JSON array bound to the query.
    let clear: Vec<serde_json::Value> = sealing_moves()
        .map(|(event_type, from, _)| serde_json::json!([event_type, from]))
        .collect();
    let clear = serde_json::Value::from(clear).to_string();
    let mut after = 0_i64;
    let mut sealed = 0;
    loop {
        let mut tx = writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("beginning to seal events failed"))?;
        let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE global_position > ?1 \
             AND (event_type, schema_version) IN \
                 (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2)) \
             ORDER BY global_position LIMIT ?3"
        ))
        .bind(after)
        .bind(&clear)
        .bind(SEALING_BATCH)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("reading the events in clear failed"))?;
        let Some(last) = rows.last() else { break };
        after = last.global_position;
        let mut keys: HashMap<String, DataKey> = HashMap::new();
        for row in rows {
            let key = match keys.get(&row.stream_id) {
                Some(key) => key.clone(),
                None => {
                    let key = stored_key(
                        &mut tx,
                        keyring,
                        &row.stream_id,
                        &row.account_id,
                        chrono::Utc::now(),
                    )
                    .await?
                    .unwrap_or_else(|| keyring.new_data_key(&row.stream_id).0);
                    keys.insert(row.stream_id.clone(), key.clone());
                    key
                }
            };
            if reseal(&mut tx, row, &key).await? {
                sealed += 1;
            }
        }
        tx.commit()
            .await
            .map_err(failed("committing sealed events failed"))?;
    }
    Ok(EventSealing { sealed })
}

//! Forgetting a contact on PostgreSQL (ADR 13), in one transaction: its events, its row gone
//! if it was still there, what its stream held in clear sealed in place, its data key
//! destroyed, and what the read models kept of the person dropped. Also the sealing in place
//! of every event stored in clear before encryption (`contactd events encrypt`).

use std::collections::HashMap;

use contactd_app::{AppendError, Forget, StoreError};
use contactd_store_core::events::encode_sealed_contact_event;
use contactd_store_core::sealing::{is_clear_personal, sealing_moves};
use contactd_store_core::{DataKey, EventSealing, Keyring, sealed_in_place};
use sqlx::{PgConnection, PgPool};

use crate::error::{append_error, failed, store_error};
use crate::keys::stored_key;
use crate::log::{EVENT_COLUMNS, EventRow};

pub(crate) async fn forget(
    pool: &PgPool,
    keyring: &Keyring,
    forget: Forget<'_>,
) -> Result<(), AppendError> {
    let contact_id = forget.contact_id.as_str();
    let metadata = forget.metadata;
    let account_id = metadata.account_id.as_str();
    let mut types = Vec::new();
    let mut versions = Vec::new();
    let mut payloads = Vec::new();
    for new in forget.events {
        let (event_type, version, payload) =
            encode_sealed_contact_event(&new.event, new.event_id, None)
                .map_err(AppendError::Store)?;
        types.push(event_type);
        versions.push(version);
        payloads.push(payload);
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| AppendError::Store(store_error("beginning a forgetting failed", e)))?;
    sqlx::query(
        "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version, \
                             payload, request_id, caller, correlation_id, causation_id, recorded_at) \
         SELECT e.event_id, $1, $2, $3 + e.ordinal, e.event_type, e.schema_version, e.payload, \
                $4, $5, $6, $7, $8 \
         FROM UNNEST($9::uuid[], $10::text[], $11::int[], $12::jsonb[]) WITH ORDINALITY \
              AS e(event_id, event_type, schema_version, payload, ordinal)",
    )
    .bind(account_id)
    .bind(contact_id)
    .bind(forget.expected_version as i64)
    .bind(&metadata.request_id)
    .bind(&metadata.caller)
    .bind(&metadata.correlation_id)
    .bind(&metadata.causation_id)
    .bind(metadata.recorded_at)
    .bind(forget.events.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(&types)
    .bind(&versions)
    .bind(&payloads)
    .execute(&mut *tx)
    .await
    .map_err(append_error)?;
    if let Some(name_key) = &forget.live_name_key {
        let removed = sqlx::query(
            "DELETE FROM contacts WHERE contact_id = $1 AND account_id = $2 AND version = $3",
        )
        .bind(contact_id)
        .bind(account_id)
        .bind(forget.expected_version as i64)
        .execute(&mut *tx)
        .await
        .map_err(append_error)?;
        if removed.rows_affected() != 1 {
            return Err(AppendError::VersionConflict);
        }
        sqlx::query(
            "DELETE FROM contact_names WHERE account_id = $1 AND name_key = $2 AND contact_id = $3",
        )
        .bind(account_id)
        .bind(name_key)
        .bind(contact_id)
        .execute(&mut *tx)
        .await
        .map_err(append_error)?;
        sqlx::query(
            "UPDATE contact_quotas SET contacts = contacts - 1 WHERE account_id = $1 AND contacts > 0",
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
        "INSERT INTO contact_keys (contact_id, account_id, created_at, forgotten_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (contact_id) DO UPDATE \
             SET master_key_id = NULL, wrapped_key = NULL, forgotten_at = EXCLUDED.forgotten_at",
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
            "DELETE FROM outbox_messages WHERE contact_id = $1 AND account_id = $2",
        ),
        (
            "dropping the contact's integration events failed",
            "DELETE FROM lifecycle_jobs WHERE contact_id = $1 AND account_id = $2 AND kind = 'publish' \
             AND payload->>'type' IS DISTINCT FROM 'MemberContactRemoved'",
        ),
        (
            "dropping the contact's remembered add failed",
            "DELETE FROM idempotency_records WHERE account_id = $2 AND outcome->>'kind' = 'Added' \
             AND outcome->'contact'->>'contact_id' = $1",
        ),
    ] {
        sqlx::query(sql)
            .bind(contact_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| AppendError::Store(store_error(purge, e)))?;
    }
    tx.commit()
        .await
        .map_err(|e| AppendError::Store(store_error("committing a forgetting failed", e)))
}

/// Seals what the contact's stream still holds in clear under a key that is never stored: the
/// forgetting destroys the contact's own key in the same transaction, so neither opens again.
async fn seal_stream_in_place(
    connection: &mut PgConnection,
    contact_id: &str,
    account_id: &str,
    keyring: &Keyring,
) -> Result<(), StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND account_id = $2 ORDER BY stream_version"
    ))
    .bind(contact_id)
    .bind(account_id)
    .fetch_all(&mut *connection)
    .await
    .map_err(failed("reading the stream to forget failed"))?;
    let (throwaway, _) = keyring.new_data_key(contact_id);
    for row in rows
        .into_iter()
        .filter(|row| is_clear_personal(&row.event_type, row.schema_version))
    {
        reseal(&mut *connection, row, &throwaway).await?;
    }
    Ok(())
}

/// Stores `row` sealed under `key` in its place: the one change the log allows, and only
/// while the row is still in clear.
async fn reseal(
    connection: &mut PgConnection,
    row: EventRow,
    key: &DataKey,
) -> Result<bool, StoreError> {
    let stored_version = row.schema_version;
    let (event_id, version, payload) = sealed_in_place(row, key)?;
    let sealed = sqlx::query(
        "UPDATE events SET schema_version = $2, payload = $3 WHERE event_id = $1 AND schema_version = $4",
    )
    .bind(event_id)
    .bind(version)
    .bind(payload)
    .bind(stored_version)
    .execute(connection)
    .await
    .map_err(failed("sealing an event in place failed"))?;
    Ok(sealed.rows_affected() == 1)
}

const SEALING_BATCH: i64 = 500;

/// Seals in place every event stored in clear, by position, a batch per transaction, each
/// under its contact's key (created if it has none; a forgotten contact's under a key never
/// stored). Events sealed meanwhile by another run are left as they are.
pub(crate) async fn seal_clear_events(
    pool: &PgPool,
    keyring: &Keyring,
) -> Result<EventSealing, StoreError> {
    let (types, versions): (Vec<&str>, Vec<i32>) = sealing_moves()
        .map(|(event_type, from, _)| (event_type, from))
        .unzip();
    let mut after = 0_i64;
    let mut sealed = 0;
    loop {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE global_position > $1 \
             AND (event_type, schema_version) IN (SELECT * FROM UNNEST($2::text[], $3::int[])) \
             ORDER BY global_position LIMIT $4"
        ))
        .bind(after)
        .bind(&types)
        .bind(&versions)
        .bind(SEALING_BATCH)
        .fetch_all(pool)
        .await
        .map_err(failed("reading the events in clear failed"))?;
        let Some(last) = rows.last() else { break };
        after = last.global_position;
        let mut keys: HashMap<String, DataKey> = HashMap::new();
        for row in &rows {
            if !keys.contains_key(&row.stream_id) {
                let key = match stored_key(pool, keyring, &row.stream_id, &row.account_id).await? {
                    Some(key) => key,
                    None => keyring.new_data_key(&row.stream_id).0,
                };
                keys.insert(row.stream_id.clone(), key);
            }
        }
        let mut tx = pool
            .begin()
            .await
            .map_err(failed("beginning to seal events failed"))?;
        for row in rows {
            let key = &keys[&row.stream_id];
            if reseal(&mut tx, row, key).await? {
                sealed += 1;
            }
        }
        tx.commit()
            .await
            .map_err(failed("committing sealed events failed"))?;
    }
    Ok(EventSealing { sealed })
}

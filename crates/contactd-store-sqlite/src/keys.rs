//! The contacts' data keys on SQLite (ADR 13): the key an append seals with, the keys a read
//! opens with (always from the table, never from memory: a key destroyed by a forgetting must
//! not open anything afterwards), and the rotation of the master key, which rewraps every
//! data key without touching an event.

use contactd_app::{Append, AppendError, Opened, RecordedEvent, StoreError};
use contactd_store_core::sealing::{KeyState, names_a_person};
use contactd_store_core::{
    DataKey, KeyCache, KeyRotation, KeyRow, Keyring, OpenKeys, StoredEvent, WrappedKey, needed_keys,
};
use sqlx::{SqliteConnection, SqliteExecutor, SqlitePool};

use crate::error::{append_error, failed};

/// How many data keys a process keeps to seal with.
pub(crate) const CACHED_KEYS: usize = 16_384;

/// What the store seals and opens with: the master keys, and the data keys it wrote with
/// lately (for writes only).
#[derive(Debug)]
pub(crate) struct Keys {
    pub keyring: Keyring,
    pub cache: KeyCache,
}

impl Keys {
    pub(crate) fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            cache: KeyCache::new(CACHED_KEYS),
        }
    }
}

/// The key an append sealed with, to be cached once its transaction has committed.
pub(crate) type UsedKey = Option<(String, DataKey)>;

/// The key `append` seals with, on the writer's connection inside the append's transaction:
/// none if no event of it names a person; a new one for a new contact (its row stored by
/// [`store_new_key`] after the events, whose insert is the version check); else the cached
/// one, or the stored one (created first for a contact stored before encryption). A destroyed
/// key refuses the append: a forgotten contact takes no more events.
pub(crate) async fn sealing_key(
    conn: &mut SqliteConnection,
    keys: &Keys,
    append: &Append<'_>,
) -> Result<Option<(DataKey, Option<WrappedKey>)>, AppendError> {
    if !append
        .events
        .iter()
        .any(|e| names_a_person(e.event.event_type()))
    {
        return Ok(None);
    }
    let contact_id = append.contact.contact_id.as_str();
    if append.expected_version == 0 {
        let (key, wrapped) = keys.keyring.new_data_key(contact_id);
        return Ok(Some((key, Some(wrapped))));
    }
    if let Some(key) = keys.cache.get(contact_id) {
        return Ok(Some((key, None)));
    }
    let account_id = append.metadata.account_id.as_str();
    match stored_key(
        conn,
        &keys.keyring,
        contact_id,
        account_id,
        append.metadata.recorded_at,
    )
    .await
    {
        Ok(Some(key)) => Ok(Some((key, None))),
        Ok(None) => {
            // Forgotten. An append decided before the forgetting is only stale: answered as
            // the version check would answer it, so that the caller reloads and finds no one.
            let last: Option<i64> =
                sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = ?1")
                    .bind(contact_id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(append_error)?;
            if last.is_some_and(|last| last > crate::append::version(append.expected_version)) {
                return Err(AppendError::VersionConflict);
            }
            Err(AppendError::Store(StoreError::internal(
                format!("contact {contact_id} is forgotten: its stream takes no more events"),
                None,
            )))
        }
        Err(error) => Err(AppendError::Store(error)),
    }
}

/// A new contact's key row, in the transaction of its first events.
pub(crate) async fn store_new_key(
    conn: &mut SqliteConnection,
    append: &Append<'_>,
    wrapped: &WrappedKey,
) -> Result<(), AppendError> {
    sqlx::query(
        "INSERT INTO contact_keys (contact_id, account_id, master_key_id, wrapped_key, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(append.contact.contact_id.as_str())
    .bind(append.metadata.account_id.as_str())
    .bind(&wrapped.master_key_id)
    .bind(&wrapped.bytes)
    .bind(append.metadata.recorded_at)
    .execute(&mut *conn)
    .await
    .map_err(append_error)?;
    Ok(())
}

/// The contact's stored key, created if it has none (a contact stored before encryption);
/// `None` if it was destroyed. On the writer's connection: the one writer makes "insert, or
/// keep the one there" and the select that follows one step.
pub(crate) async fn stored_key(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    contact_id: &str,
    account_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<DataKey>, StoreError> {
    let (_, wrapped) = keyring.new_data_key(contact_id);
    sqlx::query(
        "INSERT INTO contact_keys (contact_id, account_id, master_key_id, wrapped_key, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (contact_id) DO NOTHING",
    )
    .bind(contact_id)
    .bind(account_id)
    .bind(&wrapped.master_key_id)
    .bind(&wrapped.bytes)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(failed("creating a contact's data key failed"))?;
    let row: KeyRow = sqlx::query_as(
        "SELECT contact_id, master_key_id, wrapped_key FROM contact_keys WHERE contact_id = ?1",
    )
    .bind(contact_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(failed("reading a contact's data key failed"))?;
    Ok(
        match OpenKeys::unwrap_rows(keyring, vec![row])?.get(contact_id) {
            Some(KeyState::Present(key)) => Some(key.clone()),
            _ => None,
        },
    )
}

/// The keys `rows` need to be read, from the table in one query (none if no row is sealed).
/// The ids go in as one JSON array: one statement whatever their number.
pub(crate) async fn open_keys<'e>(
    executor: impl SqliteExecutor<'e>,
    keyring: &Keyring,
    rows: &[StoredEvent],
    opened: Opened,
) -> Result<OpenKeys, StoreError> {
    let needed = needed_keys(rows, opened);
    if needed.is_empty() {
        return Ok(OpenKeys::default().for_reader(opened));
    }
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT contact_id, master_key_id, wrapped_key FROM contact_keys \
         WHERE contact_id IN (SELECT value FROM json_each(?1))",
    )
    .bind(serde_json::Value::from(needed).to_string())
    .fetch_all(executor)
    .await
    .map_err(failed("reading the data keys failed"))?;
    Ok(OpenKeys::unwrap_rows(keyring, keys)?.for_reader(opened))
}

/// Stored rows as the application reads them: the events `opened` names opened with their
/// contacts' keys.
pub(crate) async fn decode<'e>(
    executor: impl SqliteExecutor<'e>,
    keyring: &Keyring,
    rows: Vec<StoredEvent>,
    opened: Opened,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let keys = open_keys(executor, keyring, &rows, opened).await?;
    rows.into_iter()
        .map(|row| row.into_recorded(&keys))
        .collect()
}

const ROTATION_BATCH: i64 = 500;

/// Rewraps under the keyring's current master key every live data key that another master
/// key wraps, a batch per transaction on the writer; each row changes only if it is still
/// under the master key it was read under.
pub(crate) async fn rotate(
    writes: &SqlitePool,
    keyring: &Keyring,
) -> Result<KeyRotation, StoreError> {
    let mut rewrapped = 0;
    loop {
        let mut tx = writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("beginning a rotation failed"))?;
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT contact_id, master_key_id, wrapped_key FROM contact_keys \
             WHERE master_key_id IS NOT NULL AND master_key_id <> ?1 ORDER BY contact_id LIMIT ?2",
        )
        .bind(keyring.current_id())
        .bind(ROTATION_BATCH)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("reading the data keys to rotate failed"))?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let (Some(master_key_id), Some(bytes)) = (row.master_key_id, row.wrapped_key) else {
                continue;
            };
            let old = WrappedKey {
                master_key_id,
                bytes,
            };
            let new = keyring
                .rewrap(&row.contact_id, &old)
                .map_err(|e| {
                    StoreError::internal(
                        format!(
                            "the data key of contact {} does not unwrap: {e}",
                            row.contact_id
                        ),
                        None,
                    )
                })?
                // Selected as not under the current key, so rewrapped: `None` cannot come.
                .ok_or_else(|| {
                    StoreError::internal(
                        format!("the data key of contact {} moved meanwhile", row.contact_id),
                        None,
                    )
                })?;
            sqlx::query(
                "UPDATE contact_keys SET master_key_id = ?2, wrapped_key = ?3 \
                 WHERE contact_id = ?1 AND master_key_id = ?4",
            )
            .bind(&row.contact_id)
            .bind(&new.master_key_id)
            .bind(&new.bytes)
            .bind(&old.master_key_id)
            .execute(&mut *tx)
            .await
            .map_err(failed("rewrapping a data key failed"))?;
            rewrapped += 1;
        }
        tx.commit()
            .await
            .map_err(failed("committing a rotation failed"))?;
    }
    let current: i64 =
        sqlx::query_scalar("SELECT count(*) FROM contact_keys WHERE master_key_id = ?1")
            .bind(keyring.current_id())
            .fetch_one(writes)
            .await
            .map_err(failed("counting the rotated keys failed"))?;
    Ok(KeyRotation {
        rewrapped,
        current: u64::try_from(current)
            .unwrap_or_default()
            .saturating_sub(rewrapped),
    })
}

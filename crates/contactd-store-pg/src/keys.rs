//! The contacts' data keys on PostgreSQL (ADR 13): the key an append seals with, the keys a
//! read opens with (always from the table, never from memory), and the rotation of the master
//! key, which rewraps every data key without touching an event.

use contactd_app::{Append, AppendError, Opened, StoreError};
use contactd_store_core::sealing::{KeyState, names_a_person};
use contactd_store_core::{
    DataKey, KeyCache, KeyRotation, KeyRow, Keyring, OpenKeys, StoredEvent, WrappedKey, needed_keys,
};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::error::{failed, store_error};

const SELECT_KEYS: &str =
    "SELECT contact_id, master_key_id, wrapped_key FROM contact_keys WHERE contact_id = ANY($1)";

/// The key an append seals with; `new` is set for a key created by this append, which its
/// statement stores.
pub(crate) struct Sealing {
    pub key: DataKey,
    pub new: Option<WrappedKey>,
}

/// The key `append` seals with: none if no event of it names a person; a new one for a new
/// contact; else this process's cached one, or the stored one (created first for a contact
/// stored before encryption).
pub(crate) async fn sealing_key(
    pool: &PgPool,
    keyring: &Keyring,
    cache: &KeyCache,
    append: &Append<'_>,
) -> Result<Option<Sealing>, AppendError> {
    if !append
        .events
        .iter()
        .any(|e| names_a_person(e.event.event_type()))
    {
        return Ok(None);
    }
    let contact_id = append.contact.contact_id.as_str();
    if append.expected_version == 0 {
        let (key, wrapped) = keyring.new_data_key(contact_id);
        return Ok(Some(Sealing {
            key,
            new: Some(wrapped),
        }));
    }
    if let Some(key) = cache.get(contact_id) {
        return Ok(Some(Sealing { key, new: None }));
    }
    match stored_key(
        pool,
        keyring,
        contact_id,
        append.contact.account_id.as_str(),
    )
    .await
    {
        Ok(Some(key)) => Ok(Some(Sealing { key, new: None })),
        Ok(None) => Err(AppendError::Store(StoreError::internal(
            format!("contact {contact_id} is forgotten: its stream takes no more events"),
            None,
        ))),
        Err(error) => Err(AppendError::Store(error)),
    }
}

/// The contact's stored key, created if it has none (a contact from before encryption: two
/// processes creating it at once agree on the first one stored); `None` if it was destroyed.
pub(crate) async fn stored_key(
    pool: &PgPool,
    keyring: &Keyring,
    contact_id: &str,
    account_id: &str,
) -> Result<Option<DataKey>, StoreError> {
    let (_, wrapped) = keyring.new_data_key(contact_id);
    let row: KeyRow = sqlx::query_as(
        "WITH created AS ( \
             INSERT INTO contact_keys (contact_id, account_id, master_key_id, wrapped_key, created_at) \
             VALUES ($1, $2, $3, $4, now()) ON CONFLICT (contact_id) DO NOTHING \
             RETURNING contact_id, master_key_id, wrapped_key) \
         SELECT * FROM created \
         UNION ALL SELECT contact_id, master_key_id, wrapped_key FROM contact_keys WHERE contact_id = $1 \
         LIMIT 1",
    )
    .bind(contact_id)
    .bind(account_id)
    .bind(&wrapped.master_key_id)
    .bind(&wrapped.bytes)
    .fetch_one(pool)
    .await
    .map_err(failed("reading a contact's data key failed"))?;
    Ok(
        match OpenKeys::unwrap_rows(keyring, vec![row])?.get(contact_id) {
            Some(KeyState::Present(key)) => Some(key.clone()),
            _ => None,
        },
    )
}

/// The keys `rows` need to be read by a reader that opens `opened`, from the table in one
/// query (none if no such row is sealed).
pub(crate) async fn open_keys<'e>(
    executor: impl PgExecutor<'e>,
    keyring: &Keyring,
    rows: &[StoredEvent],
    opened: Opened,
) -> Result<OpenKeys, StoreError> {
    let needed = needed_keys(rows, opened);
    if needed.is_empty() {
        return Ok(OpenKeys::default().for_reader(opened));
    }
    let keys: Vec<KeyRow> = sqlx::query_as(SELECT_KEYS)
        .bind(&needed)
        .fetch_all(executor)
        .await
        .map_err(failed("reading the data keys failed"))?;
    Ok(OpenKeys::unwrap_rows(keyring, keys)?.for_reader(opened))
}

/// Every data key, for a rebuild that reads the whole log.
pub(crate) async fn all_keys(
    connection: &mut PgConnection,
    keyring: &Keyring,
) -> Result<OpenKeys, StoreError> {
    let keys: Vec<KeyRow> =
        sqlx::query_as("SELECT contact_id, master_key_id, wrapped_key FROM contact_keys")
            .fetch_all(connection)
            .await
            .map_err(failed("reading the data keys failed"))?;
    OpenKeys::unwrap_rows(keyring, keys)
}

const ROTATION_BATCH: i64 = 500;

/// Rewraps under the keyring's current master key every live data key that another master
/// key wraps, a batch per transaction; each row changes only if it is still as read.
pub(crate) async fn rotate(pool: &PgPool, keyring: &Keyring) -> Result<KeyRotation, StoreError> {
    let mut rewrapped = 0;
    loop {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT contact_id, master_key_id, wrapped_key FROM contact_keys \
             WHERE master_key_id IS NOT NULL AND master_key_id <> $1 ORDER BY contact_id LIMIT $2",
        )
        .bind(keyring.current_id())
        .bind(ROTATION_BATCH)
        .fetch_all(pool)
        .await
        .map_err(failed("reading the data keys to rotate failed"))?;
        if rows.is_empty() {
            break;
        }
        let mut tx = pool
            .begin()
            .await
            .map_err(failed("beginning a rotation failed"))?;
        for row in rows {
            let (Some(master_key_id), Some(bytes)) = (row.master_key_id, row.wrapped_key) else {
                continue;
            };
            let old = WrappedKey {
                master_key_id,
                bytes,
            };
            let Some(new) = keyring.rewrap(&row.contact_id, &old).map_err(|e| {
                StoreError::internal(
                    format!(
                        "the data key of contact {} does not unwrap: {e}",
                        row.contact_id
                    ),
                    None,
                )
            })?
            else {
                continue;
            };
            sqlx::query(
                "UPDATE contact_keys SET master_key_id = $2, wrapped_key = $3 \
                 WHERE contact_id = $1 AND master_key_id = $4 AND wrapped_key = $5",
            )
            .bind(&row.contact_id)
            .bind(&new.master_key_id)
            .bind(&new.bytes)
            .bind(&old.master_key_id)
            .bind(&old.bytes)
            .execute(&mut *tx)
            .await
            .map_err(|e| store_error("rewrapping a data key failed", e))?;
            rewrapped += 1;
        }
        tx.commit()
            .await
            .map_err(failed("committing a rotation failed"))?;
    }
    let current: i64 =
        sqlx::query_scalar("SELECT count(*) FROM contact_keys WHERE master_key_id = $1")
            .bind(keyring.current_id())
            .fetch_one(pool)
            .await
            .map_err(failed("counting the rotated keys failed"))?;
    Ok(KeyRotation {
        rewrapped,
        current: u64::try_from(current)
            .unwrap_or_default()
            .saturating_sub(rewrapped),
    })
}

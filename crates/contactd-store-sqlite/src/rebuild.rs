//! Rebuilding the inline read models on SQLite (`contacts`, `contact_names`, `contact_quotas`
//! and `directories`) from the log, in one transaction on the one writer: appends wait until
//! the new model has committed, as they wait for the table locks on PostgreSQL.

use contactd_app::StoreError;
use contactd_store_core::{InlineFold, RebuildReport, StoredContact, StoredDirectory, StoredEvent};
use sqlx::SqliteConnection;

use crate::SqliteStore;
use crate::error::failed;
use crate::keys::decode;
use crate::log::EVENT_COLUMNS;

/// Events read per query while folding.
const READ_BATCH: i64 = 5000;

/// Rebuilds the inline read models from the log; a deleted contact leaves no row, name or
/// count.
pub async fn rebuild_contacts(store: &SqliteStore) -> Result<RebuildReport, StoreError> {
    let mut tx = store
        .write_pool()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(failed("beginning the rebuild failed"))?;
    let mut fold = InlineFold::default();
    let mut after = 0_i64;
    loop {
        // Stream order within the fold is version order: a stream's events are appended in
        // version order by the one writer, so log order keeps it.
        let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE global_position > ?1 \
             ORDER BY global_position LIMIT ?2"
        ))
        .bind(after)
        .bind(READ_BATCH)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("reading the log failed"))?;
        let Some(last) = rows.last() else { break };
        after = last.global_position;
        for event in decode(&mut *tx, store.keyring(), rows, contactd_app::Opened::All).await? {
            fold.apply(event)?;
        }
    }
    for table in ["contacts", "contact_names", "directories"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await
            .map_err(failed("emptying the read model failed"))?;
    }
    sqlx::query("UPDATE contact_quotas SET contacts = 0")
        .execute(&mut *tx)
        .await
        .map_err(failed("resetting the quota counters failed"))?;
    let contacts = fold.live_contacts();
    for contact in &contacts {
        insert_contact(&mut tx, contact).await?;
    }
    for directory in fold.directories() {
        let row = StoredDirectory::from(directory);
        sqlx::query(
            "INSERT INTO directories (account_id, resource_directory_id, version, state) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&row.account_id)
        .bind(&row.resource_directory_id)
        .bind(row.version)
        .bind(row.state_json().to_string())
        .execute(&mut *tx)
        .await
        .map_err(failed("writing a rebuilt directory failed"))?;
    }
    tx.commit()
        .await
        .map_err(failed("committing the rebuild failed"))?;
    Ok(RebuildReport {
        events: fold.events(),
        rows: Some(contacts.len() as u64),
    })
}

/// One contact's row, its name claim and its count. The quota's limit grows to what the log
/// holds, as on PostgreSQL: a rebuild never refuses the past.
async fn insert_contact(
    conn: &mut SqliteConnection,
    contact: &contactd_domain::Contact,
) -> Result<(), StoreError> {
    let row = StoredContact::from(contact);
    sqlx::query(
        "INSERT INTO contacts (contact_id, account_id, created_at, version, state) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(&row.contact_id)
    .bind(&row.account_id)
    .bind(row.created_at)
    .bind(row.version)
    .bind(row.state_json().to_string())
    .execute(&mut *conn)
    .await
    .map_err(failed("writing the rebuilt read model failed"))?;
    sqlx::query("INSERT INTO contact_names (account_id, name_key, contact_id) VALUES (?1, ?2, ?3)")
        .bind(&row.account_id)
        .bind(contact.name.uniqueness_key())
        .bind(&row.contact_id)
        .execute(&mut *conn)
        .await
        .map_err(failed("writing the rebuilt name claims failed"))?;
    sqlx::query(
        "INSERT INTO contact_quotas (account_id, contacts, max_contacts) VALUES (?1, 1, 1) \
         ON CONFLICT (account_id) DO UPDATE SET contacts = contacts + 1, \
             max_contacts = max(max_contacts, contacts + 1)",
    )
    .bind(&row.account_id)
    .execute(&mut *conn)
    .await
    .map_err(failed("writing the rebuilt quota failed"))?;
    Ok(())
}

//! Rebuilds: a read model dropped and replayed from the log. Side effects are never replayed:
//! projections with effects outside the database refuse to be rebuilt, and the inline model's
//! rebuild only writes its own tables.

use contactd_app::{LogPosition, Projection, StoreError};
use contactd_domain::Contact;
use sqlx::{Acquire, PgConnection};
use tokio_stream::StreamExt;

use crate::PgStore;
use crate::error::{failed, store_error};
use crate::keys::all_keys;
use crate::log::{EVENT_COLUMNS, EventRow, read_log};
use crate::projection::save_checkpoint;
use crate::work::PgWork;
use contactd_store_core::documents::{StoredContact, StoredDirectory};
use contactd_store_core::{InlineFold, RebuildReport};

const INSERT_BATCH: usize = 5000;

/// Rebuilds the inline read models (`contacts`, `contact_names`, `contact_quotas`, and the
/// directories) from the log; a deleted contact leaves no row, name or count.
/// Appends wait while it runs: they write these tables in the statement that appends, so the
/// tables' lock keeps the log still until the new model commits.
pub async fn rebuild_contacts(store: &PgStore) -> Result<RebuildReport, StoreError> {
    let mut tx = store
        .pool()
        .begin()
        .await
        .map_err(failed("beginning the rebuild failed"))?;
    sqlx::query(
        "LOCK TABLE contacts, contact_names, contact_quotas, directories IN EXCLUSIVE MODE",
    )
    .execute(&mut *tx)
    .await
    .map_err(failed("locking the read model failed"))?;

    let mut fold = InlineFold::default();
    let keys = all_keys(&mut tx, store.keyring()).await?;
    {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY stream_id, stream_version");
        let mut rows = sqlx::query_as::<_, EventRow>(&sql).fetch(&mut *tx);
        while let Some(row) = rows.next().await {
            fold.apply(
                row.map_err(failed("reading the log failed"))?
                    .into_recorded(&keys)?,
            )?;
        }
    }

    sqlx::query("TRUNCATE contacts, contact_names, directories")
        .execute(&mut *tx)
        .await
        .map_err(failed("emptying the read model failed"))?;
    sqlx::query("UPDATE contact_quotas SET contacts = 0")
        .execute(&mut *tx)
        .await
        .map_err(failed("resetting the quota counters failed"))?;
    let all = fold.live_contacts();
    for chunk in all.chunks(INSERT_BATCH) {
        insert_contacts(&mut tx, chunk).await?;
    }
    for directory in fold.directories() {
        let row = StoredDirectory::from(directory);
        sqlx::query(
            "INSERT INTO directories (account_id, resource_directory_id, version, state) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.account_id)
        .bind(&row.resource_directory_id)
        .bind(row.version)
        .bind(row.state_json())
        .execute(&mut *tx)
        .await
        .map_err(|e| store_error("writing a rebuilt directory failed", e))?;
    }
    tx.commit()
        .await
        .map_err(failed("committing the rebuild failed"))?;
    Ok(RebuildReport {
        events: fold.events(),
        rows: Some(all.len() as u64),
    })
}

async fn insert_contacts(tx: &mut PgConnection, contacts: &[&Contact]) -> Result<(), StoreError> {
    let rows: Vec<StoredContact> = contacts.iter().map(|c| StoredContact::from(*c)).collect();
    let keys: Vec<String> = contacts.iter().map(|c| c.name.uniqueness_key()).collect();
    sqlx::query(
        "WITH input AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::jsonb[], $6::text[]) \
             AS i(contact_id, account_id, created_at, version, state, name_key) \
         ), contacts_written AS ( \
             INSERT INTO contacts (contact_id, account_id, created_at, version, state) \
             SELECT contact_id, account_id, created_at, version, state FROM input \
         ), names_written AS ( \
             INSERT INTO contact_names (account_id, name_key, contact_id) SELECT account_id, name_key, contact_id FROM input \
         ) \
         INSERT INTO contact_quotas AS q (account_id, contacts, max_contacts) \
         SELECT account_id, count(*), count(*) FROM input GROUP BY account_id \
         ON CONFLICT (account_id) DO UPDATE SET contacts = q.contacts + EXCLUDED.contacts, \
             max_contacts = GREATEST(q.max_contacts, q.contacts + EXCLUDED.contacts)",
    )
    .bind(rows.iter().map(|r| r.contact_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.account_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .bind(rows.iter().map(StoredContact::state_json).collect::<Vec<_>>())
    .bind(keys)
    .execute(&mut *tx)
    .await
    .map_err(|e| store_error("writing the rebuilt read model failed", e))?;
    Ok(())
}

/// Rebuilds an asynchronous projection: its read model emptied and the log replayed into it up
/// to where every earlier transaction has ended, in one transaction that holds its checkpoint
/// (so its live runner waits, then goes on from the rebuilt checkpoint).
pub async fn rebuild_projection<P>(
    store: &PgStore,
    projection: &P,
    batch_size: u32,
) -> Result<RebuildReport, StoreError>
where
    P: for<'w> Projection<PgWork<'w>>,
{
    let name = projection.name();
    let mut tx = store
        .pool()
        .begin()
        .await
        .map_err(failed("beginning the rebuild failed"))?;
    sqlx::query(
        "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *tx)
    .await
    .map_err(failed("creating the checkpoint failed"))?;
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(failed("locking the checkpoint failed"))?;
    let mut work = PgWork::new(&mut tx);
    let Some(clear) = projection.clear(&mut work) else {
        return Err(StoreError::internal(
            format!("{name} has side effects outside the database: it is never rebuilt"),
            None,
        ));
    };
    clear.await?;
    let mut after = LogPosition::START;
    let mut events = 0_u64;
    loop {
        let conn = tx
            .acquire()
            .await
            .map_err(failed("reading the log failed"))?;
        let batch = read_log(
            &mut *conn,
            store.keyring(),
            after,
            None,
            batch_size,
            projection.opened(),
        )
        .await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        events += batch.len() as u64;
        projection.apply(&mut PgWork::new(conn), &batch).await?;
    }
    save_checkpoint(&mut tx, name, after).await?;
    tx.commit()
        .await
        .map_err(failed("committing the rebuild failed"))?;
    Ok(RebuildReport { events, rows: None })
}

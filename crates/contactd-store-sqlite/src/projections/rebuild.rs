//! Rebuilding a projection on SQLite: its read model emptied and the whole log replayed into
//! it, in one transaction on the one writer, so that nothing is appended meanwhile and the
//! checkpoint moves with the rebuilt model. Projections with effects outside the store refuse
//! to be rebuilt.

use contactd_app::{LogPosition, Projection, RecordedEvent, StoreError};
use contactd_store_core::{Keyring, RebuildReport, StoredEvent};
use sqlx::SqliteConnection;

use super::runner::save_checkpoint;
use super::work::SqliteWork;
use crate::SqliteStore;
use crate::error::failed;
use crate::keys::decode;
use crate::log::EVENT_COLUMNS;

/// Rebuilds `projection` from the log, `batch_size` events at a time.
pub async fn rebuild_projection<P>(
    store: &SqliteStore,
    projection: &P,
    batch_size: u32,
) -> Result<RebuildReport, StoreError>
where
    P: for<'w> Projection<SqliteWork<'w>>,
{
    let name = projection.name();
    let mut tx = store
        .write_pool()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(failed("beginning the rebuild failed"))?;
    sqlx::query(
        "INSERT INTO projection_checkpoints (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *tx)
    .await
    .map_err(failed("creating the checkpoint failed"))?;
    let mut work = SqliteWork::new(&mut tx);
    let Some(clear) = projection.clear(&mut work) else {
        return Err(StoreError::internal(
            format!("{name} has side effects outside the database: it is never rebuilt"),
            None,
        ));
    };
    clear.await?;
    let mut after = LogPosition::START;
    let mut last_position = 0;
    let mut events = 0_u64;
    loop {
        let batch = read_after(
            &mut tx,
            store.keyring(),
            last_position,
            batch_size,
            projection.opened(),
        )
        .await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        last_position = last.global_position;
        events += batch.len() as u64;
        projection
            .apply(&mut SqliteWork::new(&mut tx), &batch)
            .await?;
    }
    save_checkpoint(&mut tx, name, after).await?;
    tx.commit()
        .await
        .map_err(failed("committing the rebuild failed"))?;
    Ok(RebuildReport { events, rows: None })
}

/// The events after `global_position`, read inside the rebuild's transaction: positions
/// commit in order and no write runs beside it, so this is the log in order, up to its end.
async fn read_after(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    global_position: i64,
    limit: u32,
    opened: contactd_app::Opened,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE global_position > ?1 \
         ORDER BY global_position LIMIT ?2"
    ))
    .bind(global_position)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(failed("reading the log failed"))?;
    decode(conn, keyring, rows, opened).await
}

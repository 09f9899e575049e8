//! The projections' runner on SQLite ([`contactd_app::ProjectionStore`]). One process holds
//! the database (its lock file), so taking a projection needs no lock in the database: only
//! this process's runners can contend for it, and a registry in memory lets one of them hold
//! it at a time, as PostgreSQL's advisory lock does. Checkpoints are `projection_checkpoints`
//! rows, compared and moved in the transaction that applies a batch, on the one writer.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use chrono::Utc;
use contactd_app::{
    LogPosition, Projection, ProjectionStore, RecordedEvent, StoreError, TakenProjection,
};
use sqlx::SqliteConnection;
use tokio::sync::watch;

use super::work::SqliteWork;
use crate::SqliteStore;
use crate::error::failed;

/// The projections held in this process, by database (its lock file) and name.
static HELD: LazyLock<Mutex<HashSet<(PathBuf, &'static str)>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// A projection held by this process. Dropping it (a runner that stops, fails or is aborted)
/// gives the projection up, as losing its connection does on PostgreSQL.
#[derive(Debug)]
pub struct SqliteLease {
    name: &'static str,
    key: (PathBuf, &'static str),
}

impl Drop for SqliteLease {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock() {
            held.remove(&self.key);
        }
    }
}

impl SqliteLease {
    /// Takes `name` on `store`'s database if no other runner of this process holds it (and
    /// never on a store opened only to read, which holds no lock).
    fn take(store: &SqliteStore, name: &'static str) -> Option<Self> {
        let key = (store.lock_file()?.to_owned(), name);
        // Built only once taken: a lease that is dropped gives its projection up.
        let taken = HELD.lock().ok()?.insert(key.clone());
        taken.then(|| Self { name, key })
    }
}

impl ProjectionStore for SqliteStore {
    type Work<'w> = SqliteWork<'w>;
    type Lease = SqliteLease;

    async fn take_projection(
        &self,
        name: &'static str,
        holder: &str,
    ) -> Result<Option<TakenProjection<SqliteLease>>, StoreError> {
        let Some(lease) = SqliteLease::take(self, name) else {
            return Ok(None);
        };
        // Creates the checkpoint if the projection is new, and names its holder.
        let (log_order, global_position): (i64, i64) = sqlx::query_as(
            "INSERT INTO projection_checkpoints (name, holder, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, updated_at = excluded.updated_at \
             RETURNING log_order, global_position",
        )
        .bind(name)
        .bind(holder)
        .bind(Utc::now())
        .fetch_one(self.write_pool())
        .await
        .map_err(failed("claiming a projection checkpoint failed"))?;
        Ok(Some(TakenProjection {
            lease,
            checkpoint: LogPosition::from_parts(log_order, global_position),
        }))
    }

    async fn read_batch(
        &self,
        _: &mut SqliteLease,
        after: LogPosition,
        limit: u32,
        opened: contactd_app::Opened,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        crate::log::read_log(&self.reads, self.keyring(), after, None, limit, opened).await
    }

    async fn apply_batch<P>(
        &self,
        lease: &mut SqliteLease,
        projection: &P,
        from: LogPosition,
        to: LogPosition,
        batch: &[RecordedEvent],
    ) -> Result<(), StoreError>
    where
        P: for<'w> Projection<SqliteWork<'w>>,
    {
        let mut tx = self
            .write_pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("beginning a projection batch failed"))?;
        // The writer is this transaction's until it ends: the checkpoint read here cannot
        // move before the one written below.
        let current = checkpoint(&mut tx, lease.name).await?;
        if current != from {
            return Err(moved(lease.name));
        }
        projection
            .apply(&mut SqliteWork::new(&mut tx), batch)
            .await?;
        save_checkpoint(&mut tx, lease.name, to).await?;
        tx.commit()
            .await
            .map_err(failed("committing a projection batch failed"))
    }

    async fn pass_batches(
        &self,
        lease: &mut SqliteLease,
        from: LogPosition,
        to: LogPosition,
    ) -> Result<(), StoreError> {
        let moved_on = sqlx::query(
            "UPDATE projection_checkpoints SET log_order = ?4, global_position = ?5, updated_at = ?6 \
             WHERE name = ?1 AND log_order = ?2 AND global_position = ?3",
        )
        .bind(lease.name)
        .bind(from.parts().0)
        .bind(from.parts().1)
        .bind(to.parts().0)
        .bind(to.parts().1)
        .bind(Utc::now())
        .execute(self.write_pool())
        .await
        .map_err(failed("moving a projection checkpoint failed"))?;
        if moved_on.rows_affected() == 1 {
            Ok(())
        } else {
            Err(moved(lease.name))
        }
    }

    async fn newest_global_position(&self, _: &mut SqliteLease) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(self.read_pool())
            .await
            .map_err(failed("measuring projection lag failed"))
    }

    async fn release(&self, lease: SqliteLease) {
        drop(lease);
    }

    fn log_changes(&self) -> watch::Receiver<u64> {
        self.log_changes.subscribe()
    }
}

fn moved(name: &str) -> StoreError {
    StoreError::internal(
        format!("the checkpoint of {name} moved under its runner; starting over"),
        None,
    )
}

/// Where the checkpoint of `name` stands; it must exist.
async fn checkpoint(conn: &mut SqliteConnection, name: &str) -> Result<LogPosition, StoreError> {
    let (log_order, global_position): (i64, i64) = sqlx::query_as(
        "SELECT log_order, global_position FROM projection_checkpoints WHERE name = ?1",
    )
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(failed("reading a projection checkpoint failed"))?;
    Ok(LogPosition::from_parts(log_order, global_position))
}

pub(super) async fn save_checkpoint(
    conn: &mut SqliteConnection,
    name: &str,
    to: LogPosition,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE projection_checkpoints SET log_order = ?2, global_position = ?3, updated_at = ?4 \
         WHERE name = ?1",
    )
    .bind(name)
    .bind(to.parts().0)
    .bind(to.parts().1)
    .bind(Utc::now())
    .execute(conn)
    .await
    .map_err(failed("saving a projection checkpoint failed"))?;
    Ok(())
}

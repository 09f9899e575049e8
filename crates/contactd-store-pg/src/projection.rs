//! The projections' runner on PostgreSQL ([`contactd_app::ProjectionStore`]): each projection
//! is active in exactly one process, the holder of its advisory lock, taken on the connection
//! that also reads its batches and writes them, so that losing the connection loses the lock
//! and another process takes over. Checkpoints are `projection_checkpoints` rows, compared and
//! moved in the transaction that applies a batch.

use contactd_app::{
    LogPosition, Opened, Projection, ProjectionStore, RecordedEvent, StoreError, TakenProjection,
};
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

use crate::PgStore;
use crate::error::{failed, store_error};
use crate::log::read_log;
use crate::work::PgWork;

/// A projection held by this process: a connection of its own (outside the pool, so that the
/// pool never hands it to anyone else) holding the projection's advisory lock.
#[derive(Debug)]
pub struct PgLease {
    name: &'static str,
    conn: PgConnection,
}

impl ProjectionStore for PgStore {
    type Work<'w> = PgWork<'w>;
    type Lease = PgLease;

    async fn take_projection(
        &self,
        name: &'static str,
        holder: &str,
    ) -> Result<Option<TakenProjection<PgLease>>, StoreError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(failed("acquiring a projection connection failed"))?
            .detach();
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(lock_key(name))
                .fetch_one(&mut conn)
                .await
                .map_err(failed("taking a projection lock failed"))?;
        if !locked {
            return Ok(None);
        }
        let checkpoint = claim_checkpoint(&mut conn, name, holder).await?;
        Ok(Some(TakenProjection {
            lease: PgLease { name, conn },
            checkpoint,
        }))
    }

    async fn read_batch(
        &self,
        lease: &mut PgLease,
        after: LogPosition,
        limit: u32,
        opened: Opened,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read_log(&mut lease.conn, self.keyring(), after, None, limit, opened).await
    }

    async fn apply_batch<P>(
        &self,
        lease: &mut PgLease,
        projection: &P,
        from: LogPosition,
        to: LogPosition,
        batch: &[RecordedEvent],
    ) -> Result<(), StoreError>
    where
        P: for<'w> Projection<PgWork<'w>>,
    {
        apply_batch(&mut lease.conn, projection, from, to, batch).await
    }

    async fn pass_batches(
        &self,
        lease: &mut PgLease,
        from: LogPosition,
        to: LogPosition,
    ) -> Result<(), StoreError> {
        move_checkpoint(&mut lease.conn, lease.name, from, to).await
    }

    async fn newest_global_position(&self, lease: &mut PgLease) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(&mut lease.conn)
            .await
            .map_err(|e| store_error("measuring projection lag failed", e))
    }

    /// Closing the connection ends its session, and so the lock.
    async fn release(&self, lease: PgLease) {
        let _ = lease.conn.close().await;
    }

    fn log_changes(&self) -> watch::Receiver<u64> {
        self.log_changes.subscribe()
    }
}

/// The advisory lock's key text: hashed to 64 bits by the database.
pub(crate) fn lock_key(name: &str) -> String {
    format!("contactd.projection.{name}")
}

/// Creates the checkpoint if the projection is new, records this process as its holder, and
/// returns where it stands.
async fn claim_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    holder: &str,
) -> Result<LogPosition, StoreError> {
    let (transaction_id, global_position): (i64, i64) = sqlx::query_as(
        "INSERT INTO projection_checkpoints (name, holder) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, updated_at = now() \
         RETURNING transaction_id::text::bigint, global_position",
    )
    .bind(name)
    .bind(holder)
    .fetch_one(conn)
    .await
    .map_err(|e| store_error("claiming a projection checkpoint failed", e))?;
    Ok(LogPosition::from_parts(transaction_id, global_position))
}

/// Applies a batch and moves the checkpoint from `from` to `to` in one transaction. The
/// checkpoint is locked and compared first: if it moved (a rebuild ran, or another process
/// worked while this one's lock was lost), nothing is applied.
async fn apply_batch<P>(
    conn: &mut PgConnection,
    projection: &P,
    from: LogPosition,
    to: LogPosition,
    batch: &[RecordedEvent],
) -> Result<(), StoreError>
where
    P: for<'w> Projection<PgWork<'w>>,
{
    let mut tx = conn
        .begin()
        .await
        .map_err(failed("beginning a projection batch failed"))?;
    let current: (i64, i64) = sqlx::query_as(
        "SELECT transaction_id::text::bigint, global_position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
    )
    .bind(projection.name())
    .fetch_one(&mut *tx)
    .await
    .map_err(failed("locking a projection checkpoint failed"))?;
    if current != from.parts() {
        return Err(StoreError::internal(
            format!(
                "the checkpoint of {} moved under its runner; starting over",
                projection.name()
            ),
            None,
        ));
    }
    projection.apply(&mut PgWork::new(&mut tx), batch).await?;
    save_checkpoint(&mut tx, projection.name(), to).await?;
    tx.commit()
        .await
        .map_err(failed("committing a projection batch failed"))
}

/// Moves the checkpoint past batches the projection had nothing to do with, if it is still
/// where this runner left it (compared and set in one statement).
async fn move_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    from: LogPosition,
    to: LogPosition,
) -> Result<(), StoreError> {
    let moved = sqlx::query(
        "UPDATE projection_checkpoints SET transaction_id = $4::bigint::text::xid8, global_position = $5, \
         updated_at = now() \
         WHERE name = $1 AND transaction_id = $2::bigint::text::xid8 AND global_position = $3",
    )
    .bind(name)
    .bind(from.parts().0)
    .bind(from.parts().1)
    .bind(to.parts().0)
    .bind(to.parts().1)
    .execute(conn)
    .await
    .map_err(|e| store_error("moving a projection checkpoint failed", e))?;
    if moved.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::internal(
            format!("the checkpoint of {name} moved under its runner; starting over"),
            None,
        ))
    }
}

pub(crate) async fn save_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    to: LogPosition,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE projection_checkpoints SET transaction_id = $2::bigint::text::xid8, global_position = $3, \
         updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .bind(to.parts().0)
    .bind(to.parts().1)
    .execute(conn)
    .await
    .map_err(|e| store_error("saving a projection checkpoint failed", e))?;
    Ok(())
}

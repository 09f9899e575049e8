//! Projections: named consumers of the global log, each with a checkpoint in log order. A batch
//! is applied in the transaction that moves the checkpoint, so database projections take
//! effect once; a projection with side effects outside the database sees a batch again if the
//! process dies before the commit (at least once). Each projection is active in exactly one
//! process: the holder of its advisory lock, on the connection that also does its work, so
//! that losing the connection loses the lock and another process takes over.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contactd_app::{LogPosition, RecordedEvent, StoreError};
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::PgStore;
use crate::error::{failed, store_error};
use crate::log::read_log;

/// A named consumer of the log.
pub trait Projection: Send + Sync + 'static {
    /// Unique among projections; the key of its checkpoint and its lock.
    fn name(&self) -> &'static str;

    /// Applies a batch, writing with `tx`: the transaction that then moves the checkpoint.
    fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Empties the projection's read model before a rebuild. `None` for a projection with side
    /// effects outside the database: replaying it would repeat them, so it is never rebuilt.
    fn clear(
        &self,
        tx: &mut PgConnection,
    ) -> Option<impl Future<Output = Result<(), sqlx::Error>> + Send>;

    /// Called once a batch has committed: where a projection tells this process's consumers
    /// of its read model that there is more to read.
    fn committed(&self, _events: &[RecordedEvent]) {}

    /// Whether `apply` has anything to do with the event. A batch of events none of which
    /// concerns the projection is not applied: no transaction is opened for it, and the
    /// checkpoint passes it at the next batch that is, or within [`SKIPPED_CHECKPOINT`].
    fn concerns(&self, _event: &RecordedEvent) -> bool {
        true
    }
}

/// How long a checkpoint may lag behind batches that concerned its projection not at all.
/// Reading them again after a restart costs nothing but the read.
pub const SKIPPED_CHECKPOINT: Duration = Duration::from_secs(1);

/// How a runner paces itself.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub batch_size: u32,
    /// How often an idle projection looks at the log when nothing woke it.
    pub poll_interval: Duration,
    /// How often a process that does not hold a projection tries to take it over.
    pub takeover_interval: Duration,
    /// After a batch that was not full (the projection has caught up), how long to let events
    /// gather before the next one: under a steady stream of appends this turns a transaction
    /// (and an fsync) per append into one per interval, at the price of that much lag.
    pub gather_interval: Duration,
    /// Names this process in `projection_checkpoints.holder`.
    pub holder: String,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: crate::subscription::DEFAULT_POLL_INTERVAL,
            takeover_interval: Duration::from_secs(1),
            gather_interval: Duration::from_millis(50),
            holder: format!("pid {}", std::process::id()),
        }
    }
}

/// What a projection's runner reports: where it is and how far behind.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// Whether this process holds the projection now.
    pub active: bool,
    pub position: LogPosition,
    /// Events committed after the checkpoint (an estimate from positions).
    pub lag_events: i64,
    /// How old the oldest unprocessed event is, in seconds; 0 when caught up.
    pub lag_seconds: f64,
}

/// The status of every projection of this process: the metrics seam that an exporter reads.
#[derive(Debug, Clone, Default)]
pub struct ProjectionMetrics(Arc<Mutex<BTreeMap<&'static str, ProjectionStatus>>>);

impl ProjectionMetrics {
    pub fn snapshot(&self) -> BTreeMap<&'static str, ProjectionStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn set(&self, name: &'static str, status: ProjectionStatus) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(name, status);
        }
    }
}

/// Why a runner stopped leading.
#[derive(Debug)]
enum Lead {
    /// Another process holds the projection.
    Elsewhere,
    /// Shutdown was asked for.
    Stopped,
}

/// Runs `projection` whenever this process can take it, until `shutdown` turns true.
pub async fn run_projection<P: Projection>(
    store: PgStore,
    projection: Arc<P>,
    settings: RunnerSettings,
    metrics: ProjectionMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match lead(
            &store,
            projection.as_ref(),
            &settings,
            &metrics,
            &mut shutdown,
        )
        .await
        {
            Ok(Lead::Stopped) => return,
            Ok(Lead::Elsewhere) => {}
            Err(error) => {
                warn!(projection = projection.name(), %error, "projection interrupted; will try again")
            }
        }
        metrics.set(
            projection.name(),
            ProjectionStatus {
                active: false,
                ..idle_status()
            },
        );
        tokio::select! {
            _ = shutdown.changed() => {}
            () = tokio::time::sleep(settings.takeover_interval) => {}
        }
    }
}

fn idle_status() -> ProjectionStatus {
    ProjectionStatus {
        active: false,
        position: LogPosition::START,
        lag_events: 0,
        lag_seconds: 0.0,
    }
}

/// Takes the projection's lock if free and works until shutdown or until the connection fails.
async fn lead<P: Projection>(
    store: &PgStore,
    projection: &P,
    settings: &RunnerSettings,
    metrics: &ProjectionMetrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Lead, StoreError> {
    let name = projection.name();
    let mut conn = store
        .pool()
        .acquire()
        .await
        .map_err(failed("acquiring a projection connection failed"))?
        .detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(lock_key(name))
        .fetch_one(&mut conn)
        .await
        .map_err(failed("taking a projection lock failed"))?;
    if !locked {
        return Ok(Lead::Elsewhere);
    }
    let mut after = claim_checkpoint(&mut conn, name, &settings.holder).await?;
    // Where the checkpoint row stands, and since when: behind `after` while only batches that
    // did not concern the projection were passed.
    let mut saved = (after, tokio::time::Instant::now());
    info!(
        projection = name,
        position = after.parts().1,
        "projection active in this process"
    );
    let mut changes = store.log_changes.subscribe();
    loop {
        if *shutdown.borrow() {
            if saved.0 != after {
                move_checkpoint(&mut conn, name, saved.0, after).await?;
            }
            let _ = conn.close().await;
            return Ok(Lead::Stopped);
        }
        changes.borrow_and_update();
        let batch = read_log(&mut conn, after, None, settings.batch_size).await?;
        let Some(last) = batch.last() else {
            if saved.0 != after {
                move_checkpoint(&mut conn, name, saved.0, after).await?;
                saved = (after, tokio::time::Instant::now());
            }
            metrics.set(
                name,
                ProjectionStatus {
                    active: true,
                    position: after,
                    lag_events: 0,
                    lag_seconds: 0.0,
                },
            );
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = changes.changed() => {}
                () = tokio::time::sleep(settings.poll_interval) => {}
            }
            continue;
        };
        let next = last.position;
        if batch.iter().any(|event| projection.concerns(event)) {
            apply_batch(&mut conn, projection, saved.0, next, &batch).await?;
            projection.committed(&batch);
            saved = (next, tokio::time::Instant::now());
        } else if saved.1.elapsed() >= SKIPPED_CHECKPOINT {
            move_checkpoint(&mut conn, name, saved.0, next).await?;
            saved = (next, tokio::time::Instant::now());
        }
        after = next;
        let status = lag(&mut conn, after, &batch).await?;
        debug!(
            projection = name,
            position = after.parts().1,
            lag_events = status.lag_events,
            lag_seconds = status.lag_seconds,
            "projected a batch"
        );
        metrics.set(name, status);
        if batch.len() < settings.batch_size as usize && !settings.gather_interval.is_zero() {
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(settings.gather_interval) => {}
            }
        }
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
pub(crate) async fn apply_batch<P: Projection>(
    conn: &mut PgConnection,
    projection: &P,
    from: LogPosition,
    to: LogPosition,
    batch: &[RecordedEvent],
) -> Result<(), StoreError> {
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
    if current != (from.parts().0, from.parts().1) {
        return Err(StoreError::internal(
            format!(
                "the checkpoint of {} moved under its runner; starting over",
                projection.name()
            ),
            None,
        ));
    }
    projection
        .apply(&mut tx, batch)
        .await
        .map_err(failed("applying a projection batch failed"))?;
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

/// How far behind the log the projection is after a batch: positions beyond the checkpoint
/// (an estimate: positions have gaps), and the age of the batch's last event if more remain.
async fn lag(
    conn: &mut PgConnection,
    at: LogPosition,
    batch: &[RecordedEvent],
) -> Result<ProjectionStatus, StoreError> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(conn)
        .await
        .map_err(|e| store_error("measuring projection lag failed", e))?;
    let lag_events = newest.map_or(0, |newest| (newest - at.parts().1).max(0));
    let lag_seconds = match batch.last() {
        Some(last) if lag_events > 0 => (Utc::now() - last.metadata.recorded_at)
            .as_seconds_f64()
            .max(0.0),
        _ => 0.0,
    };
    Ok(ProjectionStatus {
        active: true,
        position: at,
        lag_events,
        lag_seconds,
    })
}

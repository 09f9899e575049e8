//! The global log, read in order with no skipped event: by `(transaction_id, global_position)`,
//! and only below the oldest transaction still running (ADR 4). Also a stream's events, for
//! audits and as-of reads.

use chrono::{DateTime, Utc};
use contactd_app::{LogPosition, Opened, RecordedEvent, StartPoint, StoreError};
use contactd_domain::AccountId;
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::error::store_error;
use crate::keys::open_keys;
use contactd_store_core::{Keyring, StoredEvent};

/// Every column of an event, the payload as stored text and the transaction id as a number.
/// The number has its own name: an output column named `transaction_id` would be what
/// `ORDER BY transaction_id` sorts by, and the index on the real column would go unused.
pub(crate) const EVENT_COLUMNS: &str = "global_position, transaction_id::text::bigint AS log_order, event_id, account_id, \
     stream_id, stream_version, event_type, schema_version, payload::text AS payload, request_id, caller, \
     correlation_id, causation_id, recorded_at";

/// Events after `after` in log order, up to `limit`, of which every event before them has
/// committed or aborted: a transaction still running holds back the events of every transaction
/// that started after it, so that none is passed over while invisible.
const READ_LOG: &str = "WHERE (transaction_id, global_position) > ($1::bigint::text::xid8, $2) \
     AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY transaction_id, global_position LIMIT $3";

const READ_STREAM_LOG: &str = "WHERE stream_id = $4 AND (transaction_id, global_position) > ($1::bigint::text::xid8, $2) \
     AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY transaction_id, global_position LIMIT $3";

const READ_ACCOUNT_LOG: &str = "WHERE account_id = $4 AND (transaction_id, global_position) > ($1::bigint::text::xid8, $2) \
     AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY transaction_id, global_position LIMIT $3";

/// An event's row, as every store selects it.
pub(crate) type EventRow = StoredEvent;

/// The rows as events, their sealed fields opened with their contacts' keys as the table
/// holds them now (one more query when some are sealed).
async fn decode_all<'e>(
    executor: impl PgExecutor<'e>,
    keyring: &Keyring,
    rows: Vec<EventRow>,
    opened: Opened,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let keys = open_keys(executor, keyring, &rows, opened).await?;
    rows.into_iter()
        .map(|row| row.into_recorded(&keys))
        .collect()
}

/// The next events of the global log (or of one account's part of it) after `after`.
pub(crate) async fn read_log(
    connection: &mut PgConnection,
    keyring: &Keyring,
    after: LogPosition,
    account: Option<&AccountId>,
    limit: u32,
    opened: Opened,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = match account {
        None => {
            sqlx::query_as::<_, EventRow>(&format!("SELECT {EVENT_COLUMNS} FROM events {READ_LOG}"))
                .bind(after.parts().0)
                .bind(after.parts().1)
                .bind(i64::from(limit))
                .fetch_all(&mut *connection)
                .await
        }
        Some(account) => {
            sqlx::query_as::<_, EventRow>(&format!(
                "SELECT {EVENT_COLUMNS} FROM events {READ_ACCOUNT_LOG}"
            ))
            .bind(after.parts().0)
            .bind(after.parts().1)
            .bind(i64::from(limit))
            .bind(account.as_str())
            .fetch_all(&mut *connection)
            .await
        }
    }
    .map_err(|e| store_error("reading the log failed", e))?;
    decode_all(connection, keyring, rows, opened).await
}

/// The next events of one stream after `after`, in log order (for offline replays).
pub(crate) async fn read_stream_log(
    pool: &PgPool,
    keyring: &Keyring,
    stream_id: &str,
    after: LogPosition,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query_as::<_, EventRow>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events {READ_STREAM_LOG}"
    ))
    .bind(after.parts().0)
    .bind(after.parts().1)
    .bind(i64::from(limit))
    .bind(stream_id)
    .fetch_all(pool)
    .await
    .map_err(|e| store_error("reading the log failed", e))?;
    decode_all(pool, keyring, rows, Opened::All).await
}

/// From the event at P (or the first one after it) on, in log order. When no event has a
/// position of P or more yet, from now on: after every transaction that had ended at the time
/// of asking, keeping only events at P or beyond. Both are decided on one snapshot, so that no
/// event committed in between is lost or doubled.
pub(crate) async fn start_at(
    pool: &PgPool,
    global_position: i64,
) -> Result<StartPoint, StoreError> {
    let (found, xmin): (Option<String>, i64) = sqlx::query_as(
        "SELECT (SELECT transaction_id::text || ',' || global_position FROM events WHERE global_position >= $1 \
                 ORDER BY global_position LIMIT 1), \
                pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
    )
    .bind(global_position)
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("locating a log position failed", e))?;
    let found = found.and_then(|pair| {
        let (transaction_id, position) = pair.split_once(',')?;
        Some((
            transaction_id.parse::<i64>().ok()?,
            position.parse::<i64>().ok()?,
        ))
    });
    Ok(match found {
        // Just before it in log order: the same transaction, the position before.
        Some((transaction_id, position)) => StartPoint {
            after: LogPosition::from_parts(transaction_id, position - 1),
            min_global_position: 0,
        },
        None => StartPoint {
            after: LogPosition::from_parts(xmin - 1, i64::MAX),
            min_global_position: global_position,
        },
    })
}

/// The current snapshot's bounds: every transaction below `xmin` has ended; every one that had
/// started by now is below `xmax`.
pub(crate) async fn snapshot_bounds(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    sqlx::query_as(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint \
         FROM pg_current_snapshot() AS s",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("reading the snapshot failed", e))
}

/// One stream's events with versions in `(after_version, up_to_version]`, in version order.
pub(crate) async fn read_stream(
    pool: &PgPool,
    keyring: &Keyring,
    account: &AccountId,
    stream_id: &str,
    after_version: u64,
    up_to_version: u64,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query_as::<_, EventRow>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND account_id = $2 \
         AND stream_version > $3 AND stream_version <= $4 ORDER BY stream_version LIMIT $5"
    ))
    .bind(stream_id)
    .bind(account.as_str())
    .bind(i64::try_from(after_version).unwrap_or(i64::MAX))
    .bind(i64::try_from(up_to_version).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| store_error("reading a stream failed", e))?;
    decode_all(pool, keyring, rows, Opened::All).await
}

/// One stream's events recorded at or before `as_of`, in version order.
pub(crate) async fn read_stream_until(
    pool: &PgPool,
    keyring: &Keyring,
    account: &AccountId,
    stream_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query_as::<_, EventRow>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND account_id = $2 AND recorded_at <= $3 \
         ORDER BY stream_version"
    ))
    .bind(stream_id)
    .bind(account.as_str())
    .bind(as_of)
    .fetch_all(pool)
    .await
    .map_err(|e| store_error("reading a stream failed", e))?;
    decode_all(pool, keyring, rows, Opened::All).await
}

//! The global log, read in order with no skipped event. SQLite has one writer at a time, so
//! positions commit in the order they were drawn and the log's order is the position alone:
//! `LogPosition::from_parts(p, p)`. Also a stream's events, for audits and as-of reads. Sealed
//! events are opened with their contacts' keys as the table holds them at the time of reading.

use chrono::{DateTime, Utc};
use contactd_app::{LogPosition, Opened, RecordedEvent, StartPoint, StoreError};
use contactd_domain::AccountId;
use contactd_store_core::{Keyring, StoredEvent};
use sqlx::SqlitePool;

use crate::append::version;
use crate::error::failed;
use crate::keys::decode;

/// Every column of an event as [`StoredEvent`] maps it: the position doubles as the log order.
pub(crate) const EVENT_COLUMNS: &str = "global_position, global_position AS log_order, event_id, \
     account_id, stream_id, stream_version, event_type, schema_version, payload, request_id, \
     caller, correlation_id, causation_id, recorded_at";

/// The place in the log of the event at `global_position`.
pub(crate) fn position_of(global_position: i64) -> LogPosition {
    LogPosition::from_parts(global_position, global_position)
}

/// The first global position after `after` in log order. Positions are compared as pairs, and
/// an event at `p` sits at `(p, p)`: a position the store made is always such a pair, but a
/// start point or an end (`(p, i64::MIN)`) sits between two events. As a plain bound, the
/// query can range over the table's key.
fn first_after(after: LogPosition) -> i64 {
    let (major, minor) = after.parts();
    if major > minor {
        major
    } else {
        major.saturating_add(1)
    }
}

/// The next events of the global log (or of one account's part of it) after `after`. Every
/// event before them has committed: a write still running holds positions above all of them.
pub(crate) async fn read_log(
    reads: &SqlitePool,
    keyring: &Keyring,
    after: LogPosition,
    account: Option<&AccountId>,
    limit: u32,
    opened: Opened,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = match account {
        None => {
            sqlx::query_as::<_, StoredEvent>(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE global_position >= ?1 \
                 ORDER BY global_position LIMIT ?2"
            ))
            .bind(first_after(after))
            .bind(i64::from(limit))
            .fetch_all(reads)
            .await
        }
        Some(account) => sqlx::query_as::<_, StoredEvent>(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = ?3 AND global_position >= ?1 \
                 ORDER BY global_position LIMIT ?2"
        ))
        .bind(first_after(after))
        .bind(i64::from(limit))
        .bind(account.as_str())
        .fetch_all(reads)
        .await,
    }
    .map_err(failed("reading the log failed"))?;
    decode(reads, keyring, rows, opened).await
}

/// The next events of one stream after `after`, in log order (for offline replays).
pub(crate) async fn read_stream_log(
    reads: &SqlitePool,
    keyring: &Keyring,
    stream_id: &str,
    after: LogPosition,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query_as::<_, StoredEvent>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?3 AND global_position >= ?1 \
         ORDER BY global_position LIMIT ?2"
    ))
    .bind(first_after(after))
    .bind(i64::from(limit))
    .bind(stream_id)
    .fetch_all(reads)
    .await
    .map_err(failed("reading the log failed"))?;
    decode(reads, keyring, rows, Opened::All).await
}

/// The last position committed (0 for an empty log), and the first at or after `from` if any:
/// one statement, so one snapshot.
async fn bounds(reads: &SqlitePool, from: i64) -> Result<(i64, Option<i64>), StoreError> {
    sqlx::query_as(
        "SELECT (SELECT coalesce(max(global_position), 0) FROM events), \
                (SELECT min(global_position) FROM events WHERE global_position >= ?1)",
    )
    .bind(from)
    .fetch_one(reads)
    .await
    .map_err(failed("locating a log position failed"))
}

/// From the event at P (or the first one after it) on. When no event has a position of P or
/// more yet: after every event committed at the time of asking, keeping only events at P or
/// beyond (whatever commits from now on gets a larger position than every one before it).
pub(crate) async fn start_at(
    reads: &SqlitePool,
    global_position: i64,
) -> Result<StartPoint, StoreError> {
    let (last, found) = bounds(reads, global_position).await?;
    Ok(match found {
        Some(position) => StartPoint {
            after: position_of(position - 1),
            min_global_position: 0,
        },
        None => StartPoint {
            after: position_of(last),
            min_global_position: global_position,
        },
    })
}

/// Just past the last event committed: before the position the next write will draw.
pub(crate) async fn log_end(reads: &SqlitePool) -> Result<LogPosition, StoreError> {
    let (last, _) = bounds(reads, i64::MAX).await?;
    Ok(LogPosition::from_parts(last.saturating_add(1), i64::MIN))
}

/// Every event before `end` can be read once it lies at or before the current end: a write
/// that is still running draws positions after every committed one, never before.
pub(crate) async fn readable_to(reads: &SqlitePool, end: LogPosition) -> Result<bool, StoreError> {
    Ok(end <= log_end(reads).await?)
}

/// One stream's events with versions in `(after_version, up_to_version]`, in version order.
pub(crate) async fn read_stream(
    reads: &SqlitePool,
    keyring: &Keyring,
    account: &AccountId,
    stream_id: &str,
    after_version: u64,
    up_to_version: u64,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query_as::<_, StoredEvent>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND account_id = ?2 \
         AND stream_version > ?3 AND stream_version <= ?4 ORDER BY stream_version LIMIT ?5"
    ))
    .bind(stream_id)
    .bind(account.as_str())
    .bind(version(after_version))
    .bind(version(up_to_version))
    .bind(i64::from(limit))
    .fetch_all(reads)
    .await
    .map_err(failed("reading a stream failed"))?;
    decode(reads, keyring, rows, Opened::All).await
}

/// One stream's events recorded at or before `as_of`, in version order.
pub(crate) async fn read_stream_until(
    reads: &SqlitePool,
    keyring: &Keyring,
    account: &AccountId,
    stream_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query_as::<_, StoredEvent>(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND account_id = ?2 \
         AND recorded_at <= ?3 ORDER BY stream_version"
    ))
    .bind(stream_id)
    .bind(account.as_str())
    .bind(as_of)
    .fetch_all(reads)
    .await
    .map_err(failed("reading a stream failed"))?;
    decode(reads, keyring, rows, Opened::All).await
}

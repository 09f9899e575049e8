//! Maps sqlx's SQLite errors to the port's errors: the constraints an append breaks to business
//! conflicts, a busy or locked database to transient failures, the rest to internal ones. SQL
//! text never leaves this crate except inside the source chain that the binary logs.
//!
//! SQLite names a constraint in its message only for a `CHECK`; a `UNIQUE` or `PRIMARY KEY`
//! failure lists the table's columns instead ("UNIQUE constraint failed: t.a, t.b"). Both are
//! stable parts of SQLite's interface, and `tests/it/conflicts.rs` holds each mapping to the
//! real messages.

use contactd_app::{AppendError, StoreError};

/// SQLite's primary result codes that mean "try again later": another connection holds the
/// lock the statement needs (`SQLITE_BUSY`), or a table in this one (`SQLITE_LOCKED`).
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// Extended result codes of constraint failures.
const SQLITE_CONSTRAINT_CHECK: i32 = 275;
const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;

/// Which rule a failed append broke, if it broke one the ports name.
pub(crate) fn append_error(error: sqlx::Error) -> AppendError {
    conflict(&error).unwrap_or_else(|| AppendError::Store(store_error("appending failed", error)))
}

fn conflict(error: &sqlx::Error) -> Option<AppendError> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    let code: i32 = db.code()?.parse().ok()?;
    let message = db.message();
    match code {
        SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY => {
            let columns = message.strip_prefix("UNIQUE constraint failed: ")?;
            let table = columns.split_once('.')?.0;
            match table {
                "events" if columns == "events.stream_id, events.stream_version" => {
                    Some(AppendError::VersionConflict)
                }
                "contact_names" => Some(AppendError::NameAlreadyUsed),
                "idempotency_records" => Some(AppendError::ClientTokenTaken),
                _ => None,
            }
        }
        SQLITE_CONSTRAINT_CHECK => match message.strip_prefix("CHECK constraint failed: ")? {
            "contact_quotas_within_limit" => Some(AppendError::QuotaExceeded),
            "verification_send_days_within_limit" | "verification_send_windows_within_limit" => {
                Some(AppendError::SendLimitExceeded)
            }
            _ => None,
        },
        _ => None,
    }
}

/// `store_error` with its context bound, for `map_err(failed("..."))`.
pub(crate) fn failed(context: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| store_error(context, error)
}

pub(crate) fn store_error(context: &str, error: sqlx::Error) -> StoreError {
    if is_transient(&error) {
        StoreError::transient(context, error)
    } else {
        StoreError::internal(context, Some(Box::new(error)))
    }
}

/// Busy and locked databases pass once the other writer commits (the busy timeout ran out
/// first); a pool that timed out or closed, and a connection's worker thread that died, are
/// the database out of reach.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
        _ => false,
    }
}

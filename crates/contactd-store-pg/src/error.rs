//! Maps sqlx errors to the port's errors: constraint names to business conflicts, connection
//! trouble to transient failures, the rest to internal ones. SQL text never leaves this crate
//! except inside the source chain that the binary logs.

use contactd_app::{AppendError, StoreError};

use crate::deadline::{Stopped, passed};

/// Which named constraint a failed append broke, if it broke one we expect.
pub(crate) fn append_error(error: sqlx::Error) -> AppendError {
    if let sqlx::Error::Database(db) = &error {
        match db.constraint() {
            Some("events_stream_version_key") => return AppendError::VersionConflict,
            Some("contact_names_pkey") => return AppendError::NameAlreadyUsed,
            Some("contact_quotas_within_limit") => return AppendError::QuotaExceeded,
            Some("idempotency_records_pkey") => return AppendError::ClientTokenTaken,
            Some(
                "verification_send_days_within_limit" | "verification_send_windows_within_limit",
            ) => return AppendError::SendLimitExceeded,
            _ => {}
        }
    }
    AppendError::Store(store_error("appending events failed", error))
}

/// A statement run within a deadline that stopped: as `store_error`, or transient if the
/// deadline had passed before it started.
pub(crate) fn stopped(context: &'static str) -> impl Fn(Stopped) -> StoreError {
    move |stopped| match stopped {
        Stopped::Database(error) => store_error(context, error),
        Stopped::Spent => passed(context),
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

fn is_transient(error: &sqlx::Error) -> bool {
    out_of_reach(error)
        || matches!(error, sqlx::Error::Database(db)
            // serialization failures and deadlocks
            if db.code().is_some_and(|code| code == "40001" || code == "40P01"))
}

/// The database could not be reached or could not serve: lost connections, an exhausted pool,
/// insufficient resources, an operator's intervention, a statement cancelled by its
/// `statement_timeout` at the caller's deadline (57014). Trying again at once would only wait
/// again.
pub(crate) fn out_of_reach(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57")
        }),
        _ => false,
    }
}

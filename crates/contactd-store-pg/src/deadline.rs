//! A call's deadline at the database: every pooled connection's session `statement_timeout` is
//! the store's cap (the longest call), and a call with less time left than that runs its
//! statement in a transaction that lowers the timeout to what is left, so that PostgreSQL stops
//! the statement, and releases its locks, when the caller stops waiting. Calls without a short
//! deadline (most) run exactly as before: no transaction, no extra statement.

use std::time::{Duration, Instant};

use contactd_app::{Recording, StoreError};
use sqlx::{PgConnection, PgPool};

/// What a statement may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// The session's cap, or no limit: the statement runs as is.
    Open,
    /// Less than the cap is left: this many milliseconds (at least 1; 0 would mean no limit).
    Short(u64),
    /// The deadline passed: starting a statement would only waste the database's time.
    Spent,
}

impl Budget {
    /// The budget of a statement for a call with `deadline`, on a store capped at `cap`.
    pub(crate) fn of(deadline: Option<Instant>, cap: Option<Duration>) -> Self {
        let Some(deadline) = deadline else {
            return Self::Open;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Self::Spent
        } else if cap.is_some_and(|cap| left >= cap) {
            Self::Open
        } else {
            let millis = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            Self::Short(millis.max(1))
        }
    }

    /// The current call's budget (none outside a call).
    pub(crate) fn now(cap: Option<Duration>) -> Self {
        Self::of(contactd_app::deadline::current(), cap)
    }

    /// The budget of a group: the longest of its members' deadlines, since the group is worth
    /// finishing while anyone of it still waits; open if any member has no deadline.
    pub(crate) fn of_group(
        deadlines: impl IntoIterator<Item = Option<Instant>>,
        cap: Option<Duration>,
    ) -> Self {
        let mut longest: Option<Instant> = None;
        for deadline in deadlines {
            let Some(deadline) = deadline else {
                return Self::Open;
            };
            longest = Some(longest.map_or(deadline, |l| l.max(deadline)));
        }
        Self::of(longest, cap)
    }
}

/// A statement that did not run to its end in time, or failed.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The deadline had passed before the statement started.
    Spent,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Stopped {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// The deadline passed before a statement started: transient, as a timeout is.
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed before its statement started")]
pub(crate) struct DeadlinePassed;

/// The transient failure of a call whose deadline had passed.
pub(crate) fn passed(context: &str) -> StoreError {
    StoreError::transient(context, DeadlinePassed)
}

/// Runs `statement` on a connection of `pool` within `budget`. An open budget runs it as the
/// pool would (autocommit, no extra round trip); a short one in a transaction whose `BEGIN`
/// and `SET LOCAL statement_timeout` share one round trip, committed if `commit` (a write),
/// else rolled back lazily with the connection's next use (a read: nothing to keep).
pub(crate) async fn bounded<T>(
    pool: &PgPool,
    budget: Budget,
    commit: bool,
    statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
) -> Result<T, Stopped> {
    bounded_reporting(pool, budget, commit, &Recording::none(), statement).await
}

/// As [`bounded`], reporting to `recording` how long the connection took to come: the groups,
/// through which every grouped update and read passes, tell how long calls wait for the pool.
pub(crate) async fn bounded_reporting<T>(
    pool: &PgPool,
    budget: Budget,
    commit: bool,
    recording: &Recording,
    statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
) -> Result<T, Stopped> {
    if budget == Budget::Spent {
        return Err(Stopped::Spent);
    }
    let asked = Instant::now();
    let mut connection = pool.acquire().await?;
    recording.connection_acquired(asked.elapsed());
    match budget {
        Budget::Spent | Budget::Open => Ok(statement(&mut connection).await?),
        Budget::Short(millis) => {
            let mut transaction = sqlx::Connection::begin_with(
                &mut *connection,
                format!("BEGIN; SET LOCAL statement_timeout = {millis}"),
            )
            .await?;
            // A statement cancelled by the timeout aborts the transaction; dropping it rolls
            // back, so nothing of a cancelled write stays.
            let value = statement(&mut transaction).await?;
            if commit {
                transaction.commit().await?;
            }
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Option<Duration> = Some(Duration::from_secs(10));

    #[test]
    fn only_a_deadline_shorter_than_the_cap_shortens_the_statement() {
        let now = Instant::now();
        assert_eq!(Budget::of(None, CAP), Budget::Open);
        assert_eq!(
            Budget::of(Some(now + Duration::from_secs(60)), CAP),
            Budget::Open
        );
        assert!(matches!(
            Budget::of(Some(now + Duration::from_secs(2)), CAP),
            Budget::Short(ms) if ms > 1000 && ms <= 2000
        ));
        assert!(matches!(
            Budget::of(Some(now + Duration::from_secs(60)), None),
            Budget::Short(_)
        ));
        assert_eq!(Budget::of(Some(now), CAP), Budget::Spent);
    }

    #[test]
    fn a_group_takes_its_longest_deadline() {
        let now = Instant::now();
        let short = Some(now + Duration::from_millis(100));
        let longer = Some(now + Duration::from_secs(2));
        assert!(matches!(
            Budget::of_group([short, longer], CAP),
            Budget::Short(ms) if ms > 1000
        ));
        assert_eq!(Budget::of_group([short, None], CAP), Budget::Open);
        assert_eq!(Budget::of_group([Some(now), Some(now)], CAP), Budget::Spent);
    }
}

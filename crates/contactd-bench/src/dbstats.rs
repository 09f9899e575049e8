//! What the database did for a run, from its cumulative statistics: transactions of the
//! benchmark's database (each autocommit statement is one, so for a service that issues only
//! autocommit statements this counts its statements) and the cluster's WAL records, bytes and
//! syncs (`pg_stat_wal.wal_sync`: the fsyncs, shared by group commit).
//!
//! Backends publish their counters at the end of a transaction at most once a second, and an
//! idle one within about a second: take a snapshot only after the load has been idle for
//! [`SETTLE`].

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

/// How long to leave the database idle before a snapshot, so that every backend has published.
pub const SETTLE: Duration = Duration::from_millis(1200);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DbStats {
    pub transactions: i64,
    pub wal_records: i64,
    pub wal_bytes: i64,
    pub wal_syncs: i64,
}

/// Per call (or per pgbench transaction).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DbCost {
    pub transactions: f64,
    pub wal_records: f64,
    pub wal_bytes: f64,
    pub wal_syncs: f64,
}

impl DbStats {
    /// A snapshot, counting the transactions of `database`.
    pub async fn take(pool: &PgPool, database: &str) -> anyhow::Result<Self> {
        sqlx::query_as(
            "SELECT (SELECT coalesce(sum(xact_commit + xact_rollback), 0)::bigint \
                       FROM pg_stat_database WHERE datname = $1) AS transactions, \
                    wal_records, wal_bytes::bigint AS wal_bytes, wal_sync AS wal_syncs \
               FROM pg_stat_wal",
        )
        .bind(database)
        .fetch_one(pool)
        .await
        .context("reading pg_stat_database and pg_stat_wal")
    }

    /// The cost per unit of work since `earlier`, for `units` calls or transactions.
    pub fn per(&self, earlier: &DbStats, units: u64) -> DbCost {
        let units = units.max(1) as f64;
        let per = |now: i64, then: i64| (now - then) as f64 / units;
        DbCost {
            transactions: per(self.transactions, earlier.transactions),
            wal_records: per(self.wal_records, earlier.wal_records),
            wal_bytes: per(self.wal_bytes, earlier.wal_bytes),
            wal_syncs: per(self.wal_syncs, earlier.wal_syncs),
        }
    }
}

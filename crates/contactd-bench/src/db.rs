//! The benchmark's own SQL on the server's database, in both dialects: which store a run is on
//! (`--stores`), and the few direct reads (and PostgreSQL-only writes) the seeding, the runs and
//! the verdict need. The tables have the same names and columns on both stores, so most
//! statements are one text; where a dialect differs, both texts sit side by side here.
//!
//! On SQLite the server holds the file (and its lock file) for its life; the benchmark opens the
//! file beside it, as any reader may in WAL mode, with a busy timeout for the rare statement
//! that needs a lock (the checkpoint between runs).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::client::ContactRef;
use crate::dbstats::DbStats;

/// The stores a server can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum StoreKind {
    /// PostgreSQL (`postgres://…`), the reference.
    Postgres,
    /// The embedded SQLite store (`sqlite://PATH`), in a fresh data directory per server.
    Sqlite,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Postgres => "postgres",
            StoreKind::Sqlite => "sqlite",
        }
    }

    /// The store as the report names it.
    pub fn title(self) -> &'static str {
        match self {
            StoreKind::Postgres => "PostgreSQL",
            StoreKind::Sqlite => "SQLite",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The benchmark's connections to the server's database.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The database a PostgreSQL pool is connected to.
fn database_name(pool: &PgPool) -> String {
    let options = pool.connect_options();
    options.get_database().unwrap_or("postgres").to_owned()
}

/// How long a statement of the benchmark waits for a lock the server holds on the SQLite file.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Two connections to the PostgreSQL database at `url`: the benchmark's reads are few and
    /// one at a time, and every connection it holds is one fewer for the server.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        let options: sqlx::postgres::PgConnectOptions = url.parse().context("the database URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.application_name("contactd-bench"))
            .await
            .context("connecting to the benchmark's database")?;
        Ok(Self::Postgres(pool))
    }

    /// Two connections to the SQLite file at `path`, which the server has created and migrated
    /// (it is never created here: a missing file means the server did not open it).
    pub async fn sqlite(path: &Path) -> anyhow::Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT),
            )
            .await
            .with_context(|| format!("opening the server's database {}", path.display()))?;
        Ok(Self::Sqlite(pool))
    }

    pub fn kind(&self) -> StoreKind {
        match self {
            Db::Postgres(_) => StoreKind::Postgres,
            Db::Sqlite(_) => StoreKind::Sqlite,
        }
    }

    /// The PostgreSQL pool, for what exists on PostgreSQL only (pgbench's statistics).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    /// The PostgreSQL databases whose backends' CPU counts as the database's (the server's
    /// only); `None` on SQLite, whose store runs inside the server: PostgreSQL's processes are
    /// then other load.
    pub fn postgres_databases(&self) -> Option<Vec<String>> {
        Some(vec![database_name(self.postgres_pool()?)])
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => pool.close().await,
        }
    }

    /// The first column of the one row `sql` (of this dialect) selects, a whole number; `arg`
    /// is bound to `$1` if given.
    async fn number(&self, postgres: &str, sqlite: &str, arg: Option<&str>) -> sqlx::Result<i64> {
        match self {
            Db::Postgres(pool) => {
                let query = sqlx::query_scalar(postgres);
                let query = match arg {
                    Some(arg) => query.bind(arg.to_owned()),
                    None => query,
                };
                query.fetch_one(pool).await
            }
            Db::Sqlite(pool) => {
                let query = sqlx::query_scalar(sqlite);
                let query = match arg {
                    Some(arg) => query.bind(arg.to_owned()),
                    None => query,
                };
                query.fetch_one(pool).await
            }
        }
    }

    /// Writes the dirty pages out before a run, so that no run pays for the one before: on
    /// PostgreSQL a `CHECKPOINT`; on SQLite the WAL copied into the file and emptied (it waits
    /// for the server's writer through the busy timeout; a reader in its way leaves it partial,
    /// which SQLite answers as a row, not an error).
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        match self {
            Db::Postgres(pool) => {
                sqlx::query("CHECKPOINT").execute(pool).await?;
            }
            Db::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Events in the log, or in one stream.
    pub async fn count_events(&self, stream: Option<&str>) -> anyhow::Result<i64> {
        let counted = match stream {
            None => {
                let sql = "SELECT count(*) FROM events";
                self.number(sql, sql, None).await
            }
            Some(stream) => {
                let sql = "SELECT count(*) FROM events WHERE stream_id = $1";
                self.number(sql, sql, Some(stream)).await
            }
        };
        counted.context("counting events")
    }

    /// The lifecycle jobs ever recorded: the last number drawn for them (carried-out jobs are
    /// deleted, their numbers stay drawn). On SQLite, `AUTOINCREMENT` keeps that number in
    /// `sqlite_sequence`.
    pub async fn lifecycle_jobs_recorded(&self) -> anyhow::Result<i64> {
        self.number(
            "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('lifecycle_jobs', 'recorded')), 0)",
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'lifecycle_jobs'), 0)",
            None,
        )
        .await
        .context("reading how many lifecycle jobs were recorded")
    }

    /// The events of the log after the checkpoint of the projection `name`. On PostgreSQL the
    /// log's order is (transaction, position) (ADR 4); on SQLite, whose positions commit in
    /// the order they are drawn, the checkpoint is one position (`global_position`).
    pub async fn projection_behind(&self, name: &str) -> anyhow::Result<i64> {
        self.number(
            "SELECT count(*) FROM events e, projection_checkpoints c WHERE c.name = $1 \
             AND (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)",
            "SELECT count(*) FROM events e, projection_checkpoints c WHERE c.name = $1 \
             AND e.global_position > c.global_position",
            Some(name),
        )
        .await
        .with_context(|| format!("reading how far the projection {name} is behind"))
    }

    /// The lifecycle jobs waiting to be carried out.
    pub async fn pending_lifecycle_jobs(&self) -> anyhow::Result<i64> {
        let sql = "SELECT count(*) FROM lifecycle_jobs WHERE state = 'pending'";
        self.number(sql, sql, None)
            .await
            .context("counting the pending lifecycle jobs")
    }

    /// Analyses `tables` on PostgreSQL, whose autovacuum is off on the benchmark's machine, as
    /// autovacuum would have: their statistics would otherwise stay those of empty tables.
    /// Nothing on SQLite: it analyses nothing by itself either, and a production server runs
    /// on the plans its store chooses, so the benchmark measures those.
    pub async fn analyze(&self, tables: &str) -> anyhow::Result<()> {
        if let Db::Postgres(pool) = self {
            sqlx::query(&format!("ANALYZE {tables}"))
                .execute(pool)
                .await
                .with_context(|| format!("analysing {tables}"))?;
        }
        Ok(())
    }

    /// `bench_contacts (n, contact_id)`, n = 1..contacts: how the pgbench scripts pick a
    /// seeded contact at random (`\set n random(1, :contacts)`). On PostgreSQL only, where
    /// pgbench runs: the embedded store's file is the server's, and nothing reads the table
    /// there.
    pub async fn write_bench_contacts(&self, contacts: &[ContactRef]) -> anyhow::Result<()> {
        let Db::Postgres(pool) = self else {
            return Ok(());
        };
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_contacts (n integer PRIMARY KEY, contact_id text NOT NULL)",
        )
        .execute(pool)
        .await?;
        sqlx::query("TRUNCATE bench_contacts").execute(pool).await?;
        let numbers: Vec<i32> = (1..).take(contacts.len()).collect();
        let ids: Vec<&str> = contacts.iter().map(|c| c.contact_id.as_str()).collect();
        sqlx::query(
            "INSERT INTO bench_contacts (n, contact_id) SELECT * FROM UNNEST($1::int[], $2::text[])",
        )
        .bind(&numbers)
        .bind(&ids)
        .execute(pool)
        .await
        .context("writing bench_contacts")?;
        sqlx::query("ANALYZE bench_contacts").execute(pool).await?;
        Ok(())
    }

    /// A snapshot of PostgreSQL's statistics of the database; `None` on SQLite, which keeps no
    /// such counters.
    pub async fn stats(&self) -> anyhow::Result<Option<DbStats>> {
        match self {
            Db::Postgres(pool) => Ok(Some(DbStats::take(pool, &database_name(pool)).await?)),
            Db::Sqlite(_) => Ok(None),
        }
    }

    /// The store's settings that bound the figures, `(name, value)`.
    pub async fn settings(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut settings = Vec::new();
        match self {
            Db::Postgres(pool) => {
                for name in [
                    "server_version",
                    "fsync",
                    "synchronous_commit",
                    "wal_sync_method",
                    "full_page_writes",
                    "commit_delay",
                    "shared_buffers",
                    "max_wal_size",
                    "max_connections",
                    "autovacuum",
                ] {
                    let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
                        .fetch_one(pool)
                        .await?;
                    settings.push((name.to_owned(), value));
                }
            }
            Db::Sqlite(pool) => {
                // The library is the bundled one of the workspace's lock file, the server's
                // too. `synchronous` is per connection, so the server's is not readable from
                // here: the store sets FULL (ADR 10).
                let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                    .fetch_one(pool)
                    .await?;
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(pool)
                    .await?;
                settings.push(("sqlite_version".to_owned(), version));
                settings.push(("journal_mode".to_owned(), journal));
                settings.push((
                    "synchronous".to_owned(),
                    "FULL (the store's setting)".to_owned(),
                ));
            }
        }
        Ok(settings)
    }
}

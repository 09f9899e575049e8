//! A fresh, empty database of one backend per test, the macros that run each test on both
//! backends, and the backend-neutral reads (and writes) of the tests' direct checks.
//!
//! A test is written once, as `async fn name(db: TestDb)`, and listed at the end of its file:
//! `both_backends!(name, …)` runs it as `postgres::name` and `sqlite::name`;
//! `postgres_only!(…)` and `sqlite_only!(…)` (modules `postgres_only`, `sqlite_only`) run the
//! few whose property exists on one backend only. A test that is listed nowhere is dead code,
//! which clippy refuses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use contactd::backend::Store;
use contactd::settings::DatabaseSettings;
use contactd_store_pg::{PgStore, PoolSettings};
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Connection, PgPool, Postgres, Sqlite, SqlitePool};

/// Runs each named test on a fresh PostgreSQL database (`postgres::name`) and on a fresh SQLite
/// file (`sqlite::name`).
macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::TestDb::postgres().await).await;
                }
            )*
        }
        $crate::support::on_sqlite! {
            mod sqlite {
                $(
                    #[tokio::test]
                    async fn $test() {
                        super::$test($crate::support::TestDb::sqlite().await).await;
                    }
                )*
            }
        }
    };
}
pub(crate) use both_backends;

/// Runs each named test on a fresh PostgreSQL database only (`postgres_only::name`): for a
/// property that only PostgreSQL has. Each name gets a comment saying why.
macro_rules! postgres_only {
    ($($test:ident),* $(,)?) => {
        mod postgres_only {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::TestDb::postgres().await).await;
                }
            )*
        }
    };
}
pub(crate) use postgres_only;

/// Runs each named test on a fresh SQLite file only (`sqlite_only::name`): for a property that
/// only the embedded store has. Each name gets a comment saying why.
macro_rules! sqlite_only {
    ($($test:ident),* $(,)?) => {
        $crate::support::on_sqlite! {
            mod sqlite_only {
                $(
                    #[tokio::test]
                    async fn $test() {
                        super::$test($crate::support::TestDb::sqlite().await).await;
                    }
                )*
            }
        }
    };
}
pub(crate) use sqlite_only;

/// The switch of the SQLite tests (on: passes its items through; off, while the SQLite store
/// cannot be built: `=> {};`).
macro_rules! on_sqlite {
    ($($item:item)*) => {
        $($item)*
    };
}
pub(crate) use on_sqlite;

/// The two stores the binary can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A fresh database of one backend, migrated and empty, removed when dropped: on PostgreSQL a
/// database of its own on the server of `DATABASE_URL` (as `#[sqlx::test]` makes them), on
/// SQLite a file in a temporary directory.
#[derive(Debug)]
pub struct TestDb {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Postgres {
        /// The test's pool: the servers' stores are made on it, the direct checks run on it.
        pool: PgPool,
        /// The database's URL.
        url: String,
        /// `DATABASE_URL`, which names a database to connect to for creating and dropping.
        admin_url: String,
        name: String,
    },
    Sqlite {
        /// The direct checks' connections, beside the store's (its lock keeps out another
        /// store, not a reader).
        pool: SqlitePool,
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
}

/// Test databases made by this process so far: the next one's number.
static DATABASES: AtomicU32 = AtomicU32::new(0);
/// The prefix of the test databases' names on the PostgreSQL server.
const PG_PREFIX: &str = "contactd_e2e_";

/// A row of a direct check, readable on either backend.
pub trait AnyRow:
    Send + Unpin + for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow>
{
}
impl<T> AnyRow for T where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow>
{
}

/// A value of a direct check, readable on either backend.
pub trait AnyValue:
    Send
    + Unpin
    + sqlx::Type<Postgres>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Sqlite>
{
}
impl<T> AnyValue for T where
    T: Send
        + Unpin
        + sqlx::Type<Postgres>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>
{
}

impl TestDb {
    /// A fresh database on the PostgreSQL server of `DATABASE_URL`, migrated.
    pub async fn postgres() -> Self {
        let admin_url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL names the PostgreSQL server of the tests");
        let number = DATABASES.fetch_add(1, Ordering::Relaxed);
        if number == 0 {
            drop_abandoned_databases(&admin_url).await;
        }
        let name = format!("{PG_PREFIX}{}_{number}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL server of DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        let pool = contactd_store_pg::connect(&url, &PoolSettings::default())
            .await
            .expect("connect to the test database");
        contactd_store_pg::migrate(&pool)
            .await
            .expect("migrate the test database");
        Self {
            inner: Inner::Postgres {
                pool,
                url,
                admin_url,
                name,
            },
        }
    }

    /// A fresh SQLite file in a temporary directory, migrated by opening the store once.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a directory for the database");
        let path = dir.path().join(contactd::backend::DEFAULT_SQLITE_FILE);
        let store = open(&sqlite_settings(&path, dir.path()), true).await;
        drop(store);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .busy_timeout(std::time::Duration::from_secs(10)),
            )
            .await
            .expect("open the test database for the direct checks");
        Self {
            inner: Inner::Sqlite {
                pool,
                path,
                _dir: dir,
            },
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Postgres { .. } => Backend::Postgres,
            Inner::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// The SQL of this backend, where the two must differ.
    pub fn pick<'a>(&self, postgres: &'a str, sqlite: &'a str) -> &'a str {
        match self.backend() {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        }
    }

    /// The columns the log is read in order of (ADR 4): on PostgreSQL the writing transaction,
    /// then the position; on SQLite, whose positions commit in order, the position.
    pub fn log_order(&self) -> &'static str {
        self.pick("transaction_id, global_position", "global_position")
    }

    /// The SQL of `column`, a UUID, as hyphenated lower-case text (PostgreSQL stores a `uuid`,
    /// SQLite its 16 bytes).
    pub fn uuid_text(&self, column: &str) -> String {
        match self.backend() {
            Backend::Postgres => format!("CAST({column} AS TEXT)"),
            Backend::Sqlite => {
                let part = |from: u8, len: u8| format!("substr(hex({column}), {from}, {len})");
                format!(
                    "lower({} || '-' || {} || '-' || {} || '-' || {} || '-' || {})",
                    part(1, 8),
                    part(9, 4),
                    part(13, 4),
                    part(17, 4),
                    part(21, 12)
                )
            }
        }
    }

    /// The database as `DATABASE_URL` (`--database-url`) names it to a `contactd` process.
    pub fn url(&self) -> String {
        match &self.inner {
            Inner::Postgres { url, .. } => url.clone(),
            Inner::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        }
    }

    /// A store on the database, as `contactd serve` opens it. On PostgreSQL a store of its own
    /// on the test's pool (stores made twice behave as two processes sharing the database); on
    /// SQLite the file opened: the store holds the file's lock until it is dropped.
    pub async fn store(&self) -> Store {
        match &self.inner {
            Inner::Postgres { pool, .. } => Store::Postgres(PgStore::new(
                pool.clone(),
                contactd_store_pg::Keyring::for_tests(),
            )),
            Inner::Sqlite { path, .. } => {
                let dir = path.parent().expect("the file's directory");
                open(&sqlite_settings(path, dir), true).await
            }
        }
    }

    /// How many servers (processes) can share the database: two on PostgreSQL (any number,
    /// really), one on SQLite, whose store refuses a second.
    pub fn servers(&self) -> usize {
        match self.backend() {
            Backend::Postgres => 2,
            Backend::Sqlite => 1,
        }
    }

    /// The SQLite file, for the few checks that only exist there.
    pub fn sqlite_path(&self) -> &Path {
        match &self.inner {
            Inner::Sqlite { path, .. } => path,
            Inner::Postgres { .. } => panic!("a SQLite check on the PostgreSQL backend"),
        }
    }

    /// Every row `sql` selects (`$1`, `$2`… bound to `args`, as text).
    pub async fn fetch_all<T: AnyRow>(&self, sql: &str, args: &[&str]) -> Vec<T> {
        let fetched = match &self.inner {
            Inner::Postgres { pool, .. } => {
                let mut query = sqlx::query_as::<Postgres, T>(sql);
                for arg in args {
                    query = query.bind(*arg);
                }
                query.fetch_all(pool).await
            }
            Inner::Sqlite { pool, .. } => {
                let mut query = sqlx::query_as::<Sqlite, T>(sql);
                for arg in args {
                    query = query.bind(*arg);
                }
                query.fetch_all(pool).await
            }
        };
        fetched.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one row `sql` selects, if any.
    pub async fn fetch_optional<T: AnyRow>(&self, sql: &str, args: &[&str]) -> Option<T> {
        let mut rows = self.fetch_all(sql, args).await;
        assert!(
            rows.len() <= 1,
            "{sql}: {} rows, not one at most",
            rows.len()
        );
        rows.pop()
    }

    /// The one row `sql` selects.
    pub async fn fetch_one<T: AnyRow>(&self, sql: &str, args: &[&str]) -> T {
        self.fetch_optional(sql, args)
            .await
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// The first column of every row `sql` selects.
    pub async fn scalars<T: AnyValue>(&self, sql: &str, args: &[&str]) -> Vec<T> {
        self.fetch_all::<(T,)>(sql, args)
            .await
            .into_iter()
            .map(|(value,)| value)
            .collect()
    }

    /// The first column of the one row `sql` selects, if any.
    pub async fn optional_scalar<T: AnyValue>(&self, sql: &str, args: &[&str]) -> Option<T> {
        self.fetch_optional::<(T,)>(sql, args)
            .await
            .map(|(value,)| value)
    }

    /// The first column of the one row `sql` selects.
    pub async fn scalar<T: AnyValue>(&self, sql: &str, args: &[&str]) -> T {
        self.fetch_one::<(T,)>(sql, args).await.0
    }

    /// A count (or any whole number) that `sql` selects.
    pub async fn count(&self, sql: &str, args: &[&str]) -> i64 {
        self.scalar(sql, args).await
    }

    /// Runs a statement that returns nothing.
    pub async fn execute(&self, sql: &str) {
        let done = match &self.inner {
            Inner::Postgres { pool, .. } => sqlx::query(sql).execute(pool).await.map(drop),
            Inner::Sqlite { pool, .. } => sqlx::query(sql).execute(pool).await.map(drop),
        };
        done.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Whether no transaction stays open on the database for a second: on PostgreSQL, within
    /// that second a moment comes when no session of the database idles in a transaction (a
    /// projection's batch in flight shows as one between its statements, so one look is not
    /// enough); on SQLite, the write lock can be taken (and is given back) within it. A
    /// transaction held open across a call that takes longer fails either.
    pub async fn no_transaction_is_open(&self) -> bool {
        const WITHIN: std::time::Duration = std::time::Duration::from_secs(1);
        match &self.inner {
            Inner::Postgres { pool, .. } => {
                let deadline = tokio::time::Instant::now() + WITHIN;
                loop {
                    let open: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() \
                         AND state IN ('idle in transaction', 'idle in transaction (aborted)')",
                    )
                    .fetch_one(pool)
                    .await
                    .expect("read pg_stat_activity");
                    if open == 0 {
                        return true;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
            Inner::Sqlite { path, .. } => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(WITHIN);
                let mut connection = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("open the test database");
                let free = sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                    .is_ok();
                if free {
                    sqlx::query("ROLLBACK")
                        .execute(&mut connection)
                        .await
                        .expect("give the write lock back");
                }
                let _ = connection.close().await;
                free
            }
        }
    }

    /// The tables of the database (the migrations' own bookkeeping left out).
    pub async fn tables(&self) -> Vec<String> {
        let sql = self.pick(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
             AND tablename NOT LIKE '\\_sqlx%' ORDER BY tablename",
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
             ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' ORDER BY name",
        );
        self.scalars(sql, &[]).await
    }

    /// Every row of `table` in the order of `order_by`, each as a JSON object of its columns
    /// (each backend's own rendering of its values: compare rows of one backend only).
    pub async fn rows_as_json(&self, table: &str, order_by: &str) -> Vec<serde_json::Value> {
        match &self.inner {
            Inner::Postgres { pool, .. } => {
                let sql = format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {order_by}");
                sqlx::query_scalar(&sql)
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Inner::Sqlite { pool, .. } => {
                use sqlx::{Column, Row, TypeInfo, ValueRef};
                let sql = format!("SELECT * FROM {table} ORDER BY {order_by}");
                let rows = sqlx::query(&sql)
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter()
                    .map(|row| {
                        let mut object = serde_json::Map::new();
                        for (i, column) in row.columns().iter().enumerate() {
                            let raw = row.try_get_raw(i).expect("a column");
                            let kind = raw.type_info().name().to_owned();
                            let value = match kind.as_str() {
                                "NULL" => serde_json::Value::Null,
                                "INTEGER" => row.get::<i64, _>(i).into(),
                                "REAL" => row.get::<f64, _>(i).into(),
                                "TEXT" => row.get::<String, _>(i).into(),
                                _ => {
                                    let bytes: Vec<u8> = row.get(i);
                                    let hex: String =
                                        bytes.iter().map(|b| format!("{b:02x}")).collect();
                                    format!("\\x{hex}").into()
                                }
                            };
                            object.insert(column.name().to_owned(), value);
                        }
                        serde_json::Value::Object(object)
                    })
                    .collect()
            }
        }
    }
}

impl Drop for TestDb {
    /// Drops a PostgreSQL test database, whatever connections to it are left (a server that
    /// was not stopped, a killed process's): on a thread of its own, since the test's runtime
    /// may be the current thread.
    fn drop(&mut self) {
        if let Inner::Postgres {
            admin_url, name, ..
        } = &self.inner
        {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(drop_database(&admin_url, &name))
            })
            .join();
            if dropped.is_err() && !std::thread::panicking() {
                panic!("the test database could not be dropped");
            }
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL server of DATABASE_URL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
    let _ = admin.close().await;
}

/// Drops the test databases of runs that are gone (killed before their databases were
/// dropped), once per process.
async fn drop_abandoned_databases(admin_url: &str) {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL server of DATABASE_URL");
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{PG_PREFIX}%"))
            .fetch_all(&mut admin)
            .await
            .expect("list the test databases");
    let _ = admin.close().await;
    for name in names {
        let pid = name[PG_PREFIX.len()..].split('_').next().unwrap_or("");
        if !Path::new("/proc").join(pid).exists() {
            drop_database(admin_url, &name).await;
        }
    }
}

/// `admin_url` with its database replaced by `name` (its query string kept).
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends with a database name");
    format!("{server}/{name}{query}")
}

fn sqlite_settings(path: &Path, data_dir: &Path) -> DatabaseSettings {
    DatabaseSettings {
        database_url: Some(format!("sqlite://{}", path.display())),
        data_dir: data_dir.to_owned(),
        db_max_connections: 16,
    }
}

async fn open(settings: &DatabaseSettings, migrate: bool) -> Store {
    Store::open(settings, migrate)
        .await
        .unwrap_or_else(|e| panic!("open the embedded store: {e:#}"))
}

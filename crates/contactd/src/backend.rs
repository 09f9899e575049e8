//! The one place that chooses the store: PostgreSQL for a `postgres://` URL, otherwise the
//! embedded SQLite store in the data directory. Everything past this module is written once,
//! generic over [`Backend`]: the ports the use cases need, plus what the binary starts beside
//! the server (the projections) and its offline commands (rebuilds).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use contactd_app::{
    AccountActivity, AuditLog, ContactStore, DirectoryStore, EventLog, LifecycleJobs,
    MemberContacts, Outbox, PoolUsage, Projection, ProjectionMetrics, ProjectionStore,
    RunnerSettings, StoreError, VerificationOutbox, run_projection,
};
use contactd_store_core::{INLINE_READ_MODEL, RebuildReport};
use contactd_store_pg::{PgStore, PoolSettings};
use contactd_store_sqlite::SqliteStore;
use sqlx::migrate::MigrateDatabase;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

use crate::settings::DatabaseSettings;

/// The file of the embedded store in the data directory, when no URL names another.
pub const DEFAULT_SQLITE_FILE: &str = "contactd.db";

/// Which store the settings name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    Postgres { url: String },
    Sqlite { path: PathBuf },
}

impl StoreChoice {
    /// Unset: SQLite in the data directory; `sqlite://PATH` (or `sqlite:PATH`): that file;
    /// `postgres://` or `postgresql://`: PostgreSQL. Anything else is refused with the
    /// choices.
    pub fn from_settings(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let Some(url) = settings.database_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(Self::Sqlite {
                path: settings.data_dir.join(DEFAULT_SQLITE_FILE),
            });
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: url.to_owned(),
            });
        }
        if let Some(path) = contactd_store_sqlite::database_path(url) {
            return Ok(Self::Sqlite { path });
        }
        anyhow::bail!(
            "DATABASE_URL {:?} names no store this service has: use postgres://… for PostgreSQL, \
             sqlite://PATH for the embedded store, or leave it unset for the embedded store in \
             the data directory",
            redacted(url)
        )
    }
}

/// A URL with its password (if any) masked, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// An opened store of either kind.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Store {
    /// Opens the store to read it only, beside a server that may be running on it: on
    /// PostgreSQL as [`Store::open`] would; the embedded store without taking its lock.
    pub async fn open_to_read(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        match StoreChoice::from_settings(settings)? {
            StoreChoice::Sqlite { path } => {
                let store = SqliteStore::open_to_read(
                    &path,
                    &contactd_store_sqlite::SqliteSettings::default(),
                    // FIXME(issue 13): the keyring from --master-key-file (helper G).
                    contactd_store_pg::Keyring::for_tests(),
                )
                .await
                .with_context(|| format!("opening the embedded store {}", path.display()))?;
                Ok(Self::Sqlite(store))
            }
            StoreChoice::Postgres { .. } => Self::open(settings, false).await,
        }
    }

    /// Opens the store the settings name; with `migrate`, creates the database if it is
    /// missing and applies pending migrations.
    pub async fn open(settings: &DatabaseSettings, migrate: bool) -> anyhow::Result<Self> {
        Self::open_capped(settings, migrate, None).await
    }

    /// As [`Store::open`], for a server whose longest call is `longest_call`: on PostgreSQL no
    /// statement outlives it (the session's `statement_timeout`), and a call with less time
    /// left has its statements stopped at its deadline (ADR 11). The embedded store has no
    /// statement timeout: a call's future is dropped at its deadline.
    pub async fn open_capped(
        settings: &DatabaseSettings,
        migrate: bool,
        longest_call: Option<std::time::Duration>,
    ) -> anyhow::Result<Self> {
        match StoreChoice::from_settings(settings)? {
            StoreChoice::Postgres { url } => {
                if migrate
                    && !sqlx::Postgres::database_exists(&url)
                        .await
                        .context("reaching PostgreSQL")?
                {
                    sqlx::Postgres::create_database(&url)
                        .await
                        .context("creating the database")?;
                    info!("created the database");
                }
                let pool = contactd_store_pg::connect_capped(
                    &url,
                    &PoolSettings {
                        max_connections: settings.db_max_connections,
                        ..PoolSettings::default()
                    },
                    longest_call,
                )
                .await
                .context("connecting to PostgreSQL")?;
                if migrate {
                    contactd_store_pg::migrate(&pool)
                        .await
                        .context("applying migrations")?;
                }
                info!("store: PostgreSQL");
                Ok(Self::Postgres(
                    // FIXME(issue 13): the keyring from --master-key-file (helper G).
                    PgStore::new(pool, contactd_store_pg::Keyring::for_tests())
                        .statement_timeout(longest_call),
                ))
            }
            StoreChoice::Sqlite { path } => {
                let store = SqliteStore::open(
                    &path,
                    &contactd_store_sqlite::SqliteSettings {
                        read_connections: settings.db_max_connections,
                        ..contactd_store_sqlite::SqliteSettings::default()
                    },
                    // FIXME(issue 13): the keyring from --master-key-file (helper G).
                    contactd_store_pg::Keyring::for_tests(),
                )
                .await
                .with_context(|| format!("opening the embedded store {}", path.display()))?;
                info!(path = %path.display(), "store: embedded SQLite");
                Ok(Self::Sqlite(store))
            }
        }
    }
}

/// Runs `$body` with `$store` bound to the concrete store inside `$value`: the one match on
/// the backend, after which the code is generic.
macro_rules! with_store {
    ($value:expr, $store:ident => $body:expr) => {
        match $value {
            $crate::backend::Store::Postgres($store) => $body,
            $crate::backend::Store::Sqlite($store) => $body,
        }
    };
}
pub(crate) use with_store;

/// What the binary needs of a store: the ports, and the workers and rebuilds each store runs
/// its own way.
pub trait Backend:
    ContactStore + DirectoryStore + Outbox + LifecycleJobs + AuditLog + EventLog + Clone
{
    /// Starts the projections (and whatever else keeps the store's readers awake) until
    /// `stopping` turns true.
    fn spawn_workers(
        &self,
        workers: &mut JoinSet<()>,
        holder: String,
        projections: ProjectionMetrics,
        stopping: watch::Receiver<bool>,
    );

    /// The store's database connections now.
    fn pool_usage(&self) -> PoolUsage;

    /// The read models `projections rebuild` can rebuild, by name.
    fn rebuildable(&self) -> Vec<&'static str>;

    /// Rebuilds one read model from the log.
    fn rebuild(&self, name: &str)
    -> impl Future<Output = Result<RebuildReport, StoreError>> + Send;
}

/// How long the outbox and member-contacts projections let events gather after catching up:
/// each batch that waits is time added to every message and every member list (ADR 8).
pub const OUTBOX_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Starts the three projections on a store, each where this process can hold it.
fn spawn_projections<S>(
    store: &S,
    outbox: VerificationOutbox,
    member_contacts: MemberContacts,
    workers: &mut JoinSet<()>,
    holder: String,
    metrics: ProjectionMetrics,
    stopping: watch::Receiver<bool>,
) where
    S: ProjectionStore + Clone,
    AccountActivity: for<'w> Projection<S::Work<'w>>,
    VerificationOutbox: for<'w> Projection<S::Work<'w>>,
    MemberContacts: for<'w> Projection<S::Work<'w>>,
{
    let runner = RunnerSettings {
        holder,
        ..RunnerSettings::default()
    };
    // The outbox and the member lists let events gather for a shorter while than the audit
    // view: each batch that waits is time added to every message (ADR 8).
    let prompt = RunnerSettings {
        gather_interval: OUTBOX_GATHER,
        ..runner.clone()
    };
    workers.spawn(run_projection(
        store.clone(),
        Arc::new(AccountActivity),
        runner,
        metrics.clone(),
        stopping.clone(),
    ));
    workers.spawn(run_projection(
        store.clone(),
        Arc::new(outbox),
        prompt.clone(),
        metrics.clone(),
        stopping.clone(),
    ));
    workers.spawn(run_projection(
        store.clone(),
        Arc::new(member_contacts),
        prompt,
        metrics,
        stopping,
    ));
}

/// The read models either store rebuilds: the inline one, and the projections without side
/// effects outside the store.
const REBUILDABLE: [&str; 3] = [
    INLINE_READ_MODEL,
    AccountActivity::NAME,
    MemberContacts::NAME,
];

impl Backend for PgStore {
    fn spawn_workers(
        &self,
        workers: &mut JoinSet<()>,
        holder: String,
        projections: ProjectionMetrics,
        stopping: watch::Receiver<bool>,
    ) {
        // Other processes' appends arrive as notifications; this process's wake its readers.
        workers.spawn(contactd_store_pg::relay_log_notifications(
            self.clone(),
            stopped(stopping.clone()),
        ));
        spawn_projections(
            self,
            self.verification_outbox(),
            self.member_contacts(),
            workers,
            holder,
            projections,
            stopping,
        );
    }

    fn pool_usage(&self) -> PoolUsage {
        PgStore::pool_usage(self)
    }

    fn rebuildable(&self) -> Vec<&'static str> {
        REBUILDABLE.to_vec()
    }

    async fn rebuild(&self, name: &str) -> Result<RebuildReport, StoreError> {
        if name == INLINE_READ_MODEL {
            contactd_store_pg::rebuild_contacts(self).await
        } else if name == MemberContacts::NAME {
            // Replayed without its jobs: a rebuild publishes and unbinds nothing again.
            contactd_store_pg::rebuild_projection(self, &MemberContacts::replaying(), 5000).await
        } else {
            contactd_store_pg::rebuild_projection(self, &AccountActivity, 5000).await
        }
    }
}

impl Backend for SqliteStore {
    fn spawn_workers(
        &self,
        workers: &mut JoinSet<()>,
        holder: String,
        projections: ProjectionMetrics,
        stopping: watch::Receiver<bool>,
    ) {
        spawn_projections(
            self,
            self.verification_outbox(),
            self.member_contacts(),
            workers,
            holder,
            projections,
            stopping,
        );
    }

    fn pool_usage(&self) -> PoolUsage {
        SqliteStore::pool_usage(self)
    }

    fn rebuildable(&self) -> Vec<&'static str> {
        REBUILDABLE.to_vec()
    }

    async fn rebuild(&self, name: &str) -> Result<RebuildReport, StoreError> {
        if name == INLINE_READ_MODEL {
            contactd_store_sqlite::rebuild_contacts(self).await
        } else if name == MemberContacts::NAME {
            contactd_store_sqlite::rebuild_projection(self, &MemberContacts::replaying(), 5000)
                .await
        } else {
            contactd_store_sqlite::rebuild_projection(self, &AccountActivity, 5000).await
        }
    }
}

/// Completes when the flag turns true (or its sender is gone).
pub async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

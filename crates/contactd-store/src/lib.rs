//! The PostgreSQL event store: the only crate that knows SQL and the persisted event format.
//! It implements the application's [`ContactStore`] port: events appended at an expected
//! version together with the inline read model, name claims, quota and client-token memory, in
//! one statement and so in one transaction.

mod append;
mod error;
mod read;
mod rows;
mod schema;

use std::time::Duration;

use contactd_app::{
    Append, AppendError, ContactStore, IdempotencyKey, Page, PageRequest, RememberedCall,
    StoreError,
};
use contactd_domain::{AccountId, Contact, ContactId};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use read::StoredEvent;
pub use schema::{CURRENT_SCHEMA_VERSION, decode_event, encode_event};

/// The schema migrations, embedded at build time from the repository's `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Connection settings of the store.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens a pool on `database_url`. Connections are not pinged on checkout: a broken one fails
/// its statement, which the caller sees as a transient error, and the pool replaces it.
pub async fn connect(database_url: &str, settings: &PoolSettings) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .connect_with(options.application_name("contactd"))
        .await
}

/// Applies the migrations not yet applied.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// The event store on a PostgreSQL pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl ContactStore for PgStore {
    async fn load_contact(
        &self,
        account_id: &AccountId,
        contact_id: &ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        read::load_contact(&self.pool, account_id, contact_id).await
    }

    async fn append(&self, append: Append<'_>) -> Result<(), AppendError> {
        append::append(&self.pool, append).await
    }

    async fn list_contacts(
        &self,
        account_id: &AccountId,
        only: Option<&ContactId>,
        page: PageRequest,
    ) -> Result<Page<Contact>, StoreError> {
        read::list_contacts(&self.pool, account_id, only, page).await
    }

    async fn recall(
        &self,
        key: &IdempotencyKey,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<RememberedCall>, StoreError> {
        read::recall(&self.pool, key, since).await
    }

    async fn remember(&self, call: &RememberedCall) -> Result<(), AppendError> {
        append::remember(&self.pool, call).await
    }
}

//! The PostgreSQL harness of the conformance suite: a database of its own per test, created
//! on the server at `DATABASE_URL`, migrated, and dropped when the test ends; and the hooks
//! that only SQL or this crate's own functions can carry out.

use std::collections::BTreeMap;
use std::sync::Arc;

use contactd_app::{
    AccountActivity, MemberContacts, ProjectionMetrics, RunnerSettings, VerificationOutbox,
    run_projection,
};
use contactd_store_conformance::{Backend, RawEvent};
use contactd_store_pg::{PgStore, PoolSettings};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;
use uuid::Uuid;

/// One test's database and the store on it. Dropping it drops the database.
#[derive(Debug)]
pub struct PgBackend {
    store: PgStore,
    /// The server's URL, for another process's pool and for the drop.
    server: Url,
    /// The test database's URL.
    database: Url,
    name: String,
}

fn server_url() -> Url {
    let raw = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL names the PostgreSQL server the tests create databases on");
    Url::parse(&raw).expect("DATABASE_URL is a URL")
}

async fn pool(database: &Url) -> PgPool {
    contactd_store_pg::connect(database.as_str(), &PoolSettings::default())
        .await
        .expect("connect to the test database")
}

/// The database's refusal, as its message says it.
fn refusal(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(error
            .as_database_error()
            .map_or_else(|| error.to_string(), |e| e.message().to_owned())),
    }
}

impl Backend for PgBackend {
    type Store = PgStore;

    async fn fresh() -> Self {
        let server = server_url();
        let name = format!("contactd_conformance_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(server.as_str())
            .await
            .expect("connect to the PostgreSQL server of DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let mut database = server.clone();
        database.set_path(&name);
        let pool = pool(&database).await;
        contactd_store_pg::migrate(&pool)
            .await
            .expect("migrate the test database");
        Self {
            store: PgStore::new(pool, contactd_store_pg::Keyring::for_tests()),
            server,
            database,
            name,
        }
    }

    fn store(&self) -> &PgStore {
        &self.store
    }

    async fn another_process(&self) -> PgStore {
        PgStore::new(
            pool(&self.database).await,
            contactd_store_pg::Keyring::for_tests(),
        )
    }

    async fn try_update_event(&self, event_id: Uuid) -> Result<(), String> {
        refusal(
            sqlx::query("UPDATE events SET event_type = 'Forged' WHERE event_id = $1")
                .bind(event_id)
                .execute(self.store.pool())
                .await,
        )
    }

    async fn try_delete_event(&self, event_id: Uuid) -> Result<(), String> {
        refusal(
            sqlx::query("DELETE FROM events WHERE event_id = $1")
                .bind(event_id)
                .execute(self.store.pool())
                .await,
        )
    }

    async fn try_empty_log(&self) -> Result<(), String> {
        refusal(
            sqlx::query("TRUNCATE events")
                .execute(self.store.pool())
                .await,
        )
    }

    async fn insert_raw_event(&self, event: RawEvent) {
        sqlx::query(
            "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
             schema_version, payload, request_id, caller, correlation_id, causation_id, \
             recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11, $12)",
        )
        .bind(event.event_id)
        .bind(&event.account_id)
        .bind(&event.stream_id)
        .bind(i64::try_from(event.stream_version).unwrap())
        .bind(&event.event_type)
        .bind(event.schema_version)
        .bind(event.payload.to_string())
        .bind(&event.request_id)
        .bind(&event.caller)
        .bind(&event.correlation_id)
        .bind(&event.causation_id)
        .bind(event.recorded_at)
        .execute(self.store.pool())
        .await
        .expect("insert a raw event");
    }

    async fn stored_payload(&self, event_id: Uuid) -> String {
        sqlx::query_scalar("SELECT payload::text FROM events WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(self.store.pool())
            .await
            .expect("read a stored payload")
    }

    async fn overwrite_payload(&self, event_id: Uuid, payload: &str) {
        // Past the append-only trigger: what only a superuser could do.
        let mut tx = self.store.pool().begin().await.unwrap();
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE events SET payload = $2::text::jsonb WHERE event_id = $1")
            .bind(event_id)
            .bind(payload)
            .execute(&mut *tx)
            .await
            .expect("overwrite a stored payload");
        tx.commit().await.unwrap();
    }

    async fn seal_clear_events(&self) -> u64 {
        self.store
            .seal_clear_events()
            .await
            .expect("seal the events stored in clear")
            .sealed
    }

    fn spawn_projection(
        &self,
        name: &'static str,
        settings: RunnerSettings,
        metrics: ProjectionMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let store = self.store.clone();
        match name {
            AccountActivity::NAME => tokio::spawn(run_projection(
                store,
                Arc::new(AccountActivity),
                settings,
                metrics,
                shutdown,
            )),
            VerificationOutbox::NAME => tokio::spawn(run_projection(
                store.clone(),
                Arc::new(store.verification_outbox()),
                settings,
                metrics,
                shutdown,
            )),
            MemberContacts::NAME => tokio::spawn(run_projection(
                store.clone(),
                Arc::new(store.member_contacts()),
                settings,
                metrics,
                shutdown,
            )),
            other => panic!("no projection {other}"),
        }
    }

    async fn rebuild_read_models(&self) {
        contactd_store_pg::rebuild_contacts(&self.store)
            .await
            .expect("rebuild the inline read model");
        contactd_store_pg::rebuild_projection(&self.store, &AccountActivity, 500)
            .await
            .expect("rebuild account_activity");
        contactd_store_pg::rebuild_projection(&self.store, &MemberContacts::replaying(), 500)
            .await
            .expect("rebuild member_contacts");
    }

    async fn read_models(&self) -> BTreeMap<&'static str, Vec<Value>> {
        let mut models = BTreeMap::new();
        for (table, key) in READ_MODELS {
            let sql = format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {key}");
            let rows: Vec<Value> = sqlx::query_scalar(&sql)
                .fetch_all(self.store.pool())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            models.insert(table, rows);
        }
        models
    }

    async fn spoil_read_models(&self) {
        for statement in [
            "UPDATE contacts SET version = version + 10, \
             state = jsonb_set(state, '{title}', '\"Other\"')",
            "DELETE FROM contact_names WHERE account_id = '6543210987654321'",
            "UPDATE contact_quotas SET contacts = 0",
            "UPDATE directories SET state = '{}'::jsonb",
            "UPDATE account_activity SET events = events * 2, last_position = 0",
            "DELETE FROM directory_nodes WHERE is_member",
            "UPDATE contact_bindings SET bound_at = now()",
            "DELETE FROM effective_contacts WHERE node_id LIKE 'fd-%'",
        ] {
            sqlx::query(statement)
                .execute(self.store.pool())
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
}

/// The tables the rebuilds write, each with the key its rows are ordered by.
const READ_MODELS: [(&str, &str); 8] = [
    ("contacts", "contact_id"),
    ("contact_names", "account_id, name_key"),
    ("contact_quotas", "account_id"),
    ("directories", "account_id"),
    ("account_activity", "account_id"),
    ("directory_nodes", "account_id, node_id"),
    ("contact_bindings", "account_id, contact_id, node_id"),
    ("effective_contacts", "account_id, node_id, contact_id"),
];

impl Drop for PgBackend {
    /// Drops the test's database, from a thread of its own: the test's runtime may be the one
    /// that is ending.
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut admin = PgConnection::connect(server.as_str()).await?;
                sqlx::query(&statement).execute(&mut admin).await?;
                admin.close().await
            })
        });
        if let Ok(Err(error)) = dropped.join() {
            eprintln!("the test database {name} was not dropped: {error}");
        }
    }
}

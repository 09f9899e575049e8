//! The SQLite harness of the conformance suite: a database file of its own per test, in a
//! temporary directory removed when the test ends; and the hooks that only SQL or this crate's
//! own functions can carry out, written through the store's one writer connection so that
//! they queue behind its writes as any write does.

use std::collections::BTreeMap;
use std::sync::Arc;

use contactd_app::{
    AccountActivity, MemberContacts, ProjectionMetrics, RunnerSettings, VerificationOutbox,
    run_projection,
};
use contactd_store_conformance::{Backend, RawEvent};
use contactd_store_sqlite::{Keyring, SqliteSettings, SqliteStore};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// One test's database and the store on it. The directory goes with it.
#[derive(Debug)]
pub struct SqliteBackend {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

/// The database's refusal, as its message says it.
fn refusal(result: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(error
            .as_database_error()
            .map_or_else(|| error.to_string(), |e| e.message().to_owned())),
    }
}

impl Backend for SqliteBackend {
    type Store = SqliteStore;

    async fn fresh() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let store = SqliteStore::open(
            &dir.path().join("contactd.db"),
            &SqliteSettings::default(),
            Keyring::for_tests(),
        )
        .await
        .expect("open the test database");
        Self { store, _dir: dir }
    }

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// One process only holds a SQLite database (its lock file): the second "process" is this
    /// one.
    async fn another_process(&self) -> SqliteStore {
        self.store.clone()
    }

    async fn try_update_event(&self, event_id: Uuid) -> Result<(), String> {
        refusal(
            sqlx::query("UPDATE events SET event_type = 'Forged' WHERE event_id = ?1")
                .bind(event_id)
                .execute(self.store.write_pool())
                .await,
        )
    }

    async fn try_delete_event(&self, event_id: Uuid) -> Result<(), String> {
        refusal(
            sqlx::query("DELETE FROM events WHERE event_id = ?1")
                .bind(event_id)
                .execute(self.store.write_pool())
                .await,
        )
    }

    async fn try_empty_log(&self) -> Result<(), String> {
        // SQLite's TRUNCATE: a DELETE without WHERE, which it runs as one unless triggers stop it.
        refusal(
            sqlx::query("DELETE FROM events")
                .execute(self.store.write_pool())
                .await,
        )
    }

    async fn insert_raw_event(&self, event: RawEvent) {
        sqlx::query(
            "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
             schema_version, payload, request_id, caller, correlation_id, causation_id, \
             recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
        .execute(self.store.write_pool())
        .await
        .expect("insert a raw event");
    }

    async fn stored_payload(&self, event_id: Uuid) -> String {
        sqlx::query_scalar("SELECT payload FROM events WHERE event_id = ?1")
            .bind(event_id)
            .fetch_one(self.store.read_pool())
            .await
            .expect("read a stored payload")
    }

    async fn overwrite_payload(&self, event_id: Uuid, payload: &str) {
        // Past the append-only trigger: dropped and put back as it was, in one transaction,
        // as anyone holding the file could.
        let mut tx = self
            .store
            .write_pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .unwrap();
        let guard: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'events_append_only'",
        )
        .fetch_one(&mut *tx)
        .await
        .expect("the append-only guard");
        sqlx::query("DROP TRIGGER events_append_only")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE events SET payload = ?2 WHERE event_id = ?1")
            .bind(event_id)
            .bind(payload)
            .execute(&mut *tx)
            .await
            .expect("overwrite a stored payload");
        sqlx::query(&guard).execute(&mut *tx).await.unwrap();
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
        contactd_store_sqlite::rebuild_contacts(&self.store)
            .await
            .expect("rebuild the inline read model");
        contactd_store_sqlite::rebuild_projection(&self.store, &AccountActivity, 500)
            .await
            .expect("rebuild account_activity");
        contactd_store_sqlite::rebuild_projection(&self.store, &MemberContacts::replaying(), 500)
            .await
            .expect("rebuild member_contacts");
    }

    async fn read_models(&self) -> BTreeMap<&'static str, Vec<Value>> {
        let mut models = BTreeMap::new();
        for (table, key) in READ_MODELS {
            let sql = format!("SELECT * FROM {table} ORDER BY {key}");
            let rows = sqlx::query(&sql)
                .fetch_all(self.store.read_pool())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            models.insert(table, rows.iter().map(row_as_json).collect());
        }
        models
    }

    async fn spoil_read_models(&self) {
        for statement in [
            "UPDATE contacts SET version = version + 10, \
             state = json_set(state, '$.title', 'Other')",
            "DELETE FROM contact_names WHERE account_id = '6543210987654321'",
            "UPDATE contact_quotas SET contacts = 0",
            "UPDATE directories SET state = '{}'",
            "UPDATE account_activity SET events = events * 2, last_position = 0",
            "DELETE FROM directory_nodes WHERE is_member",
            "UPDATE contact_bindings SET bound_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            "DELETE FROM effective_contacts WHERE node_id LIKE 'fd-%'",
        ] {
            sqlx::query(statement)
                .execute(self.store.write_pool())
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

/// A row as a JSON object of its columns, each value as SQLite holds it (a blob as hex).
fn row_as_json(row: &SqliteRow) -> Value {
    let mut object = serde_json::Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).expect("a column");
        let value = match raw.type_info().name() {
            "NULL" => Value::Null,
            "INTEGER" => row.get::<i64, _>(i).into(),
            "REAL" => row.get::<f64, _>(i).into(),
            "TEXT" => row.get::<String, _>(i).into(),
            _ => {
                let bytes: Vec<u8> = row.get(i);
                bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into()
            }
        };
        object.insert(column.name().to_owned(), value);
    }
    Value::Object(object)
}

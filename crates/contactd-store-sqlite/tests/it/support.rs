//! Building contacts, commands and appends for the store tests (the conformance suite's
//! fixtures, and a few of their own), and a store on a database file of each test's own.

use contactd_app::{Append, EventMetadata, NameClaim, NewEvent};
use contactd_domain::{Contact, ContactEvent};
use contactd_store_sqlite::{Keyring, SqliteSettings, SqliteStore};
use tempfile::TempDir;

pub use contactd_store_conformance::fixtures::{
    ACCOUNT, account, created, creation, letters, metadata, stored_contacts,
};

/// A store on a fresh database in a directory of its own (removed with the `TempDir`).
pub async fn fresh() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("contactd.db"),
        &SqliteSettings::default(),
        Keyring::for_tests(),
    )
    .await
    .unwrap();
    (store, dir)
}

/// An update decided on `state`: its events and the state after them.
pub fn decided(
    state: &Contact,
    events: Vec<ContactEvent>,
    at: &EventMetadata,
) -> (Vec<NewEvent>, Contact) {
    let mut after = state.clone();
    let events = events
        .into_iter()
        .map(|event| {
            after.apply(&event, at.recorded_at);
            NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event,
            }
        })
        .collect();
    (events, after)
}

/// A plain update: no claim, no quota, no token, no code.
pub fn update<'a>(
    after: &'a Contact,
    expected_version: u64,
    events: &'a [NewEvent],
    metadata: &'a EventMetadata,
) -> Append<'a> {
    Append {
        contact: after,
        expected_version,
        events,
        metadata,
        name_claim: NameClaim::Keep,
        quota_limit: None,
        remember: None,
        code: None,
    }
}

/// How many events the log holds, and its positions in order.
pub async fn positions(store: &SqliteStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT global_position FROM events ORDER BY global_position")
        .fetch_all(store.read_pool())
        .await
        .unwrap()
}

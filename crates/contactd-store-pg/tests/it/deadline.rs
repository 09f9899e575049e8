//! A call's deadline at the database: a statement blocked past the call's deadline is cancelled
//! by PostgreSQL itself (nothing of the store is left waiting), answered as a transient failure,
//! and rolled back; without a deadline it waits as before; the pool's session cap bounds
//! statements outside any call.

use std::time::{Duration, Instant};

use contactd_app::{Append, AppendError, ContactStore, NameClaim, NewEvent, deadline};
use contactd_domain::{Contact, ContactEvent, Title};
use contactd_store_pg::PgStore;
use sqlx::{Connection, PgConnection, PgPool};

use crate::support::*;

const SHORT: Duration = Duration::from_millis(300);

/// A connection of its own holding `LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE` (which blocks
/// reads and writes of the store) until it rolls back.
async fn lock_contacts(pool: &PgPool) -> PgConnection {
    let options = (*pool.connect_options()).clone();
    let mut locker = PgConnection::connect_with(&options).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

/// Statements of other sessions of this database still running or waiting, but the
/// locker's idle transaction and this query.
async fn waiting_statements(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A title change of `contact` decided at its version 1.
fn retitle(contact: &Contact) -> (Vec<NewEvent>, Contact) {
    let at = metadata();
    let event = ContactEvent::TitleChanged { title: Title::Ceo };
    let mut after = contact.clone();
    after.apply(&event, at.recorded_at);
    (
        vec![NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event,
        }],
        after,
    )
}

async fn append_update(
    store: &PgStore,
    events: &[NewEvent],
    after: &Contact,
) -> Result<(), AppendError> {
    let at = metadata();
    store
        .append(Append {
            contact: after,
            expected_version: 1,
            events,
            metadata: &at,
            name_claim: NameClaim::Keep,
            quota_limit: None,
            remember: None,
            code: None,
        })
        .await
}

async fn a_blocked_write_is_cancelled_at_its_deadline_and_succeeds_without_one(
    pool: PgPool,
    store: PgStore,
) {
    let contact = stored_contacts(&store, 1).await.remove(0);
    let (events, after) = retitle(&contact);
    let mut locker = lock_contacts(&pool).await;

    let started = Instant::now();
    let outcome = deadline::within(started + SHORT, append_update(&store, &events, &after)).await;
    let took = started.elapsed();

    match outcome {
        Err(AppendError::Store(error)) => assert!(error.is_transient(), "{error}"),
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert!(
        took >= SHORT / 2 && took < SHORT * 4,
        "answered after {took:?}"
    );
    assert_eq!(waiting_statements(&pool).await, Vec::<String>::new());

    // Without a deadline the same write waits for the lock, and commits once it is released.
    let waiting = {
        let store = store.clone();
        let (events, after) = (events.clone(), after.clone());
        tokio::spawn(async move { append_update(&store, &events, &after).await })
    };
    tokio::time::sleep(SHORT).await;
    assert!(!waiting.is_finished(), "the write waits for the lock");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    waiting.await.unwrap().unwrap();
    let stored = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap();
    assert_eq!(
        stored,
        Some(after),
        "the cancelled write left nothing behind"
    );
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_blocked_single_write_is_cancelled_at_its_deadline(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests())
        .group_commit(0)
        .group_reads(0);
    a_blocked_write_is_cancelled_at_its_deadline_and_succeeds_without_one(pool, store).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_blocked_group_commit_is_cancelled_at_its_deadline(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests())
        .group_commit(1)
        .group_reads(0);
    a_blocked_write_is_cancelled_at_its_deadline_and_succeeds_without_one(pool, store).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_group_commit_waits_for_its_longest_deadline(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests())
        .group_commit(1)
        .group_reads(0);
    let contacts = stored_contacts(&store, 2).await;
    let mut locker = lock_contacts(&pool).await;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (contact, deadline) in contacts.iter().zip([start + SHORT, start + SHORT * 3]) {
        let store = store.clone();
        let (events, after) = retitle(contact);
        tasks.spawn(deadline::within(deadline, async move {
            append_update(&store, &events, &after).await
        }));
    }
    // Release the lock after the short deadline but before the long one: the group, still
    // wanted by its longer member, commits both.
    tokio::time::sleep(SHORT * 2).await;
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    for outcome in tasks.join_all().await {
        outcome.unwrap();
    }
}

async fn a_blocked_read_is_cancelled_at_its_deadline(pool: PgPool, store: PgStore) {
    let contact = stored_contacts(&store, 1).await.remove(0);
    let locker = lock_contacts(&pool).await;

    let started = Instant::now();
    let outcome = deadline::within(
        started + SHORT,
        store.load_contact(&account(), &contact.contact_id),
    )
    .await;
    let took = started.elapsed();

    let error = outcome.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        took >= SHORT / 2 && took < SHORT * 4,
        "answered after {took:?}"
    );
    assert_eq!(waiting_statements(&pool).await, Vec::<String>::new());
    drop(locker);
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_blocked_single_read_is_cancelled_at_its_deadline(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests())
        .group_commit(0)
        .group_reads(0);
    a_blocked_read_is_cancelled_at_its_deadline(pool, store).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_blocked_grouped_read_is_cancelled_at_its_deadline(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests())
        .group_commit(0)
        .group_reads(1);
    a_blocked_read_is_cancelled_at_its_deadline(pool, store).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_passed_deadline_starts_no_statement(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests())
        .group_commit(1)
        .group_reads(1);
    let contact = stored_contacts(&store, 1).await.remove(0);
    let (events, after) = retitle(&contact);
    let passed = Instant::now();
    let read = deadline::within(passed, store.load_contact(&account(), &contact.contact_id)).await;
    assert!(read.unwrap_err().is_transient());
    match deadline::within(passed, append_update(&store, &events, &after)).await {
        Err(AppendError::Store(error)) => assert!(error.is_transient(), "{error}"),
        other => panic!("expected a transient failure, got {other:?}"),
    }
    let stored = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap();
    assert_eq!(stored, Some(contact), "nothing was written");
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_session_cap_bounds_statements_outside_any_call(pool: PgPool) {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&database);
    let capped = contactd_store_pg::connect_capped(
        url.as_str(),
        &contactd_store_pg::PoolSettings::default(),
        Some(SHORT),
    )
    .await
    .unwrap();
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&capped)
        .await
        .unwrap();
    assert_eq!(shown, "300ms");

    let store = PgStore::new(capped.clone(), contactd_store_pg::Keyring::for_tests())
        .statement_timeout(Some(SHORT))
        .group_reads(0);
    let contact = stored_contacts(&store, 1).await.remove(0);
    let locker = lock_contacts(&pool).await;
    let started = Instant::now();
    let error = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(started.elapsed() < SHORT * 4);
    drop(locker);
    capped.close().await;
}

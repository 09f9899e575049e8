//! The lock file: one store at a time on a database file, whoever opens the second.

use std::path::Path;
use std::process::Command;

use contactd_app::ContactStore;
use contactd_store_sqlite::{Keyring, OpenError, SqliteSettings, SqliteStore, lock_file_path};

use crate::support::*;

/// Whether another process could take the lock now: `flock(1)` takes the same kind of lock
/// (`flock(2)`) that the store holds, and gives up at once if it is held.
fn free_for_another_process(lock_file: &std::path::Path) -> bool {
    let status = Command::new("flock")
        .arg("--nonblock")
        .arg(lock_file)
        .arg("true")
        .status()
        .expect("flock(1) runs");
    status.success()
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_naming_the_lock_file() {
    let (store, dir) = fresh().await;
    let path = dir.path().join("contactd.db");

    let refused = SqliteStore::open(&path, &SqliteSettings::default(), Keyring::for_tests()).await;

    let Err(error @ OpenError::Locked { .. }) = refused else {
        panic!("a second store opened the same file: {refused:?}");
    };
    let message = error.to_string();
    let lock_file = lock_file_path(&path);
    assert_eq!(store.lock_file(), Some(lock_file.as_path()));
    assert!(
        message.contains(&lock_file.display().to_string()),
        "names the lock file: {message}"
    );
    assert!(
        message.contains("another contactd is using this data directory"),
        "{message}"
    );
}

#[tokio::test]
async fn another_process_cannot_take_the_lock_while_the_store_is_open() {
    let (store, dir) = fresh().await;
    let lock_file = lock_file_path(&dir.path().join("contactd.db"));
    assert!(!free_for_another_process(&lock_file));
    let pid = std::fs::read_to_string(&lock_file).unwrap();
    assert_eq!(
        pid.trim(),
        std::process::id().to_string(),
        "the holder's pid"
    );

    drop(store);

    assert!(free_for_another_process(&lock_file));
}

#[tokio::test]
async fn the_lock_is_held_until_the_last_clone_is_dropped_and_the_data_outlives_it() {
    let (store, dir) = fresh().await;
    let path = dir.path().join("contactd.db");
    let contacts = stored_contacts(&store, 1).await;
    let clone = store.clone();
    drop(store);
    assert!(matches!(
        SqliteStore::open(&path, &SqliteSettings::default(), Keyring::for_tests()).await,
        Err(OpenError::Locked { .. })
    ));

    drop(clone);

    let reopened = SqliteStore::open(&path, &SqliteSettings::default(), Keyring::for_tests())
        .await
        .expect("the lock went with the last clone; the migrations apply again as no-ops");
    let loaded = reopened
        .load_contact(&account(), &contacts[0].contact_id)
        .await
        .unwrap();
    assert_eq!(loaded.as_ref(), Some(&contacts[0]));
}

#[tokio::test]
async fn open_creates_the_directories_the_database_file_lives_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("deeper").join("contactd.db");

    let store = SqliteStore::open(&path, &SqliteSettings::default(), Keyring::for_tests())
        .await
        .unwrap();

    assert!(path.is_file());
    assert!(store.lock_file().is_some_and(Path::is_file));
}

#[tokio::test]
async fn a_store_opened_to_read_beside_the_holder_reads_its_log_and_writes_nothing() {
    use contactd_app::{EventLog, LogPosition};

    let (store, dir) = fresh().await;
    let path = dir.path().join("contactd.db");
    let contacts = stored_contacts(&store, 2).await;

    let reader = SqliteStore::open_to_read(&path, &SqliteSettings::default(), Keyring::for_tests())
        .await
        .expect("reading needs no lock");

    assert_eq!(reader.lock_file(), None);
    let events = reader
        .read_log(LogPosition::START, None, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), contacts.len(), "the holder's events");
    let call = contactd_app::RememberedCall {
        key: contactd_app::IdempotencyKey {
            account_id: account(),
            operation: contactd_app::Operation::UpdateMessageContact,
            token: contactd_domain::ClientToken::parse("token-1")
                .unwrap()
                .unwrap(),
        },
        fingerprint: vec![1],
        outcome: contactd_app::Outcome::Acknowledged {
            request_id: "request".into(),
        },
        recorded_at: chrono::Utc::now(),
    };
    let refused = reader.remember(&call).await;
    assert!(refused.is_err(), "a write through a reader: {refused:?}");
    let events_after = store.read_log(LogPosition::START, None, 100).await.unwrap();
    assert_eq!(events_after.len(), contacts.len(), "nothing was written");
}

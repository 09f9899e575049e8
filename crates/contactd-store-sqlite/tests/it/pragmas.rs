//! The connections' settings, read back from SQLite itself on every connection of both pools.

use contactd_store_sqlite::SqliteSettings;
use sqlx::{Row, SqliteConnection};

use crate::support::*;

/// A pragma's value as text, whether SQLite answers it as a word or a number.
async fn pragma(conn: &mut SqliteConnection, name: &str) -> String {
    let row = sqlx::query(&format!("PRAGMA {name}"))
        .fetch_one(conn)
        .await
        .unwrap();
    row.try_get::<i64, _>(0)
        .map(|n| n.to_string())
        .or_else(|_| row.try_get::<String, _>(0))
        .unwrap()
}

#[tokio::test]
async fn every_connection_runs_in_wal_mode_with_full_sync_foreign_keys_and_a_busy_timeout_and_the_writer_deletes_securely()
 {
    let (store, _dir) = fresh().await;
    let settings = SqliteSettings::default();
    let mut connections = vec![store.write_pool().acquire().await.unwrap()];
    // Held together, so that each is a connection of its own.
    for _ in 0..settings.read_connections {
        connections.push(store.read_pool().acquire().await.unwrap());
    }
    for conn in &mut connections {
        assert_eq!(pragma(conn, "journal_mode").await, "wal");
        // 2 = FULL: a commit is synced to disk before it is acknowledged.
        assert_eq!(pragma(conn, "synchronous").await, "2");
        assert_eq!(pragma(conn, "foreign_keys").await, "1");
        assert_eq!(
            pragma(conn, "busy_timeout").await,
            settings.busy_timeout.as_millis().to_string()
        );
    }
    assert_eq!(pragma(&mut connections[0], "query_only").await, "0");
    // The writer overwrites what it deletes: a forgotten contact's rows do not linger in the
    // file's free space (readers never delete).
    assert_eq!(pragma(&mut connections[0], "secure_delete").await, "1");
    for reader in &mut connections[1..] {
        assert_eq!(pragma(reader, "query_only").await, "1");
    }
}

#[tokio::test]
async fn only_the_writer_can_change_the_database() {
    let (store, _dir) = fresh().await;
    let statement =
        "INSERT INTO contact_quotas (account_id, contacts, max_contacts) VALUES ('a', 0, 1)";

    let refused = sqlx::query(statement).execute(store.read_pool()).await;

    assert!(refused.is_err(), "a reader wrote");
    sqlx::query(statement)
        .execute(store.write_pool())
        .await
        .unwrap();
}

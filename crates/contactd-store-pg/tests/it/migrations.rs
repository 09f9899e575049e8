//! Migrations that change stored data: a contact written before the state document read back
//! after it, as the same contact.

use std::path::Path;

use chrono::{TimeZone, Utc};
use contactd_app::ContactStore;
use contactd_domain::{AccountId, ContactId, ContactStatus, Title};
use contactd_store_pg::PgStore;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The migrations up to and including the one named, from the repository's folder.
async fn migrations_up_to(last: &str) -> (tempfile::TempDir, Migrator) {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    let mut names: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.as_str() <= last)
        .collect();
    names.sort();
    for name in names {
        std::fs::copy(source.join(&name), dir.path().join(&name)).unwrap();
    }
    let migrator = Migrator::new(dir.path()).await.unwrap();
    (dir, migrator)
}

#[sqlx::test(migrations = false)]
async fn a_contact_written_as_columns_reads_back_the_same_from_its_state_document(pool: PgPool) {
    let (_dir, before) = migrations_up_to("20261128000002_projections.sql").await;
    before.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO contacts (contact_id, account_id, name, email_address, active_email_address, \
             phone_number, active_phone_number, title, message_types, status, created_at, updated_at, version) \
         VALUES ('c-0123456789abcdef', '1234567890123456', 'Tom', 'new@example.com', 'tom@example.com', \
             '86-13912345678', NULL, 'CEO', ARRAY['FaultMessage','ProductMessage'], 'Active', \
             '2026-11-28 12:00:00.123456+00', '2026-11-29 08:30:00.5+00', 4)",
    )
    .execute(&pool)
    .await
    .unwrap();

    contactd_store_pg::MIGRATOR.run(&pool).await.unwrap();
    let store = PgStore::new(pool, contactd_store_pg::Keyring::for_tests());
    let contact = store
        .load_contact(
            &AccountId::parse("1234567890123456").unwrap(),
            &ContactId::parse("c-0123456789abcdef").unwrap(),
        )
        .await
        .unwrap()
        .expect("the contact survived the migration");
    assert_eq!(contact.name.as_str(), "Tom");
    assert_eq!(contact.email_address.as_str(), "new@example.com");
    assert_eq!(
        contact.active_email_address.as_ref().map(|e| e.as_str()),
        Some("tom@example.com")
    );
    assert_eq!(
        contact.phone_number.as_ref().map(|p| p.as_str()),
        Some("86-13912345678")
    );
    assert_eq!(contact.active_phone_number, None);
    assert_eq!(contact.title, Title::Ceo);
    let types: Vec<_> = contact.message_types.iter().map(|t| t.as_str()).collect();
    assert_eq!(types, ["FaultMessage", "ProductMessage"]);
    assert_eq!(contact.status, ContactStatus::Active);
    assert_eq!(
        contact.created_at,
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
            + chrono::TimeDelta::microseconds(123_456)
    );
    assert_eq!(
        contact.updated_at,
        Utc.with_ymd_and_hms(2026, 11, 29, 8, 30, 0).unwrap()
            + chrono::TimeDelta::milliseconds(500)
    );
    assert_eq!((contact.version, contact.email_code), (4, None));
}

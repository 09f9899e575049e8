//! Rules that must hold under races, enforced by the database inside the append transaction:
//! no lost update, one contact per name, the quota.

use std::sync::Arc;

use contactd_app::{AppError, ContactService, ContactStore, Policy};
use contactd_domain::{EmailAddress, UpdateMessageContact};
use contactd_store_pg::PgStore;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::support::*;

fn service(pool: &PgPool, max_contacts: u32) -> Arc<ContactService<PgStore>> {
    Arc::new(ContactService::new(
        PgStore::new(pool.clone()),
        Policy {
            max_contacts,
            ..Policy::default()
        },
    ))
}

/// The updates that succeeded; the others may only have given up on the race.
async fn acknowledged(
    writers: JoinSet<(usize, Result<contactd_app::Outcome, AppError>)>,
) -> Vec<usize> {
    let mut acknowledged = Vec::new();
    for (i, result) in writers.join_all().await {
        match result {
            Ok(_) => acknowledged.push(i),
            Err(AppError::ConcurrentCall) => {}
            Err(other) => panic!("update {i} failed with {other:?}"),
        }
    }
    acknowledged
}

fn email_update(i: usize) -> UpdateMessageContact {
    UpdateMessageContact {
        email_address: Some(EmailAddress::parse(&format!("writer{i}@example.com")).unwrap()),
        ..UpdateMessageContact::default()
    }
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn fifty_concurrent_updates_of_one_contact_lose_none(pool: PgPool) {
    fifty_updates_of_one_contact_lose_none(service(&pool, 20)).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn fifty_concurrent_updates_of_one_contact_lose_none_ungrouped_and_unremembered(
    pool: PgPool,
) {
    let store = PgStore::new(pool.clone()).group_commit(0).group_reads(0);
    let policy = Policy {
        decided_contacts: 0,
        ..Policy::default()
    };
    fifty_updates_of_one_contact_lose_none(Arc::new(ContactService::new(store, policy))).await;
}

async fn fifty_updates_of_one_contact_lose_none(app: Arc<ContactService<PgStore>>) {
    let contact = match app
        .add_contact(&ctx(), new_contact("Tom"), None)
        .await
        .unwrap()
    {
        contactd_app::Outcome::Added { contact, .. } => *contact,
        other => panic!("{other:?}"),
    };
    let mut writers = JoinSet::new();
    for i in 0..50 {
        let (app, id) = (app.clone(), contact.contact_id.clone());
        writers.spawn(async move {
            app.update_contact(&ctx(), &id, &email_update(i), None)
                .await
                .map(|_| i)
        });
    }
    let succeeded: Vec<usize> = writers
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(succeeded.len(), 50);

    let stream = app
        .store()
        .read_stream(&account(), contact.contact_id.as_str())
        .await
        .unwrap();
    assert_eq!(stream.len(), 51);
    let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=51).collect::<Vec<_>>());
    for i in 0..50 {
        let email = format!("writer{i}@example.com");
        assert!(
            stream
                .iter()
                .any(|e| e.payload_json.contains(&format!("\"{email}\""))),
            "{email} is in the log"
        );
    }
    let state = app.get_contact(&ctx(), &contact.contact_id).await.unwrap();
    assert_eq!(state.version, 51);
    assert!(
        stream
            .last()
            .unwrap()
            .payload_json
            .contains(state.email_address.as_str())
    );
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn two_processes_updating_one_contact_lose_nothing_that_they_acknowledged(pool: PgPool) {
    // Two services on one database stand for two processes: only the database's version check
    // keeps them apart, and each re-decides on fresh state when it loses.
    let processes = [service(&pool, 20), service(&pool, 20)];
    let contact = match processes[0]
        .add_contact(&ctx(), new_contact("Tom"), None)
        .await
        .unwrap()
    {
        contactd_app::Outcome::Added { contact, .. } => *contact,
        other => panic!("{other:?}"),
    };
    let mut writers = JoinSet::new();
    for i in 0..40 {
        let (app, id) = (processes[i % 2].clone(), contact.contact_id.clone());
        writers.spawn(async move {
            (
                i,
                app.update_contact(&ctx(), &id, &email_update(i), None)
                    .await,
            )
        });
    }
    let acknowledged = acknowledged(writers).await;
    assert!(
        acknowledged.len() >= 20,
        "most calls get through: {}",
        acknowledged.len()
    );
    let stream = processes[0]
        .store()
        .read_stream(&account(), contact.contact_id.as_str())
        .await
        .unwrap();
    assert_eq!(
        stream.len(),
        1 + acknowledged.len(),
        "one event per acknowledged update, no more"
    );
    for i in acknowledged {
        let email = format!("writer{i}@example.com");
        assert!(
            stream
                .iter()
                .any(|e| e.payload_json.contains(&format!("\"{email}\""))),
            "{email} is in the log"
        );
    }
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn twenty_concurrent_adds_with_one_name_leave_exactly_one_contact(pool: PgPool) {
    let processes = [service(&pool, 20), service(&pool, 20)];
    let mut adders = JoinSet::new();
    for i in 0..20 {
        let app = processes[i % 2].clone();
        let name = if i % 2 == 0 { "Tom" } else { "TOM" };
        adders.spawn(async move { app.add_contact(&ctx(), new_contact(name), None).await });
    }
    let results = adders.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, AppError::NameAlreadyUsed))
    );
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&pool)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((contacts, events), (1, 1));
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn thirty_concurrent_adds_against_a_quota_of_twenty_leave_exactly_twenty(pool: PgPool) {
    let processes = [service(&pool, 20), service(&pool, 20)];
    let mut adders = JoinSet::new();
    for i in 0..30 {
        let app = processes[i % 2].clone();
        adders.spawn(async move {
            app.add_contact(&ctx(), new_contact(&letters(i)), None)
                .await
        });
    }
    let results = adders.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 20);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, AppError::ContactQuotaExceeded))
    );
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&pool)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let counted: i32 = sqlx::query_scalar("SELECT contacts FROM contact_quotas")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((contacts, events, counted), (20, 20, 20));
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn two_processes_updating_many_contacts_in_groups_lose_nothing_they_acknowledged(
    pool: PgPool,
) {
    let processes = [service(&pool, 20), service(&pool, 20)];
    let mut contacts = Vec::new();
    for i in 0..10 {
        match processes[0]
            .add_contact(&ctx(), new_contact(&letters(i)), None)
            .await
            .unwrap()
        {
            contactd_app::Outcome::Added { contact, .. } => contacts.push(contact.contact_id),
            other => panic!("{other:?}"),
        }
    }
    let mut writers = JoinSet::new();
    for i in 0..200 {
        let (app, id) = (processes[i % 2].clone(), contacts[i % 10].clone());
        writers.spawn(async move {
            (
                i,
                app.update_contact(&ctx(), &id, &email_update(i), None)
                    .await,
            )
        });
    }
    let acknowledged = acknowledged(writers).await;
    assert!(
        acknowledged.len() >= 100,
        "{} acknowledged",
        acknowledged.len()
    );

    let store = processes[0].store();
    for (n, id) in contacts.iter().enumerate() {
        let stream = store.read_stream(&account(), id.as_str()).await.unwrap();
        let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
        assert_eq!(versions, (1..=stream.len() as u64).collect::<Vec<_>>());
        for i in acknowledged.iter().filter(|i| *i % 10 == n) {
            let email = format!("\"writer{i}@example.com\"");
            assert!(
                stream.iter().any(|e| e.payload_json.contains(&email)),
                "acknowledged update {i} is in the log of contact {n}"
            );
        }
        let folded =
            contactd_domain::Contact::fold(contactd_app::contact_history(&stream)).unwrap();
        let row = store.load_contact(&account(), id).await.unwrap().unwrap();
        assert_eq!(
            row, folded,
            "contact {n}: the row is the fold of its stream"
        );
    }
}

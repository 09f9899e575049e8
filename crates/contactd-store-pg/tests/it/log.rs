//! The event log: round trips with metadata, optimistic concurrency, append-only.

use contactd_app::{Append, AppendError, ContactStore, NameClaim};
use contactd_domain::Title;
use contactd_store_pg::PgStore;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn appended_events_read_back_with_their_metadata_and_the_state_matches_their_fold(
    pool: PgPool,
) {
    let store = PgStore::new(pool);
    let metadata = metadata();
    let (added, contact) = created("Tom", &metadata);
    store
        .append(creation(&contact, std::slice::from_ref(&added), &metadata))
        .await
        .unwrap();
    let (changed, after) = retitled(&contact, Title::Ceo, &metadata);
    let update = Append {
        expected_version: 1,
        name_claim: NameClaim::Keep,
        quota_limit: None,
        ..creation(&after, std::slice::from_ref(&changed), &metadata)
    };
    store.append(update).await.unwrap();

    let stream = store
        .read_stream(&account(), contact.contact_id.as_str())
        .await
        .unwrap();
    assert_eq!(stream.len(), 2);
    let first = &stream[0];
    assert_eq!(
        (
            first.stream_version,
            first.event_type.as_str(),
            first.schema_version
        ),
        (1, "MessageContactAdded", 2)
    );
    assert_eq!(first.event_id, added.event_id);
    assert_eq!(
        first.metadata, metadata,
        "who, why and when come back as stored"
    );
    assert_eq!(first.metadata.account_id.as_str(), ACCOUNT);
    assert!(stream[1].position > first.position);

    let folded = contactd_domain::Contact::fold(contactd_app::contact_history(&stream)).unwrap();
    let loaded = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, folded);
    assert_eq!(loaded, after);
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn an_append_at_a_stale_version_is_refused_and_writes_nothing(pool: PgPool) {
    let store = PgStore::new(pool.clone());
    let metadata = metadata();
    let (added, contact) = created("Tom", &metadata);
    store
        .append(creation(&contact, std::slice::from_ref(&added), &metadata))
        .await
        .unwrap();
    let (first, after_first) = retitled(&contact, Title::Ceo, &metadata);
    let (second, after_second) = retitled(&contact, Title::ProjectDirector, &metadata);
    let at_v1 = |after, events| Append {
        expected_version: 1,
        name_claim: NameClaim::Keep,
        quota_limit: None,
        ..creation(after, events, &metadata)
    };
    store
        .append(at_v1(&after_first, std::slice::from_ref(&first)))
        .await
        .unwrap();
    let stale = store
        .append(at_v1(&after_second, std::slice::from_ref(&second)))
        .await;
    assert!(
        matches!(stale, Err(AppendError::VersionConflict)),
        "{stale:?}"
    );

    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 2);
    let loaded = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((loaded.title, loaded.version), (Title::Ceo, 2));
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_database_refuses_to_update_delete_or_truncate_events(pool: PgPool) {
    let store = PgStore::new(pool.clone());
    let metadata = metadata();
    let (added, contact) = created("Tom", &metadata);
    store
        .append(creation(&contact, std::slice::from_ref(&added), &metadata))
        .await
        .unwrap();
    for statement in [
        "UPDATE events SET event_type = 'Forged'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement).execute(&pool).await.unwrap_err();
        let message = error
            .as_database_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains("append-only"), "{statement}: {error}");
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 1);
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_name_is_claimed_once_per_account_ignoring_case_and_freed_by_a_rename(pool: PgPool) {
    let store = PgStore::new(pool);
    let metadata = metadata();
    let (added, tom) = created("Tom", &metadata);
    store
        .append(creation(&tom, std::slice::from_ref(&added), &metadata))
        .await
        .unwrap();
    let (again, tom_again) = created("TOM", &metadata);
    let refused = store
        .append(creation(
            &tom_again,
            std::slice::from_ref(&again),
            &metadata,
        ))
        .await;
    assert!(
        matches!(refused, Err(AppendError::NameAlreadyUsed)),
        "{refused:?}"
    );
    assert!(
        store
            .load_contact(&account(), &tom_again.contact_id)
            .await
            .unwrap()
            .is_none(),
        "nothing of it stored"
    );

    // Renaming Tom to Jerry frees "tom".
    let renamed = contactd_domain::ContactEvent::MessageContactRenamed {
        name: contactd_domain::ContactName::parse("Jerry").unwrap(),
    };
    let mut jerry = tom.clone();
    jerry.apply(&renamed, metadata.recorded_at);
    let rename_events = [contactd_app::NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event: renamed,
    }];
    let rename = Append {
        expected_version: 1,
        name_claim: NameClaim::Move {
            from: "tom".into(),
            to: "jerry".into(),
        },
        quota_limit: None,
        ..creation(&jerry, &rename_events, &metadata)
    };
    store.append(rename).await.unwrap();
    store
        .append(creation(
            &tom_again,
            std::slice::from_ref(&again),
            &metadata,
        ))
        .await
        .unwrap();
}

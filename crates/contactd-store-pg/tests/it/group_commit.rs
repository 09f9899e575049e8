//! Group commit: concurrent updates share one statement and one transaction, and each is still
//! written only at the version it was decided on, whatever happens to the others of its group;
//! and without groups, each append on its own statement loses no update either.

use std::sync::Arc;

use contactd_app::{
    Append, AppendError, ContactService, ContactStore, EventMetadata, NameClaim, NewEvent, Outcome,
    Policy,
};
use contactd_domain::{Contact, ContactEvent, EmailAddress, Title, UpdateMessageContact};
use contactd_store_pg::PgStore;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::support::*;

/// An update decided on `state`: its events and the state after them.
fn decided(
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

/// For each contact, a title change decided on it at version 1.
fn retitled_all(
    contacts: &[Contact],
    title: Title,
    at: &EventMetadata,
) -> Vec<(u64, Vec<NewEvent>, Contact)> {
    contacts
        .iter()
        .map(|contact| {
            let (events, after) = decided(contact, vec![ContactEvent::TitleChanged { title }], at);
            (1, events, after)
        })
        .collect()
}

/// Appends every update at once, each from its own task, with the metadata they were decided
/// with, and answers in the order given. On the
/// test's single-threaded runtime every task queues its update before the first group is taken,
/// so they form one group.
async fn append_together(
    store: &PgStore,
    metadata: &EventMetadata,
    updates: Vec<(u64, Vec<NewEvent>, Contact)>,
) -> Vec<Result<(), AppendError>> {
    let mut tasks = JoinSet::new();
    for (index, (expected_version, events, after)) in updates.into_iter().enumerate() {
        let store = store.clone();
        let metadata = metadata.clone();
        tasks.spawn(async move {
            let append = Append {
                contact: &after,
                expected_version,
                events: &events,
                metadata: &metadata,
                name_claim: NameClaim::Keep,
                quota_limit: None,
                remember: None,
                code: None,
            };
            (index, store.append(append).await)
        });
    }
    let mut answers: Vec<_> = tasks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

/// In how many transactions the events of versions above 1 were written.
async fn update_transactions(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT transaction_id) FROM events WHERE stream_version > 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn concurrent_updates_commit_in_one_transaction_each_in_full(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests()).group_commit(1);
    let contacts = stored_contacts(&store, 12).await;
    let at = metadata();
    let updates = contacts
        .iter()
        .enumerate()
        .map(|(i, contact)| {
            // Every third update is made of three events.
            let mut events = vec![ContactEvent::TitleChanged { title: Title::Ceo }];
            if i % 3 == 0 {
                events.push(ContactEvent::EmailAddressChangeRequested {
                    email_address: EmailAddress::parse(&format!("new{i}@example.com")).unwrap(),
                });
                events.push(ContactEvent::TitleChanged {
                    title: Title::TechnicalDirector,
                });
            }
            let (events, after) = decided(contact, events, &at);
            (1, events, after)
        })
        .collect();

    let answers = append_together(&store, &at, updates).await;

    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(update_transactions(&pool).await, 1, "one group, one commit");
    for (i, contact) in contacts.iter().enumerate() {
        let stream = store
            .read_stream(&account(), contact.contact_id.as_str())
            .await
            .unwrap();
        let expected_events = if i % 3 == 0 { 4 } else { 2 };
        assert_eq!(stream.len(), expected_events);
        assert!(
            stream.windows(2).all(|w| w[0].position < w[1].position),
            "a stream's events are in log order by version"
        );
        assert_eq!(stream[1].metadata.request_id, at.request_id);
        let folded = Contact::fold(contactd_app::contact_history(&stream)).unwrap();
        let row = store
            .load_contact(&account(), &contact.contact_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row, folded, "the row is the fold of the stream");
        assert_eq!(row.version, expected_events as u64);
    }
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_stale_update_is_refused_alone_and_the_rest_of_its_group_commits(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests()).group_commit(1);
    let contacts = stored_contacts(&store, 5).await;
    let at = metadata();
    // The first contact moves on to version 2 before the group is written.
    let (events, moved) = decided(
        &contacts[0],
        vec![ContactEvent::TitleChanged { title: Title::Ceo }],
        &at,
    );
    assert!(append_together(&store, &at, vec![(1, events, moved.clone())]).await[0].is_ok());

    let updates = retitled_all(&contacts, Title::FinanceDirector, &at);
    let answers = append_together(&store, &at, updates).await;

    assert!(
        matches!(answers[0], Err(AppendError::VersionConflict)),
        "{:?}",
        answers[0]
    );
    assert!(answers[1..].iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(
        update_transactions(&pool).await,
        2,
        "the first update, then the group of the four others"
    );
    let first = store
        .load_contact(&account(), &contacts[0].contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, moved, "the refused update changed nothing");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 5 + 1 + 4);
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_group_the_database_refuses_is_written_update_by_update(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests()).group_commit(1);
    let contacts = stored_contacts(&store, 4).await;
    // Behind the service's back, the first stream gains a version 2 that its row never saw: the
    // events' unique version refuses the group's statement as a whole.
    sqlx::query(
        "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
         schema_version, payload, request_id, caller, correlation_id, causation_id, recorded_at) \
         SELECT gen_random_uuid(), account_id, stream_id, 2, 'TitleChanged', 1, \
         '{\"title\":\"CEO\"}', 'r', 'c', 'c', 'c', now() FROM events WHERE stream_id = $1",
    )
    .bind(contacts[0].contact_id.as_str())
    .execute(&pool)
    .await
    .unwrap();

    let at = metadata();
    let updates = retitled_all(&contacts, Title::Ceo, &at);
    let answers = append_together(&store, &at, updates).await;

    assert!(
        matches!(answers[0], Err(AppendError::VersionConflict)),
        "{:?}",
        answers[0]
    );
    assert!(answers[1..].iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(
        update_transactions(&pool).await,
        1 + 3,
        "the intruder's, then each of the three others on its own"
    );
    let first = store
        .load_contact(&account(), &contacts[0].contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, contacts[0], "the refused update changed nothing");
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_group_that_cannot_reach_the_database_fails_each_update_as_transient(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests()).group_commit(1);
    let contacts = stored_contacts(&store, 3).await;
    pool.close().await;

    let at = metadata();
    let updates = retitled_all(&contacts, Title::Ceo, &at);
    let answers = append_together(&store, &at, updates).await;

    assert_eq!(answers.len(), 3);
    for answer in answers {
        match answer {
            Err(AppendError::Store(error)) => assert!(error.is_transient(), "{error}"),
            other => panic!("expected a transient store error, got {other:?}"),
        }
    }
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn fifty_concurrent_updates_lose_none_without_groups_or_remembered_state(pool: PgPool) {
    // The conformance suite races updates through the grouped path; this is the other one:
    // every append and every read a statement of its own, every update decided on a read.
    let store = PgStore::new(pool, contactd_store_pg::Keyring::for_tests())
        .group_commit(0)
        .group_reads(0);
    let policy = Policy {
        decided_contacts: 0,
        ..Policy::default()
    };
    let app = Arc::new(ContactService::new(store, policy));
    let contact = match app.add_contact(&ctx(), new_contact("Tom"), None).await {
        Ok(Outcome::Added { contact, .. }) => *contact,
        other => panic!("{other:?}"),
    };
    let mut writers = JoinSet::new();
    for i in 0..50 {
        let (app, id) = (app.clone(), contact.contact_id.clone());
        writers.spawn(async move {
            let update = UpdateMessageContact {
                email_address: Some(
                    EmailAddress::parse(&format!("writer{i}@example.com")).unwrap(),
                ),
                ..UpdateMessageContact::default()
            };
            app.update_contact(&ctx(), &id, &update, None).await
        });
    }
    for answer in writers.join_all().await {
        answer.unwrap();
    }

    let stream = app
        .store()
        .read_stream(&account(), contact.contact_id.as_str())
        .await
        .unwrap();
    let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=51).collect::<Vec<_>>());
    for i in 0..50 {
        let email = format!("\"writer{i}@example.com\"");
        assert!(
            stream.iter().any(|e| e.payload_json.contains(&email)),
            "{email} is in the log"
        );
    }
    let state = app.get_contact(&ctx(), &contact.contact_id).await.unwrap();
    assert_eq!(
        state,
        Contact::fold(contactd_app::contact_history(&stream)).unwrap()
    );
}

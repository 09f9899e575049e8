//! Group commit on SQLite: concurrent appends share one transaction, each in a savepoint of
//! its own, so that one refused append fails alone, leaves no trace (not even a position) and
//! the others commit.

use std::time::Duration;

use contactd_app::{AppendError, ContactStore, EventMetadata, NewEvent};
use contactd_domain::{Contact, ContactEvent, Title};
use contactd_store_sqlite::{Keyring, SqliteSettings, SqliteStore};
use sqlx::{Connection, SqliteConnection};
use tokio::task::JoinSet;

use crate::support::*;

/// An append owned by its task, with the metadata it was decided with.
struct Planned {
    at: EventMetadata,
    after: Contact,
    expected_version: u64,
    events: Vec<NewEvent>,
    new: bool,
}

impl Planned {
    fn update(state: &Contact, title: Title) -> Self {
        let at = metadata();
        let (events, after) = decided(state, vec![ContactEvent::TitleChanged { title }], &at);
        Self {
            at,
            expected_version: state.version,
            after,
            events,
            new: false,
        }
    }

    fn add(name: &str) -> Self {
        let at = metadata();
        let (added, after) = created(name, &at);
        Self {
            at,
            after,
            expected_version: 0,
            events: vec![added],
            new: true,
        }
    }
}

/// Appends every plan at once, each from its own task, and answers in the order given. On the
/// test's single-threaded runtime every task queues its append before the first group is
/// taken, so that they form one group.
async fn append_together(store: &SqliteStore, plans: Vec<Planned>) -> Vec<Result<(), AppendError>> {
    let mut tasks = JoinSet::new();
    for (index, plan) in plans.into_iter().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let append = if plan.new {
                creation(&plan.after, &plan.events, &plan.at)
            } else {
                update(&plan.after, plan.expected_version, &plan.events, &plan.at)
            };
            (index, store.append(append).await)
        });
    }
    let mut answers: Vec<_> = tasks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

/// Five contacts, the first moved on to version 2; then, at once: a title change of each at
/// version 1 (the first is stale), a second change of the third at version 1 (stale once the
/// first is written), an add whose name another contact holds (in another case), and an add
/// of a free name.
async fn a_group_with_refusals(store: &SqliteStore) {
    let contacts = stored_contacts(store, 5).await;
    let moved = Planned::update(&contacts[0], Title::Ceo);
    assert!(append_together(store, vec![moved]).await[0].is_ok());

    let mut plans: Vec<Planned> = contacts
        .iter()
        .map(|c| Planned::update(c, Title::FinanceDirector))
        .collect();
    plans.push(Planned::update(&contacts[2], Title::TechnicalDirector));
    plans.push(Planned::add(&letters(1).to_uppercase()));
    plans.push(Planned::add("Fresh"));
    let refused_add = plans[6].after.contact_id.clone();
    let answers = append_together(store, plans).await;

    assert!(
        matches!(answers[0], Err(AppendError::VersionConflict)),
        "{:?}",
        answers[0]
    );
    assert!(answers[1..5].iter().all(Result::is_ok), "{answers:?}");
    assert!(
        matches!(answers[5], Err(AppendError::VersionConflict)),
        "{:?}",
        answers[5]
    );
    assert!(
        matches!(answers[6], Err(AppendError::NameAlreadyUsed)),
        "{:?}",
        answers[6]
    );
    assert!(answers[7].is_ok(), "{:?}", answers[7]);

    // The refused add had written its event and its row before its name was refused: rolled
    // back to its savepoint, it left no position behind.
    assert_eq!(positions(store).await, (1..=11).collect::<Vec<_>>());
    // Nor its data key: a key is stored with its contact's first events or not at all.
    let keys: Vec<String> = sqlx::query_scalar("SELECT contact_id FROM contact_keys")
        .fetch_all(store.read_pool())
        .await
        .unwrap();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(!keys.contains(&refused_add.as_str().to_owned()), "{keys:?}");
    for (i, contact) in contacts.iter().enumerate() {
        let stream = store
            .read_stream(&account(), contact.contact_id.as_str())
            .await
            .unwrap();
        let folded = Contact::fold(contactd_app::contact_history(&stream)).unwrap();
        let row = store
            .load_contact(&account(), &contact.contact_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row, folded, "the row is the fold of the stream");
        let title = if i == 0 {
            Title::Ceo
        } else {
            Title::FinanceDirector
        };
        assert_eq!((row.title, row.version), (title, 2), "contact {i}");
    }
}

#[tokio::test]
async fn concurrent_appends_commit_together_and_each_refused_one_fails_alone() {
    let (store, _dir) = fresh().await;
    a_group_with_refusals(&store).await;
}

#[tokio::test]
async fn without_group_commit_each_append_is_answered_the_same() {
    let (store, _dir) = fresh().await;
    a_group_with_refusals(&store.group_commit(0)).await;
}

#[tokio::test]
async fn a_writer_outside_the_store_holding_the_lock_makes_a_group_fail_as_transient() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contactd.db");
    let settings = SqliteSettings {
        busy_timeout: Duration::from_millis(100),
        ..SqliteSettings::default()
    };
    let store = SqliteStore::open(&path, &settings, Keyring::for_tests())
        .await
        .unwrap();
    let contacts = stored_contacts(&store, 3).await;
    // A tool writing to the file behind the service's back: the lock file does not stop it,
    // SQLite's own lock does.
    let mut outside = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut outside)
        .await
        .unwrap();

    let plans = contacts
        .iter()
        .map(|c| Planned::update(c, Title::Ceo))
        .collect();
    let answers = append_together(&store, plans).await;

    for answer in &answers {
        assert!(
            matches!(answer, Err(AppendError::Store(error)) if error.is_transient()),
            "{answer:?}"
        );
    }
    sqlx::query("ROLLBACK").execute(&mut outside).await.unwrap();
    let plans = contacts
        .iter()
        .map(|c| Planned::update(c, Title::Ceo))
        .collect();
    assert!(
        append_together(&store, plans)
            .await
            .iter()
            .all(Result::is_ok)
    );
    assert_eq!(positions(&store).await, (1..=6).collect::<Vec<_>>());
}

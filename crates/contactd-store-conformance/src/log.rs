//! The event log: round trips with metadata, optimistic concurrency, append-only, and reading
//! in log order with no skipped event while concurrent writers append.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use contactd_app::{
    AppendError, ContactStore, DirectoryAppend, DirectoryStore, EventLog, LogPosition, NameClaim,
    NewEvent, RecordedEvent,
};
use contactd_domain::{Contact, Directory, DirectoryEvent, FolderId, ResourceDirectoryId, Title};
use tokio::task::JoinSet;

use crate::Backend;
use crate::fixtures::*;

pub async fn appended_events_read_back_with_their_metadata_and_the_row_is_their_fold<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (added, contact) = stored_contact(store, "Tom", &metadata).await;
    let later = metadata_of(
        &account(),
        metadata.recorded_at + chrono::TimeDelta::seconds(1),
    );
    let (changed, after) = stored_retitle(store, &contact, Title::Ceo, &later).await;

    let stream = history(store, &account(), contact.contact_id.as_str()).await;
    assert_eq!(stream.len(), 2);
    let first = &stream[0];
    assert_eq!(
        (
            first.stream_id.as_str(),
            first.stream_version,
            first.event_type.as_str(),
            first.schema_version
        ),
        (contact.contact_id.as_str(), 1, "MessageContactAdded", 2)
    );
    assert_eq!(first.event_id, added.event_id);
    assert_eq!(first.contact_event(), Some(&added.event));
    assert_eq!(
        first.metadata, metadata,
        "who, why and when come back as stored"
    );
    assert_eq!(
        (stream[1].event_id, stream[1].contact_event()),
        (changed.event_id, Some(&changed.event))
    );
    assert_eq!(stream[1].metadata, later);
    assert!(stream[1].position > first.position);
    assert!(stream[1].global_position > first.global_position);
    let payload: serde_json::Value = serde_json::from_str(&stream[1].payload_json).unwrap();
    assert_eq!(payload, serde_json::json!({"title": "CEO"}));

    let folded = Contact::fold(contactd_app::contact_history(&stream)).unwrap();
    let loaded = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, folded);
    assert_eq!(loaded, after);
    assert_eq!(
        store
            .load_contact(&other_account(), &contact.contact_id)
            .await
            .unwrap(),
        None,
        "another account's contact is not found"
    );
}

pub async fn an_append_at_a_stale_version_is_refused_and_writes_nothing<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (_, contact) = stored_contact(store, "Tom", &metadata).await;
    let (_, after_first) = stored_retitle(store, &contact, Title::Ceo, &metadata).await;

    // Decided on version 1 too, and renaming: the refusal must leave the names alone as well.
    let renamed = contactd_domain::ContactEvent::MessageContactRenamed {
        name: contactd_domain::ContactName::parse("Jerry").unwrap(),
    };
    let mut stale = contact.clone();
    stale.apply(&renamed, metadata.recorded_at);
    let events = [NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event: renamed,
    }];
    let refused = store
        .append(contactd_app::Append {
            name_claim: NameClaim::Move {
                from: "tom".into(),
                to: "jerry".into(),
            },
            ..change(&stale, 1, &events, &metadata)
        })
        .await;
    assert!(
        matches!(refused, Err(AppendError::VersionConflict)),
        "{refused:?}"
    );

    assert_eq!(
        whole_log(store).await.len(),
        2,
        "nothing of it is in the log"
    );
    let loaded = store
        .load_contact(&account(), &contact.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, after_first);
    // "tom" is still claimed and "jerry" still free.
    let (again, tom_again) = created("TOM", &metadata);
    let taken = store
        .append(creation(
            &tom_again,
            std::slice::from_ref(&again),
            &metadata,
        ))
        .await;
    assert!(
        matches!(taken, Err(AppendError::NameAlreadyUsed)),
        "{taken:?}"
    );
    stored_contact(store, "Jerry", &metadata).await;
}

/// A directory and its first event, at the metadata's time.
fn directory_created(
    metadata: &contactd_app::EventMetadata,
) -> (NewEvent<DirectoryEvent>, Directory) {
    let event = Directory::create(ResourceDirectoryId::generate());
    let directory =
        Directory::created(metadata.account_id.clone(), &event, metadata.recorded_at).unwrap();
    (
        NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event,
        },
        directory,
    )
}

pub async fn a_directory_append_at_a_stale_version_is_refused_and_writes_nothing<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    // Two first uses race: the second is refused, its directory id never stored.
    let (first, first_directory) = directory_created(&metadata);
    let (second, second_directory) = directory_created(&metadata);
    let first_use = |directory, events| DirectoryAppend {
        directory,
        expected_version: 0,
        events,
        metadata: &metadata,
    };
    store
        .append_directory(first_use(&first_directory, std::slice::from_ref(&first)))
        .await
        .unwrap();
    let refused = store
        .append_directory(first_use(&second_directory, std::slice::from_ref(&second)))
        .await;
    assert!(
        matches!(refused, Err(AppendError::VersionConflict)),
        "{refused:?}"
    );
    assert_eq!(
        store.load_directory(&account()).await.unwrap(),
        Some(first_directory.clone())
    );

    // A folder at version 1, then another decided on version 1 too.
    let register = |name: &str| {
        let folder = FolderId::parse(&format!("fd-{name:0>10}")).unwrap();
        let event = first_directory.register_folder(&folder, None).unwrap();
        let mut after = first_directory.clone();
        after.apply(&event, metadata.recorded_at);
        (
            NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event,
            },
            after,
        )
    };
    let (a, with_a) = register("A");
    let (b, with_b) = register("B");
    let at_v1 = |directory, events| DirectoryAppend {
        directory,
        expected_version: 1,
        events,
        metadata: &metadata,
    };
    store
        .append_directory(at_v1(&with_a, std::slice::from_ref(&a)))
        .await
        .unwrap();
    let stale = store
        .append_directory(at_v1(&with_b, std::slice::from_ref(&b)))
        .await;
    assert!(
        matches!(stale, Err(AppendError::VersionConflict)),
        "{stale:?}"
    );
    assert_eq!(
        store.load_directory(&account()).await.unwrap(),
        Some(with_a)
    );
    let stream = history(store, &account(), &DirectoryEvent::stream_id(&account())).await;
    let ids: Vec<_> = stream.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, [first.event_id, a.event_id]);
    assert_eq!(whole_log(store).await.len(), 2);
}

pub async fn the_database_refuses_to_change_or_remove_stored_events<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (added, contact) = stored_contact(store, "Tom", &metadata).await;
    stored_retitle(store, &contact, Title::Ceo, &metadata).await;
    let before = whole_log(store).await;

    let attempts = [
        ("an update", backend.try_update_event(added.event_id).await),
        ("a delete", backend.try_delete_event(added.event_id).await),
        ("emptying the log", backend.try_empty_log().await),
    ];
    for (what, attempt) in attempts {
        match attempt {
            Ok(()) => panic!("{what} of the log succeeded"),
            Err(refusal) => assert!(
                refusal.contains("append-only"),
                "{what} was refused for another reason: {refusal}"
            ),
        }
    }
    assert_eq!(whole_log(store).await, before, "the log is as it was");
}

const WRITERS: usize = 8;
const EVENTS_PER_WRITER: usize = 60;

/// Appends a stream of `EVENTS_PER_WRITER` events: a creation, then retitles in appends of one
/// to three events, each append committing on its own.
async fn write_stream(store: impl contactd_app::ContactStore, writer: usize) {
    let metadata = metadata();
    let (_, mut state) = stored_contact(&store, &letters(writer), &metadata).await;
    let titles = [Title::Ceo, Title::ProjectDirector, Title::FinanceDirector];
    let mut written = 1;
    while written < EVENTS_PER_WRITER {
        let batch = (1 + (writer + written) % 3).min(EVENTS_PER_WRITER - written);
        let mut after = state.clone();
        let events: Vec<NewEvent> = (0..batch)
            .map(|n| {
                let event = contactd_domain::ContactEvent::TitleChanged {
                    title: titles[(written + n) % titles.len()],
                };
                after.apply(&event, metadata.recorded_at);
                NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event,
                }
            })
            .collect();
        store
            .append(change(&after, state.version, &events, &metadata))
            .await
            .unwrap();
        state = after;
        written += batch;
    }
}

pub async fn a_reader_following_the_log_sees_every_event_of_concurrent_writers_once_in_order<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let processes = [backend.store().clone(), backend.another_process().await];
    let expected = WRITERS * EVENTS_PER_WRITER;

    // The reader follows the log from its start while the writers append, as a projection
    // does: each batch after the last position it saw. Once the writers are done and the log
    // has settled, a read that finds nothing more ends it.
    let log = backend.store().clone();
    let (done, mut writers_done) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut seen: Vec<RecordedEvent> = Vec::new();
        let mut after = LogPosition::START;
        loop {
            let finished = *writers_done.borrow_and_update();
            if finished {
                settled(&log).await;
            }
            let batch = log.read_log(after, None, 50).await.unwrap();
            match batch.last() {
                Some(last) => {
                    after = last.position;
                    seen.extend(batch);
                }
                None if finished => return (seen, after),
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    });
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        writers.spawn(write_stream(processes[writer % 2].clone(), writer));
    }
    within("the writers are done", writers.join_all()).await;
    done.send(true).unwrap();
    let (seen, after) = within("the reader has read to the log's end", reader)
        .await
        .unwrap();

    let distinct: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(distinct.len(), seen.len(), "no event is seen twice");
    assert_eq!(seen.len(), expected, "no event is skipped");
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "each batch starts after the last position seen, in increasing order"
    );
    let again = backend.store().read_log(after, None, 50).await.unwrap();
    assert!(again.is_empty(), "nothing more after the last: {again:?}");
    // The order followed live is the log's one order, as a later reader reads it.
    let full = whole_log(backend.store()).await;
    let ids = |events: &[RecordedEvent]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(ids(&seen), ids(&full));
    // And each stream's events come in their version order.
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in &seen {
        versions
            .entry(event.stream_id.as_str())
            .or_default()
            .push(event.stream_version);
    }
    assert_eq!(versions.len(), WRITERS);
    for (stream, versions) in versions {
        assert_eq!(
            versions,
            (1..=EVENTS_PER_WRITER as u64).collect::<Vec<_>>(),
            "{stream}"
        );
    }
}

pub async fn the_log_end_bounds_what_has_committed_and_what_commits_later<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (_, tom) = stored_contact(store, "Tom", &metadata).await;
    stored_retitle(store, &tom, Title::Ceo, &metadata).await;
    stored_contact(store, "Ann", &metadata_of(&other_account(), now())).await;

    let end = settled(store).await;
    assert!(
        store.readable_to(end).await.unwrap(),
        "once readable to its end, the log stays so"
    );
    let committed = whole_log(store).await;
    assert_eq!(committed.len(), 3);
    assert!(
        committed.iter().all(|e| e.position < end),
        "every event committed by then lies before the end"
    );
    let (bob, _) = stored_contact(store, "Bob", &metadata).await;
    let log = whole_log(store).await;
    let later = log.iter().find(|e| e.event_id == bob.event_id).unwrap();
    assert!(
        later.position >= end,
        "an event of a write that started later lies at or after the end"
    );
    assert_eq!(log.len(), 4);
    let next_end = store.log_end().await.unwrap();
    assert!(next_end > end && next_end > later.position);
}

pub async fn a_start_at_a_position_begins_with_that_event_and_past_the_end_with_later_ones<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (_, tom) = stored_contact(store, "Tom", &metadata).await;
    stored_contact(store, "Ann", &metadata_of(&other_account(), now())).await;
    stored_retitle(store, &tom, Title::Ceo, &metadata).await;
    stored_contact(store, "Bob", &metadata).await;
    let log = whole_log(store).await;
    assert_eq!(log.len(), 4);
    let from = async |global_position: i64| {
        let start = store.start_at(global_position).await.unwrap();
        let events = store.read_log(start.after, None, 100).await.unwrap();
        let kept: Vec<_> = events
            .into_iter()
            .filter(|e| e.global_position >= start.min_global_position)
            .map(|e| e.event_id)
            .collect();
        kept
    };
    let ids = |events: &[RecordedEvent]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();

    assert_eq!(from(0).await, ids(&log), "from the start: everything");
    assert_eq!(
        from(log[2].global_position).await,
        ids(&log[2..]),
        "from an event's position: that event first"
    );
    assert_eq!(from(log[3].global_position).await, ids(&log[3..]));

    // Past the end: nothing yet, then what commits from now on.
    let past = log[3].global_position + 1;
    let start = store.start_at(past).await.unwrap();
    assert!(
        store
            .read_log(start.after, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let (cid, _) = stored_contact(store, "Cid", &metadata).await;
    settled(store).await;
    let after_start: Vec<_> = store
        .read_log(start.after, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.global_position >= start.min_global_position)
        .map(|e| e.event_id)
        .collect();
    assert_eq!(after_start, [cid.event_id]);
}

pub async fn the_log_read_for_an_account_or_a_stream_holds_only_its_events_in_order<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let theirs = metadata_of(&other_account(), now());
    let (_, tom) = stored_contact(store, "Tom", &metadata).await;
    let (_, ann) = stored_contact(store, "Ann", &theirs).await;
    let (_, tom) = stored_retitle(store, &tom, Title::Ceo, &metadata).await;
    stored_retitle(store, &ann, Title::Ceo, &theirs).await;
    stored_retitle(store, &tom, Title::FinanceDirector, &metadata).await;
    let log = whole_log(store).await;
    assert_eq!(log.len(), 5);

    let mine = store
        .read_log(LogPosition::START, Some(&account()), 100)
        .await
        .unwrap();
    let expected: Vec<_> = log
        .iter()
        .filter(|e| e.metadata.account_id == account())
        .cloned()
        .collect();
    assert_eq!(mine, expected, "the account's events, in log order");
    assert_eq!(mine.len(), 3);
    let limited = store.read_log(LogPosition::START, None, 2).await.unwrap();
    assert_eq!(limited[..], log[..2], "no more than the limit");

    let stream = store
        .read_stream_log(tom.contact_id.as_str(), LogPosition::START, 100)
        .await
        .unwrap();
    assert_eq!(
        stream, expected,
        "Tom's stream is all of the account's events"
    );
    let rest = store
        .read_stream_log(tom.contact_id.as_str(), stream[0].position, 100)
        .await
        .unwrap();
    assert_eq!(rest[..], stream[1..]);
    let versions: Vec<_> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3]);
}

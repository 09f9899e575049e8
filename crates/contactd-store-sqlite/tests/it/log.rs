//! The log on SQLite: append-only by trigger, its order the position alone, readers woken by
//! the store's own writes.

use std::time::Duration;

use contactd_app::{ContactStore, EventLog, LogPosition, StartPoint};
use contactd_domain::{ContactEvent, Title};

use crate::support::*;

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_events_even_all_at_once() {
    let (store, _dir) = fresh().await;
    stored_contacts(&store, 2).await;
    for statement in [
        "UPDATE events SET event_type = 'Forged'",
        "DELETE FROM events WHERE global_position = 1",
        // Without a WHERE SQLite would truncate the table, unless a trigger watches it.
        "DELETE FROM events",
    ] {
        let error = sqlx::query(statement)
            .execute(store.write_pool())
            .await
            .unwrap_err();
        let message = error
            .as_database_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(positions(&store).await, [1, 2]);
}

#[tokio::test]
async fn positions_are_the_log_order_and_start_points_and_the_end_follow_them() {
    let (store, _dir) = fresh().await;
    assert_eq!(
        store.log_end().await.unwrap(),
        LogPosition::from_parts(1, i64::MIN)
    );
    stored_contacts(&store, 3).await;

    let log = store.read_log(LogPosition::START, None, 10).await.unwrap();
    let places: Vec<_> = log
        .iter()
        .map(|e| (e.global_position, e.position))
        .collect();
    assert_eq!(
        places,
        (1..=3)
            .map(|p| (p, LogPosition::from_parts(p, p)))
            .collect::<Vec<_>>()
    );
    let after_first = store.read_log(log[0].position, None, 10).await.unwrap();
    assert_eq!(after_first.len(), 2);

    let from_two = store.start_at(2).await.unwrap();
    assert_eq!(from_two.min_global_position, 0);
    let read = store.read_log(from_two.after, None, 10).await.unwrap();
    assert_eq!(read[0].global_position, 2);

    let end = store.log_end().await.unwrap();
    assert!(
        log.iter().all(|e| e.position < end),
        "every committed event is before the end"
    );
    assert!(store.readable_to(end).await.unwrap());
    assert!(
        !store
            .readable_to(LogPosition::from_parts(9, 9))
            .await
            .unwrap(),
        "events before a place past the end may still commit"
    );

    // Past the end: whatever commits from now on, from that position on.
    let past = store.start_at(5).await.unwrap();
    assert_eq!(
        past,
        StartPoint {
            after: LogPosition::from_parts(3, 3),
            min_global_position: 5
        }
    );
    let at = metadata();
    let (added, contact) = created("Later", &at);
    store
        .append(creation(&contact, std::slice::from_ref(&added), &at))
        .await
        .unwrap();
    let later = store.read_log(past.after, None, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert!(
        later[0].position >= end,
        "what committed later is at or after the end"
    );
    assert!(
        later[0].global_position < past.min_global_position,
        "and kept out by the start"
    );
}

#[tokio::test]
async fn a_subscription_is_woken_by_the_stores_append_without_polling() {
    let (store, _dir) = fresh().await;
    let contacts = stored_contacts(&store, 1).await;
    // A poll this slow never comes within the test's time: only the wake-up can answer.
    let mut subscription = store
        .subscribe(None, store.start_at(1).await.unwrap())
        .with_poll_interval(Duration::from_secs(3600));
    let (caught_up, caught_up_seen) = tokio::sync::oneshot::channel();
    let waiting = tokio::spawn(async move {
        let first = subscription.next_batch().await.unwrap();
        caught_up.send(first.len()).unwrap();
        // Nothing more to read: this waits (unless the append below is quicker than the read
        // that precedes the wait, and then the read finds it).
        subscription.next_batch().await
    });
    assert_eq!(caught_up_seen.await.unwrap(), 1);

    let at = metadata();
    let (events, after) = decided(
        &contacts[0],
        vec![ContactEvent::TitleChanged { title: Title::Ceo }],
        &at,
    );
    store.append(update(&after, 1, &events, &at)).await.unwrap();

    let batch = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken by the append")
        .unwrap()
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].global_position, 2);
    assert_eq!(batch[0].event_type, "TitleChanged");
}

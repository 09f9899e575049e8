//! The audit log: a stream's history page by page and up to a point, and an account's log
//! followed from a position, then live.

use chrono::TimeDelta;
use contactd_app::{AsOf, AuditLog, LogSubscription, RecordedEvent};
use contactd_domain::{AccountId, Title};

use crate::Backend;
use crate::fixtures::*;

/// The next `n` events of a subscription, however they are batched.
async fn next_events(subscription: &mut impl LogSubscription, n: usize) -> Vec<RecordedEvent> {
    within("the subscription delivers", async {
        let mut events = Vec::new();
        while events.len() < n {
            events.extend(subscription.next_batch().await.unwrap());
        }
        events
    })
    .await
}

fn of_account(log: &[RecordedEvent], account: &AccountId) -> Vec<RecordedEvent> {
    log.iter()
        .filter(|e| &e.metadata.account_id == account)
        .cloned()
        .collect()
}

pub async fn a_stream_is_read_page_by_page_in_version_order_and_only_in_its_account<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (_, mut tom) = stored_contact(store, "Tom", &metadata).await;
    stored_contact(store, "Ann", &metadata).await;
    for title in [
        Title::Ceo,
        Title::FinanceDirector,
        Title::ProjectDirector,
        Title::Other,
    ] {
        tom = stored_retitle(store, &tom, title, &metadata).await.1;
    }
    let id = tom.contact_id.as_str();
    let all = history(store, &account(), id).await;
    let versions: Vec<_> = all.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert!(all.iter().all(|e| e.stream_id == id));

    let first = store.stream_page(&account(), id, 0, 2).await.unwrap();
    let second = store.stream_page(&account(), id, 2, 2).await.unwrap();
    let third = store.stream_page(&account(), id, 4, 2).await.unwrap();
    let past = store.stream_page(&account(), id, 5, 2).await.unwrap();
    assert_eq!(first[..], all[..2]);
    assert_eq!(second[..], all[2..4]);
    assert_eq!(third[..], all[4..]);
    assert!(past.is_empty());
    assert!(
        store
            .stream_page(&other_account(), id, 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "another account's stream is not found"
    );
    for as_of in [AsOf::Version(5), AsOf::Time(now() + TimeDelta::hours(1))] {
        assert!(
            store
                .stream_as_of(&other_account(), id, as_of)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

pub async fn a_stream_as_of_a_version_or_a_time_ends_there<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let created_at = now() - TimeDelta::minutes(10);
    let at = |seconds| metadata_of(&account(), created_at + TimeDelta::seconds(seconds));
    let (_, tom) = stored_contact(store, "Tom", &at(0)).await;
    let (_, tom) = stored_retitle(store, &tom, Title::Ceo, &at(10)).await;
    stored_retitle(store, &tom, Title::FinanceDirector, &at(20)).await;
    let id = tom.contact_id.as_str();
    let all = history(store, &account(), id).await;
    assert_eq!(all.len(), 3);

    let as_of = async |point| store.stream_as_of(&account(), id, point).await.unwrap();
    assert_eq!(as_of(AsOf::Version(1)).await[..], all[..1]);
    assert_eq!(as_of(AsOf::Version(2)).await[..], all[..2]);
    assert_eq!(
        as_of(AsOf::Version(99)).await,
        all,
        "beyond the stream: its end"
    );
    let seconds = |s: i64| AsOf::Time(created_at + TimeDelta::seconds(s));
    assert_eq!(
        as_of(seconds(10)).await[..],
        all[..2],
        "an event recorded at that very time counts"
    );
    assert_eq!(as_of(seconds(15)).await[..], all[..2]);
    assert_eq!(
        as_of(AsOf::Time(
            created_at + TimeDelta::seconds(20) - TimeDelta::microseconds(1)
        ))
        .await[..],
        all[..2]
    );
    assert_eq!(as_of(seconds(3600)).await, all);
    assert!(as_of(seconds(-1)).await.is_empty(), "before it was created");
}

pub async fn following_an_account_sends_its_committed_events_in_log_order_then_live_ones<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let mine = metadata();
    let theirs = metadata_of(&other_account(), now());
    let (_, tom) = stored_contact(store, "Tom", &mine).await;
    let (_, ann) = stored_contact(store, "Ann", &theirs).await;
    let (_, tom) = stored_retitle(store, &tom, Title::Ceo, &mine).await;
    let (_, ann) = stored_retitle(store, &ann, Title::Ceo, &theirs).await;
    stored_contact(store, "Bob", &mine).await;
    let committed = of_account(&whole_log(store).await, &account());
    assert_eq!(committed.len(), 3);

    let mut subscription = store.follow(&account(), 0).await.unwrap();
    assert_eq!(
        next_events(&mut subscription, 3).await,
        committed,
        "the account's events, in log order"
    );

    // Live: another account's change commits first, then the account's own; only the own one
    // arrives, and it arrives from another process's append too.
    stored_retitle(store, &ann, Title::FinanceDirector, &theirs).await;
    let elsewhere = backend.another_process().await;
    let (renamed, _) = stored_retitle(&elsewhere, &tom, Title::ProjectDirector, &mine).await;
    let live = next_events(&mut subscription, 1).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        (live[0].event_id, live[0].stream_version),
        (renamed.event_id, 3)
    );

    let mut their_subscription = store.follow(&other_account(), 0).await.unwrap();
    assert_eq!(
        next_events(&mut their_subscription, 3).await,
        of_account(&whole_log(store).await, &other_account())
    );
}

pub async fn following_from_an_events_position_starts_with_exactly_that_event<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let mine = metadata();
    let (_, tom) = stored_contact(store, "Tom", &mine).await;
    stored_contact(store, "Ann", &metadata_of(&other_account(), now())).await;
    let (_, tom) = stored_retitle(store, &tom, Title::Ceo, &mine).await;
    stored_contact(store, "Bob", &mine).await;
    let (_, tom) = stored_retitle(store, &tom, Title::FinanceDirector, &mine).await;
    let all = of_account(&whole_log(store).await, &account());
    assert_eq!(all.len(), 4);

    let mut resumed = store
        .follow(&account(), all[1].global_position)
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut resumed, 3).await[..],
        all[1..],
        "the event at the position comes first"
    );
    // From the last event: that event again, then live ones.
    let mut at_end = store
        .follow(&account(), all[3].global_position)
        .await
        .unwrap();
    assert_eq!(next_events(&mut at_end, 1).await[..], all[3..]);
    let (live, _) = stored_retitle(store, &tom, Title::Other, &mine).await;
    let next = next_events(&mut at_end, 1).await;
    assert_eq!(
        (next[0].event_id, next[0].stream_version),
        (live.event_id, 4)
    );
}

pub async fn following_from_past_the_end_of_the_log_sends_no_older_event<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let mine = metadata();
    let (_, tom) = stored_contact(store, "Tom", &mine).await;
    let (_, tom) = stored_retitle(store, &tom, Title::Ceo, &mine).await;
    let newest = whole_log(store).await.last().unwrap().global_position;

    // The next position the log will give: no event has it yet.
    let mut subscription = store.follow(&account(), newest + 1).await.unwrap();
    let (renamed, _) = stored_retitle(store, &tom, Title::FinanceDirector, &mine).await;
    let first = next_events(&mut subscription, 1).await;
    assert_eq!(
        (first[0].event_id, first[0].stream_version),
        (renamed.event_id, 3),
        "the first event sent is the one committed after the subscription began"
    );
}

//! Each rule an append can break, refused by SQLite and answered as the conflict it is: the
//! store reads SQLite's messages (a `CHECK`'s name, a `UNIQUE` index's columns), and these
//! tests hold that reading to the real messages. A refused append leaves nothing behind.

use chrono::TimeDelta;
use contactd_app::{
    Append, AppendError, CodeIssue, ContactStore, DirectoryAppend, DirectoryStore, IdempotencyKey,
    NameClaim, NewEvent, Operation, Outcome, RememberedCall, SendLimits,
};
use contactd_domain::{
    Channel, ClientToken, Contact, ContactEvent, Directory, ResourceDirectoryId, Title,
    VerificationId, VerificationTarget,
};
use contactd_store_sqlite::SqliteStore;

use crate::support::*;

async fn add(store: &SqliteStore, name: &str, quota: u32) -> (Result<(), AppendError>, Contact) {
    let at = metadata();
    let (added, contact) = created(name, &at);
    let append = Append {
        quota_limit: Some(quota),
        ..creation(&contact, std::slice::from_ref(&added), &at)
    };
    (store.append(append).await, contact)
}

#[tokio::test]
async fn a_name_is_held_once_per_account_ignoring_case() {
    let (store, _dir) = fresh().await;
    assert!(add(&store, "Tom", 20).await.0.is_ok());

    let (refused, again) = add(&store, "TOM", 20).await;

    assert!(
        matches!(refused, Err(AppendError::NameAlreadyUsed)),
        "{refused:?}"
    );
    assert!(
        store
            .load_contact(&account(), &again.contact_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(positions(&store).await, [1]);
}

#[tokio::test]
async fn the_quota_refuses_the_add_past_it_and_a_taken_name_ranks_first() {
    let (store, _dir) = fresh().await;
    assert!(add(&store, "One", 2).await.0.is_ok());
    assert!(add(&store, "Two", 2).await.0.is_ok());

    let (over, _) = add(&store, "Three", 2).await;
    let (both, _) = add(&store, "two", 2).await;

    assert!(matches!(over, Err(AppendError::QuotaExceeded)), "{over:?}");
    assert!(
        matches!(both, Err(AppendError::NameAlreadyUsed)),
        "{both:?}"
    );
    assert_eq!(positions(&store).await, [1, 2]);
}

#[tokio::test]
async fn a_delete_removes_the_row_frees_the_name_and_counts_the_quota_down() {
    let (store, _dir) = fresh().await;
    let (_, first) = add(&store, "One", 1).await;
    let at = metadata();
    let (events, deleted) = decided(&first, vec![ContactEvent::MessageContactDeleted], &at);
    let delete = Append {
        name_claim: NameClaim::Release {
            key: first.name.uniqueness_key(),
        },
        ..update(&deleted, 1, &events, &at)
    };

    store.append(delete).await.unwrap();

    assert!(
        store
            .load_contact(&account(), &first.contact_id)
            .await
            .unwrap()
            .is_none()
    );
    let (again, _) = add(&store, "One", 1).await;
    assert!(again.is_ok(), "name and quota free again: {again:?}");
}

fn remembered(token: &str, at: chrono::DateTime<chrono::Utc>) -> RememberedCall {
    RememberedCall {
        key: IdempotencyKey {
            account_id: account(),
            operation: Operation::UpdateMessageContact,
            token: ClientToken::parse(token).unwrap().unwrap(),
        },
        fingerprint: vec![1, 2, 3],
        outcome: Outcome::Acknowledged {
            request_id: "request".into(),
        },
        recorded_at: at,
    }
}

#[tokio::test]
async fn a_client_token_is_taken_once_within_its_window() {
    let (store, _dir) = fresh().await;
    let contacts = stored_contacts(&store, 1).await;
    let at = metadata();
    let call = remembered("token-1", at.recorded_at);
    let (events, after) = decided(
        &contacts[0],
        vec![ContactEvent::TitleChanged { title: Title::Ceo }],
        &at,
    );
    let with_token = Append {
        remember: Some(&call),
        ..update(&after, 1, &events, &at)
    };
    store.append(with_token).await.unwrap();

    let (events, again) = decided(
        &after,
        vec![ContactEvent::TitleChanged {
            title: Title::Other,
        }],
        &at,
    );
    let taken = store
        .append(Append {
            remember: Some(&call),
            ..update(&again, 2, &events, &at)
        })
        .await;
    let remembered_again = store.remember(&call).await;

    assert!(
        matches!(taken, Err(AppendError::ClientTokenTaken)),
        "{taken:?}"
    );
    assert!(
        matches!(remembered_again, Err(AppendError::ClientTokenTaken)),
        "{remembered_again:?}"
    );
    assert_eq!(
        positions(&store).await,
        [1, 2],
        "the refused append wrote nothing"
    );
    let recalled = store
        .recall(&call.key, at.recorded_at - TimeDelta::hours(24))
        .await
        .unwrap();
    assert_eq!(recalled, Some(call.clone()));

    // A day later the token is free: remembering under it replaces the old record.
    let later = remembered("token-1", at.recorded_at + TimeDelta::hours(25));
    store.remember(&later).await.unwrap();
    let recalled = store.recall(&later.key, at.recorded_at).await.unwrap();
    assert_eq!(recalled.map(|c| c.recorded_at), Some(later.recorded_at));
}

/// A hash no other link has.
fn link_hash() -> [u8; 32] {
    let mut hash = [0; 32];
    hash[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    hash
}

/// A send's append on `state`: its code and the limits it counts against.
async fn send(
    store: &SqliteStore,
    state: &Contact,
    at: chrono::DateTime<chrono::Utc>,
    per_day: u32,
    per_minute: u32,
) -> (Result<(), AppendError>, Contact) {
    let mut metadata = metadata();
    metadata.recorded_at = at;
    let verification_id = VerificationId::generate();
    let expires_at = at + TimeDelta::minutes(10);
    let target = VerificationTarget::Email(state.email_address.clone());
    let event = state
        .request_verification(&target, verification_id, expires_at)
        .unwrap();
    let (events, after) = decided(state, vec![event], &metadata);
    let code = CodeIssue {
        verification_id,
        channel: Channel::Email,
        link_hash: link_hash(),
        expires_at,
        limits: SendLimits {
            day: at.date_naive(),
            per_account_day: per_day,
            target_digest: [7; 32],
            per_target_minute: per_minute,
        },
    };
    let append = Append {
        code: Some(&code),
        ..update(&after, state.version, &events, &metadata)
    };
    (store.append(append).await, after)
}

#[tokio::test]
async fn sends_past_the_days_limit_are_refused() {
    let (store, _dir) = fresh().await;
    let mut state = stored_contacts(&store, 1).await.remove(0);
    let now = metadata().recorded_at;
    for i in 0..2 {
        let (sent, after) = send(&store, &state, now + TimeDelta::minutes(i), 2, 10).await;
        sent.unwrap();
        state = after;
    }

    let (refused, _) = send(&store, &state, now + TimeDelta::minutes(2), 2, 10).await;

    assert!(
        matches!(refused, Err(AppendError::SendLimitExceeded)),
        "{refused:?}"
    );
    assert_eq!(positions(&store).await, [1, 2, 3]);
}

#[tokio::test]
async fn sends_to_one_target_are_limited_over_any_minute() {
    let (store, _dir) = fresh().await;
    let state = stored_contacts(&store, 1).await.remove(0);
    let now = metadata().recorded_at;
    let (sent, state) = send(&store, &state, now, 100, 1).await;
    sent.unwrap();

    let (within, _) = send(&store, &state, now + TimeDelta::seconds(59), 100, 1).await;
    let (after_a_minute, _) = send(&store, &state, now + TimeDelta::seconds(61), 100, 1).await;

    assert!(
        matches!(within, Err(AppendError::SendLimitExceeded)),
        "{within:?}"
    );
    assert!(after_a_minute.is_ok(), "{after_a_minute:?}");
}

#[tokio::test]
async fn a_directory_append_at_a_stale_version_is_refused() {
    let (store, _dir) = fresh().await;
    let at = metadata();
    let created = Directory::create(ResourceDirectoryId::generate());
    let directory = Directory::created(account(), &created, at.recorded_at).unwrap();
    let events = [NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event: created,
    }];
    let first_use = DirectoryAppend {
        directory: &directory,
        expected_version: 0,
        events: &events,
        metadata: &at,
    };
    store.append_directory(first_use.clone()).await.unwrap();

    let again = store
        .append_directory(DirectoryAppend {
            events: &[NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event: Directory::create(ResourceDirectoryId::generate()),
            }],
            ..first_use
        })
        .await;

    assert!(
        matches!(again, Err(AppendError::VersionConflict)),
        "{again:?}"
    );
    let loaded = store.load_directory(&account()).await.unwrap();
    assert_eq!(loaded, Some(directory));
}

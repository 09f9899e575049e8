//! Client tokens: a successful call remembered with its answer, recalled within the window,
//! and the token refused to any other call while it is held.

use chrono::TimeDelta;
use contactd_app::{
    Append, AppendError, BindingChange, ContactStore, IDEMPOTENCY_WINDOW, Idempotency,
    IdempotencyKey, Operation, Outcome, RememberedCall,
};
use contactd_domain::{AccountId, ClientToken, DeleteStatus, MemberId};
use tokio::task::JoinSet;

use crate::Backend;
use crate::fixtures::*;

fn token(raw: &str) -> ClientToken {
    ClientToken::parse(raw).unwrap().unwrap()
}

fn key(account: &AccountId, operation: Operation, raw: &str) -> IdempotencyKey {
    IdempotencyKey {
        account_id: account.clone(),
        operation,
        token: token(raw),
    }
}

fn acknowledged(request_id: &str) -> Outcome {
    Outcome::Acknowledged {
        request_id: request_id.to_owned(),
    }
}

fn call(
    key: IdempotencyKey,
    fingerprint: &[u8],
    outcome: Outcome,
    recorded_at: chrono::DateTime<chrono::Utc>,
) -> RememberedCall {
    RememberedCall {
        key,
        fingerprint: fingerprint.to_vec(),
        outcome,
        recorded_at,
    }
}

pub async fn a_remembered_call_is_recalled_within_the_window_and_not_after<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let at = now();
    let (_, tom) = created("Tom", &metadata());
    // Every kind of answer comes back as it was given.
    let calls = [
        call(
            key(&account(), Operation::AddMessageContact, "add-1"),
            b"add",
            Outcome::Added {
                request_id: "R-ADD".into(),
                contact: Box::new(tom),
            },
            at,
        ),
        call(
            key(&account(), Operation::UpdateMessageContact, "update-1"),
            b"",
            acknowledged("R-UPDATE"),
            at,
        ),
        call(
            key(&account(), Operation::DeleteMessageContact, "delete-1"),
            &[0, 255, 7],
            Outcome::Deleted {
                request_id: "R-DELETE".into(),
                status: DeleteStatus::Deleting,
            },
            at,
        ),
        call(
            key(&account(), Operation::AssociateMembers, "bind-1"),
            b"bind",
            Outcome::Bindings {
                request_id: "R-BIND".into(),
                members: vec![
                    BindingChange {
                        member_id: MemberId::parse("fd-000000000A").unwrap(),
                        modify_date: at - TimeDelta::seconds(5),
                    },
                    BindingChange {
                        member_id: MemberId::parse("1111222233334444").unwrap(),
                        modify_date: at,
                    },
                ],
            },
            at,
        ),
    ];
    for call in &calls {
        store.remember(call).await.unwrap();
    }
    for call in &calls {
        let recalled = store
            .recall(&call.key, at - IDEMPOTENCY_WINDOW)
            .await
            .unwrap();
        assert_eq!(recalled.as_ref(), Some(call));
    }
    // A token is scoped to the account and the operation.
    for other in [
        key(&other_account(), Operation::AddMessageContact, "add-1"),
        key(&account(), Operation::UpdateMessageContact, "add-1"),
        key(&account(), Operation::AddMessageContact, "ADD-1"),
    ] {
        assert_eq!(
            store.recall(&other, at - IDEMPOTENCY_WINDOW).await.unwrap(),
            None
        );
    }
    // Recorded at the very start of the window still counts; before it, no more.
    let first = &calls[0];
    assert_eq!(
        store.recall(&first.key, at).await.unwrap().as_ref(),
        Some(first)
    );
    assert_eq!(
        store
            .recall(&first.key, at + TimeDelta::microseconds(1))
            .await
            .unwrap(),
        None
    );
}

pub async fn a_client_token_held_by_another_call_is_refused_and_nothing_is_stored<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let at = now();
    let held = key(&account(), Operation::AddMessageContact, "held");
    let first = call(held.clone(), b"first", acknowledged("R-1"), at);
    store.remember(&first).await.unwrap();
    let second = call(
        held.clone(),
        b"second",
        acknowledged("R-2"),
        at + TimeDelta::seconds(1),
    );
    let refused = store.remember(&second).await;
    assert!(
        matches!(refused, Err(AppendError::ClientTokenTaken)),
        "{refused:?}"
    );

    // An append remembering its call under the held token is refused as a whole.
    let metadata = metadata();
    let (added, contact) = created("Tom", &metadata);
    let remembered = call(held.clone(), b"third", acknowledged("R-3"), at);
    let refused = store
        .append(Append {
            remember: Some(&remembered),
            ..creation(&contact, std::slice::from_ref(&added), &metadata)
        })
        .await;
    assert!(
        matches!(refused, Err(AppendError::ClientTokenTaken)),
        "{refused:?}"
    );
    assert!(whole_log(store).await.is_empty(), "no event of it");
    assert_eq!(
        store
            .load_contact(&account(), &contact.contact_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.recall(&held, at - IDEMPOTENCY_WINDOW).await.unwrap(),
        Some(first),
        "the first call keeps the token"
    );
    // Neither its name nor its place in the quota was taken.
    store
        .append(creation(&contact, std::slice::from_ref(&added), &metadata))
        .await
        .unwrap();
}

pub async fn calls_racing_on_one_client_token_let_exactly_one_through<B: Backend>() {
    let backend = B::fresh().await;
    let processes = [backend.store().clone(), backend.another_process().await];
    let raced = key(&account(), Operation::AddMessageContact, "raced");
    let mut calls = JoinSet::new();
    for i in 0..12 {
        let store = processes[i % 2].clone();
        let raced = raced.clone();
        calls.spawn(async move {
            let metadata = metadata();
            let (added, contact) = created(&letters(i), &metadata);
            let remembered = call(raced, &[i as u8], acknowledged(&format!("R-{i}")), now());
            let answer = store
                .append(Append {
                    remember: Some(&remembered),
                    ..creation(&contact, std::slice::from_ref(&added), &metadata)
                })
                .await;
            (i, answer)
        });
    }
    let answers = within("the calls are answered", calls.join_all()).await;
    let winners: Vec<usize> = answers
        .iter()
        .filter(|(_, answer)| answer.is_ok())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (i, answer) in &answers {
        assert!(
            answer.is_ok() || matches!(answer, Err(AppendError::ClientTokenTaken)),
            "call {i}: {answer:?}"
        );
    }
    let store = backend.store();
    assert_eq!(whole_log(store).await.len(), 1);
    assert_eq!(contacts_listed(store, &account()).await, 1);
    let recalled = store
        .recall(&raced, now() - IDEMPOTENCY_WINDOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recalled.fingerprint, [winners[0] as u8]);
}

pub async fn a_client_token_older_than_the_window_is_free_again<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let at = now();
    let old = at - IDEMPOTENCY_WINDOW - TimeDelta::minutes(1);
    let reused = key(&account(), Operation::UpdateMessageContact, "reused");
    store
        .remember(&call(reused.clone(), b"old", acknowledged("R-OLD"), old))
        .await
        .unwrap();
    let fresh = call(reused.clone(), b"new", acknowledged("R-NEW"), at);
    store.remember(&fresh).await.unwrap();
    assert_eq!(
        store
            .recall(&reused, at - IDEMPOTENCY_WINDOW)
            .await
            .unwrap(),
        Some(fresh)
    );

    // The service recalls a token before it appends with it: once a recall has found the
    // token's call too old, the append remembering a new call under it goes through.
    let added_key = key(&account(), Operation::AddMessageContact, "reused");
    store
        .remember(&call(added_key.clone(), b"old", acknowledged("R-OLD"), old))
        .await
        .unwrap();
    assert_eq!(
        store
            .recall(&added_key, at - IDEMPOTENCY_WINDOW)
            .await
            .unwrap(),
        None
    );
    // The call is remembered as made when its events are recorded, as the service makes it.
    let metadata = metadata_of(&account(), at);
    let (added, contact) = created("Tom", &metadata);
    let remembered = call(added_key.clone(), b"new", acknowledged("R-ADD"), at);
    store
        .append(Append {
            remember: Some(&remembered),
            ..creation(&contact, std::slice::from_ref(&added), &metadata)
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .recall(&added_key, at - IDEMPOTENCY_WINDOW)
            .await
            .unwrap(),
        Some(remembered)
    );
}

pub async fn a_retried_add_answers_the_first_response_and_adds_nothing<B: Backend>() {
    let backend = B::fresh().await;
    let processes = [
        service(backend.store().clone(), 20),
        service(backend.another_process().await, 20),
    ];
    let idempotency = || Idempotency {
        token: token("retry-me"),
        fingerprint: b"Tom".to_vec(),
    };
    let first = processes[0]
        .add_contact(&ctx(), new_contact("Tom"), Some(idempotency()))
        .await
        .unwrap();
    // The retry is recalled, by either process.
    for app in &processes {
        let recalled = app
            .recall(&ctx(), Operation::AddMessageContact, &idempotency())
            .await
            .unwrap();
        assert_eq!(recalled.as_ref(), Some(&first));
    }
    // A retry that raced past its recall is answered the same, and adds nothing.
    let again = processes[1]
        .add_contact(&ctx(), new_contact("Tom"), Some(idempotency()))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(contacts_listed(backend.store(), &account()).await, 1);
    assert_eq!(whole_log(backend.store()).await.len(), 1);
    // Another request under the token is a mismatch; another account's is a call of its own.
    let other = Idempotency {
        fingerprint: b"Ann".to_vec(),
        ..idempotency()
    };
    let mismatch = processes[0]
        .recall(&ctx(), Operation::AddMessageContact, &other)
        .await;
    assert!(
        matches!(
            mismatch,
            Err(contactd_app::AppError::IdempotentParameterMismatch)
        ),
        "{mismatch:?}"
    );
    let theirs = processes[0]
        .add_contact(
            &ctx_of(&other_account()),
            new_contact("Tom"),
            Some(idempotency()),
        )
        .await
        .unwrap();
    assert_ne!(added(theirs).contact_id, added(first).contact_id);
}

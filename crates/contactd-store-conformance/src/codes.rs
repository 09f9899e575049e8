//! Verification codes: the tries a code may have and the send limits, each counted by the
//! store for every process at once, so that no race gets past them; and the confirmation
//! link found again by its hash.

use std::sync::Arc;

use contactd_app::{AppError, ContactService, ContactStore, LinkedCode, Policy};
use contactd_domain::{Channel, ContactId, MAX_CODE_TRIES, VerificationId, VerificationTarget};
use tokio::task::JoinSet;

use crate::Backend;
use crate::fixtures::*;

/// Two processes sharing one policy (and so one code secret), as `serve` runs them.
async fn two_processes<B: Backend>(
    backend: &B,
    policy: Policy,
) -> [Arc<ContactService<B::Store>>; 2] {
    [
        with_policy(backend.store().clone(), policy.clone()),
        with_policy(backend.another_process().await, policy),
    ]
}

fn target(address: &str) -> VerificationTarget {
    VerificationTarget::Email(email(address))
}

/// Adds a contact with the address, and sends it a code; the contact and its code's id.
async fn sent_a_code<S: ContactStore>(
    app: &ContactService<S>,
    name: &str,
    address: &str,
) -> (ContactId, VerificationId) {
    let contact = added(
        app.add_contact(&ctx(), new_contact_at(name, address), None)
            .await
            .unwrap(),
    );
    app.send_verification(&ctx(), &contact.contact_id, &target(address), None)
        .await
        .unwrap();
    let state = app.get_contact(&ctx(), &contact.contact_id).await.unwrap();
    let code = state.email_code.expect("the send issued a code");
    (contact.contact_id, code.verification_id)
}

/// How many sends of the kind the log holds.
async fn requested<B: Backend>(backend: &B) -> usize {
    whole_log(backend.store())
        .await
        .iter()
        .filter(|e| e.event_type == "EmailVerificationRequested")
        .count()
}

pub async fn concurrent_tries_of_a_code_from_two_processes_never_get_a_sixth<B: Backend>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, Policy::default()).await;
    let (tom, code) = sent_a_code(&processes[0], "Tom", "tom@example.com").await;
    let (_, other_code) = sent_a_code(&processes[0], "Ann", "ann@example.com").await;

    let mut tries = JoinSet::new();
    for n in 0..16 {
        let store = processes[n % 2].store().clone();
        tries.spawn(async move {
            store
                .claim_code_try(&account(), code, MAX_CODE_TRIES)
                .await
                .unwrap()
        });
    }
    let answers = within("the tries are answered", tries.join_all()).await;
    let counted = answers.iter().filter(|counted| **counted).count();
    assert_eq!(
        counted, MAX_CODE_TRIES as usize,
        "five tries counted, the rest refused"
    );

    // The code is burned: even the right one is refused now, and the contact is unchanged.
    let right = processes[1].policy().verification.secret.code(code);
    let burned = processes[1]
        .confirm_verification(&ctx(), &tom, &target("tom@example.com"), &right, None)
        .await;
    assert!(
        matches!(burned, Err(AppError::SendLimitExceeded)),
        "{burned:?}"
    );
    let state = processes[0].get_contact(&ctx(), &tom).await.unwrap();
    assert_eq!(state.version, 2, "tries change no contact");
    // Another code has tries of its own, and a code is tried only in its own account.
    let store = backend.store();
    assert!(
        !store
            .claim_code_try(&other_account(), other_code, MAX_CODE_TRIES)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_code_try(&account(), other_code, MAX_CODE_TRIES)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_code_try(&account(), VerificationId::generate(), MAX_CODE_TRIES)
            .await
            .unwrap(),
        "a code that was never issued has no try"
    );
}

pub async fn the_per_target_send_limit_holds_under_concurrent_sends_from_two_processes<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, Policy::default()).await;
    // Sixteen contacts share one address: the sends race on the target's window, not on a
    // contact's version.
    let mut ids = Vec::new();
    for n in 0..16 {
        let contact = added(
            processes[0]
                .add_contact(
                    &ctx(),
                    new_contact_at(&letters(n), "same@example.com"),
                    None,
                )
                .await
                .unwrap(),
        );
        ids.push(contact.contact_id);
    }
    let mut sends = JoinSet::new();
    for (n, id) in ids.iter().enumerate() {
        let (app, id) = (processes[n % 2].clone(), id.clone());
        sends.spawn(async move {
            app.send_verification(&ctx(), &id, &target("same@example.com"), None)
                .await
        });
    }
    let answers = within("the sends are answered", sends.join_all()).await;
    let sent = answers.iter().filter(|a| a.is_ok()).count();
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert!(
            matches!(refused, AppError::SendLimitExceeded),
            "{refused:?}"
        );
    }
    assert_eq!(sent, 10, "ten sends per target in any minute");
    assert_eq!(
        requested(&backend).await,
        10,
        "a refused send appends nothing"
    );
    // Another target of the account has a window of its own.
    sent_a_code(&processes[1], "Other", "other@example.com").await;
}

pub async fn the_daily_send_limit_holds_under_concurrent_sends_of_the_account<B: Backend>() {
    let backend = B::fresh().await;
    let mut policy = Policy::default();
    policy.verification.sends_per_account_day = 5;
    let processes = two_processes(&backend, policy).await;
    let mut contacts = Vec::new();
    for n in 0..8 {
        let address = format!("person{n}@example.com");
        let contact = added(
            processes[0]
                .add_contact(&ctx(), new_contact_at(&letters(n), &address), None)
                .await
                .unwrap(),
        );
        contacts.push((contact.contact_id, address));
    }
    let mut sends = JoinSet::new();
    for (n, (id, address)) in contacts.into_iter().enumerate() {
        let app = processes[n % 2].clone();
        sends.spawn(async move {
            app.send_verification(&ctx(), &id, &target(&address), None)
                .await
        });
    }
    let answers = within("the sends are answered", sends.join_all()).await;
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert!(
            matches!(refused, AppError::SendLimitExceeded),
            "{refused:?}"
        );
    }
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 5);
    assert_eq!(requested(&backend).await, 5);
    // Another account's day is its own.
    let theirs = ctx_of(&other_account());
    let cid = added(
        processes[1]
            .add_contact(&theirs, new_contact_at("Cid", "cid@example.com"), None)
            .await
            .unwrap(),
    );
    processes[1]
        .send_verification(&theirs, &cid.contact_id, &target("cid@example.com"), None)
        .await
        .unwrap();
}

pub async fn a_link_finds_its_code_by_the_hash_of_its_token<B: Backend>() {
    let backend = B::fresh().await;
    let app = service(backend.store().clone(), 20);
    let (tom, code) = sent_a_code(&app, "Tom", "tom@example.com").await;
    let token = app.policy().verification.secret.link_token(code);
    let store = backend.store();
    assert_eq!(
        store.find_link(&token.hash()).await.unwrap(),
        Some(LinkedCode {
            account_id: account(),
            contact_id: tom,
            channel: Channel::Email,
            verification_id: code,
        })
    );
    let unknown = app
        .policy()
        .verification
        .secret
        .link_token(VerificationId::generate());
    assert_eq!(store.find_link(&unknown.hash()).await.unwrap(), None);
}

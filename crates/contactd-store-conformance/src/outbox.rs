//! The outbox of verification messages: each send recorded once by the store's projection,
//! claimed by one dispatcher at a time under a lease, and its outcomes recorded (with their
//! events) only by the holder of the lease.

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeDelta;
use contactd_app::{ContactStore, Outbox, OutboxMessage};
use contactd_domain::{Channel, DeliveryEvent, DeliveryOutcome, VerificationTarget};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::Backend;
use crate::fixtures::*;

const LEASE: Duration = Duration::from_secs(60);
/// A lease that has run out by the time anyone looks: another claimer takes the message over.
const LOST: Duration = Duration::ZERO;

/// Adds `n` contacts and sends each a code; the ids of the events that asked for the messages.
async fn sends<B: Backend>(backend: &B, n: usize) -> Vec<Uuid> {
    let app = service(backend.store().clone(), 20);
    for i in 0..n {
        let address = format!("person{i}@example.com");
        let contact = added(
            app.add_contact(&ctx(), new_contact_at(&letters(i), &address), None)
                .await
                .unwrap(),
        );
        app.send_verification(
            &ctx(),
            &contact.contact_id,
            &VerificationTarget::Email(email(&address)),
            None,
        )
        .await
        .unwrap();
    }
    let requests: Vec<Uuid> = whole_log(backend.store())
        .await
        .iter()
        .filter(|e| e.event_type == "EmailVerificationRequested")
        .map(|e| e.event_id)
        .collect();
    assert_eq!(requests.len(), n);
    requests
}

fn outcome_of(message: &OutboxMessage, outcome: DeliveryOutcome) -> DeliveryEvent {
    DeliveryEvent {
        message_id: message.message_id,
        contact_id: message.contact_id.clone(),
        channel: Channel::Email,
        attempt: message.attempt,
        outcome,
    }
}

/// Records an attempt's outcome as `owner`; whether the store took it.
async fn record(
    store: &impl Outbox,
    owner: &str,
    message: &OutboxMessage,
    outcome: DeliveryOutcome,
) -> (bool, Uuid) {
    let event_id = Uuid::new_v4();
    let recorded = store
        .record(
            owner,
            message,
            &outcome_of(message, outcome),
            event_id,
            &metadata_of(&message.account_id, now()),
        )
        .await
        .unwrap();
    (recorded, event_id)
}

/// The delivery events of a message, in version order.
async fn deliveries<B: Backend>(backend: &B, message_id: Uuid) -> Vec<(Uuid, u64, String)> {
    history(
        backend.store(),
        &account(),
        &DeliveryEvent::stream_id(message_id),
    )
    .await
    .into_iter()
    .map(|e| (e.event_id, e.stream_version, e.event_type))
    .collect()
}

pub async fn a_send_is_recorded_in_the_outbox_once_and_claimed_with_its_details<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    assert_eq!(store.next_due().await.unwrap(), None, "an empty outbox");
    let requested = sends(&backend, 1).await;
    let request = whole_log(store)
        .await
        .into_iter()
        .find(|e| e.event_id == requested[0])
        .unwrap();
    catch_up_projections(&backend).await;
    // Caught up again, with nothing new: nothing is recorded twice.
    catch_up_projections(&backend).await;
    assert!(store.next_due().await.unwrap().unwrap() <= now());

    let claimed = store.claim_due("dispatcher-a", LOST, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let message = &claimed[0];
    let state = store
        .load_contact(&account(), &message.contact_id)
        .await
        .unwrap()
        .unwrap();
    let code = state.email_code.unwrap();
    assert_eq!(
        message,
        &OutboxMessage {
            message_id: request.event_id,
            account_id: account(),
            contact_id: state.contact_id.clone(),
            contact_name: state.name.as_str().to_owned(),
            recipient: VerificationTarget::Email(email("person0@example.com")),
            verification_id: code.verification_id,
            expires_at: code.expires_at,
            attempt: 1,
            recorded: 0,
            correlation_id: request.metadata.correlation_id.clone(),
        }
    );
    // Its lease ran out at once: claimed again, it is the same message at its second attempt.
    let again = store.claim_due("dispatcher-b", LEASE, 10).await.unwrap();
    assert_eq!(
        again,
        [OutboxMessage {
            attempt: 2,
            ..message.clone()
        }]
    );
}

pub async fn a_message_is_not_claimed_again_while_its_lease_runs<B: Backend>() {
    let backend = B::fresh().await;
    sends(&backend, 1).await;
    catch_up_projections(&backend).await;
    let elsewhere = backend.another_process().await;
    let claimed = backend
        .store()
        .claim_due("dispatcher-a", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    for store in [backend.store(), &elsewhere] {
        assert!(
            store
                .claim_due("dispatcher-b", LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "the lease holds it"
        );
    }
    let due = elsewhere.next_due().await.unwrap().unwrap();
    assert!(
        due > now() + TimeDelta::seconds(50),
        "due again when its lease ends, not before: {due}"
    );
}

pub async fn concurrent_claimers_never_get_the_same_message<B: Backend>() {
    let backend = B::fresh().await;
    let requested = sends(&backend, 12).await;
    catch_up_projections(&backend).await;
    let processes = [backend.store().clone(), backend.another_process().await];
    let mut claimers = JoinSet::new();
    for n in 0..6 {
        let store = processes[n % 2].clone();
        claimers.spawn(async move {
            let owner = format!("dispatcher-{n}");
            let claimed = store.claim_due(&owner, LEASE, 3).await.unwrap();
            claimed
                .into_iter()
                .map(|m| m.message_id)
                .collect::<Vec<_>>()
        });
    }
    let claimed: Vec<Uuid> = within("the claims are answered", claimers.join_all())
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), claimed.len(), "no message is claimed twice");
    // Whatever the racers skipped is still there for the next claimer, and nothing else.
    let rest: Vec<Uuid> = processes[0]
        .claim_due("sweeper", LEASE, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert!(rest.iter().all(|id| !distinct.contains(id)), "{rest:?}");
    let all: HashSet<Uuid> = distinct.into_iter().chain(rest).collect();
    assert_eq!(all, requested.into_iter().collect::<HashSet<_>>());
}

pub async fn an_outcome_recorded_under_a_lost_lease_is_refused<B: Backend>() {
    let backend = B::fresh().await;
    sends(&backend, 1).await;
    catch_up_projections(&backend).await;
    let (first, second) = (backend.store(), backend.another_process().await);
    let lost = first
        .claim_due("dispatcher-a", LOST, 1)
        .await
        .unwrap()
        .remove(0);
    let taken = second
        .claim_due("dispatcher-b", LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(taken.message_id, lost.message_id);
    assert_eq!((lost.attempt, taken.attempt), (1, 2));

    let (recorded, _) = record(first, "dispatcher-a", &lost, DeliveryOutcome::Sent).await;
    assert!(
        !recorded,
        "the lease was taken over: its outcome is refused"
    );
    assert!(
        deliveries(&backend, lost.message_id).await.is_empty(),
        "and its event is not appended"
    );
    let (recorded, event_id) = record(&second, "dispatcher-b", &taken, DeliveryOutcome::Sent).await;
    assert!(recorded);
    assert_eq!(
        deliveries(&backend, taken.message_id).await,
        [(event_id, 1, "VerificationMessageSent".to_owned())]
    );
    // The same outcome again (a retry of the record) is one outcome too many: refused.
    let (twice, _) = record(&second, "dispatcher-b", &taken, DeliveryOutcome::Sent).await;
    assert!(!twice);
    assert_eq!(deliveries(&backend, taken.message_id).await.len(), 1);
    // Sent: never claimed again, nothing pending.
    assert!(
        first
            .claim_due("dispatcher-c", LOST, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(first.next_due().await.unwrap(), None);
}

pub async fn a_failed_attempt_is_due_again_at_its_retry_time<B: Backend>() {
    let backend = B::fresh().await;
    sends(&backend, 2).await;
    catch_up_projections(&backend).await;
    let store = backend.store();
    let claimed = store.claim_due("dispatcher-a", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let (soon, later) = (&claimed[0], &claimed[1]);
    let retry_later = now() + TimeDelta::hours(1);
    let failed = |retry_at| DeliveryOutcome::Failed {
        reason: "421 try again".into(),
        retry_at,
    };
    assert!(record(store, "dispatcher-a", soon, failed(now())).await.0);
    assert!(
        record(store, "dispatcher-a", later, failed(retry_later))
            .await
            .0
    );

    // The one due now is claimed again, with its outcome counted; the other waits.
    let again = store.claim_due("dispatcher-b", LEASE, 10).await.unwrap();
    assert_eq!(
        again,
        [OutboxMessage {
            attempt: 2,
            recorded: 1,
            ..soon.clone()
        }]
    );
    let due = store.next_due().await.unwrap().unwrap();
    assert!(
        due < retry_later,
        "the one claimed again is due first, when its lease ends: {due}"
    );
    let dead = DeliveryOutcome::DeadLettered {
        reason: "550 no such user".into(),
    };
    assert!(record(store, "dispatcher-b", &again[0], dead).await.0);
    let types: Vec<String> = deliveries(&backend, soon.message_id)
        .await
        .into_iter()
        .map(|(_, version, kind)| format!("{version} {kind}"))
        .collect();
    assert_eq!(
        types,
        [
            "1 VerificationMessageFailed",
            "2 VerificationMessageDeadLettered"
        ]
    );
    assert!(
        store
            .claim_due("dispatcher-c", LOST, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(retry_later),
        "only the later one is pending"
    );
}

pub async fn the_outbox_depth_counts_the_messages_not_yet_finished<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    assert_eq!(store.pending().await.unwrap(), 0, "an empty outbox");
    sends(&backend, 3).await;
    catch_up_projections(&backend).await;
    assert_eq!(store.pending().await.unwrap(), 3);
    let claimed = store.claim_due("dispatcher-a", LEASE, 10).await.unwrap();
    assert_eq!(
        store.pending().await.unwrap(),
        3,
        "a leased message still waits to be sent"
    );
    let failed = DeliveryOutcome::Failed {
        reason: "421 try again".into(),
        retry_at: now() + TimeDelta::hours(1),
    };
    assert!(
        record(store, "dispatcher-a", &claimed[0], DeliveryOutcome::Sent)
            .await
            .0
    );
    assert!(record(store, "dispatcher-a", &claimed[1], failed).await.0);
    let dead = DeliveryOutcome::DeadLettered {
        reason: "550 no such user".into(),
    };
    assert!(record(store, "dispatcher-a", &claimed[2], dead).await.0);
    assert_eq!(
        store.pending().await.unwrap(),
        1,
        "only the one to be tried again waits"
    );
}

//! Rules across contacts and across calls, held by the store inside the append under races:
//! no lost update, one contact per name of an account (ignoring case), the quota, and the
//! delete giving the name and the quota's place back.

use std::sync::Arc;

use contactd_app::{
    AppError, Append, AppendError, ContactService, ContactStore, NameClaim, NewEvent, Outcome,
};
use contactd_domain::{
    ContactEvent, ContactName, ContactStatus, EmailAddress, UpdateMessageContact,
};
use tokio::task::JoinSet;

use crate::Backend;
use crate::fixtures::*;

pub async fn a_name_is_claimed_once_per_account_ignoring_case_and_freed_by_a_rename<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (_, tom) = stored_contact(store, "Tom", &metadata).await;
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
    assert_eq!(whole_log(store).await.len(), 1);
    // Names are the account's: another account has its own Tom.
    stored_contact(store, "tom", &metadata_of(&other_account(), now())).await;

    // Renaming Tom to Jerry frees "tom".
    let renamed = ContactEvent::MessageContactRenamed {
        name: ContactName::parse("Jerry").unwrap(),
    };
    let mut jerry = tom.clone();
    jerry.apply(&renamed, metadata.recorded_at);
    let rename_events = [NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event: renamed,
    }];
    store
        .append(Append {
            name_claim: NameClaim::Move {
                from: "tom".into(),
                to: "jerry".into(),
            },
            ..change(&jerry, 1, &rename_events, &metadata)
        })
        .await
        .unwrap();
    store
        .append(creation(
            &tom_again,
            std::slice::from_ref(&again),
            &metadata,
        ))
        .await
        .unwrap();
    // And "jerry" is taken now.
    let (other_jerry, other_jerry_state) = created("JERRY", &metadata);
    let taken = store
        .append(creation(
            &other_jerry_state,
            std::slice::from_ref(&other_jerry),
            &metadata,
        ))
        .await;
    assert!(
        matches!(taken, Err(AppendError::NameAlreadyUsed)),
        "{taken:?}"
    );
}

/// Two services on one database stand for two processes: only the store keeps them apart.
async fn two_processes<B: Backend>(
    backend: &B,
    max_contacts: u32,
) -> [Arc<ContactService<B::Store>>; 2] {
    [
        service(backend.store().clone(), max_contacts),
        service(backend.another_process().await, max_contacts),
    ]
}

pub async fn concurrent_adds_with_one_name_leave_exactly_one_contact<B: Backend>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, 20).await;
    let mut adders = JoinSet::new();
    for i in 0..20 {
        let app = processes[i % 2].clone();
        let name = if i % 2 == 0 { "Tom" } else { "TOM" };
        adders.spawn(async move { app.add_contact(&ctx(), new_contact(name), None).await });
    }
    let results = within("the adds are answered", adders.join_all()).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, AppError::NameAlreadyUsed), "{refused:?}");
    }
    assert_eq!(contacts_listed(backend.store(), &account()).await, 1);
    assert_eq!(whole_log(backend.store()).await.len(), 1);
}

pub async fn concurrent_adds_against_a_quota_of_twenty_leave_exactly_twenty<B: Backend>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, 20).await;
    let mut adders = JoinSet::new();
    for i in 0..30 {
        let app = processes[i % 2].clone();
        adders.spawn(async move {
            app.add_contact(&ctx(), new_contact(&letters(i)), None)
                .await
        });
    }
    let results = within("the adds are answered", adders.join_all()).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 20);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, AppError::ContactQuotaExceeded),
            "{refused:?}"
        );
    }
    assert_eq!(contacts_listed(backend.store(), &account()).await, 20);
    assert_eq!(whole_log(backend.store()).await.len(), 20);
    // The counter agrees: the next add is refused too, in another account it is not.
    let next = processes[0]
        .add_contact(&ctx(), new_contact("Extra"), None)
        .await;
    assert!(
        matches!(next, Err(AppError::ContactQuotaExceeded)),
        "{next:?}"
    );
    processes[1]
        .add_contact(&ctx_of(&other_account()), new_contact("Extra"), None)
        .await
        .unwrap();
}

fn email_update(i: usize) -> UpdateMessageContact {
    UpdateMessageContact {
        email_address: Some(EmailAddress::parse(&format!("writer{i}@example.com")).unwrap()),
        ..UpdateMessageContact::default()
    }
}

/// The updates that succeeded; the others may only have given up on the race.
async fn acknowledged(writers: JoinSet<(usize, Result<Outcome, AppError>)>) -> Vec<usize> {
    let mut acknowledged = Vec::new();
    for (i, result) in within("the updates are answered", writers.join_all()).await {
        match result {
            Ok(_) => acknowledged.push(i),
            Err(AppError::ConcurrentCall) => {}
            Err(other) => panic!("update {i} failed with {other:?}"),
        }
    }
    acknowledged
}

/// Asserts that the stream's versions are dense from 1, that each acknowledged update's
/// address is in it, and that the row is the fold of the stream.
async fn assert_kept<S: ContactStore + contactd_app::AuditLog>(
    store: &S,
    contact_id: &contactd_domain::ContactId,
    acknowledged: impl Iterator<Item = usize>,
) -> usize {
    let stream = history(store, &account(), contact_id.as_str()).await;
    let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=stream.len() as u64).collect::<Vec<_>>());
    for i in acknowledged {
        let email = format!("\"writer{i}@example.com\"");
        assert!(
            stream.iter().any(|e| e.payload_json.contains(&email)),
            "acknowledged update {i} is in the log"
        );
    }
    let folded = contactd_domain::Contact::fold(contactd_app::contact_history(&stream)).unwrap();
    let row = store
        .load_contact(&account(), contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, folded, "the row is the fold of its stream");
    stream.len()
}

pub async fn concurrent_updates_of_one_contact_lose_none<B: Backend>() {
    let backend = B::fresh().await;
    let app = service(backend.store().clone(), 20);
    let contact = added(
        app.add_contact(&ctx(), new_contact("Tom"), None)
            .await
            .unwrap(),
    );
    let mut writers = JoinSet::new();
    for i in 0..50 {
        let (app, id) = (app.clone(), contact.contact_id.clone());
        writers.spawn(async move {
            (
                i,
                app.update_contact(&ctx(), &id, &email_update(i), None)
                    .await,
            )
        });
    }
    // Within one process the service serialises the updates of a contact: none gives up.
    let acknowledged = acknowledged(writers).await;
    assert_eq!(acknowledged.len(), 50);
    let events = assert_kept(
        backend.store(),
        &contact.contact_id,
        acknowledged.into_iter(),
    )
    .await;
    assert_eq!(events, 51, "one event per update, no more");
}

pub async fn two_processes_updating_one_contact_lose_nothing_they_acknowledged<B: Backend>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, 20).await;
    let contact = added(
        processes[0]
            .add_contact(&ctx(), new_contact("Tom"), None)
            .await
            .unwrap(),
    );
    let mut writers = JoinSet::new();
    for i in 0..40 {
        let (app, id) = (processes[i % 2].clone(), contact.contact_id.clone());
        writers.spawn(async move {
            (
                i,
                app.update_contact(&ctx(), &id, &email_update(i), None)
                    .await,
            )
        });
    }
    let acknowledged = acknowledged(writers).await;
    assert!(
        acknowledged.len() >= 20,
        "most calls get through: {}",
        acknowledged.len()
    );
    let events = assert_kept(
        backend.store(),
        &contact.contact_id,
        acknowledged.iter().copied(),
    )
    .await;
    assert_eq!(
        events,
        1 + acknowledged.len(),
        "one event per acknowledged update, no more"
    );
}

pub async fn two_processes_updating_many_contacts_lose_nothing_they_acknowledged<B: Backend>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, 20).await;
    let mut contacts = Vec::new();
    for i in 0..10 {
        let contact = added(
            processes[0]
                .add_contact(&ctx(), new_contact(&letters(i)), None)
                .await
                .unwrap(),
        );
        contacts.push(contact.contact_id);
    }
    let mut writers = JoinSet::new();
    for i in 0..200 {
        let (app, id) = (processes[i % 2].clone(), contacts[i % 10].clone());
        writers.spawn(async move {
            (
                i,
                app.update_contact(&ctx(), &id, &email_update(i), None)
                    .await,
            )
        });
    }
    let acknowledged = acknowledged(writers).await;
    assert!(
        acknowledged.len() >= 100,
        "{} acknowledged",
        acknowledged.len()
    );
    let mut events = 0;
    for (n, id) in contacts.iter().enumerate() {
        let mine = acknowledged.iter().copied().filter(|i| i % 10 == n);
        events += assert_kept(backend.store(), id, mine).await;
    }
    assert_eq!(events, 10 + acknowledged.len());
}

pub async fn a_deleted_contact_frees_its_name_and_its_place_in_the_quota<B: Backend>() {
    let backend = B::fresh().await;
    let processes = two_processes(&backend, 2).await;
    let app = &processes[0];
    let tom = added(
        app.add_contact(&ctx(), new_contact("Tom"), None)
            .await
            .unwrap(),
    );
    app.add_contact(&ctx(), new_contact("Ann"), None)
        .await
        .unwrap();
    let full = app.add_contact(&ctx(), new_contact("Bob"), None).await;
    assert!(
        matches!(full, Err(AppError::ContactQuotaExceeded)),
        "{full:?}"
    );

    // Kept with the members: deleted at once, in the append that records it.
    let deleted = app
        .delete_contact(&ctx(), &tom.contact_id, true, None)
        .await
        .unwrap();
    assert!(
        matches!(
            deleted,
            Outcome::Deleted {
                status: contactd_domain::DeleteStatus::Deleted,
                ..
            }
        ),
        "{deleted:?}"
    );
    let store = backend.store();
    assert_eq!(
        store
            .load_contact(&account(), &tom.contact_id)
            .await
            .unwrap(),
        None,
        "the deleted contact leaves the read model"
    );
    assert_eq!(contacts_listed(store, &account()).await, 1);

    // One place is free and "tom" is free: of six adds racing for both, exactly one wins (none
    // would if either had been kept).
    let mut adders = JoinSet::new();
    for i in 0..6 {
        let app = processes[i % 2].clone();
        let name = if i % 2 == 0 { "Tom" } else { "TOM" };
        adders.spawn(async move { app.add_contact(&ctx(), new_contact(name), None).await });
    }
    let results = within("the adds are answered", adders.join_all()).await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(
                refused,
                AppError::NameAlreadyUsed | AppError::ContactQuotaExceeded
            ),
            "{refused:?}"
        );
    }
    let again = added(won[0].clone());
    assert_ne!(again.contact_id, tom.contact_id);
    assert_eq!(contacts_listed(store, &account()).await, 2);
    let full = app.add_contact(&ctx(), new_contact("Cid"), None).await;
    assert!(
        matches!(full, Err(AppError::ContactQuotaExceeded)),
        "{full:?}"
    );

    // The history stays readable, ending with the delete.
    let stream = history(store, &account(), tom.contact_id.as_str()).await;
    let types: Vec<_> = stream.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["MessageContactAdded", "MessageContactDeleted"]);
    let folded = contactd_domain::Contact::fold(contactd_app::contact_history(&stream)).unwrap();
    assert_eq!(folded.status, ContactStatus::Deleted);
}

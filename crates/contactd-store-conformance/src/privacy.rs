//! Crypto-shredding (ADR 13): personal fields stored sealed under each contact's data key, a
//! forgotten contact's events kept with every personal field redacted, a changed ciphertext
//! refused, and the events stored in clear before encryption sealed in place, once.

use contactd_app::{AppError, AsOf, AuditLog, ContactStore, RecordedEvent, contact_history};
use contactd_domain::{
    Contact, ContactId, ContactName, DomainEvent, EmailAddress, PhoneNumber, UpdateMessageContact,
};
use serde_json::json;

use crate::fixtures::*;
use crate::{Backend, RawEvent};

const NAME: &str = "Forgetme";
const EMAIL: &str = "forget.me@example.org";
const NEW_EMAIL: &str = "forget.me.later@example.org";
const PHONE: &str = "86-13912345678";

/// Whether any of the person's details shows in `text`.
fn names_the_person(text: &str) -> bool {
    [NAME, EMAIL, NEW_EMAIL, "forget.me", "13912345678"]
        .iter()
        .any(|detail| text.contains(detail))
}

async fn events<B: Backend>(backend: &B, contact: &ContactId) -> Vec<RecordedEvent> {
    backend
        .store()
        .stream_page(&account(), contact.as_str(), 0, 100)
        .await
        .unwrap()
}

/// A contact with a name, an email address changed once and a phone number: every kind of
/// personal field.
async fn person<B: Backend>(backend: &B) -> Contact {
    let service = service(backend.store().clone(), 20);
    let mut new = new_contact_at(NAME, EMAIL);
    new.phone_number = Some(PhoneNumber::restore(PHONE).unwrap());
    let contact = added(service.add_contact(&ctx(), new, None).await.unwrap());
    let change = UpdateMessageContact {
        email_address: Some(EmailAddress::parse(NEW_EMAIL).unwrap()),
        ..UpdateMessageContact::default()
    };
    service
        .update_contact(&ctx(), &contact.contact_id, &change, None)
        .await
        .unwrap();
    contact
}

pub async fn a_forgotten_contact_is_gone_and_every_personal_field_of_its_events_reads_redacted<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let service = service(backend.store().clone(), 20);
    let contact = person(&backend).await;
    let id = &contact.contact_id;
    let before = events(&backend, id).await;
    assert!(before.iter().any(|e| names_the_person(&e.payload_json)));

    assert!(
        matches!(
            service.forget_contact(&ctx_of(&other_account()), id).await,
            Err(AppError::ContactNotFound)
        ),
        "another account's contact is not found"
    );
    assert!(matches!(
        service.forget_contact(&ctx(), &ContactId::generate()).await,
        Err(AppError::ContactNotFound)
    ));
    service.forget_contact(&ctx(), id).await.unwrap();

    assert_eq!(
        backend.store().load_contact(&account(), id).await.unwrap(),
        None
    );
    let after = events(&backend, id).await;
    let types: Vec<&str> = after.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "MessageContactAdded",
            "EmailAddressChangeRequested",
            "MessageContactDeleted",
            "MessageContactForgotten"
        ],
        "the events stay; the live contact was deleted first"
    );
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (old.event_id, old.schema_version),
            (new.event_id, new.schema_version)
        );
    }
    for event in &after {
        assert!(
            !names_the_person(&event.payload_json),
            "{} still names the person: {}",
            event.event_type,
            event.payload_json
        );
    }
    let added: serde_json::Value = serde_json::from_str(&after[0].payload_json).unwrap();
    assert_eq!(
        (
            &added["name"],
            &added["email_address"],
            &added["phone_number"],
            &added["title"]
        ),
        (
            &json!("[redacted]"),
            &json!("[redacted]"),
            &json!("[redacted]"),
            &json!("Other")
        ),
        "the personal fields read redacted, the others as they were"
    );
    let as_of = backend
        .store()
        .stream_as_of(&account(), id.as_str(), AsOf::Version(1))
        .await
        .unwrap();
    let then = Contact::fold(contact_history(&as_of)).unwrap();
    assert!(then.name.is_redacted() && then.email_address.is_redacted());
    assert!(then.phone_number.unwrap().is_redacted());

    let models = backend.read_models().await;
    assert!(
        !names_the_person(&serde_json::to_string(&models).unwrap()),
        "no read model keeps the person"
    );

    // Forgetting again changes nothing; the name is free for someone else.
    service.forget_contact(&ctx(), id).await.unwrap();
    assert_eq!(events(&backend, id).await.len(), after.len());
    let again = service
        .add_contact(
            &ctx(),
            new_contact_at(NAME, "someone.else@example.com"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(added_contact_name(again), ContactName::parse(NAME).unwrap());
}

fn added_contact_name(outcome: contactd_app::Outcome) -> ContactName {
    added(outcome).name
}

pub async fn personal_fields_are_stored_sealed_and_a_changed_byte_is_refused_not_read<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let contact = person(&backend).await;
    let stored = events(&backend, &contact.contact_id).await;
    for event in &stored {
        let raw = backend.stored_payload(event.event_id).await;
        assert!(!names_the_person(&raw), "stored in clear: {raw}");
    }
    assert!(names_the_person(&stored[0].payload_json), "and read opened");

    // One character of the sealed name changed: the read is refused, naming the event.
    let target = stored[0].event_id;
    let mut payload: serde_json::Value =
        serde_json::from_str(&backend.stored_payload(target).await).unwrap();
    let sealed = payload["name"].as_str().unwrap().to_owned();
    let flipped: String = sealed
        .char_indices()
        .map(|(i, c)| match (i, c) {
            (4, 'A') => 'B',
            (4, _) => 'A',
            _ => c,
        })
        .collect();
    payload["name"] = json!(flipped);
    backend
        .overwrite_payload(target, &payload.to_string())
        .await;
    let refused = backend
        .store()
        .stream_page(&account(), contact.contact_id.as_str(), 0, 100)
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains(&target.to_string()) && message.contains("name"),
        "the refusal names the event and the field: {message}"
    );
    assert!(!message.contains(NAME));
}

fn clear_stream(contact: &str) -> Vec<RawEvent> {
    let at = now() - chrono::Duration::days(30);
    let row = |version: u64, event_type: &str, schema_version: i32, payload| RawEvent {
        event_id: uuid::Uuid::new_v4(),
        account_id: ACCOUNT.into(),
        stream_id: contact.into(),
        stream_version: version,
        event_type: event_type.into(),
        schema_version,
        payload,
        request_id: "req-clear".into(),
        caller: format!("account:{ACCOUNT}"),
        correlation_id: "corr-clear".into(),
        causation_id: "req-clear".into(),
        recorded_at: at + chrono::Duration::seconds(version as i64),
    };
    vec![
        row(
            1,
            "MessageContactAdded",
            1,
            json!({"contact_id": contact, "account_id": ACCOUNT, "name": NAME, "email_address": EMAIL,
                   "phone_number": PHONE, "title": "CEO", "message_types": ["FaultMessage"]}),
        ),
        row(2, "TitleChanged", 1, json!({"title": "Other"})),
        row(
            3,
            "EmailAddressChangeRequested",
            1,
            json!({"email_address": NEW_EMAIL}),
        ),
    ]
}

fn without_schema(events: &[RecordedEvent]) -> Vec<(String, DomainEvent)> {
    events
        .iter()
        .map(|e| (e.payload_json.clone(), e.event.clone()))
        .collect()
}

pub async fn events_stored_in_clear_are_sealed_in_place_once_and_read_the_same<B: Backend>() {
    let backend = B::fresh().await;
    let contact = ContactId::parse("c-ClearTextContac1").unwrap();
    let rows = clear_stream(contact.as_str());
    for row in rows.clone() {
        backend.insert_raw_event(row).await;
    }
    let before = events(&backend, &contact).await;

    assert_eq!(
        backend.seal_clear_events().await,
        2,
        "the add and the change of address"
    );
    let after = events(&backend, &contact).await;
    assert_eq!(
        without_schema(&after),
        without_schema(&before),
        "read as before"
    );
    for row in &rows {
        let stored = backend.stored_payload(row.event_id).await;
        assert!(!names_the_person(&stored), "stored sealed now: {stored}");
    }
    assert_eq!(backend.seal_clear_events().await, 0, "sealed once only");
    assert!(
        backend.try_update_event(rows[0].event_id).await.is_err(),
        "and the log stays append-only for anything else"
    );
}

pub async fn forgetting_a_contact_stored_in_clear_seals_its_history_too<B: Backend>() {
    let backend = B::fresh().await;
    let service = service(backend.store().clone(), 20);
    let contact = ContactId::parse("c-ClearTextContac2").unwrap();
    let rows = clear_stream(contact.as_str());
    for row in rows.clone() {
        backend.insert_raw_event(row).await;
    }
    service.forget_contact(&ctx(), &contact).await.unwrap();
    for row in &rows {
        let stored = backend.stored_payload(row.event_id).await;
        assert!(!names_the_person(&stored), "still in clear: {stored}");
    }
    for event in events(&backend, &contact).await {
        assert!(!names_the_person(&event.payload_json));
    }
}

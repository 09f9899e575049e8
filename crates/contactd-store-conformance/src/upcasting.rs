//! Event schema evolution: payloads stored in an older schema version, written as raw rows,
//! read back as today's events; an unknown version is an error, never a guess.

use chrono::{DateTime, Duration, Utc};
use contactd_app::{AuditLog, ContactStore, EventMetadata};
use contactd_domain::{
    AccountId, Contact, ContactEvent, ContactId, ContactName, ContactStatus, DomainEvent,
    EmailAddress, MessageTypes, PhoneNumber, Title,
};
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::{Backend, RawEvent};

const CONTACT: &str = "c-Up1castV1Contact";
const REQUEST: &str = "0F2C4D63-0B7E-4C44-9C52-31D1A1E2B7A1";

/// One event row of the contact's stream as an old version of the service would have written
/// it.
fn raw(
    stream_version: u64,
    event_type: &str,
    schema_version: i32,
    payload: Value,
    recorded_at: DateTime<Utc>,
) -> RawEvent {
    RawEvent {
        event_id: uuid::Uuid::new_v4(),
        account_id: ACCOUNT.into(),
        stream_id: CONTACT.into(),
        stream_version,
        event_type: event_type.into(),
        schema_version,
        payload,
        request_id: REQUEST.into(),
        caller: format!("account:{ACCOUNT}"),
        correlation_id: "corr-v1".into(),
        causation_id: REQUEST.into(),
        recorded_at,
    }
}

fn added_v1() -> Value {
    json!({
        "contact_id": CONTACT,
        "account_id": ACCOUNT,
        "name": "Tom",
        "email_address": "tom@example.com",
        "phone_number": "86-13912345678",
        "title": "CEO",
        "message_types": ["ServiceMessage", "FaultMessage"],
    })
}

fn types() -> MessageTypes {
    MessageTypes::parse(["FaultMessage", "ServiceMessage"])
        .expect("known message types")
        .expect("at least one")
}

fn times() -> (DateTime<Utc>, DateTime<Utc>) {
    let created = now() - Duration::days(400);
    (created, created + Duration::seconds(90))
}

async fn read<B: Backend>(
    backend: &B,
    account: &AccountId,
) -> Result<Vec<contactd_app::RecordedEvent>, contactd_app::StoreError> {
    backend.store().stream_page(account, CONTACT, 0, 100).await
}

pub async fn a_version_1_creation_and_title_change_read_as_todays_events<B: Backend>() {
    let backend = B::fresh().await;
    let (created, retitled) = times();
    backend
        .insert_raw_event(raw(1, "MessageContactAdded", 1, added_v1(), created))
        .await;
    backend
        .insert_raw_event(raw(
            2,
            "TitleChanged",
            1,
            json!({"title": "ProjectDirector"}),
            retitled,
        ))
        .await;

    let stream = read(&backend, &account()).await.unwrap();
    assert_eq!(stream.len(), 2);
    let contact_id = ContactId::parse(CONTACT).unwrap();
    assert_eq!(
        stream[0].event,
        DomainEvent::Contact(ContactEvent::MessageContactAdded {
            contact_id: contact_id.clone(),
            account_id: account(),
            name: ContactName::parse("Tom").unwrap(),
            email_address: EmailAddress::parse("tom@example.com").unwrap(),
            phone_number: Some(PhoneNumber::restore("86-13912345678").unwrap()),
            title: Title::Ceo,
            message_types: types(),
        })
    );
    assert_eq!(
        stream[1].event,
        DomainEvent::Contact(ContactEvent::TitleChanged {
            title: Title::ProjectDirector
        })
    );
    assert_eq!(
        (
            stream[0].event_type.as_str(),
            stream[0].schema_version,
            stream[0].stream_version
        ),
        ("MessageContactAdded", 1, 1),
        "the stored version is reported as stored"
    );
    let stored: Value = serde_json::from_str(&stream[0].payload_json).unwrap();
    assert_eq!(stored, added_v1(), "the payload as stored, not upcast");
    assert_eq!(
        stream[0].metadata,
        EventMetadata {
            request_id: REQUEST.into(),
            account_id: account(),
            caller: format!("account:{ACCOUNT}"),
            correlation_id: "corr-v1".into(),
            causation_id: REQUEST.into(),
            recorded_at: created,
        }
    );
    assert_eq!(stream[1].metadata.recorded_at, retitled);
    // The log reads it the same way.
    assert_eq!(whole_log(backend.store()).await, stream);

    let expected = Contact {
        contact_id,
        account_id: account(),
        name: ContactName::parse("Tom").unwrap(),
        email_address: EmailAddress::parse("tom@example.com").unwrap(),
        active_email_address: None,
        phone_number: Some(PhoneNumber::restore("86-13912345678").unwrap()),
        active_phone_number: None,
        title: Title::ProjectDirector,
        message_types: types(),
        status: ContactStatus::Verifying,
        email_code: None,
        phone_code: None,
        members: Vec::new(),
        deletion: None,
        created_at: created,
        updated_at: retitled,
        version: 2,
    };
    let folded = Contact::fold(contactd_app::contact_history(&stream));
    assert_eq!(folded.as_ref(), Some(&expected));

    // A rebuild reads the old versions too: the read model becomes the same fold, with its
    // name claimed.
    backend.rebuild_read_models().await;
    let store = backend.store();
    let loaded = store
        .load_contact(&account(), &expected.contact_id)
        .await
        .unwrap();
    assert_eq!(loaded, Some(expected));
    let taken = service(store.clone(), 20)
        .add_contact(&ctx(), new_contact("TOM"), None)
        .await;
    assert!(
        matches!(taken, Err(contactd_app::AppError::NameAlreadyUsed)),
        "{taken:?}"
    );
}

pub async fn a_version_1_creation_takes_its_account_from_the_envelope<B: Backend>() {
    let backend = B::fresh().await;
    let (created, _) = times();
    // The repeated account id of version 1 is not what decides: the envelope's is the truth.
    let mut payload = added_v1();
    payload["account_id"] = json!("999");
    backend
        .insert_raw_event(raw(1, "MessageContactAdded", 1, payload, created))
        .await;

    let stream = read(&backend, &account()).await.unwrap();
    let Some(ContactEvent::MessageContactAdded { account_id, .. }) = stream[0].contact_event()
    else {
        panic!("a creation: {:?}", stream[0].event)
    };
    assert_eq!(account_id, &account());
    let other = AccountId::parse("999").unwrap();
    assert!(
        read(&backend, &other).await.unwrap().is_empty(),
        "the payload's account does not make it that account's contact"
    );
}

pub async fn an_unknown_schema_version_fails_the_read_rather_than_being_guessed<B: Backend>() {
    let backend = B::fresh().await;
    let (created, retitled) = times();
    backend
        .insert_raw_event(raw(1, "MessageContactAdded", 1, added_v1(), created))
        .await;
    // A title change from a future version of the service, in a shape this one can read.
    backend
        .insert_raw_event(raw(
            2,
            "TitleChanged",
            99,
            json!({"title": "ProjectDirector"}),
            retitled,
        ))
        .await;

    let error = read(&backend, &account())
        .await
        .expect_err("version 99 of TitleChanged is not known");
    let message = error.to_string();
    assert!(
        message.contains("TitleChanged") && message.contains("99"),
        "{message}"
    );
    assert!(!error.is_transient(), "retrying will not mend it");
    settled(backend.store()).await;
    let log = contactd_app::EventLog::read_log(
        backend.store(),
        contactd_app::LogPosition::START,
        None,
        100,
    )
    .await;
    assert!(log.is_err(), "the log read fails too: {log:?}");
}

pub async fn a_version_1_creation_with_a_field_missing_fails_the_read<B: Backend>() {
    let backend = B::fresh().await;
    let (created, _) = times();
    let mut payload = added_v1();
    payload.as_object_mut().unwrap().remove("title");
    backend
        .insert_raw_event(raw(1, "MessageContactAdded", 1, payload, created))
        .await;

    assert!(read(&backend, &account()).await.is_err());
}

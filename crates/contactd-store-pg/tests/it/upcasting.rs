//! Event schema evolution: payloads stored in an older schema version, written here as raw
//! JSON rows, read back as today's events; an unknown version is an error, never a guess.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use contactd_app::{ContactStore, EventMetadata};
use contactd_domain::{
    AccountId, Contact, ContactEvent, ContactId, ContactName, ContactStatus, DomainEvent,
    EmailAddress, MessageTypes, PhoneNumber, Title,
};
use contactd_store_pg::PgStore;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::*;

const CONTACT: &str = "c-Up1castV1Contact";
const REQUEST: &str = "0F2C4D63-0B7E-4C44-9C52-31D1A1E2B7A1";

/// Stores one event row as an old version of the service would have written it.
async fn insert_raw(
    pool: &PgPool,
    account: &str,
    stream_version: i64,
    event_type: &str,
    schema_version: i32,
    payload: Value,
    recorded_at: DateTime<Utc>,
) {
    sqlx::query(
        "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
         schema_version, payload, request_id, caller, correlation_id, causation_id, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11, $12)",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(account)
    .bind(CONTACT)
    .bind(stream_version)
    .bind(event_type)
    .bind(schema_version)
    .bind(payload.to_string())
    .bind(REQUEST)
    .bind(format!("account:{account}"))
    .bind("corr-v1")
    .bind(REQUEST)
    .bind(recorded_at)
    .execute(pool)
    .await
    .expect("insert a raw event");
}

fn added_v1(account: &str) -> Value {
    json!({
        "contact_id": CONTACT,
        "account_id": account,
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
    let created = Utc::now().trunc_subsecs(6) - Duration::days(400);
    (created, created + Duration::seconds(90))
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_version_1_creation_and_title_change_read_as_todays_events(pool: PgPool) {
    let (created, retitled) = times();
    insert_raw(
        &pool,
        ACCOUNT,
        1,
        "MessageContactAdded",
        1,
        added_v1(ACCOUNT),
        created,
    )
    .await;
    insert_raw(
        &pool,
        ACCOUNT,
        2,
        "TitleChanged",
        1,
        json!({"title": "ProjectDirector"}),
        retitled,
    )
    .await;
    let store = PgStore::new(pool.clone());

    let stream = store.read_stream(&account(), CONTACT).await.unwrap();
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
    assert_eq!(
        stored,
        added_v1(ACCOUNT),
        "the payload as stored, not upcast"
    );
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

    // A rebuild reads the old versions too: the read model becomes the same fold.
    contactd_store_pg::rebuild_contacts(&store).await.unwrap();
    let loaded = store
        .load_contact(&account(), &expected.contact_id)
        .await
        .unwrap();
    assert_eq!(loaded, Some(expected));
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_version_1_creation_takes_its_account_from_the_envelope(pool: PgPool) {
    let (created, _) = times();
    // The repeated account id of version 1 is not what decides: the envelope's is the truth.
    let mut payload = added_v1(ACCOUNT);
    payload["account_id"] = json!("999");
    insert_raw(
        &pool,
        ACCOUNT,
        1,
        "MessageContactAdded",
        1,
        payload,
        created,
    )
    .await;
    let store = PgStore::new(pool);

    let stream = store.read_stream(&account(), CONTACT).await.unwrap();
    let Some(ContactEvent::MessageContactAdded { account_id, .. }) = stream[0].contact_event()
    else {
        panic!("a creation: {:?}", stream[0].event)
    };
    assert_eq!(account_id, &account());
    let other = AccountId::parse("999").unwrap();
    assert!(
        store.read_stream(&other, CONTACT).await.unwrap().is_empty(),
        "the payload's account does not make it that account's contact"
    );
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn an_unknown_schema_version_fails_the_read_rather_than_being_guessed(pool: PgPool) {
    let (created, retitled) = times();
    insert_raw(
        &pool,
        ACCOUNT,
        1,
        "MessageContactAdded",
        1,
        added_v1(ACCOUNT),
        created,
    )
    .await;
    // A title change from a future version of the service, in a shape this one can read.
    insert_raw(
        &pool,
        ACCOUNT,
        2,
        "TitleChanged",
        99,
        json!({"title": "ProjectDirector"}),
        retitled,
    )
    .await;
    let store = PgStore::new(pool);

    let error = store
        .read_stream(&account(), CONTACT)
        .await
        .expect_err("version 99 of TitleChanged is not known");
    let message = error.to_string();
    assert!(
        message.contains("TitleChanged") && message.contains("99"),
        "{message}"
    );
    assert!(!error.is_transient(), "retrying will not mend it");
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_version_1_creation_with_a_field_missing_fails_the_read(pool: PgPool) {
    let (created, _) = times();
    let mut payload = added_v1(ACCOUNT);
    payload.as_object_mut().unwrap().remove("title");
    insert_raw(
        &pool,
        ACCOUNT,
        1,
        "MessageContactAdded",
        1,
        payload,
        created,
    )
    .await;
    let store = PgStore::new(pool);

    assert!(store.read_stream(&account(), CONTACT).await.is_err());
}

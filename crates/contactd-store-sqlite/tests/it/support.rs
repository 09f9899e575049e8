//! Building contacts, commands and appends for the store tests, and a store on a database
//! file of each test's own.

use chrono::{SubsecRound, Utc};
use contactd_app::{Append, ContactStore, EventMetadata, NameClaim, NewEvent};
use contactd_domain::{
    AccountId, AddMessageContact, Contact, ContactEvent, ContactId, ContactName, EmailAddress,
    MessageTypes, Title,
};
use contactd_store_sqlite::{SqliteSettings, SqliteStore};
use tempfile::TempDir;

pub const ACCOUNT: &str = "1234567890123456";

pub fn account() -> AccountId {
    AccountId::parse(ACCOUNT).unwrap()
}

/// A store on a fresh database in a directory of its own (removed with the `TempDir`).
pub async fn fresh() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contactd.db"), &SqliteSettings::default())
        .await
        .unwrap();
    (store, dir)
}

/// A name made of letters only, distinct for each `i`.
pub fn letters(i: usize) -> String {
    let a = char::from(b'a' + (i / 26) as u8);
    let b = char::from(b'a' + (i % 26) as u8);
    format!("Name{a}{b}")
}

pub fn metadata() -> EventMetadata {
    EventMetadata {
        request_id: "9B34724D-54B0-4A51-B34D-4512372FE1BE".into(),
        account_id: account(),
        caller: "account:1234567890123456".into(),
        correlation_id: "corr".into(),
        causation_id: "cause".into(),
        recorded_at: Utc::now().trunc_subsecs(6),
    }
}

/// A contact's first event and the state it creates, recorded at the metadata's time.
pub fn created(name: &str, metadata: &EventMetadata) -> (NewEvent, Contact) {
    let event = Contact::add(AddMessageContact {
        contact_id: ContactId::generate(),
        account_id: account(),
        name: ContactName::parse(name).unwrap(),
        email_address: EmailAddress::parse("someone@example.com").unwrap(),
        phone_number: None,
        title: Title::Other,
        message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
    });
    let contact = Contact::created(&event, metadata.recorded_at).unwrap();
    (
        NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event,
        },
        contact,
    )
}

/// The append that stores a new contact, against a quota of 20.
pub fn creation<'a>(
    contact: &'a Contact,
    events: &'a [NewEvent],
    metadata: &'a EventMetadata,
) -> Append<'a> {
    Append {
        contact,
        expected_version: 0,
        events,
        metadata,
        name_claim: NameClaim::Claim {
            key: contact.name.uniqueness_key(),
        },
        quota_limit: Some(20),
        remember: None,
        code: None,
    }
}

/// An update decided on `state`: its events and the state after them.
pub fn decided(
    state: &Contact,
    events: Vec<ContactEvent>,
    at: &EventMetadata,
) -> (Vec<NewEvent>, Contact) {
    let mut after = state.clone();
    let events = events
        .into_iter()
        .map(|event| {
            after.apply(&event, at.recorded_at);
            NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event,
            }
        })
        .collect();
    (events, after)
}

/// A plain update: no claim, no quota, no token, no code.
pub fn update<'a>(
    after: &'a Contact,
    expected_version: u64,
    events: &'a [NewEvent],
    metadata: &'a EventMetadata,
) -> Append<'a> {
    Append {
        contact: after,
        expected_version,
        events,
        metadata,
        name_claim: NameClaim::Keep,
        quota_limit: None,
        remember: None,
        code: None,
    }
}

/// Stores `n` new contacts (each at version 1), one append each.
pub async fn stored_contacts(store: &SqliteStore, n: usize) -> Vec<Contact> {
    let metadata = metadata();
    let mut contacts = Vec::with_capacity(n);
    for i in 0..n {
        let (added, contact) = created(&letters(i), &metadata);
        store
            .append(creation(&contact, std::slice::from_ref(&added), &metadata))
            .await
            .unwrap();
        contacts.push(contact);
    }
    contacts
}

/// How many events the log holds, and its positions in order.
pub async fn positions(store: &SqliteStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT global_position FROM events ORDER BY global_position")
        .fetch_all(store.read_pool())
        .await
        .unwrap()
}

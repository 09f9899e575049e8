//! Building contacts, commands and appends for the PostgreSQL-only store tests.

use chrono::{SubsecRound, Utc};
use contactd_app::{
    Append, CallContext, ContactStore, EventMetadata, NameClaim, NewContact, NewEvent,
};
use contactd_domain::{
    AccountId, AddMessageContact, Contact, ContactId, ContactName, EmailAddress, MessageTypes,
    Title,
};
use contactd_store_pg::PgStore;

pub const ACCOUNT: &str = "1234567890123456";

pub fn account() -> AccountId {
    AccountId::parse(ACCOUNT).unwrap()
}

pub fn ctx() -> CallContext {
    CallContext::new(account(), None)
}

pub fn new_contact(name: &str) -> NewContact {
    NewContact {
        name: ContactName::parse(name).unwrap(),
        email_address: EmailAddress::parse("someone@example.com").unwrap(),
        phone_number: None,
        title: Title::Other,
        message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
    }
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

/// The append that stores a new contact.
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

/// Stores `n` new contacts (each at version 1), one append each.
pub async fn stored_contacts(store: &PgStore, n: usize) -> Vec<Contact> {
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

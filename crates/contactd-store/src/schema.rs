//! The persisted event format: one versioned serde type per event type, explicit conversion to
//! and from the domain's events, and the upcasting seam where old schema versions are read.
//! Domain events are not `Serialize`; what is stored is decided here alone.

use contactd_app::StoreError;
use contactd_domain::{
    AccountId, ContactEvent, ContactId, ContactName, EmailAddress, MessageTypes, ParameterError,
    PhoneNumber, Title,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version 1 of `MessageContactAdded` repeated the account id, which every event's envelope
/// already carries; version 2 leaves it out.
#[derive(Debug, Serialize, Deserialize)]
struct MessageContactAddedV1 {
    contact_id: String,
    account_id: String,
    name: String,
    email_address: String,
    phone_number: Option<String>,
    title: String,
    message_types: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageContactAddedV2 {
    contact_id: String,
    name: String,
    email_address: String,
    phone_number: Option<String>,
    title: String,
    message_types: Vec<String>,
}

impl MessageContactAddedV1 {
    /// The upcaster: v1 → v2 drops the repeated account id (the envelope's is the truth; they
    /// were always equal).
    fn upcast(self) -> MessageContactAddedV2 {
        MessageContactAddedV2 {
            contact_id: self.contact_id,
            name: self.name,
            email_address: self.email_address,
            phone_number: self.phone_number,
            title: self.title,
            message_types: self.message_types,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageContactRenamedV1 {
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EmailAddressChangeRequestedV1 {
    email_address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PhoneNumberChangeRequestedV1 {
    phone_number: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PhoneNumberRemovedV1 {}

#[derive(Debug, Serialize, Deserialize)]
struct TitleChangedV1 {
    title: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageTypesChangedV1 {
    message_types: Vec<String>,
}

/// An event as it is stored: type name, schema version (the current one of its type), JSON
/// payload.
pub fn encode_event(event: &ContactEvent) -> (&'static str, i32, Value) {
    let (schema_version, payload) = match event {
        ContactEvent::MessageContactAdded {
            contact_id,
            account_id: _,
            name,
            email_address,
            phone_number,
            title,
            message_types,
        } => (
            2,
            to_value(MessageContactAddedV2 {
                contact_id: contact_id.as_str().to_owned(),
                name: name.as_str().to_owned(),
                email_address: email_address.as_str().to_owned(),
                phone_number: phone_number.as_ref().map(|p| p.as_str().to_owned()),
                title: title.as_str().to_owned(),
                message_types: type_names(*message_types),
            }),
        ),
        ContactEvent::MessageContactRenamed { name } => (
            1,
            to_value(MessageContactRenamedV1 {
                name: name.as_str().to_owned(),
            }),
        ),
        ContactEvent::EmailAddressChangeRequested { email_address } => (
            1,
            to_value(EmailAddressChangeRequestedV1 {
                email_address: email_address.as_str().to_owned(),
            }),
        ),
        ContactEvent::PhoneNumberChangeRequested { phone_number } => (
            1,
            to_value(PhoneNumberChangeRequestedV1 {
                phone_number: phone_number.as_str().to_owned(),
            }),
        ),
        ContactEvent::PhoneNumberRemoved => (1, to_value(PhoneNumberRemovedV1 {})),
        ContactEvent::TitleChanged { title } => (
            1,
            to_value(TitleChangedV1 {
                title: title.as_str().to_owned(),
            }),
        ),
        ContactEvent::MessageTypesChanged { message_types } => (
            1,
            to_value(MessageTypesChangedV1 {
                message_types: type_names(*message_types),
            }),
        ),
    };
    (event.event_type(), schema_version, payload)
}

/// Reads a stored event of any known schema version as the current domain event. This is the
/// upcasting seam: an older version is converted here, field by field, to today's meaning.
///
/// `envelope_account` is the account of the event's envelope, which version 1 of
/// `MessageContactAdded` repeated and version 2 takes from there.
pub fn decode_event(
    event_type: &str,
    schema_version: i32,
    payload: Value,
    envelope_account: &str,
) -> Result<ContactEvent, StoreError> {
    let corrupt = |reason: String| {
        StoreError::internal(
            format!("stored event {event_type} v{schema_version} is unreadable: {reason}"),
            None,
        )
    };
    let invalid = |e: ParameterError| corrupt(e.to_string());
    match (event_type, schema_version) {
        ("MessageContactAdded", 1) => {
            let p: MessageContactAddedV1 = from_value(payload).map_err(corrupt)?;
            added(p.upcast(), envelope_account).map_err(corrupt)
        }
        ("MessageContactAdded", 2) => {
            let p: MessageContactAddedV2 = from_value(payload).map_err(corrupt)?;
            added(p, envelope_account).map_err(corrupt)
        }
        ("MessageContactRenamed", 1) => {
            let p: MessageContactRenamedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::MessageContactRenamed {
                name: ContactName::parse(&p.name).map_err(invalid)?,
            })
        }
        ("EmailAddressChangeRequested", 1) => {
            let p: EmailAddressChangeRequestedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::EmailAddressChangeRequested {
                email_address: EmailAddress::parse(&p.email_address).map_err(invalid)?,
            })
        }
        ("PhoneNumberChangeRequested", 1) => {
            let p: PhoneNumberChangeRequestedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::PhoneNumberChangeRequested {
                phone_number: PhoneNumber::restore(&p.phone_number).map_err(invalid)?,
            })
        }
        ("PhoneNumberRemoved", 1) => {
            let _: PhoneNumberRemovedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::PhoneNumberRemoved)
        }
        ("TitleChanged", 1) => {
            let p: TitleChangedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::TitleChanged {
                title: Title::parse(&p.title).map_err(invalid)?,
            })
        }
        ("MessageTypesChanged", 1) => {
            let p: MessageTypesChangedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::MessageTypesChanged {
                message_types: message_types(&p.message_types).map_err(invalid)?,
            })
        }
        _ => Err(corrupt("unknown event type or schema version".to_owned())),
    }
}

fn added(p: MessageContactAddedV2, account: &str) -> Result<ContactEvent, String> {
    let invalid = |e: ParameterError| e.to_string();
    Ok(ContactEvent::MessageContactAdded {
        contact_id: ContactId::parse(&p.contact_id).map_err(invalid)?,
        account_id: AccountId::parse(account).map_err(|e| e.to_string())?,
        name: ContactName::parse(&p.name).map_err(invalid)?,
        email_address: EmailAddress::parse(&p.email_address).map_err(invalid)?,
        phone_number: p
            .phone_number
            .as_deref()
            .map(PhoneNumber::restore)
            .transpose()
            .map_err(invalid)?,
        title: Title::parse(&p.title).map_err(invalid)?,
        message_types: message_types(&p.message_types).map_err(invalid)?,
    })
}

pub(crate) fn type_names(types: MessageTypes) -> Vec<String> {
    types.iter().map(|t| t.as_str().to_owned()).collect()
}

pub(crate) fn message_types(names: &[String]) -> Result<MessageTypes, ParameterError> {
    MessageTypes::parse(names.iter().map(String::as_str))?.ok_or(ParameterError::Missing(
        contactd_domain::Field::MessageTypes,
    ))
}

fn to_value(payload: impl Serialize) -> Value {
    // These payload types are plain structs of strings: serialising them cannot fail.
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

fn from_value<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, String> {
    serde_json::from_value(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        let name = ContactName::parse("Tom").unwrap();
        let events = [
            ContactEvent::MessageContactAdded {
                contact_id: ContactId::generate(),
                account_id: AccountId::parse("1").unwrap(),
                name: name.clone(),
                email_address: EmailAddress::parse("a@b.cn").unwrap(),
                phone_number: Some(PhoneNumber::restore("86-13912345678").unwrap()),
                title: Title::Ceo,
                message_types: MessageTypes::parse(["FaultMessage", "ServiceMessage"])
                    .unwrap()
                    .unwrap(),
            },
            ContactEvent::MessageContactRenamed { name },
            ContactEvent::EmailAddressChangeRequested {
                email_address: EmailAddress::parse("c@d.cn").unwrap(),
            },
            ContactEvent::PhoneNumberChangeRequested {
                phone_number: PhoneNumber::restore("86-18612345678").unwrap(),
            },
            ContactEvent::PhoneNumberRemoved,
            ContactEvent::TitleChanged {
                title: Title::Other,
            },
            ContactEvent::MessageTypesChanged {
                message_types: MessageTypes::parse(["ProductMessage"]).unwrap().unwrap(),
            },
        ];
        for event in events {
            let (event_type, version, payload) = encode_event(&event);
            assert_eq!(
                decode_event(event_type, version, payload, "1").unwrap(),
                event
            );
        }
    }

    #[test]
    fn unknown_types_and_versions_are_reported_not_guessed() {
        assert!(
            decode_event("TitleChanged", 99, serde_json::json!({"title": "CEO"}), "1").is_err()
        );
        assert!(decode_event("Nonsense", 1, serde_json::json!({}), "1").is_err());
        assert!(
            decode_event("TitleChanged", 1, serde_json::json!({"title": "Boss"}), "1").is_err()
        );
    }
}

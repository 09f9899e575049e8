//! The persisted event format: one versioned serde type per event type, explicit conversion to
//! and from the domain's events, and the upcasting seam where old schema versions are read.
//! Domain events are not `Serialize`; what is stored is decided here alone.

use chrono::{DateTime, Utc};
use contactd_app::StoreError;
use contactd_domain::{
    AccountId, Channel, ContactEvent, ContactId, ContactName, DeliveryEvent, DeliveryOutcome,
    DirectoryEvent, DomainEvent, EmailAddress, FailReason, FolderId, MemberAccountId, MemberId,
    MessageTypes, ParameterError, PhoneNumber, ResourceDirectoryId, Title, VerificationId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::sealing::{DataKey, REDACTED, names_a_person, seal_payload};

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

#[derive(Debug, Serialize, Deserialize)]
struct EmailVerificationRequestedV1 {
    verification_id: Uuid,
    email_address: String,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PhoneVerificationRequestedV1 {
    verification_id: Uuid,
    phone_number: String,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EmailAddressVerifiedV1 {
    verification_id: Uuid,
    email_address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PhoneNumberVerifiedV1 {
    verification_id: Uuid,
    phone_number: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EmailAddressChangeCancelledV1 {
    email_address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PhoneNumberChangeCancelledV1 {
    phone_number: String,
}

/// `MembersAssociated` and `MembersDisassociated`: the targets, as their ids.
#[derive(Debug, Serialize, Deserialize)]
struct MembersV1 {
    members: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContactDeletionStartedV1 {
    deletion_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContactDeletionFailedV1 {
    deletion_id: Uuid,
    fail_reasons: Vec<FailReasonV1>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FailReasonV1 {
    account_id: String,
    message_types: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageContactDeletedV1 {}

/// Forgetting names no one: who asked and when are the event's metadata.
#[derive(Debug, Serialize, Deserialize)]
struct MessageContactForgottenV1 {}

#[derive(Debug, Serialize, Deserialize)]
struct ResourceDirectoryCreatedV1 {
    resource_directory_id: String,
}

/// `FolderRegistered` (with its parent, `None` for the root) and `FolderRemoved`.
#[derive(Debug, Serialize, Deserialize)]
struct FolderV1 {
    folder_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
}

/// `MemberRegistered` and `MemberRemoved` (its folder, `None` for the root).
#[derive(Debug, Serialize, Deserialize)]
struct MemberV1 {
    account_id: String,
    folder_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MemberMovedV1 {
    account_id: String,
    from: Option<String>,
    to: Option<String>,
}

/// The payload of the three delivery events; `reason` and `retry_at` only where they apply.
#[derive(Debug, Serialize, Deserialize)]
struct VerificationMessageV1 {
    message_id: Uuid,
    contact_id: String,
    channel: String,
    attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_at: Option<DateTime<Utc>>,
}

/// An event as it is stored: type name, schema version (the current one of its type), JSON
/// payload.
pub fn encode_event(event: &DomainEvent) -> (&'static str, i32, Value) {
    match event {
        DomainEvent::Contact(event) => encode_contact_event(event),
        DomainEvent::Directory(event) => encode_directory_event(event),
        DomainEvent::Delivery(event) => encode_delivery_event(event),
    }
}

/// A directory's event as it is stored.
pub fn encode_directory_event(event: &DirectoryEvent) -> (&'static str, i32, Value) {
    let name = |f: &Option<FolderId>| f.as_ref().map(|f| f.as_str().to_owned());
    let payload = match event {
        DirectoryEvent::ResourceDirectoryCreated {
            resource_directory_id,
        } => to_value(ResourceDirectoryCreatedV1 {
            resource_directory_id: resource_directory_id.as_str().to_owned(),
        }),
        DirectoryEvent::FolderRegistered {
            folder_id,
            parent_id,
        } => to_value(FolderV1 {
            folder_id: folder_id.as_str().to_owned(),
            parent_id: name(parent_id),
        }),
        DirectoryEvent::FolderRemoved { folder_id } => to_value(FolderV1 {
            folder_id: folder_id.as_str().to_owned(),
            parent_id: None,
        }),
        DirectoryEvent::MemberRegistered {
            account_id,
            folder_id,
        }
        | DirectoryEvent::MemberRemoved {
            account_id,
            folder_id,
        } => to_value(MemberV1 {
            account_id: account_id.as_str().to_owned(),
            folder_id: name(folder_id),
        }),
        DirectoryEvent::MemberMoved {
            account_id,
            from,
            to,
        } => to_value(MemberMovedV1 {
            account_id: account_id.as_str().to_owned(),
            from: name(from),
            to: name(to),
        }),
    };
    (event.event_type(), 1, payload)
}

fn decode_directory(event_type: &str, payload: Value) -> Result<DirectoryEvent, String> {
    let folder = |raw: Option<String>| {
        raw.as_deref()
            .map(FolderId::parse)
            .transpose()
            .map_err(|e| e.to_string())
    };
    let folder_id = |raw: &str| FolderId::parse(raw).map_err(|e| e.to_string());
    let member = |raw: &str| MemberAccountId::parse(raw).map_err(|e| e.to_string());
    Ok(match event_type {
        "ResourceDirectoryCreated" => {
            let p: ResourceDirectoryCreatedV1 = from_value(payload)?;
            DirectoryEvent::ResourceDirectoryCreated {
                resource_directory_id: ResourceDirectoryId::parse(&p.resource_directory_id)
                    .ok_or("an unreadable directory id")?,
            }
        }
        "FolderRegistered" => {
            let p: FolderV1 = from_value(payload)?;
            DirectoryEvent::FolderRegistered {
                folder_id: folder_id(&p.folder_id)?,
                parent_id: folder(p.parent_id)?,
            }
        }
        "FolderRemoved" => {
            let p: FolderV1 = from_value(payload)?;
            DirectoryEvent::FolderRemoved {
                folder_id: folder_id(&p.folder_id)?,
            }
        }
        "MemberRegistered" => {
            let p: MemberV1 = from_value(payload)?;
            DirectoryEvent::MemberRegistered {
                account_id: member(&p.account_id)?,
                folder_id: folder(p.folder_id)?,
            }
        }
        "MemberRemoved" => {
            let p: MemberV1 = from_value(payload)?;
            DirectoryEvent::MemberRemoved {
                account_id: member(&p.account_id)?,
                folder_id: folder(p.folder_id)?,
            }
        }
        "MemberMoved" => {
            let p: MemberMovedV1 = from_value(payload)?;
            DirectoryEvent::MemberMoved {
                account_id: member(&p.account_id)?,
                from: folder(p.from)?,
                to: folder(p.to)?,
            }
        }
        _ => return Err("not a directory event".to_owned()),
    })
}

fn member_ids(members: &[MemberId]) -> Vec<String> {
    members.iter().map(|m| m.as_str().to_owned()).collect()
}

fn parse_members(members: &[String]) -> Result<Vec<MemberId>, ParameterError> {
    members.iter().map(|m| MemberId::parse(m)).collect()
}

/// A delivery's event as it is stored (what [`encode_event`] does for deliveries).
pub fn encode_delivery_event(event: &DeliveryEvent) -> (&'static str, i32, Value) {
    (event.event_type(), 1, to_value(delivery_payload(event)))
}

fn delivery_payload(event: &DeliveryEvent) -> VerificationMessageV1 {
    let (reason, retry_at) = match &event.outcome {
        DeliveryOutcome::Sent => (None, None),
        DeliveryOutcome::Failed { reason, retry_at } => (Some(reason.clone()), Some(*retry_at)),
        DeliveryOutcome::DeadLettered { reason } => (Some(reason.clone()), None),
    };
    VerificationMessageV1 {
        message_id: event.message_id,
        contact_id: event.contact_id.as_str().to_owned(),
        channel: event.channel.as_str().to_owned(),
        attempt: event.attempt,
        reason,
        retry_at,
    }
}

/// A contact's event as it is stored (what [`encode_event`] does for contacts).
pub fn encode_contact_event(event: &ContactEvent) -> (&'static str, i32, Value) {
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
                name: shown(name.as_str()),
                email_address: shown(email_address.as_str()),
                phone_number: phone_number.as_ref().map(|p| shown(p.as_str())),
                title: title.as_str().to_owned(),
                message_types: type_names(*message_types),
            }),
        ),
        ContactEvent::MessageContactRenamed { name } => (
            1,
            to_value(MessageContactRenamedV1 {
                name: shown(name.as_str()),
            }),
        ),
        ContactEvent::EmailAddressChangeRequested { email_address } => (
            1,
            to_value(EmailAddressChangeRequestedV1 {
                email_address: shown(email_address.as_str()),
            }),
        ),
        ContactEvent::PhoneNumberChangeRequested { phone_number } => (
            1,
            to_value(PhoneNumberChangeRequestedV1 {
                phone_number: shown(phone_number.as_str()),
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
        ContactEvent::EmailVerificationRequested {
            verification_id,
            email_address,
            expires_at,
        } => (
            1,
            to_value(EmailVerificationRequestedV1 {
                verification_id: verification_id.as_uuid(),
                email_address: shown(email_address.as_str()),
                expires_at: *expires_at,
            }),
        ),
        ContactEvent::PhoneVerificationRequested {
            verification_id,
            phone_number,
            expires_at,
        } => (
            1,
            to_value(PhoneVerificationRequestedV1 {
                verification_id: verification_id.as_uuid(),
                phone_number: shown(phone_number.as_str()),
                expires_at: *expires_at,
            }),
        ),
        ContactEvent::EmailAddressVerified {
            verification_id,
            email_address,
        } => (
            1,
            to_value(EmailAddressVerifiedV1 {
                verification_id: verification_id.as_uuid(),
                email_address: shown(email_address.as_str()),
            }),
        ),
        ContactEvent::PhoneNumberVerified {
            verification_id,
            phone_number,
        } => (
            1,
            to_value(PhoneNumberVerifiedV1 {
                verification_id: verification_id.as_uuid(),
                phone_number: shown(phone_number.as_str()),
            }),
        ),
        ContactEvent::EmailAddressChangeCancelled { email_address } => (
            1,
            to_value(EmailAddressChangeCancelledV1 {
                email_address: shown(email_address.as_str()),
            }),
        ),
        ContactEvent::PhoneNumberChangeCancelled { phone_number } => (
            1,
            to_value(PhoneNumberChangeCancelledV1 {
                phone_number: shown(phone_number.as_str()),
            }),
        ),
        ContactEvent::MembersAssociated { members }
        | ContactEvent::MembersDisassociated { members } => (
            1,
            to_value(MembersV1 {
                members: member_ids(members),
            }),
        ),
        ContactEvent::ContactDeletionStarted { deletion_id } => (
            1,
            to_value(ContactDeletionStartedV1 {
                deletion_id: *deletion_id,
            }),
        ),
        ContactEvent::ContactDeletionFailed {
            deletion_id,
            fail_reasons,
        } => (
            1,
            to_value(ContactDeletionFailedV1 {
                deletion_id: *deletion_id,
                fail_reasons: fail_reasons
                    .iter()
                    .map(|r| FailReasonV1 {
                        account_id: r.account_id.as_str().to_owned(),
                        message_types: type_names(r.message_types),
                    })
                    .collect(),
            }),
        ),
        ContactEvent::MessageContactDeleted => (1, to_value(MessageContactDeletedV1 {})),
        ContactEvent::MessageContactForgotten => (1, to_value(MessageContactForgottenV1 {})),
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
) -> Result<DomainEvent, StoreError> {
    let corrupt = |reason: String| {
        StoreError::internal(
            format!("stored event {event_type} v{schema_version} is unreadable: {reason}"),
            None,
        )
    };
    let invalid = |e: ParameterError| corrupt(e.to_string());
    let email = |raw: &str| parse_email(raw).map_err(invalid);
    let phone = |raw: &str| parse_phone(raw).map_err(invalid);
    let contact = match (event_type, schema_version) {
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
                name: parse_name(&p.name).map_err(invalid)?,
            })
        }
        ("EmailAddressChangeRequested", 1) => {
            let p: EmailAddressChangeRequestedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::EmailAddressChangeRequested {
                email_address: email(&p.email_address)?,
            })
        }
        ("PhoneNumberChangeRequested", 1) => {
            let p: PhoneNumberChangeRequestedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::PhoneNumberChangeRequested {
                phone_number: phone(&p.phone_number)?,
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
        ("EmailVerificationRequested", 1) => {
            let p: EmailVerificationRequestedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::EmailVerificationRequested {
                verification_id: VerificationId::from_uuid(p.verification_id),
                email_address: email(&p.email_address)?,
                expires_at: p.expires_at,
            })
        }
        ("PhoneVerificationRequested", 1) => {
            let p: PhoneVerificationRequestedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::PhoneVerificationRequested {
                verification_id: VerificationId::from_uuid(p.verification_id),
                phone_number: phone(&p.phone_number)?,
                expires_at: p.expires_at,
            })
        }
        ("EmailAddressVerified", 1) => {
            let p: EmailAddressVerifiedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::EmailAddressVerified {
                verification_id: VerificationId::from_uuid(p.verification_id),
                email_address: email(&p.email_address)?,
            })
        }
        ("PhoneNumberVerified", 1) => {
            let p: PhoneNumberVerifiedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::PhoneNumberVerified {
                verification_id: VerificationId::from_uuid(p.verification_id),
                phone_number: phone(&p.phone_number)?,
            })
        }
        ("EmailAddressChangeCancelled", 1) => {
            let p: EmailAddressChangeCancelledV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::EmailAddressChangeCancelled {
                email_address: email(&p.email_address)?,
            })
        }
        ("PhoneNumberChangeCancelled", 1) => {
            let p: PhoneNumberChangeCancelledV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::PhoneNumberChangeCancelled {
                phone_number: phone(&p.phone_number)?,
            })
        }
        ("MembersAssociated", 1) => {
            let p: MembersV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::MembersAssociated {
                members: parse_members(&p.members).map_err(invalid)?,
            })
        }
        ("MembersDisassociated", 1) => {
            let p: MembersV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::MembersDisassociated {
                members: parse_members(&p.members).map_err(invalid)?,
            })
        }
        ("ContactDeletionStarted", 1) => {
            let p: ContactDeletionStartedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::ContactDeletionStarted {
                deletion_id: p.deletion_id,
            })
        }
        ("ContactDeletionFailed", 1) => {
            let p: ContactDeletionFailedV1 = from_value(payload).map_err(corrupt)?;
            let fail_reasons = p
                .fail_reasons
                .into_iter()
                .map(|r| {
                    Ok(FailReason {
                        account_id: MemberAccountId::parse(&r.account_id)?,
                        message_types: message_types(&r.message_types)?,
                    })
                })
                .collect::<Result<_, ParameterError>>()
                .map_err(invalid)?;
            Ok(ContactEvent::ContactDeletionFailed {
                deletion_id: p.deletion_id,
                fail_reasons,
            })
        }
        ("MessageContactDeleted", 1) => {
            let _: MessageContactDeletedV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::MessageContactDeleted)
        }
        ("MessageContactForgotten", 1) => {
            let _: MessageContactForgottenV1 = from_value(payload).map_err(corrupt)?;
            Ok(ContactEvent::MessageContactForgotten)
        }
        (
            "ResourceDirectoryCreated"
            | "FolderRegistered"
            | "FolderRemoved"
            | "MemberRegistered"
            | "MemberMoved"
            | "MemberRemoved",
            1,
        ) => {
            return decode_directory(event_type, payload)
                .map(DomainEvent::Directory)
                .map_err(corrupt);
        }
        (
            "VerificationMessageSent"
            | "VerificationMessageFailed"
            | "VerificationMessageDeadLettered",
            1,
        ) => {
            let p: VerificationMessageV1 = from_value(payload).map_err(corrupt)?;
            return decode_delivery(event_type, p)
                .map(DomainEvent::Delivery)
                .map_err(corrupt);
        }
        _ => Err(corrupt("unknown event type or schema version".to_owned())),
    };
    contact.map(DomainEvent::Contact)
}

fn decode_delivery(event_type: &str, p: VerificationMessageV1) -> Result<DeliveryEvent, String> {
    let outcome = match (event_type, p.reason, p.retry_at) {
        ("VerificationMessageSent", _, _) => DeliveryOutcome::Sent,
        ("VerificationMessageFailed", Some(reason), Some(retry_at)) => {
            DeliveryOutcome::Failed { reason, retry_at }
        }
        ("VerificationMessageDeadLettered", Some(reason), _) => {
            DeliveryOutcome::DeadLettered { reason }
        }
        _ => return Err("a delivery outcome lacks its reason or its retry time".to_owned()),
    };
    Ok(DeliveryEvent {
        message_id: p.message_id,
        contact_id: ContactId::parse(&p.contact_id).map_err(|e| e.to_string())?,
        channel: Channel::parse(&p.channel).ok_or("an unknown channel")?,
        attempt: p.attempt,
        outcome,
    })
}

fn added(p: MessageContactAddedV2, account: &str) -> Result<ContactEvent, String> {
    let invalid = |e: ParameterError| e.to_string();
    Ok(ContactEvent::MessageContactAdded {
        contact_id: ContactId::parse(&p.contact_id).map_err(invalid)?,
        account_id: AccountId::parse(account).map_err(|e| e.to_string())?,
        name: parse_name(&p.name).map_err(invalid)?,
        email_address: parse_email(&p.email_address).map_err(invalid)?,
        phone_number: p
            .phone_number
            .as_deref()
            .map(parse_phone)
            .transpose()
            .map_err(invalid)?,
        title: Title::parse(&p.title).map_err(invalid)?,
        message_types: message_types(&p.message_types).map_err(invalid)?,
    })
}

/// A personal value as written: a redacted one (empty: no parse gives it) as [`REDACTED`].
fn shown(value: &str) -> String {
    if value.is_empty() { REDACTED } else { value }.to_owned()
}

fn parse_name(raw: &str) -> Result<ContactName, ParameterError> {
    if raw == REDACTED {
        Ok(ContactName::redacted())
    } else {
        ContactName::parse(raw)
    }
}

fn parse_email(raw: &str) -> Result<EmailAddress, ParameterError> {
    if raw == REDACTED {
        Ok(EmailAddress::redacted())
    } else {
        EmailAddress::parse(raw)
    }
}

fn parse_phone(raw: &str) -> Result<PhoneNumber, ParameterError> {
    if raw == REDACTED {
        Ok(PhoneNumber::redacted())
    } else {
        PhoneNumber::restore(raw)
    }
}

/// A contact's event as it is stored from now on: its personal fields sealed with the
/// contact's data key, which an event that names a person must be given.
pub fn encode_sealed_contact_event(
    event: &ContactEvent,
    event_id: Uuid,
    key: Option<&DataKey>,
) -> Result<(&'static str, i32, Value), StoreError> {
    let (event_type, schema_version, mut payload) = encode_contact_event(event);
    if !names_a_person(event_type) {
        return Ok((event_type, schema_version, payload));
    }
    let key = key.ok_or_else(|| {
        StoreError::internal(
            format!("{event_type} names a person but no data key was given"),
            None,
        )
    })?;
    let sealed = seal_payload(event_type, schema_version, &mut payload, event_id, key);
    Ok((event_type, sealed, payload))
}

pub fn type_names(types: MessageTypes) -> Vec<String> {
    types.iter().map(|t| t.as_str().to_owned()).collect()
}

pub fn message_types(names: &[String]) -> Result<MessageTypes, ParameterError> {
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
            ContactEvent::EmailVerificationRequested {
                verification_id: VerificationId::generate(),
                email_address: EmailAddress::parse("c@d.cn").unwrap(),
                expires_at: Utc::now(),
            },
            ContactEvent::PhoneVerificationRequested {
                verification_id: VerificationId::generate(),
                phone_number: PhoneNumber::restore("86-18612345678").unwrap(),
                expires_at: Utc::now(),
            },
            ContactEvent::EmailAddressVerified {
                verification_id: VerificationId::generate(),
                email_address: EmailAddress::parse("c@d.cn").unwrap(),
            },
            ContactEvent::PhoneNumberVerified {
                verification_id: VerificationId::generate(),
                phone_number: PhoneNumber::restore("86-18612345678").unwrap(),
            },
            ContactEvent::EmailAddressChangeCancelled {
                email_address: EmailAddress::parse("c@d.cn").unwrap(),
            },
            ContactEvent::PhoneNumberChangeCancelled {
                phone_number: PhoneNumber::restore("86-18612345678").unwrap(),
            },
            ContactEvent::MembersAssociated {
                members: vec![
                    MemberId::parse("rd-0123456789").unwrap(),
                    MemberId::parse("fd-0123456789").unwrap(),
                    MemberId::parse("1000000000000001").unwrap(),
                ],
            },
            ContactEvent::MembersDisassociated {
                members: vec![MemberId::parse("fd-0123456789").unwrap()],
            },
            ContactEvent::ContactDeletionStarted {
                deletion_id: Uuid::now_v7(),
            },
            ContactEvent::ContactDeletionFailed {
                deletion_id: Uuid::now_v7(),
                fail_reasons: vec![FailReason {
                    account_id: MemberAccountId::parse("1000000000000001").unwrap(),
                    message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
                }],
            },
            ContactEvent::MessageContactDeleted,
            ContactEvent::MessageContactForgotten,
        ];
        let folder = |raw: &str| FolderId::parse(raw).unwrap();
        let member = || MemberAccountId::parse("1000000000000001").unwrap();
        let directory = [
            DirectoryEvent::ResourceDirectoryCreated {
                resource_directory_id: ResourceDirectoryId::parse("rd-0123456789").unwrap(),
            },
            DirectoryEvent::FolderRegistered {
                folder_id: folder("fd-0123456789"),
                parent_id: None,
            },
            DirectoryEvent::FolderRegistered {
                folder_id: folder("fd-abcdefghij"),
                parent_id: Some(folder("fd-0123456789")),
            },
            DirectoryEvent::FolderRemoved {
                folder_id: folder("fd-abcdefghij"),
            },
            DirectoryEvent::MemberRegistered {
                account_id: member(),
                folder_id: None,
            },
            DirectoryEvent::MemberMoved {
                account_id: member(),
                from: None,
                to: Some(folder("fd-0123456789")),
            },
            DirectoryEvent::MemberRemoved {
                account_id: member(),
                folder_id: Some(folder("fd-0123456789")),
            },
        ];
        let delivery = |outcome| DeliveryEvent {
            message_id: Uuid::now_v7(),
            contact_id: ContactId::generate(),
            channel: Channel::Phone,
            attempt: 3,
            outcome,
        };
        let deliveries = [
            delivery(DeliveryOutcome::Sent),
            delivery(DeliveryOutcome::Failed {
                reason: "smtp reply 451".into(),
                retry_at: Utc::now(),
            }),
            delivery(DeliveryOutcome::DeadLettered {
                reason: "smtp reply 550".into(),
            }),
        ];
        let all = events
            .into_iter()
            .map(DomainEvent::Contact)
            .chain(directory.into_iter().map(DomainEvent::Directory))
            .chain(deliveries.into_iter().map(DomainEvent::Delivery));
        for event in all {
            let (event_type, version, payload) = encode_event(&event);
            assert_eq!(
                decode_event(event_type, version, payload, "1").unwrap(),
                event
            );
        }
    }

    #[test]
    fn a_sealed_event_reads_back_as_it_was_or_redacted_once_its_key_is_gone() {
        use crate::sealing::{KeyState, Keyring, open_payload};
        let event = ContactEvent::MessageContactAdded {
            contact_id: ContactId::generate(),
            account_id: AccountId::parse("1").unwrap(),
            name: ContactName::parse("Tom").unwrap(),
            email_address: EmailAddress::parse("a@b.cn").unwrap(),
            phone_number: Some(PhoneNumber::restore("86-13912345678").unwrap()),
            title: Title::Ceo,
            message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
        };
        let (key, _) = Keyring::for_tests().new_data_key("c-1");
        let id = Uuid::now_v7();
        let (event_type, version, payload) =
            encode_sealed_contact_event(&event, id, Some(&key)).unwrap();
        assert!(!payload.to_string().contains("Tom"));
        let read = |state: KeyState| {
            let mut payload = payload.clone();
            let clear = open_payload(event_type, version, &mut payload, id, Some(&state)).unwrap();
            decode_event(event_type, clear, payload, "1").unwrap()
        };
        assert_eq!(read(KeyState::Present(key)), DomainEvent::Contact(event));
        let DomainEvent::Contact(ContactEvent::MessageContactAdded {
            name,
            email_address,
            phone_number,
            ..
        }) = read(KeyState::Destroyed)
        else {
            panic!("an add reads as an add")
        };
        assert!(name.is_redacted() && email_address.is_redacted());
        assert!(phone_number.unwrap().is_redacted());
        assert!(
            encode_sealed_contact_event(
                &ContactEvent::MessageContactRenamed {
                    name: ContactName::parse("Tim").unwrap()
                },
                id,
                None
            )
            .is_err()
        );
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

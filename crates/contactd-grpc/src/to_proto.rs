//! From the application to the wire: contacts, bindings, deletions, the directory and events.

use chrono::{DateTime, Utc};
use contactd_app::{BindingChange, DeletionStatus, ListedContact, RecordedEvent};
use contactd_domain::{Contact, ContactId, Directory};

use crate::proto;

/// A contact as Get answers it: `associated_date` is when its bindings were last added to.
pub(crate) fn contact(contact: &Contact) -> proto::Contact {
    with_associated_date(contact, contact.associated_at())
}

/// A contact in a list: `associated_date` is when it came to apply to the member filtered by,
/// as the store reports it.
pub(crate) fn listed(listed: &ListedContact) -> proto::Contact {
    with_associated_date(&listed.contact, listed.associated_at)
}

fn with_associated_date(contact: &Contact, associated_at: Option<DateTime<Utc>>) -> proto::Contact {
    proto::Contact {
        contact_id: contact.contact_id.to_string(),
        name: contact.name.to_string(),
        email_address: contact.email_address.to_string(),
        phone_number: contact
            .phone_number
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        title: contact.title.as_str().to_owned(),
        message_types: contact
            .message_types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        members: contact
            .members
            .iter()
            .map(|binding| binding.target.as_str().to_owned())
            .collect(),
        status: contact.status.as_str().to_owned(),
        create_date: Some(timestamp(contact.created_at)),
        associated_date: associated_at.map(timestamp),
        active_email_address: contact
            .active_email_address
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        active_phone_number: contact
            .active_phone_number
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        update_date: Some(timestamp(contact.updated_at)),
        version: i64::try_from(contact.version).unwrap_or(i64::MAX),
    }
}

/// A target of a binding call, as answered.
pub(crate) fn binding(contact_id: &str, change: &BindingChange) -> proto::ContactMember {
    proto::ContactMember {
        contact_id: contact_id.to_owned(),
        member_id: change.member_id.as_str().to_owned(),
        modify_date: Some(timestamp(change.modify_date)),
    }
}

pub(crate) fn deletion_status(
    contact_id: &ContactId,
    status: &DeletionStatus,
) -> proto::ContactDeletionStatus {
    let (status, fail_reasons) = match status {
        DeletionStatus::Deleting => ("Deleting", &[][..]),
        DeletionStatus::Failed(reasons) => ("Failed", reasons.as_slice()),
    };
    proto::ContactDeletionStatus {
        contact_id: contact_id.to_string(),
        status: status.to_owned(),
        fail_reason_list: fail_reasons
            .iter()
            .map(|reason| proto::ContactDeletionFailReason {
                account_id: reason.account_id.to_string(),
                message_types: reason
                    .message_types
                    .iter()
                    .map(|t| t.as_str().to_owned())
                    .collect(),
            })
            .collect(),
    }
}

/// The directory with its folders and members in id order; the root is an empty id.
pub(crate) fn directory(
    request_id: String,
    directory: &Directory,
) -> proto::GetResourceDirectoryResponse {
    let id_or_root = |folder: &Option<contactd_domain::FolderId>| {
        folder.as_ref().map(ToString::to_string).unwrap_or_default()
    };
    proto::GetResourceDirectoryResponse {
        request_id,
        resource_directory_id: directory.resource_directory_id.to_string(),
        folders: directory
            .folders
            .iter()
            .map(|(folder_id, parent_id)| proto::DirectoryFolder {
                folder_id: folder_id.to_string(),
                parent_id: id_or_root(parent_id),
            })
            .collect(),
        members: directory
            .members
            .iter()
            .map(|(account_id, folder_id)| proto::DirectoryMember {
                account_id: account_id.to_string(),
                folder_id: id_or_root(folder_id),
            })
            .collect(),
    }
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A protobuf timestamp as a time, if it is one (seconds and nanos in range).
/// A protobuf `Timestamp` as a time, if it is one: its nanos must be below a second (chrono
/// would read 1e9 to 2e9 as a leap second, which a `Timestamp` cannot be).
pub(crate) fn datetime(at: prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(at.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)?;
    DateTime::from_timestamp(at.seconds, nanos)
}

pub(crate) fn event(event: &RecordedEvent) -> proto::Event {
    proto::Event {
        global_position: event.global_position,
        stream_id: event.stream_id.clone(),
        stream_version: i64::try_from(event.stream_version).unwrap_or(i64::MAX),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        recorded_at: Some(timestamp(event.metadata.recorded_at)),
        request_id: event.metadata.request_id.clone(),
        caller: event.metadata.caller.clone(),
        correlation_id: event.metadata.correlation_id.clone(),
        causation_id: event.metadata.causation_id.clone(),
        payload_json: event.payload_json.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_with_a_second_or_more_of_nanos_is_no_time() {
        let at = |seconds, nanos| datetime(prost_types::Timestamp { seconds, nanos });
        assert!(at(59, 999_999_999).is_some());
        // Read as the leap second 00:00:60.5 before (found reading the fuzz target's path).
        assert_eq!(at(59, 1_500_000_000), None);
        assert_eq!(at(59, 1_000_000_000), None);
        assert_eq!(at(59, -1), None);
    }
}

//! From the application to the wire: contacts and responses.

use chrono::{DateTime, Utc};
use contactd_app::RecordedEvent;
use contactd_domain::Contact;

use crate::proto;

pub(crate) fn contact(contact: &Contact) -> proto::Contact {
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
        members: Vec::new(),
        status: contact.status.as_str().to_owned(),
        create_date: Some(timestamp(contact.created_at)),
        associated_date: None,
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

pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A protobuf timestamp as a time, if it is one (seconds and nanos in range).
pub(crate) fn datetime(at: prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(at.nanos).ok()?;
    DateTime::from_timestamp(at.seconds, nanos)
}

pub(crate) fn event(event: &RecordedEvent) -> proto::Event {
    proto::Event {
        global_position: event.position.global_position,
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

//! From the application to the wire: contacts and responses.

use chrono::{DateTime, Utc};
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

//! The stored shapes of a contact (its read-model row, and its copy inside a remembered
//! response) and their conversion to and from the domain's state.

use chrono::{DateTime, Utc};
use contactd_app::{Outcome, StoreError};
use contactd_domain::{
    AccountId, Contact, ContactId, ContactName, ContactStatus, EmailAddress, PhoneNumber, Title,
};
use serde::{Deserialize, Serialize};

use crate::schema::{message_types, type_names};

/// The columns of `contacts`, selected in this order everywhere.
pub(crate) const CONTACT_COLUMNS: &str = "contact_id, account_id, name, email_address, active_email_address, \
     phone_number, active_phone_number, title, message_types, status, created_at, updated_at, version";

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub(crate) struct StoredContact {
    pub contact_id: String,
    pub account_id: String,
    pub name: String,
    pub email_address: String,
    pub active_email_address: Option<String>,
    pub phone_number: Option<String>,
    pub active_phone_number: Option<String>,
    pub title: String,
    pub message_types: Vec<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl From<&Contact> for StoredContact {
    fn from(contact: &Contact) -> Self {
        Self {
            contact_id: contact.contact_id.as_str().to_owned(),
            account_id: contact.account_id.as_str().to_owned(),
            name: contact.name.as_str().to_owned(),
            email_address: contact.email_address.as_str().to_owned(),
            active_email_address: contact
                .active_email_address
                .as_ref()
                .map(|e| e.as_str().to_owned()),
            phone_number: contact.phone_number.as_ref().map(|p| p.as_str().to_owned()),
            active_phone_number: contact
                .active_phone_number
                .as_ref()
                .map(|p| p.as_str().to_owned()),
            title: contact.title.as_str().to_owned(),
            message_types: type_names(contact.message_types),
            status: contact.status.as_str().to_owned(),
            created_at: contact.created_at,
            updated_at: contact.updated_at,
            version: i64::try_from(contact.version).unwrap_or(i64::MAX),
        }
    }
}

impl StoredContact {
    /// Values were parsed before they were stored; one that no longer parses means the data
    /// was changed behind the service's back.
    pub(crate) fn into_contact(self) -> Result<Contact, StoreError> {
        let corrupt = |what: &str| {
            StoreError::internal(
                format!(
                    "stored contact {} has an unreadable {what}",
                    self.contact_id
                ),
                None,
            )
        };
        let email = |raw: &str| EmailAddress::parse(raw).map_err(|_| corrupt("email address"));
        let phone = |raw: &str| PhoneNumber::restore(raw).map_err(|_| corrupt("phone number"));
        Ok(Contact {
            contact_id: ContactId::parse(&self.contact_id).map_err(|_| corrupt("id"))?,
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("account id"))?,
            name: ContactName::parse(&self.name).map_err(|_| corrupt("name"))?,
            email_address: email(&self.email_address)?,
            active_email_address: self
                .active_email_address
                .as_deref()
                .map(email)
                .transpose()?,
            phone_number: self.phone_number.as_deref().map(phone).transpose()?,
            active_phone_number: self.active_phone_number.as_deref().map(phone).transpose()?,
            title: Title::parse(&self.title).map_err(|_| corrupt("title"))?,
            message_types: message_types(&self.message_types)
                .map_err(|_| corrupt("message types"))?,
            status: ContactStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: u64::try_from(self.version).map_err(|_| corrupt("version"))?,
        })
    }
}

/// A remembered response, as kept in `idempotency_records.outcome`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum StoredOutcome {
    Added {
        request_id: String,
        contact: Box<StoredContact>,
    },
    Updated {
        request_id: String,
    },
}

pub(crate) fn outcome_to_json(outcome: &Outcome) -> serde_json::Value {
    let stored = match outcome {
        Outcome::Added {
            request_id,
            contact,
        } => StoredOutcome::Added {
            request_id: request_id.clone(),
            contact: Box::new(contact.as_ref().into()),
        },
        Outcome::Updated { request_id } => StoredOutcome::Updated {
            request_id: request_id.clone(),
        },
    };
    serde_json::to_value(stored).unwrap_or(serde_json::Value::Null)
}

pub(crate) fn outcome_from_json(json: serde_json::Value) -> Result<Outcome, StoreError> {
    let stored: StoredOutcome = serde_json::from_value(json).map_err(|e| {
        StoreError::internal("a remembered response is unreadable", Some(Box::new(e)))
    })?;
    Ok(match stored {
        StoredOutcome::Added {
            request_id,
            contact,
        } => Outcome::Added {
            request_id,
            contact: Box::new(contact.into_contact()?),
        },
        StoredOutcome::Updated { request_id } => Outcome::Updated { request_id },
    })
}

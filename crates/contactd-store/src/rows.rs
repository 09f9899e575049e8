//! The stored shapes of a contact (its read-model row, and its copy inside a remembered
//! response) and their conversion to and from the domain's state.

use chrono::{DateTime, Utc};
use contactd_app::{Outcome, StoreError};
use contactd_domain::{
    AccountId, Contact, ContactId, ContactName, ContactStatus, EmailAddress, IssuedCode,
    PhoneNumber, Title, VerificationId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::{message_types, type_names};

/// The columns of `contacts`, selected in this order everywhere: the keys that are looked up,
/// ordered by and compared (the version), and the rest of the fold as one document.
pub(crate) const CONTACT_COLUMNS: &str = "contact_id, account_id, created_at, version, state";

/// A contact as stored: its row in `contacts`, and (flattened) its copy in a remembered
/// response.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub(crate) struct StoredContact {
    pub contact_id: String,
    pub account_id: String,
    pub created_at: DateTime<Utc>,
    pub version: i64,
    #[sqlx(json)]
    #[serde(flatten)]
    pub state: StoredState,
}

/// Everything of a contact's fold but its keys: the `contacts.state` document. This struct is
/// the one place that lists the fields, so a field the aggregate gains is written here alone
/// (ADR 7); documents written before a field existed read it as absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredState {
    pub name: String,
    pub email_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_phone_number: Option<String>,
    pub title: String,
    pub message_types: Vec<String>,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_code: Option<StoredCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_code: Option<StoredCode>,
}

/// A code a pending target holds: which, and until when (never the code itself).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct StoredCode {
    pub verification_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl From<&IssuedCode> for StoredCode {
    fn from(code: &IssuedCode) -> Self {
        Self {
            verification_id: code.verification_id.as_uuid(),
            expires_at: code.expires_at,
        }
    }
}

impl From<StoredCode> for IssuedCode {
    fn from(code: StoredCode) -> Self {
        Self {
            verification_id: VerificationId::from_uuid(code.verification_id),
            expires_at: code.expires_at,
        }
    }
}

impl From<&Contact> for StoredContact {
    fn from(contact: &Contact) -> Self {
        Self {
            contact_id: contact.contact_id.as_str().to_owned(),
            account_id: contact.account_id.as_str().to_owned(),
            created_at: contact.created_at,
            version: i64::try_from(contact.version).unwrap_or(i64::MAX),
            state: StoredState {
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
                updated_at: contact.updated_at,
                email_code: contact.email_code.as_ref().map(StoredCode::from),
                phone_code: contact.phone_code.as_ref().map(StoredCode::from),
            },
        }
    }
}

impl StoredContact {
    /// The state document as bound to a statement.
    pub(crate) fn state_json(&self) -> serde_json::Value {
        // A struct of strings, times and ids: serialising it cannot fail.
        serde_json::to_value(&self.state).unwrap_or(serde_json::Value::Null)
    }

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
        let state = &self.state;
        Ok(Contact {
            contact_id: ContactId::parse(&self.contact_id).map_err(|_| corrupt("id"))?,
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("account id"))?,
            name: ContactName::parse(&state.name).map_err(|_| corrupt("name"))?,
            email_address: email(&state.email_address)?,
            active_email_address: state
                .active_email_address
                .as_deref()
                .map(email)
                .transpose()?,
            phone_number: state.phone_number.as_deref().map(phone).transpose()?,
            active_phone_number: state
                .active_phone_number
                .as_deref()
                .map(phone)
                .transpose()?,
            title: Title::parse(&state.title).map_err(|_| corrupt("title"))?,
            message_types: message_types(&state.message_types)
                .map_err(|_| corrupt("message types"))?,
            status: ContactStatus::parse(&state.status).ok_or_else(|| corrupt("status"))?,
            email_code: state.email_code.map(IssuedCode::from),
            phone_code: state.phone_code.map(IssuedCode::from),
            created_at: self.created_at,
            updated_at: state.updated_at,
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
    /// Kept under its first name, which records written before other RPCs had tokens carry.
    Updated { request_id: String },
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
        Outcome::Acknowledged { request_id } => StoredOutcome::Updated {
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
        StoredOutcome::Updated { request_id } => Outcome::Acknowledged { request_id },
    })
}

//! The stored shapes of a contact (its read-model row, and its copy inside a remembered
//! response) and their conversion to and from the domain's state.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use contactd_app::{BindingChange, Outcome, StoreError};
use contactd_domain::{
    AccountId, Binding, Contact, ContactId, ContactName, ContactStatus, DeleteStatus, Deletion,
    Directory, EmailAddress, FailReason, FolderId, IssuedCode, MemberAccountId, MemberId,
    PhoneNumber, ResourceDirectoryId, Title, VerificationId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{message_types, type_names};

/// The columns of `contacts`, selected in this order everywhere: the keys that are looked up,
/// ordered by and compared (the version), and the rest of the fold as one document.
pub const CONTACT_COLUMNS: &str = "contact_id, account_id, created_at, version, state";

/// A contact as stored: its row in `contacts`, and (flattened) its copy in a remembered
/// response.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct StoredContact {
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
pub struct StoredState {
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<StoredBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<StoredDeletion>,
}

/// A target the contact is bound to, and since when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredBinding {
    pub target: String,
    pub bound_at: DateTime<Utc>,
}

/// An asynchronous delete: its id, and once it failed the members it failed for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDeletion {
    pub deletion_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<StoredFailReason>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFailReason {
    pub account_id: String,
    pub message_types: Vec<String>,
}

impl From<&FailReason> for StoredFailReason {
    fn from(reason: &FailReason) -> Self {
        Self {
            account_id: reason.account_id.as_str().to_owned(),
            message_types: type_names(reason.message_types),
        }
    }
}

impl StoredFailReason {
    pub fn into_reason(self) -> Result<FailReason, StoreError> {
        let corrupt = || StoreError::internal("a stored fail reason is unreadable", None);
        Ok(FailReason {
            account_id: MemberAccountId::parse(&self.account_id).map_err(|_| corrupt())?,
            message_types: message_types(&self.message_types).map_err(|_| corrupt())?,
        })
    }
}

/// A code a pending target holds: which, and until when (never the code itself).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StoredCode {
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
                members: contact
                    .members
                    .iter()
                    .map(|b| StoredBinding {
                        target: b.target.as_str().to_owned(),
                        bound_at: b.bound_at,
                    })
                    .collect(),
                deletion: contact.deletion.as_ref().map(|d| StoredDeletion {
                    deletion_id: d.deletion_id,
                    failures: d
                        .failures
                        .as_ref()
                        .map(|f| f.iter().map(StoredFailReason::from).collect()),
                }),
            },
        }
    }
}

impl StoredContact {
    /// The state document as bound to a statement.
    pub fn state_json(&self) -> serde_json::Value {
        // A struct of strings, times and ids: serialising it cannot fail.
        serde_json::to_value(&self.state).unwrap_or(serde_json::Value::Null)
    }

    /// Values were parsed before they were stored; one that no longer parses means the data
    /// was changed behind the service's back.
    pub fn into_contact(self) -> Result<Contact, StoreError> {
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
            members: state
                .members
                .iter()
                .map(|b| {
                    Ok(Binding {
                        target: MemberId::parse(&b.target).map_err(|_| corrupt("binding"))?,
                        bound_at: b.bound_at,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            deletion: state
                .deletion
                .clone()
                .map(|d| {
                    Ok::<_, StoreError>(Deletion {
                        deletion_id: d.deletion_id,
                        failures: d
                            .failures
                            .map(|f| f.into_iter().map(StoredFailReason::into_reason).collect())
                            .transpose()?,
                    })
                })
                .transpose()?,
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
    Updated {
        request_id: String,
    },
    Deleted {
        request_id: String,
        status: String,
    },
    Bindings {
        request_id: String,
        members: Vec<StoredBinding>,
    },
}

pub fn outcome_to_json(outcome: &Outcome) -> serde_json::Value {
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
        Outcome::Deleted { request_id, status } => StoredOutcome::Deleted {
            request_id: request_id.clone(),
            status: status.as_str().to_owned(),
        },
        Outcome::Bindings {
            request_id,
            members,
        } => StoredOutcome::Bindings {
            request_id: request_id.clone(),
            members: members
                .iter()
                .map(|m| StoredBinding {
                    target: m.member_id.as_str().to_owned(),
                    bound_at: m.modify_date,
                })
                .collect(),
        },
    };
    serde_json::to_value(stored).unwrap_or(serde_json::Value::Null)
}

pub fn outcome_from_json(json: serde_json::Value) -> Result<Outcome, StoreError> {
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
        StoredOutcome::Deleted { request_id, status } => Outcome::Deleted {
            request_id,
            status: match status.as_str() {
                "Deleted" => DeleteStatus::Deleted,
                _ => DeleteStatus::Deleting,
            },
        },
        StoredOutcome::Bindings {
            request_id,
            members,
        } => Outcome::Bindings {
            request_id,
            members: members
                .into_iter()
                .map(|m| {
                    Ok(BindingChange {
                        member_id: MemberId::parse(&m.target).map_err(|_| {
                            StoreError::internal("a remembered binding is unreadable", None)
                        })?,
                        modify_date: m.bound_at,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        },
    })
}

/// A directory as stored: its row in `directories`, the tree as one document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDirectory {
    pub account_id: String,
    pub resource_directory_id: String,
    pub version: i64,
    #[sqlx(json)]
    pub state: StoredTree,
}

/// The folders with their parents and the members with their folders (`None`: the root).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredTree {
    pub folders: BTreeMap<String, Option<String>>,
    pub members: BTreeMap<String, Option<String>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<&Directory> for StoredDirectory {
    fn from(directory: &Directory) -> Self {
        let name = |f: &Option<FolderId>| f.as_ref().map(|f| f.as_str().to_owned());
        Self {
            account_id: directory.account_id.as_str().to_owned(),
            resource_directory_id: directory.resource_directory_id.as_str().to_owned(),
            version: i64::try_from(directory.version).unwrap_or(i64::MAX),
            state: StoredTree {
                folders: directory
                    .folders
                    .iter()
                    .map(|(id, parent)| (id.as_str().to_owned(), name(parent)))
                    .collect(),
                members: directory
                    .members
                    .iter()
                    .map(|(id, folder)| (id.as_str().to_owned(), name(folder)))
                    .collect(),
                updated_at: Some(directory.updated_at),
            },
        }
    }
}

impl StoredDirectory {
    pub fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or(serde_json::Value::Null)
    }

    pub fn into_directory(self) -> Result<Directory, StoreError> {
        let corrupt = |what: &str| {
            StoreError::internal(
                format!(
                    "the stored directory of {} has an unreadable {what}",
                    self.account_id
                ),
                None,
            )
        };
        let folder = |raw: &Option<String>| {
            raw.as_deref()
                .map(FolderId::parse)
                .transpose()
                .map_err(|_| corrupt("folder"))
        };
        Ok(Directory {
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("account id"))?,
            resource_directory_id: ResourceDirectoryId::parse(&self.resource_directory_id)
                .ok_or_else(|| corrupt("id"))?,
            folders: self
                .state
                .folders
                .iter()
                .map(|(id, parent)| {
                    Ok((
                        FolderId::parse(id).map_err(|_| corrupt("folder"))?,
                        folder(parent)?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?,
            members: self
                .state
                .members
                .iter()
                .map(|(id, parent)| {
                    Ok((
                        MemberAccountId::parse(id).map_err(|_| corrupt("member"))?,
                        folder(parent)?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?,
            updated_at: self.state.updated_at.unwrap_or_default(),
            version: u64::try_from(self.version).map_err(|_| corrupt("version"))?,
        })
    }
}

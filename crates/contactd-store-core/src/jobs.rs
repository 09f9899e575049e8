//! A claimed lifecycle job as both stores read it back into the application's
//! [`LifecycleJob`]: each store maps its row (PostgreSQL's `jsonb` and `text[]`, SQLite's JSON
//! text) to a [`StoredJob`], and the job is decoded here once.

use contactd_app::{IntegrationMessage, LifecycleJob, LifecycleTask, StoreError};
use contactd_domain::{AccountId, ContactId, MemberAccountId, MemberId};
use uuid::Uuid;

use crate::events::message_types;

/// A lifecycle job's columns, as a store read them.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub job_id: String,
    pub account_id: String,
    pub kind: String,
    pub contact_id: Option<String>,
    pub target: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// A publish's payload, parsed.
    pub payload: Option<serde_json::Value>,
    /// A publish's message types, by name.
    pub message_types: Option<Vec<String>>,
    pub deletion_id: Option<Uuid>,
    pub causation_id: String,
    pub correlation_id: String,
    pub attempts: i64,
}

impl StoredJob {
    /// Values were parsed before they were stored; one that no longer parses means the data
    /// was changed behind the service's back.
    pub fn into_job(self) -> Result<LifecycleJob, StoreError> {
        let corrupt = |what: &str| {
            StoreError::internal(
                format!("lifecycle job {} has an unreadable {what}", self.job_id),
                None,
            )
        };
        let contact_id = || {
            self.contact_id
                .as_deref()
                .and_then(|c| ContactId::parse(c).ok())
                .ok_or_else(|| corrupt("contact id"))
        };
        let task = match self.kind.as_str() {
            "publish" => LifecycleTask::Publish {
                message: IntegrationMessage {
                    message_id: self
                        .message_id
                        .clone()
                        .ok_or_else(|| corrupt("message id"))?,
                    subject: self.subject.clone().ok_or_else(|| corrupt("subject"))?,
                    payload: self
                        .payload
                        .as_ref()
                        .ok_or_else(|| corrupt("payload"))?
                        .to_string()
                        .into_bytes(),
                },
                deletion_id: self.deletion_id,
                member: self
                    .target
                    .as_deref()
                    .and_then(|t| MemberAccountId::parse(t).ok())
                    .ok_or_else(|| corrupt("member"))?,
                message_types: message_types(self.message_types.as_deref().unwrap_or_default())
                    .map_err(|_| corrupt("message types"))?,
            },
            "unbind" => LifecycleTask::Unbind {
                contact_id: contact_id()?,
                target: self
                    .target
                    .as_deref()
                    .and_then(|t| MemberId::parse(t).ok())
                    .ok_or_else(|| corrupt("target"))?,
            },
            "finish_deletion" => LifecycleTask::FinishDeletion {
                contact_id: contact_id()?,
                deletion_id: self.deletion_id.ok_or_else(|| corrupt("deletion id"))?,
            },
            _ => return Err(corrupt("kind")),
        };
        Ok(LifecycleJob {
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("account id"))?,
            attempt: u32::try_from(self.attempts).map_err(|_| corrupt("attempt"))?,
            job_id: self.job_id,
            task,
            causation_id: self.causation_id,
            correlation_id: self.correlation_id,
        })
    }
}

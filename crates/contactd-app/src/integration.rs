//! Integration events: what each member account's notification center must know about the
//! contacts that apply to it. The one place that knows their subjects and JSON payloads
//! (documented in the README for the services that consume them).

use chrono::{DateTime, SecondsFormat, Utc};
use contactd_domain::{AccountId, Contact, MemberAccountId};
use serde_json::json;
use uuid::Uuid;

use crate::port::IntegrationMessage;

/// The version of the payloads below; a consumer refuses what it does not know.
pub const INTEGRATION_SCHEMA_VERSION: u32 = 1;

/// What became of a contact for one member account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberContactChange {
    /// The contact now receives its message types for the member.
    Applied,
    /// A contact that applies to the member changed (its types, name or verified addresses).
    Changed,
    /// The contact no longer receives anything for the member.
    Removed,
}

impl MemberContactChange {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberContactChange::Applied => "MemberContactApplied",
            MemberContactChange::Changed => "MemberContactChanged",
            MemberContactChange::Removed => "MemberContactRemoved",
        }
    }
}

/// The subject of a member account's contact events, under the directory's account.
pub fn member_subject(directory_account: &AccountId, member: &MemberAccountId) -> String {
    format!("contactd.{directory_account}.member.{member}.contacts")
}

/// The message for one member of one change caused by the event `event_id`. Its id is the
/// event's id and the member's, the same whenever it is made again, so the broker stores it
/// once.
pub fn member_contact_message(
    change: MemberContactChange,
    event_id: Uuid,
    directory_account: &AccountId,
    member: &MemberAccountId,
    contact: &Contact,
    occurred_at: DateTime<Utc>,
) -> IntegrationMessage {
    let message_id = format!("{event_id}.{member}");
    let types: Vec<&str> = contact.message_types.iter().map(|t| t.as_str()).collect();
    let details = match change {
        MemberContactChange::Removed => json!({
            "contact_id": contact.contact_id.as_str(),
            "message_types": types,
        }),
        MemberContactChange::Applied | MemberContactChange::Changed => json!({
            "contact_id": contact.contact_id.as_str(),
            "name": contact.name.as_str(),
            "title": contact.title.as_str(),
            "email_address": contact.active_email_address.as_ref().map(|e| e.as_str()),
            "phone_number": contact.active_phone_number.as_ref().map(|p| p.as_str()),
            "message_types": types,
        }),
    };
    let payload = json!({
        "schema_version": INTEGRATION_SCHEMA_VERSION,
        "type": change.as_str(),
        "message_id": message_id,
        "event_id": event_id.to_string(),
        "directory_account_id": directory_account.as_str(),
        "member_account_id": member.as_str(),
        "occurred_at": occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "contact": details,
    });
    IntegrationMessage {
        subject: member_subject(directory_account, member),
        message_id,
        payload: payload.to_string().into_bytes(),
    }
}

/// When the event behind a payload committed (its `occurred_at`), to tell how late it was
/// published; `None` for a payload without one.
pub(crate) fn occurred_at(payload: &[u8]) -> Option<DateTime<Utc>> {
    let payload: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let at = DateTime::parse_from_rfc3339(payload.get("occurred_at")?.as_str()?).ok()?;
    Some(at.with_timezone(&Utc))
}

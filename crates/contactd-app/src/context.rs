//! Who is calling and under which request id: handed in by the front end with every call.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use contactd_domain::AccountId;
use uuid::Uuid;

/// A call's request id: an upper-case UUID (`9B34724D-54B0-4A51-B34D-4512372FE1BE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(Uuid);

impl RequestId {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = Uuid::encode_buffer();
        f.write_str(self.0.hyphenated().encode_upper(&mut buffer))
    }
}

/// The identity and bookkeeping of one call.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: RequestId,
    /// The account the call acts for; every read and write is scoped to it.
    pub account_id: AccountId,
    /// Who made the call, as the identity mode names it (for now the account itself).
    pub caller: String,
    /// Ties together the events of one business transaction across calls; the request id
    /// unless the caller sent one.
    pub correlation_id: String,
    /// When the call arrived; the time recorded on its events.
    pub received_at: DateTime<Utc>,
    /// What caused the call's events: the request unless this is a command the service
    /// issues itself in reaction to an event (then that event's id).
    pub causation_id: Option<String>,
}

impl CallContext {
    pub fn new(account_id: AccountId, correlation_id: Option<String>) -> Self {
        let request_id = RequestId::generate();
        Self {
            caller: format!("account:{account_id}"),
            correlation_id: correlation_id.unwrap_or_else(|| request_id.to_string()),
            request_id,
            account_id,
            received_at: now(),
            causation_id: None,
        }
    }

    /// A command the service issues itself, in reaction to the event `causation_id` of the
    /// business transaction `correlation_id`.
    pub fn reacting(account_id: AccountId, correlation_id: String, causation_id: String) -> Self {
        Self {
            caller: "contactd".to_owned(),
            causation_id: Some(causation_id),
            ..Self::new(account_id, Some(correlation_id))
        }
    }
}

/// The current time at the precision the store keeps (microseconds), so that a response built
/// from a fresh state equals the same state read back.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_upper_case_uuids() {
        let id = RequestId::generate().to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_uppercase());
        assert!(Uuid::parse_str(&id).is_ok());
    }
}

//! Who is calling and under which request id: handed in by the front end with every call. The
//! caller is a typed [`Principal`]: the account it acts for, its name and how it was proven.

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

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proof {
    /// The account named by metadata `x-acs-account-id`, trusted as given (loopback, or behind
    /// a gateway that authenticated itself with a client certificate).
    TrustedHeader,
    /// A signed bearer token (JWT) whose signature, issuer, audience and times were checked.
    BearerToken,
    /// The client certificate of a mutual-TLS connection, verified against the client CA.
    ClientCertificate,
    /// The service itself: a command it issues in reaction to an event, or a confirmation
    /// link that carried its own proof.
    Service,
}

impl Proof {
    /// The prefix of the principal in the event metadata's `caller`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrustedHeader => "account",
            Self::BearerToken => "token",
            Self::ClientCertificate => "certificate",
            Self::Service => "service",
        }
    }
}

/// Who makes a call: the account it acts for, its name as its proof names it (a token's
/// subject, a certificate's identity, the account itself for a trusted header) and the proof.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub account_id: AccountId,
    pub name: String,
    pub proof: Proof,
}

impl Principal {
    /// The account named by a trusted header: the account is its own principal.
    pub fn trusted_account(account_id: AccountId) -> Self {
        Self {
            name: account_id.to_string(),
            account_id,
            proof: Proof::TrustedHeader,
        }
    }

    /// A part of the service acting for `account_id`.
    pub fn service(account_id: AccountId, name: &str) -> Self {
        Self {
            account_id,
            name: name.to_owned(),
            proof: Proof::Service,
        }
    }
}

/// The event metadata's `caller`: `account:<id>`, `token:<subject>`,
/// `certificate:<identity>` or `service:<part>`.
impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proof.as_str(), self.name)
    }
}

/// The identity and bookkeeping of one call.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: RequestId,
    /// The account the call acts for; every read and write is scoped to it.
    pub account_id: AccountId,
    /// Who made the call; its account is `account_id`.
    pub principal: Principal,
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
    /// A call of the account named by a trusted header.
    pub fn new(account_id: AccountId, correlation_id: Option<String>) -> Self {
        Self::for_principal(
            Principal::trusted_account(account_id),
            RequestId::generate(),
            correlation_id,
        )
    }

    /// A call of `principal`, under the request id the front end gave it.
    pub fn for_principal(
        principal: Principal,
        request_id: RequestId,
        correlation_id: Option<String>,
    ) -> Self {
        Self {
            correlation_id: correlation_id.unwrap_or_else(|| request_id.to_string()),
            request_id,
            account_id: principal.account_id.clone(),
            principal,
            received_at: now(),
            causation_id: None,
        }
    }

    /// A command the service issues itself, in reaction to the event `causation_id` of the
    /// business transaction `correlation_id`.
    pub fn reacting(account_id: AccountId, correlation_id: String, causation_id: String) -> Self {
        Self {
            causation_id: Some(causation_id),
            ..Self::for_principal(
                Principal::service(account_id, "contactd"),
                RequestId::generate(),
                Some(correlation_id),
            )
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

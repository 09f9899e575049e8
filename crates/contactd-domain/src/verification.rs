//! The vocabulary of verification: what is verified (a target on a channel), the code a caller
//! types in, and the code a contact holds for a pending target. Codes themselves are derived
//! and compared by the application (they need a secret); here is only their shape.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{CountryCodes, EmailAddress, Field, ParameterError, PhoneNumber};

/// How many times a code may be tried before it is burned.
pub const MAX_CODE_TRIES: u32 = 5;

/// The way a verification message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Phone,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Phone => "phone",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Channel::Email, Channel::Phone]
            .into_iter()
            .find(|c| c.as_str() == raw)
    }
}

/// An email address or a phone number whose owner proves it is theirs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VerificationTarget {
    Email(EmailAddress),
    Phone(PhoneNumber),
}

impl VerificationTarget {
    /// A target as a caller names it: an email address if it holds an `@`, else a phone
    /// number. Empty is `MissingParameter.Target`; anything that is neither is
    /// `InvalidParameter.Target`.
    pub fn parse(raw: &str, codes: &CountryCodes) -> Result<Self, ParameterError> {
        if raw.is_empty() {
            return Err(ParameterError::Missing(Field::Target));
        }
        let invalid = |_| ParameterError::Invalid(Field::Target);
        if raw.contains('@') {
            EmailAddress::parse(raw).map(Self::Email).map_err(invalid)
        } else {
            PhoneNumber::parse(raw, codes)
                .map(Self::Phone)
                .map_err(invalid)
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            VerificationTarget::Email(_) => Channel::Email,
            VerificationTarget::Phone(_) => Channel::Phone,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            VerificationTarget::Email(email) => email.as_str(),
            VerificationTarget::Phone(phone) => phone.as_str(),
        }
    }
}

/// Identifies one code sent for one target: the input from which the code and the link are
/// derived. Drawn from 122 random bits, so that neither can be foreseen from another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationId(Uuid);

impl VerificationId {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for VerificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The code a contact holds for a pending target: which one, and until when it may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCode {
    pub verification_id: VerificationId,
    pub expires_at: DateTime<Utc>,
}

impl IssuedCode {
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// A verification code as a caller typed it: exactly 6 ASCII digits. Its `Debug` hides it, so
/// that it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationCode(String);

impl VerificationCode {
    /// Empty is `MissingParameter.VerificationCode`, any other shape
    /// `InvalidParameter.VerificationCode`.
    pub fn parse(raw: &str) -> Result<Self, ParameterError> {
        if raw.is_empty() {
            return Err(ParameterError::Missing(Field::VerificationCode));
        }
        if raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ParameterError::Invalid(Field::VerificationCode))
        }
    }

    /// The code of a number below 1,000,000, zero-padded.
    pub fn from_number(number: u32) -> Self {
        Self(format!("{:06}", number % 1_000_000))
    }

    /// The digits, for the message that carries them and for comparison: never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(******)")
    }
}

/// The target as shown to someone who holds only a link: enough to recognise it, not to learn
/// it (`v***@example.com`, `86-139****5678`).
pub fn masked(target: &VerificationTarget) -> String {
    match target {
        VerificationTarget::Email(email) => {
            let (local, domain) = email.as_str().split_once('@').unwrap_or(("", ""));
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        VerificationTarget::Phone(phone) => {
            let (country, digits) = phone.as_str().split_once('-').unwrap_or(("", ""));
            let keep = digits.len().min(3);
            let tail = digits.len().saturating_sub(4).max(keep);
            format!(
                "{country}-{}{}{}",
                &digits[..keep],
                "*".repeat(tail - keep),
                &digits[tail..]
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_emails_when_they_hold_an_at_sign_and_phones_otherwise() {
        let codes = CountryCodes::default();
        assert_eq!(
            VerificationTarget::parse("tom@example.com", &codes)
                .unwrap()
                .channel(),
            Channel::Email
        );
        assert_eq!(
            VerificationTarget::parse("86-13912345678", &codes)
                .unwrap()
                .channel(),
            Channel::Phone
        );
        assert_eq!(
            VerificationTarget::parse("", &codes),
            Err(ParameterError::Missing(Field::Target))
        );
        for bad in ["tom@", "@x.cn", "13912345678", "1-2025550123", "x"] {
            assert_eq!(
                VerificationTarget::parse(bad, &codes),
                Err(ParameterError::Invalid(Field::Target)),
                "{bad}"
            );
        }
    }

    #[test]
    fn codes_are_six_ascii_digits_and_never_shown_by_debug() {
        assert!(VerificationCode::parse("012345").is_ok());
        assert_eq!(
            VerificationCode::parse(""),
            Err(ParameterError::Missing(Field::VerificationCode))
        );
        for bad in ["12345", "1234567", "12345a", "１２３４５６", " 12345"] {
            assert_eq!(
                VerificationCode::parse(bad),
                Err(ParameterError::Invalid(Field::VerificationCode)),
                "{bad}"
            );
        }
        assert_eq!(VerificationCode::from_number(42).expose(), "000042");
        assert!(!format!("{:?}", VerificationCode::from_number(123456)).contains("123456"));
    }

    #[test]
    fn masked_targets_keep_only_what_recognises_them() {
        let email = VerificationTarget::Email(EmailAddress::parse("victor@example.com").unwrap());
        assert_eq!(masked(&email), "v***@example.com");
        let phone = VerificationTarget::Phone(PhoneNumber::restore("86-13912345678").unwrap());
        assert_eq!(masked(&phone), "86-139****5678");
    }
}

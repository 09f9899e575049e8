//! An email address: at most 254 characters, a dot-atom local part `@` a dotted domain.

use std::fmt;

use crate::{Field, ParameterError};

const MAX_CHARS: usize = 254;
const MAX_LOCAL_PART: usize = 64;
const MAX_LABEL: usize = 63;

/// A valid email address, compared exactly as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// More than 254 characters is `InvalidParameter.EmailAddress.Length` (checked first);
    /// anything else that is not `local@domain` of the contract's shape is
    /// `InvalidParameter.EmailAddress`.
    pub fn parse(raw: &str) -> Result<Self, ParameterError> {
        if raw.chars().count() > MAX_CHARS {
            return Err(ParameterError::Length(Field::EmailAddress));
        }
        let valid = raw.is_ascii()
            && raw
                .split_once('@')
                .is_some_and(|(local, domain)| is_dot_atom(local) && is_domain(domain));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ParameterError::Invalid(Field::EmailAddress))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value that stands for an address whose key was destroyed: it reads as redacted
    /// everywhere. No parse ever gives it (it is empty).
    pub fn redacted() -> Self {
        Self(String::new())
    }

    pub fn is_redacted(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_dot_atom(local: &str) -> bool {
    (1..=MAX_LOCAL_PART).contains(&local.len())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=MAX_LABEL).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ordinary_addresses_parse() {
        for ok in [
            "someone@example.com",
            "a.b+c@x-y.example.org",
            "!#$%&'*+/=?^_`{|}~-@a.b1",
            "x@1.2",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_invalid() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.c",
            "a@b@c.d",
            ".a@b.c",
            "a.@b.c",
            "a..b@c.d",
            "a@-b.c",
            "a@b-.c",
            "a@b..c",
            "a@b.c.",
            "a b@c.d",
            "é@b.c",
            "a@exämple.com",
            "\"a\"@b.c",
            long_local.as_str(),
            long_label.as_str(),
        ] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(ParameterError::Invalid(Field::EmailAddress)),
                "{bad}"
            );
        }
    }

    #[test]
    fn length_is_checked_before_shape() {
        let at_limit = format!(
            "{}@{}.com",
            "a".repeat(64),
            "b".repeat(63) + "." + &"c".repeat(63) + "." + &"d".repeat(57)
        );
        assert_eq!(at_limit.len(), 254);
        assert!(EmailAddress::parse(&at_limit).is_ok());
        let over = format!("{at_limit}x");
        assert_eq!(
            EmailAddress::parse(&over),
            Err(ParameterError::Length(Field::EmailAddress))
        );
        assert_eq!(
            EmailAddress::parse(&"é".repeat(255)),
            Err(ParameterError::Length(Field::EmailAddress))
        );
    }

    proptest! {
        #[test]
        fn any_string_parses_or_is_refused_without_panicking(raw in any::<String>()) {
            match EmailAddress::parse(&raw) {
                Ok(email) => prop_assert_eq!(email.as_str(), raw.as_str()),
                Err(e) => prop_assert_eq!(e.field(), Field::EmailAddress),
            }
        }

        #[test]
        fn address_like_strings_never_panic(raw in "[a-z.@-]{0,40}") {
            let _ = EmailAddress::parse(&raw);
        }
    }
}

//! A contact's name: 2 to 12 ASCII letters or CJK ideographs, unique per account ignoring case.

use std::fmt;

use crate::{Field, ParameterError};

const MIN_CHARS: usize = 2;
const MAX_CHARS: usize = 12;

/// A valid contact name, kept exactly as given (no normalisation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContactName(String);

impl ContactName {
    /// A character outside the allowed set is `InvalidParameter.Name`; right characters but
    /// the wrong count (empty included) is `InvalidParameter.Name.Length`.
    pub fn parse(raw: &str) -> Result<Self, ParameterError> {
        if !raw.chars().all(is_name_char) {
            return Err(ParameterError::Invalid(Field::Name));
        }
        if !(MIN_CHARS..=MAX_CHARS).contains(&raw.chars().count()) {
            return Err(ParameterError::Length(Field::Name));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value that stands for a name whose key was destroyed: it reads as redacted
    /// everywhere. No parse ever gives it (it is empty).
    pub fn redacted() -> Self {
        Self(String::new())
    }

    pub fn is_redacted(&self) -> bool {
        self.0.is_empty()
    }

    /// The key under which the name is unique within an account: only ASCII letters have case
    /// among the allowed characters, so lower-casing them is the whole comparison.
    pub fn uniqueness_key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for ContactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ASCII letter or a code point of the CJK ideograph blocks the contract names.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c,
            '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{323AF}')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn letters_and_ideographs_of_two_to_twelve_characters_are_names() {
        for ok in ["Tom", "tO", "张三", "𠀀𠀁", "abcdefghijkl", "Li雷"] {
            assert_eq!(
                ContactName::parse(ok).map(|n| n.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn a_character_outside_the_set_is_invalid_even_when_the_length_is_wrong_too() {
        for bad in [
            "Tom Smith",
            "tom1",
            "1",
            "é",
            "Ｔom",
            "tom_",
            &"a1".repeat(20),
        ] {
            assert_eq!(
                ContactName::parse(bad),
                Err(ParameterError::Invalid(Field::Name)),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_right_characters_with_the_wrong_count_are_a_length_error() {
        for bad in ["", "a", "张", "abcdefghijklm", &"雷".repeat(13)] {
            assert_eq!(
                ContactName::parse(bad),
                Err(ParameterError::Length(Field::Name)),
                "{bad}"
            );
        }
    }

    #[test]
    fn uniqueness_ignores_ascii_case_only() {
        let a = ContactName::parse("TomLee").unwrap();
        let b = ContactName::parse("tomlee").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.uniqueness_key(), b.uniqueness_key());
    }

    proptest! {
        #[test]
        fn any_string_parses_or_is_refused_without_panicking(raw in any::<String>()) {
            match ContactName::parse(&raw) {
                Ok(name) => prop_assert_eq!(name.as_str(), raw.as_str()),
                Err(e) => prop_assert_eq!(e.field(), Field::Name),
            }
        }
    }
}

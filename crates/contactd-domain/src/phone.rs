//! A mobile phone number written `<country code>-<digits>`, valid by libphonenumber's rules.

use std::fmt;

use crate::{Field, ParameterError};

/// No valid number has more digits than E.164's 15 plus slack; longer input is refused before
/// it reaches the (comparatively costly) libphonenumber metadata.
const MAX_DIGITS: usize = 17;

/// The country calling codes this site accepts (the contract's default: `86` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCodes(Vec<u16>);

impl CountryCodes {
    pub fn new(codes: impl IntoIterator<Item = u16>) -> Self {
        Self(codes.into_iter().collect())
    }

    /// Parses a comma-separated list such as `86,852`.
    pub fn parse_list(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty())
            .map(|code| {
                let digits_only =
                    code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0');
                code.parse::<u16>()
                    .ok()
                    .filter(|c| digits_only && (1..=999).contains(c))
                    .ok_or_else(|| format!("`{code}` is not a country calling code"))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|codes| {
                if codes.is_empty() {
                    Err("no country code given".into())
                } else {
                    Ok(Self(codes))
                }
            })
    }

    fn allows(&self, code: &str) -> bool {
        code.parse::<u16>().is_ok_and(|code| self.0.contains(&code))
    }
}

impl Default for CountryCodes {
    fn default() -> Self {
        Self(vec![86])
    }
}

/// A valid mobile phone number, kept as written (`86-13912345678`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Shape first (`InvalidParameter.PhoneNumber`), then the country code
    /// (`InvalidParameter.MobileCountryCode`), then libphonenumber's mobile rules applied to the
    /// digits exactly as written (`InvalidParameter.PhoneNumber`).
    pub fn parse(raw: &str, allowed: &CountryCodes) -> Result<Self, ParameterError> {
        let invalid = ParameterError::Invalid(Field::PhoneNumber);
        let (code, digits) = raw.split_once('-').ok_or(invalid)?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(code) || code.starts_with('0') || !all_digits(digits) {
            return Err(invalid);
        }
        if !allowed.allows(code) {
            return Err(ParameterError::UnsupportedCountryCode);
        }
        if digits.len() > MAX_DIGITS || !is_mobile_number(code, digits) {
            return Err(invalid);
        }
        Ok(Self(raw.to_owned()))
    }

    /// Takes back a number this service parsed and stored earlier. Only the shape is checked:
    /// the country list may have changed since, and what was accepted then stays readable.
    pub fn restore(raw: &str) -> Result<Self, ParameterError> {
        let invalid = ParameterError::Invalid(Field::PhoneNumber);
        let (code, digits) = raw.split_once('-').ok_or(invalid)?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if all_digits(code) && all_digits(digits) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value that stands for a number whose key was destroyed: it reads as redacted
    /// everywhere. No parse ever gives it (it is empty).
    pub fn redacted() -> Self {
        Self(String::new())
    }

    pub fn is_redacted(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_mobile_number(code: &str, digits: &str) -> bool {
    use phonenumber::{Type, metadata::DATABASE};

    let Ok(number) = phonenumber::parse(None, format!("+{code}{digits}")) else {
        return false;
    };
    // libphonenumber strips a national prefix or carrier code it recognises; the contract wants
    // the digits as written, so the national number it kept must be exactly those digits.
    let national = number.national();
    let kept = format!(
        "{}{}",
        "0".repeat(usize::from(national.zeros())),
        national.value()
    );
    kept == digits
        && number.code().value().to_string() == code
        && number.is_valid()
        && matches!(
            number.number_type(&DATABASE),
            Type::Mobile | Type::FixedLineOrMobile
        )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn china() -> CountryCodes {
        CountryCodes::default()
    }

    #[test]
    fn chinese_mobile_numbers_parse() {
        for ok in ["86-13912345678", "86-18612345678", "86-15012345678"] {
            assert_eq!(
                PhoneNumber::parse(ok, &china()).map(|p| p.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn the_wrong_shape_is_invalid() {
        for bad in [
            "",
            "8613912345678",
            "+86-13912345678",
            "086-13912345678",
            "86-",
            "-139",
            "86-139 1234 5678",
            "86-1391234567８",
            "86--13912345678",
        ] {
            assert_eq!(
                PhoneNumber::parse(bad, &china()),
                Err(ParameterError::Invalid(Field::PhoneNumber)),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_country_code_outside_the_configured_list_is_refused_before_the_number_is_checked() {
        assert_eq!(
            PhoneNumber::parse("1-2025550123", &china()),
            Err(ParameterError::UnsupportedCountryCode)
        );
        assert_eq!(
            PhoneNumber::parse("44-1", &china()),
            Err(ParameterError::UnsupportedCountryCode)
        );
    }

    #[test]
    fn numbers_that_are_not_mobile_or_carry_a_national_prefix_are_invalid() {
        for bad in [
            "86-1391234567",
            "86-139123456789",
            "86-01012345678",
            "86-1012345678",
            "86-013912345678",
            "86-12345678901",
        ] {
            assert_eq!(
                PhoneNumber::parse(bad, &china()),
                Err(ParameterError::Invalid(Field::PhoneNumber)),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_configured_countries_follow_their_own_rules() {
        let codes = CountryCodes::parse_list("86, 1,44").unwrap();
        assert!(PhoneNumber::parse("44-7400123456", &codes).is_ok());
        assert_eq!(
            PhoneNumber::parse("44-07400123456", &codes),
            Err(ParameterError::Invalid(Field::PhoneNumber))
        );
        assert!(PhoneNumber::parse("1-2015550123", &codes).is_ok());
    }

    #[test]
    fn country_code_lists_parse_strictly() {
        assert_eq!(
            CountryCodes::parse_list("86,1"),
            Ok(CountryCodes::new([86, 1]))
        );
        assert!(CountryCodes::parse_list("").is_err());
        assert!(CountryCodes::parse_list("086").is_err());
        assert!(CountryCodes::parse_list("+86").is_err());
        assert!(CountryCodes::parse_list("1000").is_err());
    }

    proptest! {
        #[test]
        fn any_string_parses_or_is_refused_without_panicking(raw in any::<String>()) {
            if let Err(e) = PhoneNumber::parse(&raw, &china()) {
                prop_assert_eq!(e.field(), Field::PhoneNumber);
            }
        }

        #[test]
        fn digit_strings_never_panic(code in "[0-9]{0,4}", digits in "[0-9]{0,25}") {
            let codes = CountryCodes::new([1, 7, 44, 86, 999]);
            let _ = PhoneNumber::parse(&format!("{code}-{digits}"), &codes);
        }
    }
}

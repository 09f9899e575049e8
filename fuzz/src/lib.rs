//! The properties each fuzz target checks, one function per target (`fuzz_targets/` only
//! calls them), so that the corpus can also be replayed by a plain `cargo test`. A broken
//! property panics: that is how libFuzzer learns of it.
//!
//! Targets that hold several small parsers take the first input byte to pick one and the
//! rest as the text it parses.

#![forbid(unsafe_code)]

use contactd_app::{EventPage, LinkToken, PageRequest};
use contactd_domain::{
    AccountId, Channel, ClientToken, ContactId, ContactName, CountryCodes, EmailAddress, Field,
    FolderId, MemberAccountId, MemberId, MessageType, MessageTypes, ParameterError, PhoneNumber,
    ResourceDirectoryId, Title, VerificationCode, VerificationTarget, masked,
};

/// A target's check: takes libFuzzer's input, panics when a property breaks.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the directories of `corpus/` and the binaries of `fuzz_targets/`.
pub const TARGETS: [(&str, Check); 10] = [
    ("ids", ids),
    ("choices", choices),
    ("codes", codes),
    ("name", name),
    ("email", email),
    ("phone", phone),
    ("country_codes", country_codes),
    ("verification_target", verification_target),
    ("paging", paging),
    ("requests", requests),
];

/// The selector byte and the text after it; `None` when the text is not UTF-8 (a gRPC string
/// never is anything else: prost refuses it before any parser sees it).
fn selected(data: &[u8]) -> Option<(u8, &str)> {
    let (selector, rest) = data.split_first()?;
    Some((*selector, std::str::from_utf8(rest).ok()?))
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn alphanumeric(raw: &str) -> bool {
    raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn digits(raw: &str) -> bool {
    raw.bytes().all(|b| b.is_ascii_digit())
}

/// Identifiers (selector modulo 8): ContactId, AccountId, ClientToken, FolderId,
/// ResourceDirectoryId, MemberAccountId, MemberId (a list filter), MemberId (a binding target).
/// Each accepted id is its input unchanged, of the contract's shape (API.md §4, §8), and parses
/// again to itself from its `as_str()` and its `Display`; each refusal names the right field.
pub fn ids(data: &[u8]) {
    let Some((selector, raw)) = selected(data) else {
        return;
    };
    match selector % 8 {
        0 => match ContactId::parse(raw) {
            Ok(id) => {
                assert_eq!(id.as_str(), raw);
                assert_eq!(id.to_string(), raw);
                let body = raw.strip_prefix("c-").unwrap_or_default();
                assert!(body.len() == 16 && alphanumeric(body), "{raw:?}");
                assert_eq!(ContactId::parse(id.as_str()), Ok(id));
            }
            Err(error) if raw.is_empty() => {
                assert_eq!(error, ParameterError::Missing(Field::ContactId));
            }
            Err(error) => assert_eq!(error, ParameterError::Invalid(Field::ContactId)),
        },
        1 => match AccountId::parse(raw) {
            Ok(id) => {
                assert_eq!(id.as_str(), raw);
                assert!((1..=32).contains(&raw.len()) && digits(raw), "{raw:?}");
                assert_eq!(AccountId::parse(&id.to_string()), Ok(id));
            }
            Err(_) => assert!(raw.is_empty() || raw.len() > 32 || !digits(raw), "{raw:?}"),
        },
        2 => match ClientToken::parse(raw) {
            Ok(None) => assert!(raw.is_empty()),
            Ok(Some(token)) => {
                assert_eq!(token.as_str(), raw);
                assert!((1..=64).contains(&raw.chars().count()));
                assert_eq!(ClientToken::parse(token.as_str()), Ok(Some(token)));
            }
            Err(error) => {
                assert_eq!(error, ParameterError::Invalid(Field::ClientToken));
                assert!(raw.chars().count() > 64);
            }
        },
        3 => match FolderId::parse(raw) {
            Ok(id) => {
                assert_eq!(id.as_str(), raw);
                prefixed_ten(raw, "fd-");
                assert_eq!(FolderId::parse(&id.to_string()), Ok(id));
            }
            Err(error) => assert_eq!(error, ParameterError::Invalid(Field::FolderId)),
        },
        4 => {
            if let Some(id) = ResourceDirectoryId::parse(raw) {
                assert_eq!(id.as_str(), raw);
                prefixed_ten(raw, "rd-");
                assert_eq!(ResourceDirectoryId::parse(&id.to_string()), Some(id));
            }
        }
        5 => match MemberAccountId::parse(raw) {
            Ok(id) => {
                assert_eq!(id.as_str(), raw);
                assert!(raw.len() == 16 && digits(raw), "{raw:?}");
                assert_eq!(MemberAccountId::parse(&id.to_string()), Ok(id));
            }
            Err(error) => assert_eq!(error, ParameterError::Invalid(Field::AccountId)),
        },
        6 => member(raw, MemberId::parse(raw), Field::Member),
        _ => member(raw, MemberId::parse_as(raw, Field::Members), Field::Members),
    }
}

/// `prefix` and 10 alphanumerics: the shape of directory and folder ids (§8).
fn prefixed_ten(raw: &str, prefix: &str) {
    let body = raw.strip_prefix(prefix).unwrap_or_default();
    assert!(
        raw.starts_with(prefix) && body.len() == 10 && alphanumeric(body),
        "{raw:?}"
    );
}

/// A binding target is exactly one of the three shapes, the one its text has.
fn member(raw: &str, parsed: Result<MemberId, ParameterError>, field: Field) {
    match parsed {
        Ok(id) => {
            assert_eq!(id.as_str(), raw);
            assert_eq!(id.to_string(), raw);
            match &id {
                MemberId::Directory(_) => prefixed_ten(raw, "rd-"),
                MemberId::Folder(_) => prefixed_ten(raw, "fd-"),
                MemberId::Account(_) => assert!(raw.len() == 16 && digits(raw), "{raw:?}"),
            }
            assert_eq!(MemberId::parse_as(id.as_str(), field), Ok(id));
        }
        Err(error) => {
            assert_eq!(error, ParameterError::Invalid(field));
            assert!(ResourceDirectoryId::parse(raw).is_none());
            assert!(FolderId::parse(raw).is_err());
            assert!(MemberAccountId::parse(raw).is_err());
        }
    }
}

/// The fixed vocabularies (selector modulo 4): Title, MessageType, MessageTypes (the text split
/// at `,`, as a repeated field's values) and Channel. Accepted values are exactly the
/// contract's spellings; a set keeps what was given, folded, in the contract's order.
pub fn choices(data: &[u8]) {
    let Some((selector, raw)) = selected(data) else {
        return;
    };
    match selector % 4 {
        0 => match Title::parse(raw) {
            Ok(title) => {
                assert_eq!(title.as_str(), raw);
                assert!(Title::ALL.contains(&title));
            }
            Err(error) => {
                assert_eq!(error, ParameterError::Invalid(Field::Title));
                assert!(Title::ALL.iter().all(|t| t.as_str() != raw));
            }
        },
        1 => match MessageType::parse(raw) {
            Ok(message_type) => assert_eq!(message_type.as_str(), raw),
            Err(error) => {
                assert_eq!(error, ParameterError::Invalid(Field::MessageTypes));
                assert!(MessageType::ALL.iter().all(|t| t.as_str() != raw));
            }
        },
        2 => {
            let values: Vec<&str> = if raw.is_empty() {
                Vec::new()
            } else {
                raw.split(',').collect()
            };
            match MessageTypes::parse(values.iter().copied()) {
                Ok(None) => assert!(values.is_empty()),
                Ok(Some(set)) => {
                    let members: Vec<MessageType> = set.iter().collect();
                    assert!(!members.is_empty());
                    let in_order: Vec<MessageType> = MessageType::ALL
                        .into_iter()
                        .filter(|t| values.contains(&t.as_str()))
                        .collect();
                    assert_eq!(members, in_order, "folded, in the contract's order");
                    let again = MessageTypes::parse(members.iter().map(|t| t.as_str()));
                    assert_eq!(again, Ok(Some(set)));
                }
                Err(error) => {
                    assert_eq!(error, ParameterError::Invalid(Field::MessageTypes));
                    assert!(values.iter().any(|v| MessageType::parse(v).is_err()));
                }
            }
        }
        _ => {
            if let Some(channel) = Channel::parse(raw) {
                assert_eq!(channel.as_str(), raw);
            } else {
                assert!(raw != "email" && raw != "phone");
            }
        }
    }
}

/// Secrets' shapes (selector modulo 2): a verification code (6 ASCII digits) and a link token
/// (43 characters of URL-safe base64). Accepted values are the input, unchanged.
pub fn codes(data: &[u8]) {
    let Some((selector, raw)) = selected(data) else {
        return;
    };
    if selector % 2 == 0 {
        match VerificationCode::parse(raw) {
            Ok(code) => {
                assert_eq!(code.expose(), raw);
                assert!(raw.len() == 6 && digits(raw), "{raw:?}");
                assert!(!format!("{code:?}").contains(raw), "Debug hides the code");
                let number: u32 = raw.parse().unwrap_or(u32::MAX);
                assert_eq!(VerificationCode::from_number(number), code);
            }
            Err(error) if raw.is_empty() => {
                assert_eq!(error, ParameterError::Missing(Field::VerificationCode));
            }
            Err(error) => assert_eq!(error, ParameterError::Invalid(Field::VerificationCode)),
        }
    } else if let Some(token) = LinkToken::parse(raw) {
        assert_eq!(token.expose(), raw);
        assert_eq!(raw.len(), 43);
        assert!(
            raw.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            LinkToken::parse(token.expose()).map(|t| t.hash()),
            Some(token.hash())
        );
    }
}

/// A contact's name: accepted names are the input, 2 to 12 characters, and parse again, as
/// does their uniqueness key; a refusal is `Name` (a character outside the set before a
/// length).
pub fn name(data: &[u8]) {
    let Some(raw) = text(data) else {
        return;
    };
    match ContactName::parse(raw) {
        Ok(name) => {
            assert_eq!(name.as_str(), raw);
            assert!((2..=12).contains(&raw.chars().count()));
            assert_eq!(ContactName::parse(&name.to_string()), Ok(name.clone()));
            let key = ContactName::parse(&name.uniqueness_key());
            assert!(key.is_ok_and(|key| key.as_str().chars().count() == raw.chars().count()));
        }
        Err(ParameterError::Length(Field::Name)) => {
            assert!(!(2..=12).contains(&raw.chars().count()));
        }
        Err(error) => assert_eq!(error, ParameterError::Invalid(Field::Name)),
    }
}

/// An email address: accepted ones are the input, at most 254 characters, ASCII, with a local
/// part of at most 64 and labels of at most 63, and parse again; the length error is for
/// more than 254 characters only.
pub fn email(data: &[u8]) {
    let Some(raw) = text(data) else {
        return;
    };
    match EmailAddress::parse(raw) {
        Ok(address) => {
            assert_eq!(address.as_str(), raw);
            assert!(raw.is_ascii() && raw.len() <= 254);
            let (local, domain) = raw.split_once('@').unwrap_or_default();
            assert!((1..=64).contains(&local.len()), "{raw:?}");
            assert!(domain.split('.').count() >= 2, "{raw:?}");
            assert!(
                domain
                    .split('.')
                    .all(|label| (1..=63).contains(&label.len()))
            );
            assert_eq!(EmailAddress::parse(&address.to_string()), Ok(address));
        }
        Err(ParameterError::Length(Field::EmailAddress)) => {
            assert!(raw.chars().count() > 254);
        }
        Err(error) => {
            assert_eq!(error, ParameterError::Invalid(Field::EmailAddress));
            assert!(raw.chars().count() <= 254);
        }
    }
}

/// Every calling code, so that any country's numbering rules are reached.
fn every_code() -> CountryCodes {
    CountryCodes::new(1..=999)
}

/// A phone number, under the default codes (`86`) and under every code: an accepted number is
/// the input, `<code>-<digits>`, parses again, is restored as itself, and is accepted under
/// more codes; a refused country code is only ever one outside the list.
pub fn phone(data: &[u8]) {
    let Some(raw) = text(data) else {
        return;
    };
    let default = CountryCodes::default();
    let every = every_code();
    let narrow = PhoneNumber::parse(raw, &default);
    let wide = PhoneNumber::parse(raw, &every);
    type Case<'a> = (
        &'a CountryCodes,
        &'a Result<PhoneNumber, ParameterError>,
        fn(u16) -> bool,
    );
    let cases: [Case; 2] = [
        (&default, &narrow, |code| code == 86),
        (&every, &wide, |code| (1..=999).contains(&code)),
    ];
    for (codes, parsed, allowed) in cases {
        match parsed {
            Ok(number) => {
                assert_eq!(number.as_str(), raw);
                let (code, rest) = raw.split_once('-').unwrap_or_default();
                assert!(!code.is_empty() && digits(code) && !code.starts_with('0'));
                assert!(!rest.is_empty() && digits(rest), "{raw:?}");
                assert_eq!(
                    PhoneNumber::parse(&number.to_string(), codes).as_ref(),
                    Ok(number)
                );
                assert_eq!(PhoneNumber::restore(raw).as_ref(), Ok(number));
                let target = VerificationTarget::Phone(number.clone());
                let shown = masked(&target);
                assert!(shown.starts_with(code));
                if rest.len() >= 8 {
                    assert_ne!(shown, raw, "a masked number hides its middle");
                }
            }
            Err(ParameterError::UnsupportedCountryCode) => {
                let code = raw
                    .split_once('-')
                    .map(|(code, _)| code)
                    .unwrap_or_default();
                assert!(code.parse::<u16>().map_or(true, |c| !allowed(c)), "{raw:?}");
            }
            Err(error) => assert_eq!(*error, ParameterError::Invalid(Field::PhoneNumber)),
        }
    }
    if let Ok(number) = &narrow {
        assert_eq!(
            wide.as_ref(),
            Ok(number),
            "more codes accept at least as much"
        );
    }
    // Restoring checks the shape only; it must never be stricter than parsing.
    let _ = PhoneNumber::restore(raw);
}

/// A configured list of calling codes: accepted lists are what a plain reading of the text
/// gives (comma-separated, trimmed, empties skipped, 1 to 999 without a leading zero), and a
/// list refused is one where that reading finds a bad code or none.
pub fn country_codes(data: &[u8]) {
    let Some(raw) = text(data) else {
        return;
    };
    let reading: Option<Vec<u16>> = raw
        .split(',')
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .map(|code| {
            let well_formed = code.len() <= 3 && digits(code) && !code.starts_with('0');
            well_formed.then(|| code.parse::<u16>().ok()).flatten()
        })
        .collect();
    let expected = reading
        .filter(|codes| !codes.is_empty())
        .map(CountryCodes::new);
    match CountryCodes::parse_list(raw) {
        Ok(codes) => assert_eq!(Some(codes), expected, "{raw:?}"),
        Err(message) => {
            assert!(expected.is_none(), "{raw:?}");
            assert!(!message.is_empty());
        }
    }
}

/// A verification target: empty is missing; one holding `@` is an email address, else a phone
/// number, accepted exactly when that parser accepts it; a refusal is always `Target`.
pub fn verification_target(data: &[u8]) {
    let Some((selector, raw)) = selected(data) else {
        return;
    };
    let codes = if selector % 2 == 0 {
        CountryCodes::default()
    } else {
        every_code()
    };
    match VerificationTarget::parse(raw, &codes) {
        Ok(target) => {
            assert_eq!(target.as_str(), raw);
            match &target {
                VerificationTarget::Email(address) => {
                    assert!(raw.contains('@'));
                    assert_eq!(EmailAddress::parse(raw).as_ref(), Ok(address));
                    assert_eq!(target.channel(), Channel::Email);
                }
                VerificationTarget::Phone(number) => {
                    assert!(!raw.contains('@'));
                    assert_eq!(PhoneNumber::parse(raw, &codes).as_ref(), Ok(number));
                    assert_eq!(target.channel(), Channel::Phone);
                }
            }
            let _ = masked(&target);
            assert_eq!(
                VerificationTarget::parse(target.as_str(), &codes),
                Ok(target)
            );
        }
        Err(error) if raw.is_empty() => assert_eq!(error, ParameterError::Missing(Field::Target)),
        Err(error) => {
            assert_eq!(error, ParameterError::Invalid(Field::Target));
            if raw.contains('@') {
                assert!(EmailAddress::parse(raw).is_err());
            } else {
                assert!(PhoneNumber::parse(raw, &codes).is_err());
            }
        }
    }
}

fn i64_at(data: &[u8], at: usize) -> i64 {
    let mut bytes = [0; 8];
    if let Some(slice) = data.get(at..at + 8) {
        bytes.copy_from_slice(slice);
    }
    i64::from_le_bytes(bytes)
}

/// Paging: `PageRequest::parse` over the first 16 bytes (number, size, little-endian) with the
/// default 10 and maximum 100 of the List calls; `EventPage::parse` over the size and the
/// text after it as the page token. Accepted pages are within the limits, offsets never
/// overflow, and a continuation token names the version it came from.
pub fn paging(data: &[u8]) {
    let number = i64_at(data, 0);
    let size = i64_at(data, 8);
    match PageRequest::parse(number, size, 10, 100) {
        Ok(page) => {
            assert!(page.number >= 1 && (1..=100).contains(&page.size));
            assert_eq!(i64::from(page.number), number.max(1));
            assert_eq!(i64::from(page.size), if size == 0 { 10 } else { size });
            let _ = page.offset();
        }
        Err(ParameterError::Invalid(Field::PageNumber)) => {
            assert!(number < 0 || number > i64::from(u32::MAX));
        }
        Err(error) => {
            assert_eq!(error, ParameterError::Invalid(Field::PageSize));
            assert!(!(0..=100).contains(&size));
        }
    }
    let Some(token) = data.get(16..).and_then(text) else {
        return;
    };
    match EventPage::parse(size, token) {
        Ok(page) => {
            assert!((1..=1000).contains(&page.size));
            if token.is_empty() {
                assert_eq!(page.after_version, 0);
            } else {
                assert!(page.after_version > 0);
                let next = EventPage::token_after(page.after_version);
                assert_eq!(
                    EventPage::parse(size, &next).map(|again| again.after_version),
                    Ok(page.after_version)
                );
            }
        }
        Err(error) => assert!(
            error == ParameterError::Invalid(Field::PageSize)
                || error == ParameterError::Invalid(Field::PageToken),
            "{error:?}"
        ),
    }
}

/// Request decoding: the first byte picks one of the four services' request messages, the
/// rest is decoded and converted as the server does (`contactd_grpc::fuzzing`).
pub fn requests(data: &[u8]) {
    if let Some((selector, bytes)) = data.split_first() {
        contactd_grpc::fuzzing::decode_request(*selector, bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every committed corpus input still holds: the fuzzers' findings stay fixed without a
    /// fuzzer.
    #[test]
    fn the_corpus_replays() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, target) in TARGETS {
            let Ok(entries) = std::fs::read_dir(corpus.join(name)) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(input) = std::fs::read(entry.path()) {
                    target(&input);
                }
            }
        }
    }
}

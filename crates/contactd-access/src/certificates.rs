//! Which account a client certificate acts for. With mutual TLS the transport names the
//! certificate's principal (its URI SAN, else its DNS SAN, else its subject CN); a mapping
//! file says which account each such name acts for.
//!
//! # The mapping file
//!
//! One JSON object, certificate name to account id:
//!
//! ```json
//! {"spiffe://corp/billing": "1234567890123456", "gateway.internal": "9876543210987654"}
//! ```
//!
//! - A name is 1 to 256 printable ASCII characters (no space), matched exactly, byte for
//!   byte (`Gateway.internal` is another name); a name given twice is refused.
//! - An account id is a JSON string of 1 to 32 ASCII digits (a number would lose leading
//!   zeros, and `01` is not `1`).
//! - Several names may act for one account. `{}` is valid: then no certificate acts for any
//!   account.
//!
//! A certificate whose name is not in the file proves nothing: its calls are unauthenticated.

use std::collections::HashMap;
use std::fmt;

use contactd_app::{Principal, Proof};
use contactd_domain::AccountId;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

const MAX_NAME_CHARS: usize = 256;

/// The accounts that certificate principals act for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateAccounts {
    accounts: HashMap<String, AccountId>,
}

impl CertificateAccounts {
    /// The mapping of a file in the format of the module docs.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        let Entries(entries) = serde_json::from_slice(bytes).map_err(|error| {
            format!(
                "the certificate account file is not a JSON object of names to account ids: \
                 {error}"
            )
        })?;
        let mut accounts = HashMap::with_capacity(entries.len());
        for (name, account) in entries {
            let printable = (1..=MAX_NAME_CHARS).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_graphic());
            if !printable {
                return Err(format!(
                    "certificate name {name:?} is not 1 to 256 printable ASCII characters"
                ));
            }
            let account_id = account
                .as_str()
                .and_then(|account| AccountId::parse(account).ok())
                .ok_or_else(|| {
                    format!(
                        "the account of {name:?} must be a string of 1 to 32 ASCII digits, \
                         not {account}"
                    )
                })?;
            if accounts.contains_key(&name) {
                return Err(format!("certificate name {name:?} is given twice"));
            }
            accounts.insert(name, account_id);
        }
        Ok(Self { accounts })
    }

    /// The principal a verified client certificate of that name proves, if the file maps it.
    pub fn principal(&self, certificate_name: &str) -> Option<Principal> {
        let account_id = self.accounts.get(certificate_name)?;
        Some(Principal {
            account_id: account_id.clone(),
            name: certificate_name.to_owned(),
            proof: Proof::ClientCertificate,
        })
    }

    /// How many certificate names the file maps.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

/// The object's members in order, duplicates kept, so that a name given twice is caught
/// (a map would silently keep the last).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of certificate names to account ids")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        r#"{"spiffe://corp/billing": "1234567890123456", "gateway.internal": "9876543210987654"}"#;

    #[test]
    fn a_mapped_certificate_acts_for_its_account() {
        let accounts = CertificateAccounts::parse(FILE.as_bytes()).unwrap();
        assert_eq!(accounts.len(), 2);
        let principal = accounts.principal("spiffe://corp/billing").unwrap();
        assert_eq!(principal.account_id.as_str(), "1234567890123456");
        assert_eq!(principal.name, "spiffe://corp/billing");
        assert_eq!(principal.proof, Proof::ClientCertificate);
        assert_eq!(principal.to_string(), "certificate:spiffe://corp/billing");
        assert_eq!(
            accounts
                .principal("gateway.internal")
                .unwrap()
                .account_id
                .as_str(),
            "9876543210987654"
        );
    }

    #[test]
    fn names_match_exactly() {
        let accounts = CertificateAccounts::parse(FILE.as_bytes()).unwrap();
        for other in [
            "Gateway.internal",
            "gateway.internal.",
            " gateway.internal",
            "spiffe://corp/billing/",
            "spiffe://corp",
            "",
        ] {
            assert_eq!(accounts.principal(other), None, "{other:?}");
        }
    }

    #[test]
    fn an_empty_mapping_maps_nothing() {
        let accounts = CertificateAccounts::parse(b" {} \n").unwrap();
        assert!(accounts.is_empty());
        assert_eq!(accounts.principal("gateway.internal"), None);
    }

    #[test]
    fn several_names_may_share_an_account_and_a_bom_is_skipped() {
        let file = "\u{feff}{\"a.internal\": \"7\", \"b.internal\": \"7\"}";
        let accounts = CertificateAccounts::parse(file.as_bytes()).unwrap();
        assert_eq!(
            accounts
                .principal("a.internal")
                .unwrap()
                .account_id
                .as_str(),
            "7"
        );
        assert_eq!(
            accounts
                .principal("b.internal")
                .unwrap()
                .account_id
                .as_str(),
            "7"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let long_name = format!("{{\"{}\": \"1\"}}", "a".repeat(257));
        let cases: [(&str, &str); 12] = [
            ("", "not a JSON object"),
            ("[]", "not a JSON object"),
            (r#"{"a": "1""#, "not a JSON object"),
            (r#"{"a": "1"} {"#, "not a JSON object"),
            (r#"{"a": 1234567890123456}"#, "must be a string"),
            (r#"{"a": "12ab"}"#, "must be a string"),
            (r#"{"a": ""}"#, "must be a string"),
            (
                r#"{"a": "123456789012345678901234567890123"}"#,
                "must be a string",
            ),
            (r#"{"a": "1", "a": "2"}"#, "given twice"),
            (r#"{"": "1"}"#, "printable"),
            (r#"{"with space": "1"}"#, "printable"),
            (r#"{"caf\u00e9": "1"}"#, "printable"),
        ];
        for (file, reason) in cases {
            let error = CertificateAccounts::parse(file.as_bytes()).unwrap_err();
            assert!(error.contains(reason), "{file:?}: {error}");
        }
        let error = CertificateAccounts::parse(long_name.as_bytes()).unwrap_err();
        assert!(error.contains("printable"), "{error}");
        let exactly_256 = format!("{{\"{}\": \"1\"}}", "a".repeat(256));
        assert!(CertificateAccounts::parse(exactly_256.as_bytes()).is_ok());
        assert!(CertificateAccounts::parse(&[0xff, 0xfe]).is_err());
    }
}

//! The identity a client certificate names: its first URI SAN, else its first DNS SAN, else its
//! subject's common name.

use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Why no identity could be read out of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error("the certificate does not parse: {0}")]
    Malformed(String),
    #[error("the certificate names no URI SAN, DNS SAN nor common name")]
    Anonymous,
}

/// The identity named by a DER certificate. SPIFFE-style URIs come first because they are
/// the identities meant for services; the CN is the last resort of older CAs.
pub(crate) fn certificate_identity(der: &[u8]) -> Result<String, IdentityError> {
    let certificate =
        Certificate::from_der(der).map_err(|error| IdentityError::Malformed(error.to_string()))?;
    let tbs = &certificate.tbs_certificate;
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    for extension in tbs.extensions.iter().flatten() {
        if extension.extn_id != SubjectAltName::OID {
            continue;
        }
        let names = SubjectAltName::from_der(extension.extn_value.as_bytes())
            .map_err(|error| IdentityError::Malformed(format!("subjectAltName: {error}")))?;
        for name in names.0 {
            match name {
                GeneralName::UniformResourceIdentifier(uri) => uris.push(uri.to_string()),
                GeneralName::DnsName(dns) => dns_names.push(dns.to_string()),
                _ => {}
            }
        }
    }
    let non_empty = |name: &String| !name.is_empty();
    if let Some(uri) = uris.into_iter().find(non_empty) {
        return Ok(uri);
    }
    if let Some(dns) = dns_names.into_iter().find(non_empty) {
        return Ok(dns);
    }
    // The most specific common name is the last one in the subject (RFC 6125 §6.4.4).
    tbs.subject
        .0
        .iter()
        .rev()
        .flat_map(|rdn| rdn.0.iter().rev())
        .filter(|attribute| attribute.oid == COMMON_NAME)
        .filter_map(|attribute| directory_string(&attribute.value))
        .find(|name| !name.is_empty())
        .ok_or(IdentityError::Anonymous)
}

/// The text of a DirectoryString; the legacy encodings that are not UTF-8 are skipped.
fn directory_string(value: &x509_cert::der::Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok().map(str::to_owned)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn certificate(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn params(sans: Vec<SanType>, common_name: Option<&str>) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(common_name) = common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
        }
        params.subject_alt_names = sans;
        params
    }

    #[test]
    fn a_uri_san_wins_over_dns_sans_and_the_common_name() {
        let der = certificate(params(
            vec![
                SanType::DnsName("billing.corp".try_into().unwrap()),
                SanType::URI("spiffe://corp/billing".try_into().unwrap()),
                SanType::URI("spiffe://corp/other".try_into().unwrap()),
            ],
            Some("billing"),
        ));
        assert_eq!(certificate_identity(&der).unwrap(), "spiffe://corp/billing");
    }

    #[test]
    fn without_a_uri_the_first_dns_san_is_the_identity() {
        let der = certificate(params(
            vec![
                SanType::DnsName("billing.corp".try_into().unwrap()),
                SanType::DnsName("other.corp".try_into().unwrap()),
            ],
            Some("billing"),
        ));
        assert_eq!(certificate_identity(&der).unwrap(), "billing.corp");
    }

    #[test]
    fn without_sans_the_common_name_is_the_identity() {
        let der = certificate(params(vec![], Some("billing")));
        assert_eq!(certificate_identity(&der).unwrap(), "billing");
    }

    #[test]
    fn a_certificate_naming_nobody_has_no_identity() {
        let der = certificate(params(vec![], None));
        assert_eq!(certificate_identity(&der), Err(IdentityError::Anonymous));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            certificate_identity(b"\x30\x03\x02\x01"),
            Err(IdentityError::Malformed(_))
        ));
    }
}

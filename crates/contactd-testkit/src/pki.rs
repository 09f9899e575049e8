//! Certificates and signed tokens made in the test: a certificate authority issuing the
//! server's certificate and clients' certificates (named by URI SAN, DNS SAN or CN only), and
//! a token issuer with an ES256 key, its JWKS and PEM forms, minting JWTs as an identity
//! provider would (and unsigned ones, as an attacker would).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct CertifiedPem {
    pub cert: String,
    pub key: String,
}

impl CertifiedPem {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

/// How a client certificate names its holder.
#[derive(Debug, Clone, Copy)]
pub enum ClientName<'a> {
    /// A URI subject alternative name (`spiffe://corp/billing`).
    Uri(&'a str),
    /// A DNS subject alternative name.
    Dns(&'a str),
    /// Only the subject's common name.
    CommonName(&'a str),
}

/// A certificate authority of the test.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// The CA's certificate, in PEM: what clients trust, or what the server trusts clients by.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1, with `common_name` as its subject
    /// (so that a test can tell two of them apart).
    pub fn server(&self, common_name: &str) -> CertifiedPem {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate naming its holder as `name` says.
    pub fn client(&self, name: ClientName<'_>) -> CertifiedPem {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        match name {
            ClientName::Uri(uri) => {
                params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
                params
                    .distinguished_name
                    .push(DnType::CommonName, "ignored");
            }
            ClientName::Dns(dns) => {
                params.subject_alt_names = vec![SanType::DnsName(dns.try_into().unwrap())];
                params
                    .distinguished_name
                    .push(DnType::CommonName, "ignored");
            }
            ClientName::CommonName(cn) => params.distinguished_name.push(DnType::CommonName, cn),
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> CertifiedPem {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        CertifiedPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// An identity provider of the test: an ES256 key that signs tokens.
#[derive(Debug)]
pub struct TokenIssuer {
    key: KeyPair,
    kid: String,
}

impl TokenIssuer {
    pub fn new(kid: &str) -> Self {
        Self {
            key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            kid: kid.to_owned(),
        }
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> String {
        // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
        let point = self.key.public_key_raw();
        let (x, y) = point[1..].split_at(32);
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
        .to_string()
    }

    /// The public key in PEM.
    pub fn public_pem(&self) -> String {
        self.key.public_key_pem()
    }

    /// A token with `claims`, signed ES256 under this issuer's key id.
    pub fn mint(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key =
            jsonwebtoken::EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// A token that claims `claims` with `alg: none` and no signature.
pub fn unsigned_token(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// Seconds since the Unix epoch, for `exp`, `nbf` and `iat`.
pub fn unix_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

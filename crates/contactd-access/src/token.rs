//! Bearer tokens: the JWT in metadata `authorization: Bearer <token>`, the public keys that
//! may sign it, the checks it must pass to prove a [`Principal`], and a cache so that a busy
//! caller's token is verified once rather than on every call.
//!
//! # The key file
//!
//! Public keys only, in either of two formats (told apart by the first character):
//!
//! - A JWKS document, as identity providers publish it:
//!
//!   ```json
//!   {"keys": [{"kty": "EC", "crv": "P-256", "x": "…", "y": "…", "kid": "2026-11", "alg": "ES256"}]}
//!   ```
//!
//!   Key types: `RSA` (`n`, `e`; 2048 to 8192 bits), `EC` with `crv` `P-256` or `P-384`
//!   (`x`, `y`), `OKP` with `crv` `Ed25519` (`x`); values base64url without padding. A key's
//!   `alg`, when given, is the only algorithm it verifies; a key with `"use": "enc"` is an
//!   encryption key and is skipped. Refused: symmetric `oct` keys (a secret shared between
//!   services would let every holder mint tokens for any account), private keys (`d`), two
//!   keys with one `kid`.
//! - PEM: one or more `-----BEGIN PUBLIC KEY-----` blocks (RSA, EC P-256/P-384 or Ed25519, as
//!   `openssl pkey -pubout` writes them) or `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1) blocks;
//!   text between blocks is ignored. Certificates and private keys are refused. PEM keys have
//!   no `kid`.
//!
//! A file without any key is refused. Each [`TokenKeys`] loaded gets a new
//! [`generation`](TokenKeys::generation), so that a token verified with a key set since
//! replaced is verified again.
//!
//! # The token
//!
//! A JWS in compact form (at most 8 KiB) signed with an algorithm of the allow-list
//! ([`TokenSettings::algorithms`]: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA; `none`
//! and the HMAC algorithms never) that suits the key: RSA keys verify RS*/PS*, P-256 ES256,
//! P-384 ES384, Ed25519 EdDSA. A token with a `kid` is checked against the keys of that `kid`
//! (or, when none has it, the keys without a `kid`, as PEM keys are); a token without one
//! against every key that suits its algorithm. Header `crit` is refused; keys the header
//! carries or points to (`jwk`, `jku`, `x5c`, `x5u`) are ignored. Its claims:
//!
//! | claim | rule |
//! | --- | --- |
//! | `exp` | required; the token is refused from `exp` + leeway on |
//! | `nbf` | optional; the token is refused before `nbf` − leeway |
//! | `iss` | required; exactly [`TokenSettings::issuer`] |
//! | `aud` | required; a string or an array, holding [`TokenSettings::audience`] |
//! | `sub` | required; 1 to 256 printable ASCII characters (no space): the principal's name |
//! | `account_id` | required; a JSON string of 1 to 32 ASCII digits: the account the caller acts for |
//!
//! Times are NumericDates (seconds since the epoch, fractions allowed); other claims are
//! ignored.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use contactd_app::{Principal, Proof};
use contactd_domain::AccountId;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use sha2::{Digest, Sha256};

/// The claim naming the account the caller acts for (1 to 32 ASCII digits, as a string).
pub const ACCOUNT_CLAIM: &str = "account_id";

/// Tokens longer than this are refused before any parsing: real ones are well under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The allow-list when none is configured.
pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

const MAX_SUBJECT_CHARS: usize = 256;

/// The asymmetric algorithms a token may be signed with, by their JWS names.
const SIGNATURE_ALGORITHMS: [(&str, Algorithm); 9] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// What a token must say and how it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The `iss` a token must carry, exactly.
    pub issuer: String,
    /// A value the token's `aud` (a string or an array) must hold.
    pub audience: String,
    /// The algorithms accepted. `none` cannot be named; HMAC ones are never accepted even if
    /// listed, since no key of a [`TokenKeys`] is a shared secret.
    pub algorithms: Vec<Algorithm>,
    /// The clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How many verified tokens are remembered at most.
    pub cache_entries: usize,
}

impl TokenSettings {
    /// The settings for `issuer` and `audience`, with the default algorithms (RS256, ES256,
    /// EdDSA), 60 s of leeway and 10 000 cached tokens.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(60),
            cache_entries: 10_000,
        }
    }
}

/// The allow-list of a flag like `RS256,ES256` (names case-insensitive, duplicates ignored).
pub fn parse_algorithms(list: &str) -> Result<Vec<Algorithm>, String> {
    let mut algorithms = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        if name.eq_ignore_ascii_case("none") {
            return Err("`none` cannot be allowed: it accepts unsigned tokens".to_owned());
        }
        if name
            .get(..2)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("HS"))
        {
            return Err(format!(
                "{name} cannot be allowed: HMAC needs a secret shared between services, which \
                 would let every holder mint tokens; sign with a private key instead"
            ));
        }
        let algorithm = SIGNATURE_ALGORITHMS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, algorithm)| *algorithm)
            .ok_or_else(|| {
                format!(
                    "unknown token algorithm {name:?}: expected some of {}",
                    SIGNATURE_ALGORITHMS.map(|(known, _)| known).join(", ")
                )
            })?;
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    if algorithms.is_empty() {
        return Err("the list of token algorithms is empty".to_owned());
    }
    Ok(algorithms)
}

/// The token of an `authorization` value `Bearer <token>` (the scheme in any case, one space,
/// a token without whitespace).
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.bytes().any(|b| b.is_ascii_whitespace());
    well_formed.then_some(token)
}

/// What a public key is, which decides the algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyType {
    fn verifies(self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => algorithm == ES256,
            Self::P384 => algorithm == ES384,
            Self::Ed25519 => algorithm == EdDSA,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::P384 => "EC P-384",
            Self::Ed25519 => "Ed25519",
        }
    }
}

struct VerifyingKey {
    kid: Option<String>,
    key_type: KeyType,
    /// The one algorithm a JWK allows for itself, when it names one.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

impl VerifyingKey {
    fn verifies(&self, algorithm: Algorithm) -> bool {
        self.key_type.verifies(algorithm) && self.algorithm.is_none_or(|only| only == algorithm)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type.as_str())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A set of public keys that sign tokens, as one key file holds them.
#[derive(Debug)]
pub struct TokenKeys {
    generation: u64,
    keys: Vec<VerifyingKey>,
}

/// Never 0, so that an empty cache shard (generation 0) holds no key set's tokens.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl TokenKeys {
    /// The keys of a JWKS document or a PEM file (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<TokenKeys, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "the token key file is not UTF-8 text".to_owned())?;
        let text = text.trim_start_matches('\u{feff}').trim_start();
        let keys = if text.starts_with('{') {
            parse_jwks(text)?
        } else if text.contains("-----BEGIN ") {
            parse_pem(text)?
        } else {
            return Err(
                "the token key file is neither a JWKS document ({\"keys\": [...]}) nor PEM \
                 public keys"
                    .to_owned(),
            );
        };
        if keys.is_empty() {
            return Err("the token key file holds no signing key".to_owned());
        }
        Ok(TokenKeys {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            keys,
        })
    }

    /// Tells this key set from every other one loaded by the process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many keys the set holds (never 0).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    /// The private part of an RSA, EC or OKP key, which must never be in this file.
    d: Option<IgnoredAny>,
}

fn parse_jwks(text: &str) -> Result<Vec<VerifyingKey>, String> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|error| format!("the token key file is not a JWKS document: {error}"))?;
    let mut keys: Vec<VerifyingKey> = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let name = match &jwk.kid {
            Some(kid) => format!("key {index} (kid {kid:?})"),
            None => format!("key {index}"),
        };
        if let Some(key) = parse_jwk(jwk).map_err(|error| format!("{name}: {error}"))? {
            if key.kid.is_some() && keys.iter().any(|other| other.kid == key.kid) {
                return Err(format!("{name}: another key has the same kid"));
            }
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The key a JWK describes, or none for an encryption key.
fn parse_jwk(jwk: &Jwk) -> Result<Option<VerifyingKey>, String> {
    if jwk.kty == "oct" {
        return Err(
            "symmetric (`oct`) keys are refused: a secret shared between services would let \
             every service holding it mint tokens for any account; sign with a private key and \
             publish only its public key"
                .to_owned(),
        );
    }
    if jwk.d.is_some() {
        return Err(
            "this is a private key (it has `d`): the key file must hold only public keys"
                .to_owned(),
        );
    }
    if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return Ok(None);
    }
    let (key_type, key) = match jwk.kty.as_str() {
        "RSA" => {
            let n = jwk_bytes(&jwk.n, "n")?;
            let e = jwk_bytes(&jwk.e, "e")?;
            check_rsa_modulus(&n)?;
            if e.iter().all(|&b| b == 0) {
                return Err("the RSA exponent is 0".to_owned());
            }
            (KeyType::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (key_type, coordinate_bytes) = match jwk.crv.as_deref() {
                Some("P-256") => (KeyType::P256, 32),
                Some("P-384") => (KeyType::P384, 48),
                Some("P-521") => return Err("P-521 (ES512) is not supported".to_owned()),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let x = jwk_bytes(&jwk.x, "x")?;
            let y = jwk_bytes(&jwk.y, "y")?;
            if x.len() != coordinate_bytes || y.len() != coordinate_bytes {
                return Err(format!(
                    "the coordinates of a {} key are {coordinate_bytes} bytes each",
                    key_type.as_str()
                ));
            }
            let point = [&[0x04][..], &x, &y].concat();
            (key_type, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            match jwk.crv.as_deref() {
                Some("Ed25519") => {}
                other => return Err(format!("unsupported OKP curve {other:?} (only Ed25519)")),
            }
            let x = jwk_bytes(&jwk.x, "x")?;
            if x.len() != 32 {
                return Err("an Ed25519 key is 32 bytes".to_owned());
            }
            (KeyType::Ed25519, DecodingKey::from_ed_der(&x))
        }
        other => return Err(format!("unsupported key type {other:?}")),
    };
    let algorithm = match &jwk.alg {
        None => None,
        Some(name) => {
            let algorithm = SIGNATURE_ALGORITHMS
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, algorithm)| *algorithm)
                .ok_or_else(|| format!("unsupported algorithm {name:?}"))?;
            if !key_type.verifies(algorithm) {
                return Err(format!("a {} key cannot verify {name}", key_type.as_str()));
            }
            Some(algorithm)
        }
    };
    Ok(Some(VerifyingKey {
        kid: jwk.kid.clone(),
        key_type,
        algorithm,
        key,
    }))
}

fn jwk_bytes(value: &Option<String>, member: &str) -> Result<Vec<u8>, String> {
    let value = value
        .as_deref()
        .ok_or_else(|| format!("`{member}` is missing"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{member}` is not base64url without padding"))
}

/// Refuses what ring would never verify with, at load rather than on every token.
fn check_rsa_modulus(modulus: &[u8]) -> Result<(), String> {
    let significant = match modulus.iter().position(|&b| b != 0) {
        Some(start) => &modulus[start..],
        None => &[],
    };
    let bits = match significant.first() {
        Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if (2048..=8192).contains(&bits) {
        Ok(())
    } else {
        Err(format!(
            "an RSA key must have 2048 to 8192 bits, this one has {bits}"
        ))
    }
}

fn parse_pem(text: &str) -> Result<Vec<VerifyingKey>, String> {
    let mut keys = Vec::new();
    for (index, (label, der)) in pem_blocks(text)?.into_iter().enumerate() {
        let name = format!("PEM block {index} ({label})");
        let (key_type, key) = match label.as_str() {
            "PUBLIC KEY" => subject_public_key(&der),
            "RSA PUBLIC KEY" => rsa_public_key(&der).map(|key| (KeyType::Rsa, key)),
            "CERTIFICATE" => Err("a certificate: give its public key \
                                  (`openssl x509 -pubkey -noout`)"
                .to_owned()),
            _ if label.contains("PRIVATE KEY") => {
                Err("a private key: the key file must hold only public keys".to_owned())
            }
            _ => Err("not a public key".to_owned()),
        }
        .map_err(|error| format!("{name}: {error}"))?;
        keys.push(VerifyingKey {
            kid: None,
            key_type,
            algorithm: None,
            key,
        });
    }
    Ok(keys)
}

/// The label and content of each `-----BEGIN <label>-----` … `-----END <label>-----` block.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(&str, String)> = None;
    for line in text.lines().map(str::trim) {
        match &mut open {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    open = Some((label, String::new()));
                }
            }
            Some((label, body)) => {
                if let Some(end) = line
                    .strip_prefix("-----END ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    if end != *label {
                        return Err(format!("PEM block {label} ends as {end}"));
                    }
                    let der = STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| format!("PEM block {label} is not base64"))?;
                    blocks.push((label.to_string(), der));
                    open = None;
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    if let Some((label, _)) = open {
        return Err(format!("PEM block {label} has no END line"));
    }
    Ok(blocks)
}

const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;
const DER_NULL: u8 = 0x05;
const DER_OID: u8 = 0x06;
const DER_SEQUENCE: u8 = 0x30;

/// 1.2.840.113549.1.1.1
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.132.0.34
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// 1.3.101.112
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The content of the DER element with `tag` at the start of `input`, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let malformed = || "malformed DER".to_owned();
    let (&found, rest) = input.split_first().ok_or_else(malformed)?;
    if found != tag {
        return Err(malformed());
    }
    let (&first, rest) = rest.split_first().ok_or_else(malformed)?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if !(1..=3).contains(&count) {
            return Err(malformed());
        }
        let (bytes, rest) = rest.split_at_checked(count).ok_or_else(malformed)?;
        let length = bytes
            .iter()
            .fold(0usize, |length, &b| (length << 8) | usize::from(b));
        (length, rest)
    };
    rest.split_at_checked(length).ok_or_else(malformed)
}

/// A `PUBLIC KEY` block: an X.509 SubjectPublicKeyInfo.
fn subject_public_key(der: &[u8]) -> Result<(KeyType, DecodingKey), String> {
    let (info, trailing) = der_element(der, DER_SEQUENCE)?;
    let (algorithm, rest) = der_element(info, DER_SEQUENCE)?;
    let (bits, rest) = der_element(rest, DER_BIT_STRING)?;
    if !trailing.is_empty() || !rest.is_empty() {
        return Err("malformed DER".to_owned());
    }
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err("malformed DER".to_owned()),
    };
    let (oid, parameters) = der_element(algorithm, DER_OID)?;
    match oid {
        OID_RSA_ENCRYPTION => {
            if !(parameters.is_empty() || parameters == [DER_NULL, 0]) {
                return Err("malformed RSA parameters".to_owned());
            }
            rsa_public_key(key).map(|key| (KeyType::Rsa, key))
        }
        OID_EC_PUBLIC_KEY => {
            let (curve, rest) = der_element(parameters, DER_OID)?;
            let (key_type, point_bytes) = match curve {
                OID_P256 if rest.is_empty() => (KeyType::P256, 65),
                OID_P384 if rest.is_empty() => (KeyType::P384, 97),
                _ => return Err("an EC key must be on P-256 or P-384".to_owned()),
            };
            if key.len() != point_bytes || key.first() != Some(&0x04) {
                return Err(format!(
                    "a {} key must be an uncompressed point",
                    key_type.as_str()
                ));
            }
            Ok((key_type, DecodingKey::from_ec_der(key)))
        }
        OID_ED25519 => {
            if !parameters.is_empty() || key.len() != 32 {
                return Err("malformed Ed25519 key".to_owned());
            }
            Ok((KeyType::Ed25519, DecodingKey::from_ed_der(key)))
        }
        _ => Err("not an RSA, EC (P-256, P-384) or Ed25519 public key".to_owned()),
    }
}

/// A PKCS#1 RSAPublicKey: SEQUENCE { modulus INTEGER, publicExponent INTEGER }, as ring takes it.
fn rsa_public_key(der: &[u8]) -> Result<DecodingKey, String> {
    let (key, trailing) = der_element(der, DER_SEQUENCE)?;
    let (modulus, rest) = der_element(key, DER_INTEGER)?;
    let (exponent, rest) = der_element(rest, DER_INTEGER)?;
    if !trailing.is_empty() || !rest.is_empty() || exponent.iter().all(|&b| b == 0) {
        return Err("malformed RSA public key".to_owned());
    }
    check_rsa_modulus(modulus)?;
    Ok(DecodingKey::from_rsa_der(der))
}

/// Where a verifier gets the key set in force: a fixed one, or a file reloaded when it changes.
pub trait KeySource: Send + Sync + 'static {
    fn current(&self) -> Arc<TokenKeys>;
}

/// Fixed keys.
impl KeySource for Arc<TokenKeys> {
    fn current(&self) -> Arc<TokenKeys> {
        Arc::clone(self)
    }
}

/// Why a token was refused, for the logs (the client is only told it is invalid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRejection {
    Malformed,
    AlgorithmNotAllowed,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    BadAccountClaim,
}

impl TokenRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm not allowed",
            Self::UnknownKey => "unknown key",
            Self::BadSignature => "bad signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::MissingClaim => "missing claim",
            Self::BadAccountClaim => "bad account claim",
        }
    }
}

/// A token that proves nothing, and why. The details never quote the token, which is
/// attacker-controlled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidToken {
    rejection: TokenRejection,
    detail: &'static str,
}

impl InvalidToken {
    fn new(rejection: TokenRejection, detail: &'static str) -> Self {
        Self { rejection, detail }
    }

    fn malformed(detail: &'static str) -> Self {
        Self::new(TokenRejection::Malformed, detail)
    }

    pub fn rejection(&self) -> TokenRejection {
        self.rejection
    }
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid token ({}): {}",
            self.rejection.as_str(),
            self.detail
        )
    }
}

impl std::error::Error for InvalidToken {}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    /// [`ACCOUNT_CLAIM`]; any JSON value, so that a number is told apart from a malformed token.
    account_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn holds(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

/// A token that passed every check, and the times it may be used.
struct Verified {
    principal: Principal,
    /// `nbf` − leeway, or the epoch.
    valid_from: SystemTime,
    /// `exp` + leeway.
    valid_until: SystemTime,
}

/// Checks bearer tokens against the key set in force, remembering the ones that passed.
pub struct TokenVerifier {
    settings: TokenSettings,
    keys: Arc<dyn KeySource>,
    cache: TokenCache,
    verifications: AtomicU64,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .field("key_generation", &self.keys.current().generation)
            .field("cached", &self.cached())
            .field("verifications", &self.verifications())
            .finish()
    }
}

impl TokenVerifier {
    pub fn new(mut settings: TokenSettings, keys: Arc<dyn KeySource>) -> Self {
        // No key is a shared secret, so an HMAC algorithm could never verify; dropping it
        // keeps the allow-list honest.
        settings.algorithms.retain(|algorithm| {
            SIGNATURE_ALGORITHMS
                .iter()
                .any(|(_, known)| known == algorithm)
        });
        Self {
            cache: TokenCache::new(settings.cache_entries),
            settings,
            keys,
            verifications: AtomicU64::new(0),
        }
    }

    /// The principal a token proves, or why not (the reason is for logs only: the client
    /// is told only "invalid").
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, InvalidToken> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::malformed("longer than 8 KiB"));
        }
        let keys = self.keys.current();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(principal) = self.cache.get(&digest, keys.generation, now) {
            return Ok(principal);
        }
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self.verify_fully(token, &keys, now)?;
        let principal = verified.principal.clone();
        self.cache.insert(digest, keys.generation, verified, now);
        Ok(principal)
    }

    /// How many tokens were verified rather than found in the cache (whatever the outcome).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How many verified tokens are remembered now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn verify_fully(
        &self,
        token: &str,
        keys: &TokenKeys,
        now: SystemTime,
    ) -> Result<Verified, InvalidToken> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(claims_part), Some(signature_part), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken::malformed("not three dot-separated parts"));
        };
        let header: Header = decode_part(header_part)?;
        if header.crit.is_some() {
            return Err(InvalidToken::malformed(
                "critical header parameters are not supported",
            ));
        }
        let algorithm = self
            .settings
            .algorithms
            .iter()
            .copied()
            .find(|&allowed| algorithm_name(allowed) == header.alg)
            .ok_or(InvalidToken::new(
                TokenRejection::AlgorithmNotAllowed,
                "the header's alg is not in the allow-list",
            ))?;
        let signature_valid_base64 =
            !signature_part.is_empty() && URL_SAFE_NO_PAD.decode(signature_part).is_ok();
        if !signature_valid_base64 {
            return Err(InvalidToken::malformed("the signature is not base64url"));
        }

        // A kid selects the keys of that kid; when no key has it, the keys without one (PEM
        // keys) are still tried, since a kid is only a hint where no key names itself.
        let named_exists = header
            .kid
            .as_ref()
            .is_some_and(|kid| keys.keys.iter().any(|key| key.kid.as_ref() == Some(kid)));
        let in_scope = |key: &&VerifyingKey| match &header.kid {
            Some(kid) if named_exists => key.kid.as_ref() == Some(kid),
            Some(_) => key.kid.is_none(),
            None => true,
        };
        let candidates: Vec<&VerifyingKey> = keys
            .keys
            .iter()
            .filter(in_scope)
            .filter(|key| key.verifies(algorithm))
            .collect();
        if candidates.is_empty() {
            return Err(if named_exists {
                InvalidToken::new(
                    TokenRejection::AlgorithmNotAllowed,
                    "the header's alg does not suit the key its kid names",
                )
            } else if header.kid.is_some() {
                InvalidToken::new(TokenRejection::UnknownKey, "no key has the header's kid")
            } else {
                InvalidToken::new(
                    TokenRejection::UnknownKey,
                    "no key verifies the header's alg",
                )
            });
        }
        let message = &token[..header_part.len() + 1 + claims_part.len()];
        let signed = candidates.iter().any(|key| {
            jsonwebtoken::crypto::verify(signature_part, message.as_bytes(), &key.key, algorithm)
                .unwrap_or(false)
        });
        if !signed {
            return Err(InvalidToken::new(
                TokenRejection::BadSignature,
                "no key of the set signed the token",
            ));
        }

        let claims: Claims = decode_part(claims_part)?;
        self.check_claims(claims, now)
    }

    fn check_claims(&self, claims: Claims, now: SystemTime) -> Result<Verified, InvalidToken> {
        let missing = |claim| InvalidToken::new(TokenRejection::MissingClaim, claim);
        let leeway = self.settings.leeway;
        let expires = claims.exp.ok_or_else(|| missing("exp"))?;
        let valid_until = numeric_date(expires)
            .and_then(|expires| expires.checked_add(leeway))
            .ok_or(InvalidToken::malformed("exp is out of range"))?;
        if now >= valid_until {
            return Err(InvalidToken::new(TokenRejection::Expired, "exp has passed"));
        }
        let valid_from = match claims.nbf {
            None => UNIX_EPOCH,
            Some(not_before) => numeric_date(not_before)
                .ok_or(InvalidToken::malformed("nbf is out of range"))?
                .checked_sub(leeway)
                .unwrap_or(UNIX_EPOCH),
        };
        if now < valid_from {
            return Err(InvalidToken::new(
                TokenRejection::NotYetValid,
                "nbf is ahead",
            ));
        }
        let issuer = claims.iss.ok_or_else(|| missing("iss"))?;
        if issuer != self.settings.issuer {
            return Err(InvalidToken::new(
                TokenRejection::WrongIssuer,
                "iss is not the issuer",
            ));
        }
        let audience = claims.aud.ok_or_else(|| missing("aud"))?;
        if !audience.holds(&self.settings.audience) {
            return Err(InvalidToken::new(
                TokenRejection::WrongAudience,
                "aud does not hold the audience",
            ));
        }
        let subject = claims.sub.ok_or_else(|| missing("sub"))?;
        let printable = (1..=MAX_SUBJECT_CHARS).contains(&subject.len())
            && subject.bytes().all(|b| b.is_ascii_graphic());
        if !printable {
            return Err(InvalidToken::malformed(
                "sub is not 1 to 256 printable ASCII characters",
            ));
        }
        let account = claims.account_id.ok_or_else(|| missing(ACCOUNT_CLAIM))?;
        let account_id = account
            .as_str()
            .and_then(|account| AccountId::parse(account).ok())
            .ok_or(InvalidToken::new(
                TokenRejection::BadAccountClaim,
                "account_id is not a string of 1 to 32 ASCII digits",
            ))?;
        Ok(Verified {
            principal: Principal {
                account_id,
                name: subject,
                proof: Proof::BearerToken,
            },
            valid_from,
            valid_until,
        })
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    SIGNATURE_ALGORITHMS
        .iter()
        .find(|(_, known)| *known == algorithm)
        .map_or("", |(name, _)| name)
}

fn decode_part<T: DeserializeOwned>(part: &str) -> Result<T, InvalidToken> {
    let json = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| InvalidToken::malformed("a part is not base64url"))?;
    serde_json::from_slice(&json)
        .map_err(|_| InvalidToken::malformed("the header or the claims are not the expected JSON"))
}

/// A NumericDate: seconds since the epoch; times before it are the epoch.
fn numeric_date(seconds: f64) -> Option<SystemTime> {
    if seconds <= 0.0 {
        return Some(UNIX_EPOCH);
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

const CACHE_SHARDS: usize = 16;

/// Verified tokens by the SHA-256 of their text, in shards so that concurrent calls rarely
/// meet on one lock; a hit takes only a read lock.
struct TokenCache {
    shards: Vec<RwLock<CacheShard>>,
    entries_per_shard: usize,
}

struct CacheShard {
    /// The key set the entries were verified with; entries of an older set are dropped as a
    /// newer one's arrive.
    generation: u64,
    entries: HashMap<[u8; 32], CachedToken>,
    /// The entries' keys, oldest first, to evict from.
    order: VecDeque<[u8; 32]>,
}

struct CachedToken {
    principal: Principal,
    valid_from: SystemTime,
    valid_until: SystemTime,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        // Small caches are one shard, so that their bound is exact rather than per shard.
        let shard_count = (capacity / 256).clamp(1, CACHE_SHARDS);
        Self {
            shards: (0..shard_count)
                .map(|_| {
                    RwLock::new(CacheShard {
                        generation: 0,
                        entries: HashMap::new(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
            entries_per_shard: capacity / shard_count,
        }
    }

    fn shard(&self, digest: &[u8; 32]) -> &RwLock<CacheShard> {
        &self.shards[usize::from(digest[0]) % self.shards.len()]
    }

    fn get(&self, digest: &[u8; 32], generation: u64, now: SystemTime) -> Option<Principal> {
        let shard = read(self.shard(digest));
        if shard.generation != generation {
            return None;
        }
        let entry = shard.entries.get(digest)?;
        let usable = entry.valid_from <= now && now < entry.valid_until;
        usable.then(|| entry.principal.clone())
    }

    fn insert(&self, digest: [u8; 32], generation: u64, verified: Verified, now: SystemTime) {
        let capacity = self.entries_per_shard;
        if capacity == 0 {
            return;
        }
        let mut shard = write(self.shard(&digest));
        if generation < shard.generation {
            // Verified with a key set that was replaced meanwhile.
            return;
        }
        if generation > shard.generation {
            shard.generation = generation;
            shard.entries.clear();
            shard.order.clear();
        }
        let entry = CachedToken {
            principal: verified.principal,
            valid_from: verified.valid_from,
            valid_until: verified.valid_until,
        };
        if let Some(existing) = shard.entries.get_mut(&digest) {
            *existing = entry;
            return;
        }
        if shard.entries.len() >= capacity {
            shard.make_room(capacity, now);
        }
        shard.entries.insert(digest, entry);
        shard.order.push_back(digest);
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| read(shard).entries.len())
            .sum()
    }
}

impl CacheShard {
    /// Drops the expired entries, then the oldest ones, down to 7/8 of `capacity`: the next
    /// sweep is then at least capacity/8 insertions away, so each insertion pays O(1)
    /// amortized.
    fn make_room(&mut self, capacity: usize, now: SystemTime) {
        self.entries.retain(|_, entry| now < entry.valid_until);
        let entries = &self.entries;
        self.order.retain(|digest| entries.contains_key(digest));
        let low_water = capacity - (capacity / 8).max(1);
        while self.entries.len() > low_water {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

/// A cache stays usable after a panic elsewhere: its entries are whole either way.
fn read(lock: &RwLock<CacheShard>) -> RwLockReadGuard<'_, CacheShard> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<CacheShard>) -> RwLockWriteGuard<'_, CacheShard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use rcgen::KeyPair;
    use serde_json::{Value, json};

    use super::*;

    /// A 2048-bit RSA key made with `openssl genrsa -traditional` (ring cannot generate RSA).
    const RSA_PRIVATE_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpQIBAAKCAQEA2mtpTpLz5pniBOvTjOkjg428yKsVA03WaJ9Jzz6xa/4J1rIv
fjxbM3Qw1vYe7w5fUrnpep1TRHBTyjQKa35tchkKZRdJaQwyquIAPNE++Lo7FIN/
DcaQ1OixnMJnJQcLp/0I3q10p/UZxmtOt8Cv5VzhYOWw7bDvC+WkxnMpmrw6pcYm
LWrtbAyxRVI8fKj8XXTQqh4ZwfaXZbP1R0JpCHZuCxu+0yAS6+/6njLwdE1ixB4z
oLTJc33Kx2KH0GUrRrie61L/mzgFT8mcb8gFM3N4VTAVlByfiIObh7fa8h1Ll3pm
Ogh1ParmB8NRgQuvikMWta+T3O9LRlwp0UpGdwIDAQABAoIBAALCJ9f528ywwChR
wMqJyIyzxeDpkDVfeUgO+EP+xbItyNAGULqRETx1c4ceH/E4Runo4ShO7lXx7oz3
hUjVlZTto1z4I1GJTuaA6NcxHqYjgUrWskxpPTutyKMd2BGhT3tf+F8KOmvt7ipn
ATJ+43nLvNOYHa49dXdlVLm7i0NMpp47T0TuzoQxqYzzM7n52UErJuUuqEDo0HaT
IJ5XyH9kJPmzDGMSlO1ViMA/8ym5ioFjH44yAlsqtG0jkkxArJWdMPeNYt9KKahX
ZnZv7ROxBM0hniXZoF07SSpbUf4DjAmxWuT4nC6owhZdeuxal2h7r9evmxX+TIKD
5w/KYiECgYEA8dB5PoIAgHnM6XDe5PuoUpIcwroGCdp4Elg3uyERo2RwB8RHeTGY
nbe6FP64q/gSgUcDWkFhnqsu1pWI/vJ3Bnj+epKGLXqMGD7unMfAGRpPeP2l9X+Y
c/AY/psppaIYVArRvr+8rdIZJzxNJwTmri3ZivceULe6lJDwoHBQAKcCgYEA5zuZ
WqfIn8ZgO7t5Ny2fQ7gKmxU+5khI/4UAwWAct3ZBd1YvE8u1B1L/iU+qs1EE40N7
rcPhRqscqc3XpZVbEaQKYZCsumlY18YxQHRBzyRZWr8GypFWou1gfUeL72jn+sZG
HTirt/mO1XBZ07mjykgs0ls+2hswbxxkwn0W9bECgYEAzGwsAz7Ng87z/qjPlY51
ppAkxi2Sq0PIW+G+A3EaQyHGX5p7vaXC2hoWsmb/4UlPA4DwAZ3iE8utRfSWIskA
/DTPFPnHeqztwBV7jIiFCfOnGaZ8ZQTf8asYxiyP0ZktreaTmAjpTZyebP/aTVEk
Xj0eeg8czqnzjmLVORyZVWMCgYEA348Nq0pAe8kNzXJptWFUc+KBzoJx9663dOOg
YVWNLgsVLE2U4my2r0gdayItBYU1VowuDUgui2ZwJfOvpJWMILgamU2I0gl8LdGe
WJSN87lO8p9x73Mo8gjSmw0LTAJ/FkOQEjxyOUL8R3uCPWNj6fRx8Ubqs3BKGYK4
IBlUk2ECgYEAzqn7z//yo0FRD810+lriHztRei2lV2/Ew5Ta71csvyE6lPcXsWdu
o1gtNaB3V6mVl9tUkAdkHCaQS89d3rQ7mzZDE1PuhILI0nDV+yX5BEgCKs5bUjFL
IPtIqXdwYVGecwPRKF+LWcuSfnIMiUWhcAVO3kvXVfqXmUvIqmSSQvg=
-----END RSA PRIVATE KEY-----";
    const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2mtpTpLz5pniBOvTjOkj
g428yKsVA03WaJ9Jzz6xa/4J1rIvfjxbM3Qw1vYe7w5fUrnpep1TRHBTyjQKa35t
chkKZRdJaQwyquIAPNE++Lo7FIN/DcaQ1OixnMJnJQcLp/0I3q10p/UZxmtOt8Cv
5VzhYOWw7bDvC+WkxnMpmrw6pcYmLWrtbAyxRVI8fKj8XXTQqh4ZwfaXZbP1R0Jp
CHZuCxu+0yAS6+/6njLwdE1ixB4zoLTJc33Kx2KH0GUrRrie61L/mzgFT8mcb8gF
M3N4VTAVlByfiIObh7fa8h1Ll3pmOgh1ParmB8NRgQuvikMWta+T3O9LRlwp0UpG
dwIDAQAB
-----END PUBLIC KEY-----";
    const RSA_PKCS1_PUBLIC_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEA2mtpTpLz5pniBOvTjOkjg428yKsVA03WaJ9Jzz6xa/4J1rIvfjxb
M3Qw1vYe7w5fUrnpep1TRHBTyjQKa35tchkKZRdJaQwyquIAPNE++Lo7FIN/DcaQ
1OixnMJnJQcLp/0I3q10p/UZxmtOt8Cv5VzhYOWw7bDvC+WkxnMpmrw6pcYmLWrt
bAyxRVI8fKj8XXTQqh4ZwfaXZbP1R0JpCHZuCxu+0yAS6+/6njLwdE1ixB4zoLTJ
c33Kx2KH0GUrRrie61L/mzgFT8mcb8gFM3N4VTAVlByfiIObh7fa8h1Ll3pmOgh1
ParmB8NRgQuvikMWta+T3O9LRlwp0UpGdwIDAQAB
-----END RSA PUBLIC KEY-----";
    const RSA_N: &str = "2mtpTpLz5pniBOvTjOkjg428yKsVA03WaJ9Jzz6xa_4J1rIvfjxbM3Qw1vYe7w5fUrnpep1TRHBTyjQKa35tchkKZRdJaQwyquIAPNE--Lo7FIN_DcaQ1OixnMJnJQcLp_0I3q10p_UZxmtOt8Cv5VzhYOWw7bDvC-WkxnMpmrw6pcYmLWrtbAyxRVI8fKj8XXTQqh4ZwfaXZbP1R0JpCHZuCxu-0yAS6-_6njLwdE1ixB4zoLTJc33Kx2KH0GUrRrie61L_mzgFT8mcb8gFM3N4VTAVlByfiIObh7fa8h1Ll3pmOgh1ParmB8NRgQuvikMWta-T3O9LRlwp0UpGdw";

    const ISSUER: &str = "https://id.corp.example";
    const AUDIENCE: &str = "contactd";
    const ACCOUNT: &str = "1234567890123456";
    const SUBJECT: &str = "billing-service";
    /// The tests' "now", in seconds since the epoch.
    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        at(NOW)
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": SUBJECT,
            "account_id": ACCOUNT,
            "iat": NOW - 10,
            "nbf": NOW - 10,
            "exp": NOW + 600,
        })
    }

    /// A private key that signs tokens, with what the key file says of its public half.
    struct Signer {
        algorithm: Algorithm,
        key: EncodingKey,
        public_pem: String,
        jwk: Value,
    }

    impl Signer {
        fn p256() -> Self {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let raw = pair.public_key_raw();
            Self {
                algorithm: Algorithm::ES256,
                key: EncodingKey::from_ec_der(&pair.serialize_der()),
                public_pem: pair.public_key_pem(),
                jwk: json!({
                    "kty": "EC", "crv": "P-256", "use": "sig",
                    "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
                }),
            }
        }

        fn p384() -> Self {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
            let raw = pair.public_key_raw();
            Self {
                algorithm: Algorithm::ES384,
                key: EncodingKey::from_ec_der(&pair.serialize_der()),
                public_pem: pair.public_key_pem(),
                jwk: json!({
                    "kty": "EC", "crv": "P-384",
                    "x": URL_SAFE_NO_PAD.encode(&raw[1..49]),
                    "y": URL_SAFE_NO_PAD.encode(&raw[49..97]),
                }),
            }
        }

        fn ed25519() -> Self {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            Self {
                algorithm: Algorithm::EdDSA,
                key: EncodingKey::from_ed_der(&pair.serialize_der()),
                public_pem: pair.public_key_pem(),
                jwk: json!({
                    "kty": "OKP", "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
                }),
            }
        }

        fn rsa() -> Self {
            Self {
                algorithm: Algorithm::RS256,
                key: EncodingKey::from_rsa_der(&pem_content(RSA_PRIVATE_PEM)),
                public_pem: RSA_PUBLIC_PEM.to_owned(),
                jwk: json!({"kty": "RSA", "n": RSA_N, "e": "AQAB"}),
            }
        }

        fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
            self.algorithm = algorithm;
            self
        }

        fn jwk_with_kid(&self, kid: &str) -> Value {
            let mut jwk = self.jwk.clone();
            jwk["kid"] = json!(kid);
            jwk
        }

        fn sign(&self, claims: &Value) -> String {
            self.sign_with_kid(None, claims)
        }

        fn sign_with_kid(&self, kid: Option<&str>, claims: &Value) -> String {
            let mut header = JwtHeader::new(self.algorithm);
            header.kid = kid.map(str::to_owned);
            jsonwebtoken::encode(&header, claims, &self.key).unwrap()
        }
    }

    fn pem_content(pem: &str) -> Vec<u8> {
        let (_, der) = pem_blocks(pem).unwrap().pop().unwrap();
        der
    }

    fn jwks(keys: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    fn keys(file: &[u8]) -> Arc<TokenKeys> {
        Arc::new(TokenKeys::parse(file).unwrap())
    }

    fn settings() -> TokenSettings {
        TokenSettings::new(ISSUER, AUDIENCE)
    }

    fn verifier(file: &[u8]) -> TokenVerifier {
        verifier_with(settings(), file)
    }

    fn verifier_with(settings: TokenSettings, file: &[u8]) -> TokenVerifier {
        TokenVerifier::new(settings, Arc::new(keys(file)))
    }

    fn rejection(verifier: &TokenVerifier, token: &str) -> TokenRejection {
        verifier.verify(token, now()).unwrap_err().rejection()
    }

    fn assert_proves_the_caller(verifier: &TokenVerifier, token: &str) {
        let principal = verifier.verify(token, now()).unwrap();
        assert_eq!(principal.account_id.as_str(), ACCOUNT);
        assert_eq!(principal.name, SUBJECT);
        assert_eq!(principal.proof, Proof::BearerToken);
        assert_eq!(principal.to_string(), format!("token:{SUBJECT}"));
    }

    fn unsigned(header: &Value, claims: &Value) -> String {
        let part = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());
        format!("{}.{}.", part(header), part(claims))
    }

    #[test]
    fn es256_and_eddsa_tokens_are_verified_with_pem_keys() {
        for signer in [Signer::p256(), Signer::ed25519()] {
            let verifier = verifier(signer.public_pem.as_bytes());
            assert_proves_the_caller(&verifier, &signer.sign(&claims()));
        }
    }

    #[test]
    fn es256_and_eddsa_tokens_are_verified_with_jwks_keys() {
        let (ec, ed) = (Signer::p256(), Signer::ed25519());
        let verifier = verifier(&jwks(&[ec.jwk_with_kid("ec-1"), ed.jwk_with_kid("ed-1")]));
        assert_proves_the_caller(&verifier, &ec.sign_with_kid(Some("ec-1"), &claims()));
        assert_proves_the_caller(&verifier, &ed.sign_with_kid(Some("ed-1"), &claims()));
        // Without a kid, every key that suits the algorithm is tried.
        assert_proves_the_caller(&verifier, &ec.sign(&claims()));
        assert_proves_the_caller(&verifier, &ed.sign(&claims()));
    }

    #[test]
    fn rsa_tokens_are_verified_with_spki_pkcs1_and_jwks_keys() {
        let rsa = Signer::rsa();
        let token = rsa.sign(&claims());
        for file in [
            RSA_PUBLIC_PEM.as_bytes(),
            RSA_PKCS1_PUBLIC_PEM.as_bytes(),
            &jwks(std::slice::from_ref(&rsa.jwk)),
        ] {
            assert_proves_the_caller(&verifier(file), &token);
        }
        let mut all = settings();
        all.algorithms = parse_algorithms("RS256,RS384,RS512,PS256,PS384,PS512").unwrap();
        let verifier = verifier_with(all, RSA_PUBLIC_PEM.as_bytes());
        for algorithm in [
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS512,
        ] {
            let token = Signer::rsa().with_algorithm(algorithm).sign(&claims());
            assert_proves_the_caller(&verifier, &token);
        }
    }

    #[test]
    fn a_pem_file_may_hold_several_keys_of_several_types() {
        let (ec, ed, p384) = (Signer::p256(), Signer::ed25519(), Signer::p384());
        let file = format!(
            "# rotated 2026-11\n{}\nthe next one:\n{}\n{}\n{RSA_PKCS1_PUBLIC_PEM}\n",
            ec.public_pem, ed.public_pem, p384.public_pem
        );
        let mut settings = settings();
        settings.algorithms.push(Algorithm::ES384);
        let verifier = verifier_with(settings, file.as_bytes());
        for token in [
            ec.sign(&claims()),
            ed.sign(&claims()),
            p384.sign(&claims()),
            Signer::rsa().sign(&claims()),
            // PEM keys have no kid: a token's kid cannot select among them.
            ec.sign_with_kid(Some("whatever"), &claims()),
        ] {
            assert_proves_the_caller(&verifier, &token);
        }
    }

    #[test]
    fn times_are_checked_with_the_leeway() {
        let signer = Signer::ed25519();
        let verifier = verifier(signer.public_pem.as_bytes());
        let token_with = |changes: Value| {
            let mut claims = claims();
            for (claim, value) in changes.as_object().unwrap() {
                claims[claim] = value.clone();
            }
            signer.sign(&claims)
        };
        assert_eq!(
            rejection(&verifier, &token_with(json!({"exp": NOW - 61}))),
            TokenRejection::Expired
        );
        assert_eq!(
            rejection(&verifier, &token_with(json!({"exp": NOW - 60}))),
            TokenRejection::Expired
        );
        assert_proves_the_caller(&verifier, &token_with(json!({"exp": NOW - 59})));
        assert_proves_the_caller(&verifier, &token_with(json!({"exp": NOW as f64 - 59.5})));
        assert_eq!(
            rejection(&verifier, &token_with(json!({"exp": -1}))),
            TokenRejection::Expired
        );
        assert_eq!(
            rejection(&verifier, &token_with(json!({"nbf": NOW + 61}))),
            TokenRejection::NotYetValid
        );
        assert_proves_the_caller(&verifier, &token_with(json!({"nbf": NOW + 60})));
        assert_proves_the_caller(&verifier, &token_with(json!({"nbf": NOW + 30})));

        let mut strict = settings();
        strict.leeway = Duration::ZERO;
        let strict = verifier_with(strict, signer.public_pem.as_bytes());
        assert_eq!(
            rejection(&strict, &token_with(json!({"exp": NOW}))),
            TokenRejection::Expired
        );
        assert_eq!(
            rejection(&strict, &token_with(json!({"nbf": NOW + 1}))),
            TokenRejection::NotYetValid
        );
        assert!(
            strict
                .verify(&token_with(json!({"nbf": NOW, "exp": NOW + 1})), now())
                .is_ok()
        );
    }

    #[test]
    fn a_token_signed_by_another_key_is_forged() {
        let (trusted, forger) = (Signer::p256(), Signer::p256());
        let verifier = verifier(trusted.public_pem.as_bytes());
        let forged = forger.sign(&claims());
        assert_eq!(rejection(&verifier, &forged), TokenRejection::BadSignature);
        // Claims changed after signing break the signature too.
        let genuine = trusted.sign(&claims());
        let parts: Vec<&str> = genuine.split('.').collect();
        let mut other = claims();
        other["account_id"] = json!("9876543210987654");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()),
            parts[2]
        );
        assert_eq!(
            rejection(&verifier, &tampered),
            TokenRejection::BadSignature
        );
        // A token signed by another key with the trusted key's kid is still forged.
        let verifier = verifier_for_kid(&trusted, "k1");
        assert_eq!(
            rejection(&verifier, &forger.sign_with_kid(Some("k1"), &claims())),
            TokenRejection::BadSignature
        );
    }

    fn verifier_for_kid(signer: &Signer, kid: &str) -> TokenVerifier {
        verifier(&jwks(&[signer.jwk_with_kid(kid)]))
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let signer = Signer::p256();
        let verifier = verifier(signer.public_pem.as_bytes());
        let with = |claim: &str, value: Value| {
            let mut claims = claims();
            claims[claim] = value;
            signer.sign(&claims)
        };
        for issuer in [
            json!("https://evil.example"),
            json!("https://id.corp.example/"),
            json!(""),
        ] {
            assert_eq!(
                rejection(&verifier, &with("iss", issuer)),
                TokenRejection::WrongIssuer
            );
        }
        for audience in [
            json!("other"),
            json!(["other", "more"]),
            json!([]),
            json!("CONTACTD"),
        ] {
            assert_eq!(
                rejection(&verifier, &with("aud", audience)),
                TokenRejection::WrongAudience
            );
        }
        assert_proves_the_caller(&verifier, &with("aud", json!(["other", AUDIENCE])));
        assert_proves_the_caller(&verifier, &with("aud", json!([AUDIENCE])));
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let signer = Signer::p256();
        let verifier = verifier(signer.public_pem.as_bytes());
        for alg in ["none", "None", "NONE"] {
            let token = unsigned(&json!({"alg": alg, "typ": "JWT"}), &claims());
            assert_eq!(
                rejection(&verifier, &token),
                TokenRejection::AlgorithmNotAllowed,
                "{alg}"
            );
        }
        // A signed token with its signature cut off.
        let genuine = signer.sign(&claims());
        let stripped = &genuine[..genuine.rfind('.').unwrap() + 1];
        assert_eq!(rejection(&verifier, stripped), TokenRejection::Malformed);
        assert_eq!(verifier.cached(), 0);
    }

    #[test]
    fn hmac_signed_with_the_public_key_is_refused() {
        // The classic confusion: HS256 keyed with the public key's bytes, hoping the verifier
        // takes the key file as an HMAC secret.
        for signer in [Signer::p256(), Signer::rsa()] {
            let forger = Signer {
                algorithm: Algorithm::HS256,
                key: EncodingKey::from_secret(signer.public_pem.as_bytes()),
                public_pem: String::new(),
                jwk: Value::Null,
            };
            let token = forger.sign(&claims());
            let mut listing_hmac = settings();
            listing_hmac
                .algorithms
                .extend([Algorithm::HS256, Algorithm::HS384]);
            for verifier in [
                verifier(signer.public_pem.as_bytes()),
                verifier_with(listing_hmac, signer.public_pem.as_bytes()),
            ] {
                assert_eq!(
                    rejection(&verifier, &token),
                    TokenRejection::AlgorithmNotAllowed
                );
            }
        }
    }

    #[test]
    fn algorithms_outside_the_allow_list_or_the_key_are_refused() {
        let p384 = Signer::p384();
        // ES384 is not in the default allow-list.
        let verifier = verifier(p384.public_pem.as_bytes());
        assert_eq!(
            rejection(&verifier, &p384.sign(&claims())),
            TokenRejection::AlgorithmNotAllowed
        );

        let mut only_es256 = settings();
        only_es256.algorithms = vec![Algorithm::ES256];
        let ed = Signer::ed25519();
        let verifier = verifier_with(only_es256, ed.public_pem.as_bytes());
        assert_eq!(
            rejection(&verifier, &ed.sign(&claims())),
            TokenRejection::AlgorithmNotAllowed
        );

        // The kid names an Ed25519 key, the header says ES256.
        let ec = Signer::p256();
        let verifier = verifier_for_kid(&ed, "ed-1");
        assert_eq!(
            rejection(&verifier, &ec.sign_with_kid(Some("ed-1"), &claims())),
            TokenRejection::AlgorithmNotAllowed
        );
        // No key suits the algorithm at all.
        assert_eq!(
            rejection(&verifier, &ec.sign(&claims())),
            TokenRejection::UnknownKey
        );

        // A JWK's own alg restricts it.
        let mut rsa_jwk = Signer::rsa().jwk;
        rsa_jwk["alg"] = json!("PS256");
        let mut both = settings();
        both.algorithms.push(Algorithm::PS256);
        let verifier = verifier_with(both, &jwks(&[rsa_jwk]));
        assert_eq!(
            rejection(&verifier, &Signer::rsa().sign(&claims())),
            TokenRejection::UnknownKey
        );
        let ps256 = Signer::rsa()
            .with_algorithm(Algorithm::PS256)
            .sign(&claims());
        assert_proves_the_caller(&verifier, &ps256);
    }

    #[test]
    fn an_unknown_kid_is_refused() {
        let signer = Signer::p256();
        let verifier = verifier_for_kid(&signer, "k1");
        assert_proves_the_caller(&verifier, &signer.sign_with_kid(Some("k1"), &claims()));
        assert_eq!(
            rejection(&verifier, &signer.sign_with_kid(Some("k2"), &claims())),
            TokenRejection::UnknownKey
        );
        assert_eq!(
            rejection(&verifier, &signer.sign_with_kid(Some("K1"), &claims())),
            TokenRejection::UnknownKey
        );
    }

    #[test]
    fn the_account_and_subject_claims_are_required_and_checked() {
        let signer = Signer::ed25519();
        let verifier = verifier(signer.public_pem.as_bytes());
        // A null claim is a missing one.
        let mut null_account = claims();
        null_account["account_id"] = Value::Null;
        assert_eq!(
            rejection(&verifier, &signer.sign(&null_account)),
            TokenRejection::MissingClaim
        );
        let without = |claim: &str| {
            let mut claims = claims();
            claims.as_object_mut().unwrap().remove(claim);
            signer.sign(&claims)
        };
        for claim in ["account_id", "exp", "iss", "aud", "sub"] {
            assert_eq!(
                rejection(&verifier, &without(claim)),
                TokenRejection::MissingClaim,
                "{claim}"
            );
        }
        assert_proves_the_caller(&verifier, &without("nbf"));
        let with = |claim: &str, value: Value| {
            let mut claims = claims();
            claims[claim] = value;
            signer.sign(&claims)
        };
        for account in [
            json!(1234567890123456u64),
            json!("12ab"),
            json!(""),
            json!(" 1234"),
            json!("1".repeat(33)),
            json!(["1234"]),
        ] {
            assert_eq!(
                rejection(&verifier, &with("account_id", account.clone())),
                TokenRejection::BadAccountClaim,
                "{account}"
            );
        }
        let principal = verifier
            .verify(&with("account_id", json!("01")), now())
            .unwrap();
        assert_eq!(principal.account_id.as_str(), "01");
        for subject in [
            json!(""),
            json!("has space"),
            json!("é"),
            json!("a".repeat(257)),
            json!(7),
        ] {
            assert_eq!(
                rejection(&verifier, &with("sub", subject.clone())),
                TokenRejection::Malformed,
                "{subject}"
            );
        }
        assert!(
            verifier
                .verify(&with("sub", json!("a".repeat(256))), now())
                .is_ok()
        );
        assert_eq!(
            rejection(&verifier, &with("exp", json!("soon"))),
            TokenRejection::Malformed
        );
        assert_eq!(
            rejection(&verifier, &with("exp", json!(1e300))),
            TokenRejection::Malformed
        );
    }

    #[test]
    fn oversized_and_malformed_tokens_are_refused_before_any_verification() {
        let signer = Signer::p256();
        let verifier = verifier(signer.public_pem.as_bytes());
        let mut claims = claims();
        claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
        let oversized = signer.sign(&claims);
        assert!(oversized.len() > MAX_TOKEN_BYTES);
        assert_eq!(rejection(&verifier, &oversized), TokenRejection::Malformed);
        assert_eq!(
            rejection(&verifier, &"a".repeat(MAX_TOKEN_BYTES + 1)),
            TokenRejection::Malformed
        );
        assert_eq!(verifier.verifications(), 0);

        let genuine = signer.sign(&self::claims());
        let parts: Vec<&str> = genuine.split('.').collect();
        let header_with_crit = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","crit":["exp"]}"#);
        for token in [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            format!("{genuine}.x"),
            format!("!!.{}.{}", parts[1], parts[2]),
            format!("{}.{}.!!", parts[0], parts[1]),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("not json"),
                parts[1],
                parts[2]
            ),
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","alg":"ES256"}"#),
                parts[1],
                parts[2]
            ),
            format!("{header_with_crit}.{}.{}", parts[1], parts[2]),
        ] {
            assert_eq!(
                rejection(&verifier, &token),
                TokenRejection::Malformed,
                "{token}"
            );
        }
        // An empty claims part is only looked at once signed.
        let empty_claims = format!("{}..{}", parts[0], parts[2]);
        assert_eq!(
            rejection(&verifier, &empty_claims),
            TokenRejection::BadSignature
        );
        // Signed claims that are not a JSON object.
        for claims in ["", "not json", "[]", r#"{"exp": 1, "exp": 2}"#] {
            let message = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims));
            let signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), &signer.key, Algorithm::ES256)
                    .unwrap();
            let token = format!("{message}.{signature}");
            assert_eq!(
                rejection(&verifier, &token),
                TokenRejection::Malformed,
                "{claims}"
            );
        }
        assert_eq!(verifier.cached(), 0);
    }

    #[test]
    fn a_verified_token_is_cached_until_it_expires() {
        let signer = Signer::p256();
        let verifier = verifier(signer.public_pem.as_bytes());
        let token = signer.sign(&claims());
        let first = verifier.verify(&token, now()).unwrap();
        assert_eq!(verifier.verifications(), 1);
        for _ in 0..5 {
            assert_eq!(verifier.verify(&token, now()).unwrap(), first);
        }
        assert_eq!(verifier.verifications(), 1);
        assert_eq!(verifier.cached(), 1);
        // Within the leeway after exp the cached entry still serves...
        assert_eq!(verifier.verify(&token, at(NOW + 659)).unwrap(), first);
        assert_eq!(verifier.verifications(), 1);
        // ...past it, it does not, and the token is refused.
        let expired = verifier.verify(&token, at(NOW + 660)).unwrap_err();
        assert_eq!(expired.rejection(), TokenRejection::Expired);
        // Nor before nbf − leeway, should the clock step back.
        let early = verifier.verify(&token, at(NOW - 71)).unwrap_err();
        assert_eq!(early.rejection(), TokenRejection::NotYetValid);
        assert_eq!(verifier.verifications(), 3);
    }

    #[test]
    fn failures_are_not_cached() {
        let (trusted, forger) = (Signer::p256(), Signer::p256());
        let verifier = verifier(trusted.public_pem.as_bytes());
        let forged = forger.sign(&claims());
        for _ in 0..3 {
            assert_eq!(rejection(&verifier, &forged), TokenRejection::BadSignature);
        }
        assert_eq!(verifier.verifications(), 3);
        assert_eq!(verifier.cached(), 0);
    }

    struct SwappableKeys(Mutex<Arc<TokenKeys>>);

    impl KeySource for SwappableKeys {
        fn current(&self) -> Arc<TokenKeys> {
            Arc::clone(&self.0.lock().unwrap())
        }
    }

    #[test]
    fn a_new_key_generation_invalidates_the_cache() {
        let (old, new) = (Signer::p256(), Signer::ed25519());
        let source = Arc::new(SwappableKeys(Mutex::new(keys(old.public_pem.as_bytes()))));
        let verifier = TokenVerifier::new(settings(), source.clone());
        let token = old.sign(&claims());
        verifier.verify(&token, now()).unwrap();
        verifier.verify(&token, now()).unwrap();
        assert_eq!(verifier.verifications(), 1);

        // The same file loaded again: a new generation, so the token is verified again.
        let reloaded = keys(old.public_pem.as_bytes());
        assert!(reloaded.generation() > source.current().generation());
        *source.0.lock().unwrap() = reloaded;
        verifier.verify(&token, now()).unwrap();
        assert_eq!(verifier.verifications(), 2);
        verifier.verify(&token, now()).unwrap();
        assert_eq!(verifier.verifications(), 2);

        // The old key rotated out: its cached tokens no longer pass.
        *source.0.lock().unwrap() = keys(new.public_pem.as_bytes());
        assert_eq!(rejection(&verifier, &token), TokenRejection::UnknownKey);
        assert_proves_the_caller(&verifier, &new.sign(&claims()));
    }

    #[test]
    fn the_cache_is_bounded() {
        let signer = Signer::ed25519();
        let token = |n: u64| {
            let mut claims = claims();
            claims["jti"] = json!(n);
            signer.sign(&claims)
        };
        for capacity in [1, 2, 20, 100, 512] {
            let mut bounded = settings();
            bounded.cache_entries = capacity;
            let verifier = verifier_with(bounded, signer.public_pem.as_bytes());
            for n in 0..700 {
                verifier.verify(&token(n), now()).unwrap();
                assert!(
                    verifier.cached() <= capacity,
                    "{capacity}: {}",
                    verifier.cached()
                );
            }
            assert!(verifier.cached() > 0);
            // The newest token is still cached.
            let before = verifier.verifications();
            verifier.verify(&token(699), now()).unwrap();
            assert_eq!(verifier.verifications(), before, "{capacity}");
        }

        // Expired entries go first when the cache is full.
        let mut two = settings();
        two.cache_entries = 2;
        let verifier = verifier_with(two, signer.public_pem.as_bytes());
        let mut short = claims();
        short["exp"] = json!(NOW + 10);
        let short_lived = signer.sign(&short);
        let long_lived = token(1);
        verifier.verify(&short_lived, now()).unwrap();
        verifier.verify(&long_lived, now()).unwrap();
        let later = at(NOW + 100);
        verifier.verify(&token(2), later).unwrap();
        let before = verifier.verifications();
        verifier.verify(&long_lived, later).unwrap();
        assert_eq!(verifier.verifications(), before);

        let mut none = settings();
        none.cache_entries = 0;
        let verifier = verifier_with(none, signer.public_pem.as_bytes());
        verifier.verify(&token(1), now()).unwrap();
        verifier.verify(&token(1), now()).unwrap();
        assert_eq!((verifier.verifications(), verifier.cached()), (2, 0));
    }

    #[test]
    fn concurrent_callers_share_the_cache() {
        let signer = Signer::p256();
        let verifier = verifier(signer.public_pem.as_bytes());
        let tokens: Vec<String> = (0..4)
            .map(|n| {
                let mut claims = claims();
                claims["jti"] = json!(n);
                signer.sign(&claims)
            })
            .collect();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (verifier, tokens) = (&verifier, &tokens);
                scope.spawn(move || {
                    for call in 0..100 {
                        let token = &tokens[(thread + call) % tokens.len()];
                        assert_eq!(verifier.verify(token, now()).unwrap().name, SUBJECT);
                    }
                });
            }
        });
        // Each token verified at most once per thread that missed it at the same moment.
        assert!(
            verifier.verifications() <= 16,
            "{}",
            verifier.verifications()
        );
        assert_eq!(verifier.cached(), 4);
    }

    #[test]
    fn key_files_that_are_not_public_signing_keys_are_refused() {
        let ec = Signer::p256();
        let private_pem = KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_pem();
        let mut with_private = ec.jwk.clone();
        with_private["d"] = json!("AAAA");
        let mut p521 = ec.jwk.clone();
        p521["crv"] = json!("P-521");
        let mut short_x = ec.jwk.clone();
        short_x["x"] = json!("AAAA");
        let mut padded = ec.jwk.clone();
        padded["x"] = json!(format!("{}=", URL_SAFE_NO_PAD.encode([1u8; 32])));
        let mut wrong_alg = ec.jwk.clone();
        wrong_alg["alg"] = json!("RS256");
        let mut hmac_alg = ec.jwk.clone();
        hmac_alg["alg"] = json!("HS256");
        let small_rsa =
            json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        let encryption_only = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "use": "enc"});
        let certificate = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(b"x")
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "neither"),
            (b"   \n".to_vec(), "neither"),
            (b"hello".to_vec(), "neither"),
            (vec![0xff, 0xfe, 0x00], "UTF-8"),
            (br#"{"keys": []}"#.to_vec(), "no signing key"),
            (br#"{"keys": "#.to_vec(), "not a JWKS"),
            (br#"{"kty": "EC"}"#.to_vec(), "not a JWKS"),
            (
                jwks(&[json!({"kty": "oct", "k": "c2VjcmV0"})]),
                "shared between services",
            ),
            (jwks(&[with_private]), "private key"),
            (jwks(&[p521]), "P-521"),
            (jwks(&[short_x]), "32 bytes"),
            (jwks(&[padded]), "base64url"),
            (jwks(&[wrong_alg]), "cannot verify RS256"),
            (jwks(&[hmac_alg]), "unsupported algorithm"),
            (jwks(&[small_rsa]), "2048 to 8192 bits"),
            (jwks(&[encryption_only]), "no signing key"),
            (
                jwks(&[json!({"kty": "RSA", "e": "AQAB"})]),
                "`n` is missing",
            ),
            (
                jwks(&[json!({"kty": "OKP", "crv": "X25519", "x": "AAAA"})]),
                "X25519",
            ),
            (jwks(&[json!({"kty": "AKP"})]), "unsupported key type"),
            (
                jwks(&[ec.jwk_with_kid("k"), Signer::p256().jwk_with_kid("k")]),
                "same kid",
            ),
            (private_pem.into_bytes(), "private key"),
            (certificate.into_bytes(), "certificate"),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n".to_vec(), "no END"),
            (
                b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n".to_vec(),
                "not base64",
            ),
            (
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec(),
                "malformed DER",
            ),
            (
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n".to_vec(),
                "ends as",
            ),
        ];
        for (file, reason) in cases {
            let error = TokenKeys::parse(&file).unwrap_err();
            assert!(
                error.contains(reason),
                "{:?}: {error}",
                String::from_utf8_lossy(&file)
            );
        }
        // Truncated or extended DER of a genuine key never panics and is refused.
        let der = pem_content(&ec.public_pem);
        for cut in 0..der.len() {
            assert!(subject_public_key(&der[..cut]).is_err(), "{cut}");
        }
        let mut extended = der.clone();
        extended.push(0);
        assert!(subject_public_key(&extended).is_err());
        let pkcs1 = pem_content(RSA_PKCS1_PUBLIC_PEM);
        for cut in 0..pkcs1.len() {
            assert!(rsa_public_key(&pkcs1[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn encryption_keys_beside_signing_keys_are_skipped_and_every_set_has_its_generation() {
        let ec = Signer::p256();
        let encryption =
            json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "use": "enc", "alg": "RSA-OAEP"});
        // Members this verifier has no use for are ignored.
        let mut signing = ec.jwk_with_kid("sig-1");
        signing["key_ops"] = json!(["verify"]);
        signing["x5t"] = json!("bm90IHVzZWQ");
        let file = jwks(&[encryption, signing]);
        let (first, second) = (keys(&file), keys(&file));
        assert_eq!(first.len(), 1);
        assert!(second.generation() > first.generation());
        assert!(first.generation() > 0);
        assert!(format!("{first:?}").contains("sig-1"));
        let verifier = TokenVerifier::new(settings(), Arc::new(first));
        assert_proves_the_caller(&verifier, &ec.sign_with_kid(Some("sig-1"), &claims()));
    }

    #[test]
    fn algorithm_lists_are_parsed_strictly() {
        assert_eq!(
            parse_algorithms("RS256,ES256").unwrap(),
            vec![Algorithm::RS256, Algorithm::ES256]
        );
        assert_eq!(
            parse_algorithms(" rs256 , eddsa,RS256,").unwrap(),
            vec![Algorithm::RS256, Algorithm::EdDSA]
        );
        assert_eq!(parse_algorithms("PS512").unwrap(), vec![Algorithm::PS512]);
        for (list, reason) in [
            ("none", "unsigned"),
            ("RS256,None", "unsigned"),
            ("HS256", "shared between services"),
            ("ES256,hs512", "shared between services"),
            ("HSX", "shared between services"),
            ("aé12", "unknown"),
            ("ES512", "unknown"),
            ("RSA", "unknown"),
            ("", "empty"),
            (" , ", "empty"),
        ] {
            let error = parse_algorithms(list).unwrap_err();
            assert!(error.contains(reason), "{list:?}: {error}");
        }
    }

    #[test]
    fn bearer_takes_the_token_of_an_authorization_value() {
        assert_eq!(bearer("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer abc ",
            "Bearer a b",
            "Bearer\tabc",
            "Basic abc",
            "Bearerabc",
            " Bearer abc",
            "",
        ] {
            assert_eq!(bearer(value), None, "{value:?}");
        }
    }

    #[test]
    fn rejections_explain_themselves_without_the_token() {
        let signer = Signer::p256();
        let verifier = verifier(signer.public_pem.as_bytes());
        let mut claims = claims();
        claims["exp"] = json!(NOW - 1000);
        let token = signer.sign(&claims);
        let error = verifier.verify(&token, now()).unwrap_err();
        assert_eq!(error.to_string(), "invalid token (expired): exp has passed");
        assert!(format!("{verifier:?}").contains("verifications: 1"));
    }
}

//! Verification codes and confirmation links, derived from the code's id under a server
//! secret (HMAC-SHA-256), so that neither is ever stored: the dispatcher derives them again
//! from the event that asked for the message, and a confirmation derives the expected code
//! and compares in constant time. Processes that share a database must share the secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use contactd_domain::{VerificationCode, VerificationId, VerificationTarget};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The server secret under which codes and links are derived. Its `Debug` hides it.
#[derive(Clone)]
pub struct CodeSecret(Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a code secret needs at least {MIN_SECRET_BYTES} bytes")]
pub struct ShortSecret;

impl CodeSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ShortSecret> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret);
        }
        Ok(Self(bytes))
    }

    /// 32 bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret as text (hex), to be kept in a file of the data directory.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The 6-digit code of a verification.
    pub fn code(&self, id: VerificationId) -> VerificationCode {
        let mac = self.mac(b"contactd/code/v1", id.as_uuid().as_bytes());
        let mut first = [0; 8];
        first.copy_from_slice(&mac[..8]);
        // 2^64 is so much larger than 10^6 that the remainder's bias is below 10^-13.
        VerificationCode::from_number((u64::from_be_bytes(first) % 1_000_000) as u32)
    }

    /// Whether `given` is the code of the verification, compared in constant time.
    pub fn matches(&self, id: VerificationId, given: &VerificationCode) -> bool {
        let expected = self.code(id);
        expected
            .expose()
            .as_bytes()
            .ct_eq(given.expose().as_bytes())
            .into()
    }

    /// The token of the verification's confirmation link: 256 bits that only the secret's
    /// holder can derive.
    pub fn link_token(&self, id: VerificationId) -> LinkToken {
        LinkToken(URL_SAFE_NO_PAD.encode(self.mac(b"contactd/link/v1", id.as_uuid().as_bytes())))
    }

    /// A keyed digest of a target, to count its sends without keeping the address.
    pub fn target_digest(&self, target: &VerificationTarget) -> [u8; 32] {
        self.mac(b"contactd/target/v1", target.as_str().as_bytes())
    }

    fn mac(&self, purpose: &[u8], input: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose);
        mac.update(&[0]);
        mac.update(input);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for CodeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeSecret(******)")
    }
}

/// The last part of a confirmation link (`/verify/{token}`): 43 characters of URL-safe base64.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl LinkToken {
    /// A token as it came in a link's path; `None` for anything of another shape.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// What is stored to find the link again: its SHA-256 (the token has 256 bits of entropy,
    /// so a fast hash cannot be reversed).
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The token, for the link in the message: never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(******)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_that_depend_on_the_secret_and_the_id() {
        let secret = CodeSecret::new(b"0123456789abcdef".to_vec()).unwrap();
        let other = CodeSecret::new(b"fedcba9876543210".to_vec()).unwrap();
        let ids: Vec<_> = (0..50).map(|_| VerificationId::generate()).collect();
        for id in &ids {
            let code = secret.code(*id);
            assert_eq!(code.expose().len(), 6);
            assert_eq!(secret.code(*id), code, "the same code every time");
            assert!(secret.matches(*id, &code));
        }
        let differing = ids
            .iter()
            .filter(|id| secret.code(**id) != other.code(**id))
            .count();
        assert!(differing > 45, "another secret derives other codes");
        let distinct: std::collections::HashSet<_> = ids
            .iter()
            .map(|id| secret.code(*id).expose().to_owned())
            .collect();
        assert!(distinct.len() > 45, "other ids derive other codes");
    }

    #[test]
    fn a_wrong_code_does_not_match() {
        let secret = CodeSecret::generate();
        let id = VerificationId::generate();
        let right: u32 = secret.code(id).expose().parse().unwrap();
        let wrong = VerificationCode::from_number((right + 1) % 1_000_000);
        assert!(!secret.matches(id, &wrong));
    }

    #[test]
    fn link_tokens_parse_back_and_are_found_by_their_hash() {
        let secret = CodeSecret::generate();
        let id = VerificationId::generate();
        let token = secret.link_token(id);
        assert_eq!(token.expose().len(), 43);
        let parsed = LinkToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(secret.link_token(VerificationId::generate()), token);
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", &"a".repeat(42)),
        ] {
            assert!(LinkToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn secrets_must_be_long_enough_and_never_show_in_debug() {
        assert_eq!(CodeSecret::new(b"short".to_vec()).unwrap_err(), ShortSecret);
        let secret = CodeSecret::new(b"0123456789abcdef".to_vec()).unwrap();
        assert!(!format!("{secret:?}").contains("0123"));
        assert_eq!(secret.to_hex().len(), 32);
    }
}

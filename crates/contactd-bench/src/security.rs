//! The security variants of `update` and `get`: the same run on a server with TLS, with bearer
//! tokens (JWT) instead of the trusted header, with a policy file, or with all three, each
//! compared with the plain run. This module makes what they need, in a folder of the run: a
//! certificate authority and the server's certificate, an ES256 key with its JWKS, the policy
//! file, and the generator's side of each (the CA it trusts, one token per account).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::ValueEnum;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tonic::Status;
use tonic::metadata::AsciiMetadataValue;

use crate::client::Credentials;

/// The issuer and audience the tokens name and the server requires.
pub const TOKEN_ISSUER: &str = "https://idp.contactd-bench.test";
pub const TOKEN_AUDIENCE: &str = "contactd";
const TOKEN_KEY_ID: &str = "contactd-bench-1";
/// Long enough for any run: a token is minted once per account and must not expire during it.
const TOKEN_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// The name the server's certificate is issued for and the generator checks.
const SERVER_NAME: &str = "localhost";

/// One way the server is secured for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// Today's run: the trusted header `x-acs-account-id`, no TLS, no policy file.
    Plain,
    /// TLS on the gRPC port (`--tls-cert`, `--tls-key`); still the trusted header.
    Tls,
    /// `--identity-mode token`: each call carries its account's own ES256 bearer token.
    Jwt,
    /// The trusted header with `--policy-file`: every call is decided by the policies.
    Policy,
    /// TLS, bearer tokens and the policy file together.
    All,
}

impl Variant {
    pub const EVERY: [Variant; 5] = [
        Variant::Plain,
        Variant::Tls,
        Variant::Jwt,
        Variant::Policy,
        Variant::All,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Tls => "tls",
            Variant::Jwt => "jwt",
            Variant::Policy => "policy",
            Variant::All => "all",
        }
    }

    /// What the server runs with, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Plain => "trusted header, no TLS, no policy file",
            Variant::Tls => "TLS 1.3 (ECDSA P-256 certificate), trusted header",
            Variant::Jwt => "no TLS, `--identity-mode token`: an ES256 JWT per account",
            Variant::Policy => "no TLS, trusted header, `--policy-file`",
            Variant::All => "TLS, ES256 JWT per account and `--policy-file` together",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Variant::Tls | Variant::All)
    }

    pub fn uses_tokens(self) -> bool {
        matches!(self, Variant::Jwt | Variant::All)
    }

    pub fn uses_policies(self) -> bool {
        matches!(self, Variant::Policy | Variant::All)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value of `--security`: a variant, or `none` to run none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecurityChoice {
    Plain,
    Tls,
    Jwt,
    Policy,
    All,
    None,
}

/// The variants `choices` name, in order, each once; none if `none` is among them. A
/// variant other than `plain` brings `plain` along first: every ratio is to it.
pub fn variants(choices: &[SecurityChoice]) -> Vec<Variant> {
    if choices.contains(&SecurityChoice::None) {
        return Vec::new();
    }
    let mut variants = Vec::new();
    for choice in choices {
        let variant = match choice {
            SecurityChoice::Plain => Variant::Plain,
            SecurityChoice::Tls => Variant::Tls,
            SecurityChoice::Jwt => Variant::Jwt,
            SecurityChoice::Policy => Variant::Policy,
            SecurityChoice::All => Variant::All,
            SecurityChoice::None => continue,
        };
        if !variants.contains(&variant) {
            variants.push(variant);
        }
    }
    if !variants.is_empty() && !variants.contains(&Variant::Plain) {
        variants.insert(0, Variant::Plain);
    }
    variants
}

/// Signs the generator's tokens, as an identity provider would.
pub struct TokenMinter {
    key: jsonwebtoken::EncodingKey,
    /// The public key as a JWKS document, for `--token-keys`.
    jwks: String,
}

impl fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMinter")
            .field("kid", &TOKEN_KEY_ID)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    pub fn new() -> anyhow::Result<Self> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating the token key")?;
        // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
        let point = key.public_key_raw();
        anyhow::ensure!(point.len() == 65, "an unexpected P-256 public key");
        let (x, y) = point[1..].split_at(32);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": TOKEN_KEY_ID,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
        .to_string();
        Ok(Self {
            key: jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
            jwks,
        })
    }

    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The subject of `account_id`'s token: the principal `token:acct-<id>`.
    pub fn subject(account_id: &str) -> String {
        format!("acct-{account_id}")
    }

    /// A token acting for `account_id`, valid from now for [`TOKEN_LIFETIME`].
    pub fn mint(&self, account_id: &str) -> anyhow::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_secs();
        let claims = json!({
            "iss": TOKEN_ISSUER, "aud": TOKEN_AUDIENCE, "sub": Self::subject(account_id),
            "account_id": account_id, "iat": now, "exp": now + TOKEN_LIFETIME.as_secs(),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(TOKEN_KEY_ID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).context("signing a token")
    }
}

/// Each account's `authorization` value, minted on the account's first call (or by
/// [`Tokens::premint`]) and sent unchanged on every later one, as a client holding its token
/// until it expires does.
#[derive(Debug)]
pub struct Tokens {
    minter: Arc<TokenMinter>,
    by_account: RwLock<HashMap<String, AsciiMetadataValue>>,
}

impl Tokens {
    pub fn new(minter: Arc<TokenMinter>) -> Self {
        Self {
            minter,
            by_account: RwLock::new(HashMap::new()),
        }
    }

    /// Mints the tokens of `accounts` now, so that no call waits for a signature.
    pub fn premint<'a>(&self, accounts: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
        for account in accounts {
            self.bearer(account)?;
        }
        Ok(())
    }

    /// Tokens minted so far.
    pub fn minted(&self) -> usize {
        self.by_account
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// `Bearer <token>` of `account_id`.
    pub fn bearer(&self, account_id: &str) -> anyhow::Result<AsciiMetadataValue> {
        if let Some(value) = self
            .by_account
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account_id)
        {
            return Ok(value.clone());
        }
        let token = self.minter.mint(account_id)?;
        let value: AsciiMetadataValue = format!("Bearer {token}")
            .parse()
            .context("a token that is not ASCII")?;
        self.by_account
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(account_id.to_owned())
            .or_insert(value.clone());
        Ok(value)
    }

    /// As [`Tokens::bearer`], for the generator's interceptor.
    pub fn bearer_status(&self, account_id: &str) -> Result<AsciiMetadataValue, Status> {
        self.bearer(account_id)
            .map_err(|error| Status::internal(format!("no token for {account_id}: {error:#}")))
    }
}

/// How the generator reaches a server of a variant: the CA it trusts (TLS) and what its calls
/// carry.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// The CA certificate (PEM) the server's certificate chains to, when the server has TLS.
    pub tls_ca: Option<String>,
    pub credentials: Credentials,
}

impl ClientSecurity {
    /// Plaintext, the trusted header.
    pub fn plain() -> Self {
        Self::default()
    }

    /// The endpoint of a server listening on `addr`: `https://localhost:<port>` with TLS
    /// (the name the certificate is for), `http://<addr>` without.
    pub fn endpoint(&self, addr: SocketAddr) -> String {
        if self.tls_ca.is_some() {
            format!("https://{SERVER_NAME}:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    }

    /// The name the generator checks the server's certificate against.
    pub fn server_name(&self) -> &'static str {
        SERVER_NAME
    }

    /// The tokens the calls carry, when they carry tokens.
    pub fn tokens(&self) -> Option<&Arc<Tokens>> {
        self.credentials.tokens_in_use()
    }
}

/// Everything the variants need, written into a folder: the server's certificate and key, the
/// JWKS, the policy file; and the generator's CA and token key.
#[derive(Debug)]
pub struct SecurityMaterial {
    ca_pem: String,
    server_cert: PathBuf,
    server_key: PathBuf,
    token_keys: PathBuf,
    policy_file: PathBuf,
    minter: Arc<TokenMinter>,
}

impl SecurityMaterial {
    /// Makes a CA, a server certificate for `localhost` and 127.0.0.1, an ES256 token key and
    /// the policy file, and writes the server's files into `dir` (made if missing).
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "contactd-bench CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
            .context("making the CA")?;
        let mut server_params =
            CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "contactd-bench server");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .context("issuing the server's certificate")?;
        let minter = Arc::new(TokenMinter::new()?);
        let write = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        Ok(Self {
            ca_pem: ca.pem(),
            server_cert: write("server.crt", &server_cert.pem())?,
            server_key: write("server.key", &server_key.serialize_pem())?,
            token_keys: write("token-keys.json", minter.jwks())?,
            policy_file: write("policies.json", &policy_document().to_string())?,
            minter,
        })
    }

    /// The server's arguments of `variant` (none for `plain`).
    pub fn server_args(&self, variant: Variant) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        let mut args = Vec::new();
        if variant.uses_tls() {
            args.push(format!("--tls-cert={}", path(&self.server_cert)));
            args.push(format!("--tls-key={}", path(&self.server_key)));
        }
        if variant.uses_tokens() {
            args.push("--identity-mode=token".to_owned());
            args.push(format!("--token-keys={}", path(&self.token_keys)));
            args.push(format!("--token-issuer={TOKEN_ISSUER}"));
            args.push(format!("--token-audience={TOKEN_AUDIENCE}"));
        }
        if variant.uses_policies() {
            args.push(format!("--policy-file={}", path(&self.policy_file)));
        }
        args
    }

    /// The generator's side of `variant`: a token store of its own for each server, so that
    /// every variant mints its tokens before its own runs.
    pub fn client(&self, variant: Variant) -> ClientSecurity {
        ClientSecurity {
            tls_ca: variant.uses_tls().then(|| self.ca_pem.clone()),
            credentials: if variant.uses_tokens() {
                Credentials::tokens(Arc::new(Tokens::new(self.minter.clone())))
            } else {
                Credentials::trusted_header()
            },
        }
    }

    pub fn policy_file(&self) -> &Path {
        &self.policy_file
    }
}

/// The policy file of the `policy` and `all` variants: what a deployment of a few services
/// would have. Contact editors, readers and directory administrators, attached per account
/// family (`account:1*` for the seeded accounts, ...) under the trusted header and per token
/// subject (`token:acct-1*`) under tokens; every caller also gets an explicit deny of
/// deletions and a deny of everything from outside loopback (a condition on the source
/// address), and attachments for principals the benchmark never is (certificates, other
/// token subjects) are looked at on every call too. Every call of the benchmark is allowed:
/// the policies cost time, never calls.
pub fn policy_document() -> serde_json::Value {
    let contact_actions = [
        "resourcemanager:AddMessageContact",
        "resourcemanager:UpdateMessageContact",
        "resourcemanager:GetMessageContact*",
        "resourcemanager:ListMessageContact*",
        "resourcemanager:*Verification*",
        "resourcemanager:CancelMessageContactUpdate",
        "resourcemanager:AssociateMembers",
        "resourcemanager:DisassociateMembers",
    ];
    let mut attachments = Vec::new();
    // Families of `seed`: 1 seeded, 2 added, 3 histories, 4 dispatch, 5 directory, 6 bindings;
    // 9 the probe before the runs.
    for family in 1..=6 {
        let mut policies = vec!["ContactEditor", "LoopbackOnly", "NoDeletes"];
        if family >= 5 {
            policies.push("DirectoryAdmin");
        }
        for principal in [
            format!("account:{family}*"),
            format!("token:acct-{family}*"),
        ] {
            attachments.push(json!({"Principal": principal, "Policies": policies}));
        }
    }
    for principal in ["account:9*", "token:acct-9*"] {
        attachments
            .push(json!({"Principal": principal, "Policies": ["ContactReader", "LoopbackOnly"]}));
    }
    attachments
        .push(json!({"Principal": "certificate:spiffe://corp/*", "Policies": ["ContactReader"]}));
    attachments.push(json!({"Principal": "token:svc-audit-?", "Policies": ["Auditor"]}));
    json!({
        "Version": "1",
        "Policies": {
            "ContactEditor": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": contact_actions,
                 "Resource": "acs:resourcemanager:*:*:messagecontact/*"},
            ]},
            "ContactReader": {"Version": "1", "Statement": [
                {"Effect": "Allow",
                 "Action": ["resourcemanager:Get*", "resourcemanager:List*"],
                 "Resource": "acs:resourcemanager:*:*:messagecontact/*"},
            ]},
            "DirectoryAdmin": {"Version": "1", "Statement": [
                {"Effect": "Allow",
                 "Action": ["resourcemanager:GetResourceDirectory", "resourcemanager:*Folder",
                            "resourcemanager:*Member"],
                 "Resource": "acs:resourcemanager:*:*:resourcedirectory/*"},
            ]},
            "Auditor": {"Version": "1", "Statement": [
                {"Effect": "Allow",
                 "Action": ["resourcemanager:ListMessageContactEvents",
                            "resourcemanager:GetMessageContactAsOf"],
                 "Resource": "*"},
            ]},
            "NoDeletes": {"Version": "1", "Statement": [
                {"Effect": "Deny", "Action": "resourcemanager:DeleteMessageContact",
                 "Resource": "*"},
            ]},
            "LoopbackOnly": {"Version": "1", "Statement": [
                {"Effect": "Deny", "Action": "resourcemanager:*", "Resource": "*",
                 "Condition": {"NotIpAddress": {"acs:SourceIp": ["127.0.0.0/8", "::1"]}}},
            ]},
        },
        "Attachments": attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_comes_first_and_none_runs_nothing() {
        use SecurityChoice as C;
        assert_eq!(
            variants(&[C::Plain, C::Tls, C::Jwt, C::Policy]),
            [Variant::Plain, Variant::Tls, Variant::Jwt, Variant::Policy]
        );
        assert_eq!(variants(&[C::Jwt, C::Jwt]), [Variant::Plain, Variant::Jwt]);
        assert_eq!(variants(&[C::None]), []);
        assert_eq!(variants(&[C::Tls, C::None]), []);
    }

    #[test]
    fn each_variant_turns_on_its_own_settings() {
        let dir = std::env::temp_dir().join(format!(
            "contactd-bench-security-unit-{}",
            std::process::id()
        ));
        let material = SecurityMaterial::create(&dir).unwrap();
        assert!(material.server_args(Variant::Plain).is_empty());
        let tls = material.server_args(Variant::Tls);
        assert!(tls.iter().any(|a| a.starts_with("--tls-cert=")));
        assert!(!tls.iter().any(|a| a.starts_with("--identity-mode")));
        let jwt = material.server_args(Variant::Jwt);
        assert!(jwt.contains(&"--identity-mode=token".to_owned()));
        assert!(!jwt.iter().any(|a| a.starts_with("--tls-cert=")));
        let all = material.server_args(Variant::All);
        assert_eq!(all.len(), tls.len() + jwt.len() + 1);
        assert!(material.client(Variant::Tls).tls_ca.is_some());
        assert!(material.client(Variant::Jwt).tokens().is_some());
        assert!(material.client(Variant::Policy).tokens().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_token_is_minted_once_per_account() {
        let tokens = Tokens::new(Arc::new(TokenMinter::new().unwrap()));
        let first = tokens.bearer("100000000001").unwrap();
        assert_eq!(tokens.bearer("100000000001").unwrap(), first);
        assert_ne!(tokens.bearer("100000000002").unwrap(), first);
        assert_eq!(tokens.minted(), 2);
        let text = first.to_str().unwrap();
        let token = text.strip_prefix("Bearer ").unwrap();
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["account_id"], "100000000001");
        assert_eq!(claims["sub"], "acct-100000000001");
        assert_eq!(claims["iss"], TOKEN_ISSUER);
    }
}

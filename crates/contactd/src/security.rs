//! The security settings made real: the listeners of both ports (TLS with reloading
//! certificates, client certificates, connection limits) and what the access layer checks
//! every call against (identity, policies, rate limits).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use contactd_access::{
    Authorizer, CertificateAccounts, RateLimiter, TokenKeys, TokenSettings, TokenVerifier, Watched,
};
use contactd_grpc::{Access, Identity, ServerSettings, StreamSettings};
use contactd_net::{Listener, ListenerSettings, TlsFiles};
use tokio::net::TcpListener;

use crate::settings::{IdentityMode, ServeSettings};

/// Verified tokens remembered until they expire.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// What a port speaks over TLS, and whether its clients must present certificates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Port {
    protocols: &'static [&'static [u8]],
    client_certificates: bool,
}

/// The gRPC port: internal callers, who prove themselves with client certificates when
/// `--client-ca` is set.
pub(crate) const GRPC_PORT: Port = Port {
    protocols: &[b"h2"],
    client_certificates: true,
};

/// The HTTP port: the confirmation page is opened by a person's browser from an email, which
/// has no client certificate; it gets the same server certificate.
pub(crate) const HTTP_PORT: Port = Port {
    protocols: &[b"http/1.1"],
    client_certificates: false,
};

/// A port's listener with the settings' TLS and limits.
pub(crate) fn listener(
    tcp: TcpListener,
    settings: &ServeSettings,
    port: Port,
) -> anyhow::Result<Listener> {
    let security = &settings.security;
    let tls = match (&security.tls_cert, &security.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: security
                .client_ca
                .clone()
                .filter(|_| port.client_certificates),
        }),
        _ => None,
    };
    let listener = Listener::new(
        tcp,
        ListenerSettings {
            tls,
            alpn: port.protocols.iter().map(|p| p.to_vec()).collect(),
            max_connections: security.max_connections,
            max_connections_per_ip: security.max_connections_per_ip,
            idle_timeout: security.idle_timeout(),
            handshake_timeout: std::time::Duration::from_secs(10),
            reload_interval: security.reload_interval(),
        },
    )?;
    Ok(listener)
}

/// Who may call and how much, from the settings; files that do not load refuse the start.
pub(crate) fn access(settings: &ServeSettings, mode: IdentityMode) -> anyhow::Result<Access> {
    let security = &settings.security;
    let interval = security.reload_interval();
    let identity = match mode {
        IdentityMode::TrustedHeader => Identity::TrustedHeader,
        IdentityMode::Token => {
            let path = required(security.token_keys.as_deref(), "--token-keys")?;
            let keys = Watched::load(path.to_path_buf(), interval, TokenKeys::parse)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("--token-keys {}", path.display()))?;
            let algorithms = contactd_access::parse_algorithms(&security.token_algorithms)
                .map_err(anyhow::Error::msg)
                .context("--token-algorithms")?;
            Identity::BearerToken(TokenVerifier::new(
                TokenSettings {
                    issuer: security.token_issuer.clone().unwrap_or_default(),
                    audience: security.token_audience.clone().unwrap_or_default(),
                    algorithms,
                    leeway: std::time::Duration::from_secs(security.token_leeway_secs),
                    cache_entries: TOKEN_CACHE_ENTRIES,
                },
                Arc::new(keys),
            ))
        }
        IdentityMode::Mtls => {
            let path = required(
                security.certificate_accounts.as_deref(),
                "--certificate-accounts",
            )?;
            let accounts = Watched::load(path.to_path_buf(), interval, CertificateAccounts::parse)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("--certificate-accounts {}", path.display()))?;
            Identity::ClientCertificate(accounts)
        }
    };
    let authorizer = match &security.policy_file {
        None => Authorizer::own_account(),
        Some(path) => Authorizer::from_file(path.clone(), interval)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--policy-file {}", path.display()))?,
    };
    Ok(Access {
        identity,
        authorizer,
        limits: RateLimiter::new(security.account_rate_limits, security.principal_rate_limits),
        call_timeout: settings.call_timeout(),
    })
}

/// The gRPC server's transport limits, from the settings.
pub(crate) fn server_settings(settings: &ServeSettings) -> ServerSettings {
    let security = &settings.security;
    let (keepalive_interval, keepalive_timeout) = security.keepalive();
    ServerSettings {
        max_request_bytes: security.max_request_bytes,
        keepalive_interval,
        keepalive_timeout,
        max_header_bytes: security.max_header_bytes,
        streams: StreamSettings {
            per_account: security.max_streams_per_account,
            total: security.max_streams,
            stall_timeout: security.stream_stall(),
            ..StreamSettings::default()
        },
        ..ServerSettings::default()
    }
}

fn required<'a>(path: Option<&'a Path>, flag: &str) -> anyhow::Result<&'a Path> {
    path.with_context(|| format!("{flag} is needed"))
}

//! The listeners of the gRPC and HTTP ports: TLS whose certificates reload while the server
//! runs, client certificates, limits on connections, handshake and idle timeouts.
//!
//! Start with [`Listener::new`]; serve [`Listener::incoming`] with tonic's
//! `serve_with_incoming_shutdown`, or the [`Listener`] itself with `axum::serve`. Each
//! [`Connection`] carries a [`ConnectionInfo`] that reaches every request's extensions (tonic
//! inserts it itself; axum does with `into_make_service_with_connect_info::<ConnectionInfo>`),
//! where a layer marks the calls in flight with [`ConnectionInfo::begin_call`].
//!
//! Decisions worth knowing:
//! - Limits are checked right after `accept`, before any TLS work, and a refused connection is
//!   closed at once and logged at debug level only (a flood must not flood the logs too).
//! - Only calls beginning and ending count as activity, never bytes: HTTP/2 pings would keep a
//!   client that makes no calls alive. A connection that has sent only the HTTP/2 preface and
//!   SETTINGS is idle from the start. An idle connection's reads end (EOF), so hyper drops it.
//! - A client certificate that chains to the client CA but names no URI SAN, DNS SAN nor CN is
//!   refused after the handshake (with a warning): a caller with no name could not be
//!   authorised, and letting it through nameless would be worse.
//! - The stream of connections never yields an error: one connection's failure is logged and
//!   left out, and accept errors of the socket itself (out of file descriptors) pause briefly.
//!
//! This crate knows nothing about gRPC services, HTTP routes or who a client is allowed to be:
//! it only tells which certificate identity a client presented.

mod connection;
mod identity;
mod limits;
mod listener;
mod tls;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use connection::{CallGuard, Connection, ConnectionInfo, PeerCertificate};
pub use listener::Listener;

/// Where the server's certificate and key, and the CA that client certificates must chain to,
/// are read from (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// With it, every client must present a certificate that chains to one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// How a [`Listener`] accepts and keeps connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Without it the listener speaks plaintext, with the same limits and timeouts.
    pub tls: Option<TlsFiles>,
    /// The ALPN protocols offered, in order of preference: gRPC `[b"h2"]`, the HTTP pages
    /// `[b"h2", b"http/1.1"]` or `[b"http/1.1"]`. A client that offers none of them fails the
    /// handshake; one that offers no ALPN at all is accepted.
    pub alpn: Vec<Vec<u8>>,
    /// Connections in total, handshakes in progress included; past it new ones are closed at once.
    pub max_connections: usize,
    /// Connections from one client IP address, handshakes in progress included.
    pub max_connections_per_ip: usize,
    /// A connection with no call in flight for this long is closed (zero: as soon as it is
    /// read from while no call is in flight).
    pub idle_timeout: Duration,
    /// The TLS handshake must finish within this (zero fails every handshake).
    pub handshake_timeout: Duration,
    /// How often the certificate files are checked for changes; zero never checks. Rewrite
    /// them atomically (rename into place), or a check between two writes warns once about a
    /// certificate that does not match its key.
    pub reload_interval: Duration,
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("the listening socket: {0}")]
    Socket(#[source] io::Error),
    #[error("the listener must be created inside a tokio runtime")]
    NoRuntime,
}

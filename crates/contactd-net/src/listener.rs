//! The accept loop: limits first, then the TLS handshake in a task of its own, and the
//! connections ready to serve handed out through a bounded channel.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::connection::{Connection, ConnectionInfo, PeerCertificate};
use crate::identity::certificate_identity;
use crate::limits::{ConnectionCounts, ConnectionSlot};
use crate::tls::{self, FileContents};
use crate::{ListenerSettings, NetError};

/// Connections handshaken but not yet taken by the server; past it, handshake tasks wait.
const READY_CONNECTIONS: usize = 64;
/// The pause after an accept error that is not one connection's (out of file descriptors):
/// retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(250);

/// A bound port that accepts connections within the limits, handshakes them when it speaks
/// TLS, and hands them to tonic ([`Listener::incoming`]) or axum (`axum::serve`).
///
/// Accepting starts at [`Listener::new`]. Dropping the listener (or its `incoming` stream)
/// stops accepting, closes the port and ends the certificate reloading; connections already
/// handed out live on.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<Connection>,
}

impl Listener {
    /// Loads the certificate, key and client CA now: unreadable or invalid files are an error
    /// that says which file and why. Must be called inside a tokio runtime.
    pub fn new(tcp: TcpListener, settings: ListenerSettings) -> Result<Listener, NetError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
        let local_addr = tcp.local_addr().map_err(NetError::Socket)?;
        let tls = match &settings.tls {
            None => None,
            Some(files) => {
                let contents = FileContents::read(files)?;
                let config = tls::server_config(files, &contents, &settings.alpn)?;
                let (publish, current) = watch::channel(Arc::new(config));
                if !settings.reload_interval.is_zero() {
                    runtime.spawn(tls::reload(
                        files.clone(),
                        settings.alpn.clone(),
                        settings.reload_interval,
                        contents,
                        publish,
                    ));
                }
                // Without reloading, `publish` drops here and `current` keeps the last value.
                Some(current)
            }
        };
        let (hand_out, ready) = mpsc::channel(READY_CONNECTIONS);
        let accept_loop = AcceptLoop {
            counts: ConnectionCounts::new(
                settings.max_connections,
                settings.max_connections_per_ip,
            ),
            tls,
            idle_timeout: settings.idle_timeout,
            handshake_timeout: settings.handshake_timeout,
            hand_out,
        };
        runtime.spawn(accept_loop.run(tcp));
        Ok(Listener { local_addr, ready })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// The accepted (and, with TLS, handshaken) connections, for
    /// `tonic::transport::Server::serve_with_incoming_shutdown`. Never yields an error: a
    /// failing connection is logged and left out.
    pub fn incoming(self) -> impl Stream<Item = io::Result<Connection>> + Send + 'static {
        ReceiverStream::new(self.ready).map(Ok)
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        match self.ready.recv().await {
            Some(connection) => {
                let remote_addr = connection.info().remote_addr;
                (connection, remote_addr)
            }
            // The accept loop only ends once this receiver is gone, so this is never reached;
            // were it, waiting forever is what a listener with no more clients does.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// For `Router::into_make_service_with_connect_info::<ConnectionInfo>()`, so that the HTTP
/// pages' requests carry the connection's info (and can mark their calls in flight) too.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>>
    for ConnectionInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        stream.io().info().clone()
    }
}

struct AcceptLoop {
    counts: Arc<ConnectionCounts>,
    tls: Option<watch::Receiver<Arc<ServerConfig>>>,
    idle_timeout: Duration,
    handshake_timeout: Duration,
    hand_out: mpsc::Sender<Connection>,
}

impl AcceptLoop {
    async fn run(self, tcp: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.hand_out.closed() => return,
                accepted = tcp.accept() => accepted,
            };
            let (stream, remote_addr) = match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_one_connections(&error) => {
                    tracing::debug!(%error, "accepting a connection failed");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting connections failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            // Before any TLS work, so that a flood costs as little as possible; debug, not
            // warn, so that it does not flood the logs either.
            let slot = match self.counts.try_open(remote_addr.ip()) {
                Ok(slot) => slot,
                Err(limit) => {
                    tracing::debug!(remote = %remote_addr, "connection refused: {limit}");
                    drop(stream);
                    continue;
                }
            };
            if let Err(error) = stream.set_nodelay(true) {
                // Without it small replies wait ~40 ms for delayed ACKs, but they still arrive.
                tracing::debug!(remote = %remote_addr, %error, "cannot set TCP_NODELAY");
            }
            let acceptor = self
                .tls
                .as_ref()
                .map(|current| TlsAcceptor::from(Arc::clone(&current.borrow())));
            let preparation = Preparation {
                stream,
                remote_addr,
                slot,
                idle_timeout: self.idle_timeout,
                handshake_timeout: self.handshake_timeout,
            };
            let hand_out = self.hand_out.clone();
            // A slow or silent client must never hold up the next accept.
            tokio::spawn(async move {
                if let Some(connection) = preparation.run(acceptor).await {
                    // Fails only when the server stopped taking connections: drop this one.
                    let _ = hand_out.send(connection).await;
                }
            });
        }
    }
}

/// Errors of the connection being accepted, not of the listening socket.
fn is_one_connections(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

struct Preparation {
    stream: TcpStream,
    remote_addr: SocketAddr,
    slot: ConnectionSlot,
    idle_timeout: Duration,
    handshake_timeout: Duration,
}

impl Preparation {
    /// The connection ready to serve, or `None` (logged) when it must not be served.
    async fn run(self, acceptor: Option<TlsAcceptor>) -> Option<Connection> {
        let Some(acceptor) = acceptor else {
            return Some(Connection::plain(
                self.stream,
                self.remote_addr,
                self.idle_timeout,
                self.slot,
            ));
        };
        let remote = self.remote_addr;
        let stream = match tokio::time::timeout(
            self.handshake_timeout,
            acceptor.accept(self.stream),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%remote, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return None;
            }
        };
        // Only requested, and then verified, when a client CA is configured.
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first());
        let peer = match leaf.map(|leaf| certificate_identity(leaf)) {
            None => None,
            Some(Ok(name)) => Some(PeerCertificate { name }),
            Some(Err(error)) => {
                // The CA vouched for a certificate that says nobody: refusing it beats letting
                // a nameless caller through. A warning, since only the CA's holders get here.
                tracing::warn!(%remote, %error, "client certificate refused");
                return None;
            }
        };
        Some(Connection::tls(
            stream,
            remote,
            peer,
            self.idle_timeout,
            self.slot,
        ))
    }
}

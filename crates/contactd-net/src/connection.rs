//! An accepted connection: its transport, who is on the other end, and the idle timeout that
//! ends it when no call has been in flight for a while.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::limits::ConnectionSlot;

/// The identity of the client certificate a connection presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The certificate's first URI SAN (`spiffe://corp/billing`), else its first DNS SAN,
    /// else its subject's common name. A certificate naming none of them is refused at the
    /// handshake, so the name is never empty.
    pub name: String,
}

/// What a request learns about the connection it came on; tonic puts it in each request's
/// extensions.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub remote_addr: SocketAddr,
    /// With client certificates required, the one presented; otherwise `None`.
    pub peer: Option<PeerCertificate>,
    activity: Arc<Activity>,
}

impl ConnectionInfo {
    /// Marks a call in flight on this connection until the guard drops: the idle timeout only
    /// runs while no call is in flight.
    pub fn begin_call(&self) -> CallGuard {
        self.activity.change(|state| state.calls_in_flight += 1);
        CallGuard {
            activity: Arc::clone(&self.activity),
        }
    }
}

/// A call in flight; dropping it ends the call.
#[derive(Debug)]
#[must_use = "the call ends when the guard drops"]
pub struct CallGuard {
    activity: Arc<Activity>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.activity
            .change(|state| state.calls_in_flight = state.calls_in_flight.saturating_sub(1));
    }
}

/// Calls beginning and ending are the only activity: bytes are not, since HTTP/2 pings (or a
/// client trickling SETTINGS) would keep a connection that makes no calls alive forever.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    calls_in_flight: usize,
    last_change: Instant,
}

impl Activity {
    fn change(&self, update: impl FnOnce(&mut ActivityState)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        update(&mut state);
        state.last_change = Instant::now();
    }

    fn snapshot(&self) -> ActivityState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection, handshaken when the listener speaks TLS. Reading from it ends (EOF)
/// once it has been idle for the listener's idle timeout, which makes hyper drop it.
pub struct Connection {
    transport: Transport,
    info: ConnectionInfo,
    idle_timeout: Duration,
    idle_check: Pin<Box<Sleep>>,
    idle_expired: bool,
    // Held only to be dropped with the connection, which gives its place in the counts back.
    _slot: ConnectionSlot,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .field("tls", &matches!(self.transport, Transport::Tls(_)))
            .field("idle_expired", &self.idle_expired)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn plain(
        stream: TcpStream,
        remote_addr: SocketAddr,
        idle_timeout: Duration,
        slot: ConnectionSlot,
    ) -> Self {
        Self::new(
            Transport::Plain(stream),
            remote_addr,
            None,
            idle_timeout,
            slot,
        )
    }

    pub(crate) fn tls(
        stream: tokio_rustls::server::TlsStream<TcpStream>,
        remote_addr: SocketAddr,
        peer: Option<PeerCertificate>,
        idle_timeout: Duration,
        slot: ConnectionSlot,
    ) -> Self {
        Self::new(
            Transport::Tls(Box::new(stream)),
            remote_addr,
            peer,
            idle_timeout,
            slot,
        )
    }

    fn new(
        transport: Transport,
        remote_addr: SocketAddr,
        peer: Option<PeerCertificate>,
        idle_timeout: Duration,
        slot: ConnectionSlot,
    ) -> Self {
        let now = Instant::now();
        let activity = Arc::new(Activity {
            state: Mutex::new(ActivityState {
                calls_in_flight: 0,
                last_change: now,
            }),
        });
        Self {
            transport,
            info: ConnectionInfo {
                remote_addr,
                peer,
                activity,
            },
            idle_timeout,
            idle_check: Box::pin(tokio::time::sleep_until(deadline(now, idle_timeout))),
            idle_expired: false,
            _slot: slot,
        }
    }

    /// Who is on the other end; the same info tonic puts in each request's extensions.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Whether the connection has been idle long enough to end. Polling the timer registers
    /// the reader's waker, so an idle connection is woken to be ended.
    fn poll_idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle_expired {
            return true;
        }
        while self.idle_check.as_mut().poll(cx).is_ready() {
            let state = self.info.activity.snapshot();
            let now = Instant::now();
            let next_check = if state.calls_in_flight > 0 {
                // A call in flight may run as long as it likes; the timeout starts once it ends.
                // Rechecked no more often than MIN_RECHECK, lest a zero timeout spin.
                deadline(now, self.idle_timeout.max(MIN_RECHECK))
            } else {
                let idle_until = deadline(state.last_change, self.idle_timeout);
                if idle_until <= now {
                    tracing::debug!(
                        remote = %self.info.remote_addr,
                        "closing a connection idle for {:?}",
                        self.idle_timeout
                    );
                    self.idle_expired = true;
                    return true;
                }
                idle_until
            };
            self.idle_check.as_mut().reset(next_check);
        }
        false
    }
}

/// The shortest pause between two looks at a connection whose calls are in flight.
const MIN_RECHECK: Duration = Duration::from_millis(10);

fn deadline(from: Instant, timeout: Duration) -> Instant {
    // An absurdly long timeout means "never", not an overflow.
    from.checked_add(timeout)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 24 * 3600))
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.poll_idle_expired(cx) {
            // End of stream: hyper closes the connection as if the client had.
            return Poll::Ready(Ok(()));
        }
        match &mut this.transport {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.transport {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

//! Peers that are not there, or that never say a word: for timeouts and refused connections.

use std::net::{SocketAddr, TcpListener};

use tokio::task::JoinHandle;

/// A peer on a free port of 127.0.0.1 that accepts connections and never says a word: neither
/// an SMTP greeting nor an HTTP response. It holds every connection open until dropped.
#[derive(Debug)]
pub struct SilentPeer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentPeer {
    /// Starts listening; connections are accepted as long as it lives.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        Self { addr, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address of 127.0.0.1 where nothing listens: a port the system gave out and that was
/// closed again, so a connection to it is refused.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

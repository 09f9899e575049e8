//! A real HTTP server standing in for the SMS gateway: it records each request and answers a
//! chosen status, or holds the first requests unanswered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::task::{JoinHandle, JoinSet};

/// One request as the gateway received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON. Panics, showing the body, if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Debug)]
struct GatewayState {
    status: AtomicU16,
    /// How many requests, counted from the first, get no answer.
    hang_first: usize,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// An HTTP/1.1 server on a free port of 127.0.0.1 that records every request, whatever its
/// method and path, and answers it with an empty body and the status set last. Dropping it
/// stops it and closes every connection, those held unanswered too.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: Arc<GatewayState>,
    server: JoinHandle<()>,
}

impl Gateway {
    /// A gateway that answers `status` to every request.
    pub async fn answering(status: u16) -> Self {
        Self::hanging_first(0, status).await
    }

    /// A gateway that records every request but never answers the first `count` of them,
    /// holding their connections open (until it is dropped), and answers `status` to those
    /// after. A client meets its own timeout on the first `count`.
    pub async fn hanging_first(count: usize, status: u16) -> Self {
        StatusCode::from_u16(status).expect("an HTTP status");
        let state = Arc::new(GatewayState {
            status: AtomicU16::new(status),
            hang_first: count,
            requests: Mutex::default(),
        });
        let router = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // The connections are this task's, so that aborting it closes them all, those
            // whose request hangs too (axum::serve would leave them running).
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let (stream, _) = accepted.expect("the gateway accepts connections");
                        let service = TowerToHyperService::new(router.clone());
                        connections.spawn(async move {
                            // A client that goes away mid-request is no failure of the gateway.
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `status` from now on (to the requests not held unanswered).
    pub fn answer(&self, status: u16) {
        StatusCode::from_u16(status).expect("an HTTP status");
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// The requests received so far, in the order received, those held unanswered too.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests were received, looking every 20 ms, and returns
    /// all received so far. Panics after `timeout`, naming how many arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        crate::wait_for_count(count, timeout, "requests at the gateway", || {
            self.requests()
        })
        .await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(state): State<Arc<GatewayState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let number = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(RecordedRequest {
            method,
            path: uri.path().to_owned(),
            headers,
            body,
        });
        requests.len()
    };
    if number <= state.hang_first {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
}

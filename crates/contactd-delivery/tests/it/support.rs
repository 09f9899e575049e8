//! The peers the tests deliver to, and the notifications they deliver. `SmtpSink` is meant to be
//! copied by other crates' tests: it needs only std (and the `tempfile` crate).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use chrono::{DateTime, TimeZone, Utc};
use contactd_app::{DeliveryError, Notification};
use contactd_delivery::DeliverySettings;
use contactd_domain::{ContactId, EmailAddress, PhoneNumber, VerificationCode, VerificationTarget};
use tokio::task::JoinHandle;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// SMTP: scripts/smtp-sink.py, a real SMTP server on aiosmtpd.

/// A running `scripts/smtp-sink.py`, killed when dropped. Every message it accepts is in
/// `dir()` as `<n>.eml` with `<n>.envelope.json`, written before it answers the DATA.
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    // Held so that the server, started with --until-stdin-closes, also stops should this
    // process die without running `Drop`.
    _stdin: ChildStdin,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// One message as the SMTP server received it.
#[derive(Debug)]
pub struct ReceivedMail {
    pub raw: Vec<u8>,
    pub rcpt_tos: Vec<String>,
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Answers 451 to the DATA of the first `count` messages, then accepts.
    pub fn refusing_first(count: u32) -> Self {
        Self::start_with(&["--refuse-first", &count.to_string()])
    }

    /// Starts the server on a free port with extra arguments, and waits for its LISTENING line.
    pub fn start_with(args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smtp-sink.py");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--until-stdin-closes", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run python3 {}: {error}", script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the first line of smtp-sink.py");
        let Some(addr) = line.trim().strip_prefix("LISTENING ") else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "smtp-sink.py stopped before listening ({status:?}; its error is above). \
                 It needs aiosmtpd: python3 -m pip install aiosmtpd==1.4.6"
            );
        };
        let addr = addr.parse().expect("LISTENING host:port");
        Self {
            child,
            _stdin: stdin,
            addr,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, plain SMTP.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The messages accepted so far, in the order accepted.
    pub fn received(&self) -> Vec<ReceivedMail> {
        (1..)
            .map(|n| self.dir().join(format!("{n}.eml")))
            .take_while(|path| path.exists())
            .map(|eml| {
                let envelope: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(eml.with_extension("envelope.json")).unwrap(),
                )
                .unwrap();
                ReceivedMail {
                    raw: std::fs::read(&eml).unwrap(),
                    rcpt_tos: envelope["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|to| to.as_str().unwrap().to_owned())
                        .collect(),
                }
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The SMS gateway: a real HTTP server that records each request and answers a chosen status.

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Default)]
struct GatewayState {
    status: AtomicU16,
    requests: Mutex<Vec<RecordedRequest>>,
}

#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: Arc<GatewayState>,
    server: JoinHandle<()>,
}

impl Gateway {
    pub async fn answering(status: u16) -> Self {
        let state = Arc::new(GatewayState {
            status: AtomicU16::new(status),
            requests: Mutex::default(),
        });
        let router = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
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
    state.requests.lock().unwrap().push(RecordedRequest {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
}

/// A peer that accepts connections and never says a word: neither an SMTP greeting nor an HTTP
/// response.
#[derive(Debug)]
pub struct SilentPeer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentPeer {
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

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address where nothing listens: a port the system gave out and that was closed again.
pub fn closed_port() -> SocketAddr {
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// What is delivered.

pub const NAME: &str = "张三";
pub const CODE: u32 = 123_456;
pub const LINK: &str = "https://contacts.example.com/verify?token=Zm9vYmFy";

pub fn expires_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 22, 15, 42).unwrap()
}

pub fn email_to(address: &str) -> Notification {
    notification(VerificationTarget::Email(
        EmailAddress::parse(address).unwrap(),
    ))
}

pub fn sms_to(phone: &str) -> Notification {
    notification(VerificationTarget::Phone(
        PhoneNumber::restore(phone).unwrap(),
    ))
}

fn notification(recipient: VerificationTarget) -> Notification {
    Notification {
        message_id: Uuid::new_v4(),
        contact_id: ContactId::generate(),
        contact_name: NAME.to_owned(),
        recipient,
        code: VerificationCode::from_number(CODE),
        expires_at: expires_at(),
        link: LINK.to_owned(),
    }
}

/// Settings with nothing configured: everything goes into `sink_dir`.
pub fn settings(sink_dir: PathBuf) -> DeliverySettings {
    DeliverySettings {
        smtp_url: None,
        mail_from: "contactd <noreply@contacts.example.com>".to_owned(),
        sms_webhook_url: None,
        sink_dir,
        timeout: Duration::from_secs(5),
    }
}

/// The reason of a failed delivery, checked to hold neither the recipient nor the code.
pub fn clean_reason(error: &DeliveryError, notification: &Notification) -> String {
    let reason = match error {
        DeliveryError::Transient(reason) | DeliveryError::Permanent(reason) => reason.clone(),
    };
    let recipient = notification.recipient.as_str();
    assert!(
        !reason.contains(recipient),
        "{reason:?} names the recipient"
    );
    let digits = recipient.split('-').next_back().unwrap_or(recipient);
    assert!(
        !reason.contains(digits),
        "{reason:?} names the phone number"
    );
    let local_part = recipient.split('@').next().unwrap_or(recipient);
    assert!(
        !reason.contains(local_part),
        "{reason:?} names the recipient"
    );
    assert!(
        !reason.contains(notification.code.expose()),
        "{reason:?} holds the code"
    );
    reason
}

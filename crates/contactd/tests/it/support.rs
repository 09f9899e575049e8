//! Starting the real server on a fresh database of either backend, and the steps and
//! assertions every test shares.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

use clap::Parser;
use contactd::backend::Store;
use contactd::settings::{Cli, Command, ServeSettings};
use contactd_app::CodeSecret;
use contactd_domain::VerificationId;
use contactd_grpc::proto::message_contact_service_client::MessageContactServiceClient;
use contactd_grpc::proto::{
    AddMessageContactRequest, AddMessageContactResponse, ConfirmMessageContactVerificationRequest,
    Contact, GetMessageContactRequest, SendEmailVerificationForMessageContactRequest,
    SendPhoneVerificationForMessageContactRequest, UpdateMessageContactRequest,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub use crate::db::{Backend, TestDb, test_master_key_file};
pub(crate) use crate::db::{both_backends, on_sqlite, postgres_only, sqlite_only};

pub const ACCOUNT: &str = "1234567890123456";
pub const OTHER_ACCOUNT: &str = "6543210987654321";

pub type Client = MessageContactServiceClient<Channel>;

/// The secret every test server derives codes under, so that a test can derive them too.
pub const TEST_CODE_SECRET: &str = "the code secret of the end-to-end tests";

/// The real server, serving a test's database on an ephemeral port, and its confirmation pages
/// on another.
pub struct TestServer {
    pub addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub client: Client,
    /// The client's channel, for clients of the other services.
    pub channel: Channel,
    /// The data directory: the development sink writes messages under `messages/`.
    pub data_dir: tempfile::TempDir,
    /// The server's store (a clone: it is the same store).
    store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(db: &TestDb) -> Self {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: &TestDb, configure: impl FnOnce(&mut ServeSettings)) -> Self {
        Self::serve(db.store().await, configure, plaintext).await
    }

    /// A server on `store` (opened by the test, say through a proxy it can cut).
    pub async fn start_on(store: Store, configure: impl FnOnce(&mut ServeSettings)) -> Self {
        Self::serve(store, configure, plaintext).await
    }

    /// A server configured by `configure`, whose client connects through `endpoint` (built
    /// from the server's address: TLS, client certificates, windows).
    pub async fn start_with_endpoint(
        db: &TestDb,
        configure: impl FnOnce(&mut ServeSettings),
        endpoint: impl FnOnce(SocketAddr) -> Endpoint,
    ) -> Self {
        Self::serve(db.store().await, configure, endpoint).await
    }

    /// As many servers on the database as its backend lets share it, up to `wanted`: on
    /// PostgreSQL each on a store of its own (as separate processes), on SQLite the one.
    pub async fn start_up_to(
        db: &TestDb,
        wanted: usize,
        configure: impl Fn(&mut ServeSettings),
    ) -> Vec<Self> {
        let mut servers = Vec::new();
        for _ in 0..wanted.min(db.servers()) {
            servers.push(Self::start_with(db, &configure).await);
        }
        servers
    }

    async fn serve(
        store: Store,
        configure: impl FnOnce(&mut ServeSettings),
        endpoint: impl FnOnce(SocketAddr) -> Endpoint,
    ) -> Self {
        let Command::Serve(mut settings) = Cli::parse_from(["contactd", "serve"]).command else {
            unreachable!("`serve` parses as the serve command")
        };
        let data_dir = tempfile::tempdir().expect("a data directory");
        settings.database.data_dir = data_dir.path().to_owned();
        settings.verification.code_secret = Some(TEST_CODE_SECRET.to_owned());
        settings.verification.dispatch_retry_base_ms = 20;
        configure(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let http_addr = http.local_addr().expect("local address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let served = store.clone();
        let handle = tokio::spawn(async move {
            contactd::startup::run(listener, http, served, &settings, async {
                let _ = stop.await;
            })
            .await
        });
        let channel = endpoint(addr)
            .connect()
            .await
            .expect("connect to the test server");
        Self {
            addr,
            http_addr,
            data_dir,
            client: MessageContactServiceClient::new(channel.clone()),
            channel,
            store,
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    /// Closes every connection of the server's store under it, as a database gone out of
    /// reach leaves it.
    pub async fn close_the_store(&self) {
        match &self.store {
            Store::Postgres(store) => store.pool().close().await,
            Store::Sqlite(store) => store.close().await,
        }
    }

    /// Stops the server as SIGTERM would and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

/// The endpoint of a plaintext server at `addr`.
pub fn plaintext(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}")).expect("endpoint")
}

/// A request acting for `account`.
pub fn as_account<T>(account: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-acs-account-id", account.parse().expect("ascii"));
    request
}

pub fn add_request(name: &str) -> AddMessageContactRequest {
    AddMessageContactRequest {
        name: name.to_owned(),
        email_address: format!("{}@example.com", name.to_lowercase()),
        phone_number: Some("86-13912345678".to_owned()),
        title: "TechnicalDirector".to_owned(),
        message_types: vec!["AccountExpenses".to_owned()],
        client_token: String::new(),
    }
}

pub fn update_request(contact_id: &str) -> UpdateMessageContactRequest {
    UpdateMessageContactRequest {
        contact_id: contact_id.to_owned(),
        ..Default::default()
    }
}

/// Adds a contact named `name` with the email address `email` to `account`; its id.
pub async fn add_with_email(client: &mut Client, account: &str, name: &str, email: &str) -> String {
    let mut request = add_request(name);
    request.email_address = email.to_owned();
    client
        .add_message_contact(as_account(account, request))
        .await
        .expect("add")
        .into_inner()
        .contact
        .expect("the added contact")
        .contact_id
}

/// Waits until every message that was asked for is recorded and sent.
pub async fn until_every_message_is_sent(db: &TestDb) {
    until(
        "every message's outcome is recorded",
        Duration::from_secs(60),
        async || {
            let (requested, sent): (i64, i64) = db
                .fetch_one(
                    "SELECT (SELECT count(*) FROM events \
                             WHERE event_type LIKE '%VerificationRequested'), \
                            (SELECT count(*) FROM outbox_messages WHERE state = 'sent')",
                    &[],
                )
                .await;
            (requested == sent).then_some(())
        },
    )
    .await;
}

/// Adds a contact named `name` to `account` and returns it.
pub async fn add(client: &mut Client, account: &str, name: &str) -> Contact {
    let response: AddMessageContactResponse = client
        .add_message_contact(as_account(account, add_request(name)))
        .await
        .expect("add")
        .into_inner();
    response.contact.expect("the added contact")
}

pub async fn get(client: &mut Client, account: &str, contact_id: &str) -> Result<Contact, Status> {
    let request = GetMessageContactRequest {
        contact_id: contact_id.to_owned(),
    };
    Ok(client
        .get_message_contact(as_account(account, request))
        .await?
        .into_inner()
        .contact
        .expect("contact"))
}

/// The contract's error code of a failed call (`ErrorInfo.reason`).
pub fn error_code(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_else(|| format!("no ErrorInfo: {status:?}"))
}

/// Asserts that `status` is the contract's error `reason`: gRPC code, message word for word,
/// `ErrorInfo`, `RequestInfo`, `BadRequest` naming `field` (parameter errors only), and the
/// code and request id in metadata.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str, message: &str, field: Option<&str>) {
    assert_eq!(status.code(), code, "gRPC code of {reason}: {status:?}");
    assert_eq!(status.message(), message, "message of {reason}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "resourcemanager");
    assert!(
        info.metadata.contains_key("http_status"),
        "http_status in ErrorInfo metadata"
    );
    let request_id = &details.request_info().expect("RequestInfo").request_id;
    assert_request_id(request_id);
    assert_eq!(
        status
            .metadata()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(request_id.as_str())
    );
    assert_eq!(
        status
            .metadata()
            .get("x-acs-error-code")
            .and_then(|v| v.to_str().ok()),
        Some(reason)
    );
    let violations: Vec<&str> = details
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        violations,
        field.into_iter().collect::<Vec<_>>(),
        "BadRequest fields of {reason}"
    );
}

/// Asserts an upper-case UUID such as `9B34724D-54B0-4A51-B34D-4512372FE1BE`.
#[track_caller]
/// Where a live stream that was ended says to resume (`x-contactd-resume-from`).
pub fn resume_from(ending: &Status) -> i64 {
    ending
        .metadata()
        .get("x-contactd-resume-from")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("where to resume")
}

pub fn assert_request_id(request_id: &str) {
    assert!(
        uuid::Uuid::parse_str(request_id).is_ok(),
        "request id {request_id:?} is a UUID"
    );
    assert_eq!(
        request_id,
        request_id.to_uppercase(),
        "request id is upper-case"
    );
}

pub type AuditClient =
    contactd_grpc::proto::message_contact_audit_service_client::MessageContactAuditServiceClient<
        Channel,
    >;

pub fn request_id_header(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-acs-request-id")
        .expect("x-acs-request-id")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// `account`'s live stream of events from `from_position` on.
pub async fn open_stream(
    audit: &mut AuditClient,
    account: &str,
    from_position: i64,
) -> Result<tonic::Streaming<contactd_grpc::proto::Event>, Status> {
    let response = audit
        .stream_events(as_account(
            account,
            contactd_grpc::proto::StreamEventsRequest { from_position },
        ))
        .await?;
    assert_request_id(&request_id_header(response.metadata()));
    Ok(response.into_inner())
}

/// A client of `MessageContactAuditService` on the test server.
pub async fn audit_client(server: &TestServer) -> AuditClient {
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the test server");
    AuditClient::new(channel)
}

/// The code the last send for `contact_id` on `event_type`'s channel issued
/// (`EmailVerificationRequested` or `PhoneVerificationRequested`), derived from the log under
/// the test secret, as the dispatcher derives it.
pub async fn issued_code(db: &TestDb, contact_id: &str, event_type: &str) -> String {
    let id: String = db
        .scalar(
            "SELECT payload->>'verification_id' FROM events \
             WHERE stream_id = $1 AND event_type = $2 ORDER BY stream_version DESC LIMIT 1",
            &[contact_id, event_type],
        )
        .await;
    let secret = CodeSecret::new(TEST_CODE_SECRET.as_bytes().to_vec()).expect("a long secret");
    let id = VerificationId::from_uuid(id.parse().expect("a uuid"));
    secret.code(id).expose().to_owned()
}

/// The id of the last event of `event_type` in the stream: a message's id, when it asked for
/// one.
pub async fn last_event_id(db: &TestDb, stream_id: &str, event_type: &str) -> uuid::Uuid {
    let sql = format!(
        "SELECT {} FROM events WHERE stream_id = $1 AND event_type = $2 \
         ORDER BY stream_version DESC LIMIT 1",
        db.uuid_text("event_id")
    );
    let id: String = db.scalar(&sql, &[stream_id, event_type]).await;
    id.parse().expect("an event id")
}

/// A code that is not `code`.
pub fn wrong(code: &str) -> String {
    let number: u32 = code.parse().expect("digits");
    format!("{:06}", (number + 1) % 1_000_000)
}

pub async fn send_email(
    client: &mut Client,
    account: &str,
    contact_id: &str,
    email: &str,
) -> Result<String, Status> {
    let request = SendEmailVerificationForMessageContactRequest {
        contact_id: contact_id.to_owned(),
        email_address: email.to_owned(),
        client_token: String::new(),
    };
    Ok(client
        .send_email_verification_for_message_contact(as_account(account, request))
        .await?
        .into_inner()
        .request_id)
}

pub async fn send_phone(
    client: &mut Client,
    account: &str,
    contact_id: &str,
    phone: &str,
) -> Result<String, Status> {
    let request = SendPhoneVerificationForMessageContactRequest {
        contact_id: contact_id.to_owned(),
        phone_number: phone.to_owned(),
        client_token: String::new(),
    };
    Ok(client
        .send_phone_verification_for_message_contact(as_account(account, request))
        .await?
        .into_inner()
        .request_id)
}

pub async fn confirm(
    client: &mut Client,
    account: &str,
    contact_id: &str,
    target: &str,
    code: &str,
) -> Result<String, Status> {
    let request = ConfirmMessageContactVerificationRequest {
        contact_id: contact_id.to_owned(),
        target: target.to_owned(),
        code: code.to_owned(),
        client_token: String::new(),
    };
    Ok(client
        .confirm_message_contact_verification(as_account(account, request))
        .await?
        .into_inner()
        .request_id)
}

/// Sends a code for the contact's pending email address and confirms it, as its owner would.
pub async fn verify_email(client: &mut Client, db: &TestDb, contact_id: &str, email: &str) {
    send_email(client, ACCOUNT, contact_id, email)
        .await
        .expect("send");
    let code = issued_code(db, contact_id, "EmailVerificationRequested").await;
    confirm(client, ACCOUNT, contact_id, email, &code)
        .await
        .expect("confirm");
}

/// Waits for a condition, checking every 20 ms, failing after `limit`.
pub async fn until<T>(
    what: &str,
    limit: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An HTTP/1.1 answer of the confirmation pages.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request over a fresh connection, as the simplest client would make it.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> HttpReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A `contactd serve` process on a free port, logging into its data directory; killed when
/// dropped.
pub struct Process {
    child: Child,
    port: u16,
    http_port: u16,
    data_dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Process {
    pub fn start(db: &TestDb) -> Self {
        Self::start_with(db, &[], "warn")
    }

    /// With more arguments, and `RUST_LOG` set to `log`.
    pub fn start_with(db: &TestDb, extra: &[&str], log: &str) -> Self {
        let data_dir = tempfile::tempdir().expect("a data directory");
        let (port, http_port) = (free_port(), free_port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--http-listen",
                &format!("127.0.0.1:{http_port}"),
                "--database-url",
                &db.url(),
                "--code-secret",
                TEST_CODE_SECRET,
            ])
            .arg("--master-key-file")
            .arg(test_master_key_file())
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra)
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data_dir.path().join("contactd.log")).expect("a log"))
            .spawn()
            .expect("start contactd");
        Self {
            child,
            port,
            http_port,
            data_dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// The code and the link of the contact's last email, from the development sink of the
    /// data directory (waiting until the dispatcher has written it).
    pub async fn sent_email(&self, db: &TestDb, contact_id: &str) -> (String, String) {
        let message_id = last_event_id(db, contact_id, "EmailVerificationRequested").await;
        let file = self
            .data_dir
            .path()
            .join("messages")
            .join(format!("{message_id}.eml"));
        let raw = until(
            "the email is in the sink",
            Duration::from_secs(30),
            async || std::fs::read(&file).ok(),
        )
        .await;
        let mail = contactd_testkit::ReceivedMail {
            raw,
            mail_from: String::new(),
            rcpt_tos: Vec::new(),
        };
        (mail.code(), mail.link())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("contactd.log")).unwrap_or_default()
    }

    pub fn holder_name(&self) -> String {
        format!(
            "contactd pid {} on 127.0.0.1:{}",
            self.child.id(),
            self.port
        )
    }

    pub async fn client(&self) -> Client {
        let endpoint = self.endpoint();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tonic::transport::Channel::from_shared(endpoint.clone())
                .unwrap()
                .connect()
                .await
            {
                Ok(channel) => return Client::new(channel),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(error) => panic!("contactd did not start: {error}; it logged: {}", self.log()),
            }
        }
    }

    /// Waits until the process has exited by itself; its exit status.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        until("the process exits", Duration::from_secs(30), async || {
            self.child.try_wait().unwrap()
        })
        .await
    }

    /// Dies at once, as on `kill -9`: no shutdown, its connections simply drop.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Stops as on SIGTERM, and waits (without blocking the test's runtime, whose clients
    /// must see the server's GOAWAY) until it has exited; its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        until("the process exits", Duration::from_secs(30), async || {
            self.child.try_wait().unwrap()
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Starting the real server on a fresh database, and the assertions every test shares.

use std::net::SocketAddr;

use clap::Parser;
use contactd::settings::{Cli, Command, ServeSettings};
use contactd_grpc::proto::message_contact_service_client::MessageContactServiceClient;
use contactd_grpc::proto::{
    AddMessageContactRequest, AddMessageContactResponse, Contact, GetMessageContactRequest,
    UpdateMessageContactRequest,
};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub const ACCOUNT: &str = "1234567890123456";
pub const OTHER_ACCOUNT: &str = "6543210987654321";

pub type Client = MessageContactServiceClient<Channel>;

/// The secret every test server derives codes under, so that a test can derive them too.
pub const TEST_CODE_SECRET: &str = "the code secret of the end-to-end tests";

/// The real server, serving a fresh database on an ephemeral port, and its confirmation pages
/// on another.
pub struct TestServer {
    pub addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub client: Client,
    /// The data directory: the development sink writes messages under `messages/`.
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, |_| {}).await
    }

    pub async fn start_with(pool: PgPool, configure: impl FnOnce(&mut ServeSettings)) -> Self {
        let Command::Serve(mut settings) = Cli::parse_from(["contactd", "serve"]).command else {
            unreachable!("`serve` parses as the serve command")
        };
        let data_dir = tempfile::tempdir().expect("a data directory");
        settings.verification.data_dir = data_dir.path().to_owned();
        settings.verification.code_secret = Some(TEST_CODE_SECRET.to_owned());
        settings.verification.dispatch_retry_base_ms = 20;
        configure(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let http_addr = http.local_addr().expect("local address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            contactd::startup::run(listener, http, pool, &settings, async {
                let _ = stop.await;
            })
            .await
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the test server");
        Self {
            addr,
            http_addr,
            data_dir,
            client: MessageContactServiceClient::new(channel),
            shutdown: Some(shutdown),
            handle: Some(handle),
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

/// A client of `MessageContactAuditService` on the test server.
pub async fn audit_client(server: &TestServer) -> AuditClient {
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the test server");
    AuditClient::new(channel)
}

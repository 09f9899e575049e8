//! The generator's side of the wire: gRPC connections to the server (plaintext or TLS) and
//! requests acting for an account (metadata `x-acs-account-id`, or the account's bearer token
//! in its place when the server identifies callers by tokens).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use contactd_grpc::proto::message_contact_service_client::MessageContactServiceClient;
use contactd_grpc::proto::resource_directory_service_client::ResourceDirectoryServiceClient;
use contactd_grpc::proto::{AddMessageContactRequest, ListMessageContactsRequest};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::security::{ClientSecurity, Tokens};

pub type Client = MessageContactServiceClient<InterceptedService<Channel, Credentials>>;
/// The resource directory mirror's client, on the same connections.
pub type DirectoryClient = ResourceDirectoryServiceClient<InterceptedService<Channel, Credentials>>;

const ACCOUNT_HEADER: &str = "x-acs-account-id";
/// The family of the account that asks whether the server answers yet.
pub const PROBE_FAMILY: u8 = 9;

/// An account as the generator sends it: the metadata value, parsed once.
#[derive(Debug, Clone)]
pub struct Account(AsciiMetadataValue);

impl Account {
    /// Account `number` of a family: `family` 1 to 9 leads, so families never meet. 12 digits.
    pub fn numbered(family: u8, number: u64) -> Self {
        let id = format!("{family}{number:011}");
        Self(
            id.parse()
                .unwrap_or_else(|_| AsciiMetadataValue::from_static("1")),
        )
    }

    pub fn id(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// `message`, acting for this account.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(ACCOUNT_HEADER, self.0.clone());
        request
    }
}

/// What every call carries to name its caller. Requests name their account with the trusted
/// header ([`Account::request`]); under tokens this swaps the header for the account's own
/// `authorization: Bearer …`, so that every scenario runs unchanged in either mode.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    tokens: Option<Arc<Tokens>>,
}

impl Credentials {
    /// The header as the requests carry it.
    pub fn trusted_header() -> Self {
        Self::default()
    }

    /// Each account's token in place of the header.
    pub fn tokens(tokens: Arc<Tokens>) -> Self {
        Self {
            tokens: Some(tokens),
        }
    }

    pub fn tokens_in_use(&self) -> Option<&Arc<Tokens>> {
        self.tokens.as_ref()
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(request);
        };
        let Some(account) = request.metadata_mut().remove(ACCOUNT_HEADER) else {
            return Ok(request);
        };
        let account = account
            .to_str()
            .map_err(|_| Status::internal("an account header that is not text"))?;
        let bearer = tokens.bearer_status(account)?;
        request.metadata_mut().insert("authorization", bearer);
        Ok(request)
    }
}

/// A contact the generator added, with its account.
#[derive(Debug, Clone)]
pub struct ContactRef {
    pub account: Account,
    pub contact_id: String,
}

/// `connections` HTTP/2 connections to `endpoint`; calls are spread over them.
#[derive(Debug, Clone)]
pub struct Fleet {
    channels: Vec<Channel>,
    credentials: Credentials,
}

impl Fleet {
    /// Plaintext connections, calls with the trusted header.
    pub async fn connect(endpoint: &str, connections: usize) -> anyhow::Result<Self> {
        Self::connect_with(endpoint, connections, &ClientSecurity::plain()).await
    }

    /// Connections as `security` says (TLS when it trusts a CA), calls carrying its
    /// credentials.
    pub async fn connect_with(
        endpoint: &str,
        connections: usize,
        security: &ClientSecurity,
    ) -> anyhow::Result<Self> {
        let mut template = Endpoint::from_shared(endpoint.to_owned())
            .context("the server's endpoint")?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        if let Some(ca) = &security.tls_ca {
            template = template
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(ca))
                        .domain_name(security.server_name()),
                )
                .context("the generator's TLS settings")?;
        }
        let mut channels = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            let channel = template
                .connect()
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
            channels.push(channel);
        }
        Ok(Self {
            channels,
            credentials: security.credentials.clone(),
        })
    }

    /// The client for task `task`.
    pub fn client(&self, task: usize) -> Client {
        MessageContactServiceClient::with_interceptor(self.channel(task), self.credentials.clone())
    }

    /// The directory client for task `task`, on the same connection as its [`Fleet::client`].
    pub fn directory(&self, task: usize) -> DirectoryClient {
        ResourceDirectoryServiceClient::with_interceptor(
            self.channel(task),
            self.credentials.clone(),
        )
    }

    fn channel(&self, task: usize) -> Channel {
        self.channels[task % self.channels.len()].clone()
    }
}

/// Waits until the server at `endpoint` answers a call, for at most `patience`.
pub async fn wait_until_serving(endpoint: &str, patience: Duration) -> anyhow::Result<()> {
    wait_until_serving_with(endpoint, &ClientSecurity::plain(), patience).await
}

/// Waits until the server at `endpoint` answers a call made as `security` says, for at most
/// `patience`.
pub async fn wait_until_serving_with(
    endpoint: &str,
    security: &ClientSecurity,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    let probe = Account::numbered(PROBE_FAMILY, 0);
    loop {
        let answered = match Fleet::connect_with(endpoint, 1, security).await {
            Ok(fleet) => fleet
                .client(0)
                .list_message_contacts(probe.request(ListMessageContactsRequest::default()))
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from),
            Err(error) => Err(error),
        };
        match answered {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(error.context(format!("the server at {endpoint} did not answer")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// An add request the contract accepts: `name` must be 2 to 12 letters, unique in the account.
pub fn add_request(name: String, email_address: String) -> AddMessageContactRequest {
    AddMessageContactRequest {
        name,
        email_address,
        phone_number: Some("86-13912345678".to_owned()),
        title: "TechnicalDirector".to_owned(),
        message_types: vec!["AccountExpenses".to_owned(), "SecurityMessage".to_owned()],
        client_token: String::new(),
    }
}

/// A name of letters only for number `n` (base 26, `prefix` first): `Seed` + `ab`, ...
pub fn letters_name(prefix: &str, mut n: usize) -> String {
    let mut suffix = Vec::new();
    loop {
        suffix.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    suffix.reverse();
    format!("{prefix}{}", String::from_utf8_lossy(&suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_letters_and_distinct() {
        assert_eq!(letters_name("Seed", 0), "Seeda");
        assert_eq!(letters_name("Seed", 25), "Seedz");
        assert_eq!(letters_name("Seed", 26), "Seedba");
        let names: std::collections::BTreeSet<String> =
            (0..1000).map(|n| letters_name("Add", n)).collect();
        assert_eq!(names.len(), 1000);
        assert!(
            names
                .iter()
                .all(|n| n.len() <= 12 && n.bytes().all(|b| b.is_ascii_alphabetic()))
        );
    }

    #[test]
    fn accounts_are_digits_and_families_apart() {
        assert_eq!(Account::numbered(1, 42).id(), "100000000042");
        assert_eq!(Account::numbered(2, 42).id(), "200000000042");
    }
}

//! The gRPC server: the contact, audit, resource directory and privacy services, health and
//! reflection (v1 and v1alpha, so that grpcurl 1.8 works without proto files), behind the
//! access layer, served over HTTP/2 by hyper on a listener the caller binds (plaintext or TLS,
//! with its connection limits). hyper is driven here rather than through tonic's server so
//! that the HTTP/2 limits a hostile client meets are all ours to set: keep-alive pings, header
//! size, calls per connection and the bytes buffered per call.

use std::sync::Arc;
use std::time::Duration;

use contactd_app::{
    AuditLog, AuditService, ContactService, ContactStore, DatabaseHealth, DirectoryStore, Recording,
};
use contactd_net::{Connection, Listener};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::util::MapRequest;
use tower::{Layer, Service};

use crate::access::{Access, AccessLayer};
use crate::audit::AuditGrpc;
use crate::directory::DirectoryGrpc;
use crate::metrics::MetricsLayer;
use crate::privacy::PrivacyGrpc;
use crate::proto::message_contact_audit_service_server::MessageContactAuditServiceServer;
use crate::proto::message_contact_privacy_service_server::MessageContactPrivacyServiceServer;
use crate::proto::message_contact_service_server::MessageContactServiceServer;
use crate::proto::resource_directory_service_server::ResourceDirectoryServiceServer;
use crate::service::ContactGrpc;
use crate::streams::{OpenStreams, StreamSettings};

const SERVICE_NAMES: [&str; 4] = [
    "resourcemanager.messagecontact.v1.MessageContactService",
    "resourcemanager.messagecontact.v1.MessageContactAuditService",
    "resourcemanager.messagecontact.v1.ResourceDirectoryService",
    "resourcemanager.messagecontact.v1.MessageContactPrivacyService",
];

/// Transport settings of the server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The largest request accepted, in bytes; a larger one is refused from its length prefix,
    /// before anything is allocated for it.
    pub max_request_bytes: usize,
    /// How often an idle HTTP/2 connection is pinged, and how long the client has to answer:
    /// a half-open connection is closed after both.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// The largest header block a request may have, in bytes.
    pub max_header_bytes: u32,
    /// Calls in flight at once on one connection.
    pub max_concurrent_streams: u32,
    /// Response bytes HTTP/2 holds per call for a client that does not take them.
    pub send_buffer_bytes: usize,
    /// The live streams of events.
    pub streams: StreamSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_concurrent_streams: 256,
            send_buffer_bytes: 8 * 1024,
            streams: StreamSettings::default(),
        }
    }
}

/// A configured server, ready to run on a listener.
#[derive(Debug)]
pub struct Server<S, L> {
    app: Arc<ContactService<S>>,
    audit: Arc<AuditService<L>>,
    access: Arc<Access>,
    settings: ServerSettings,
    database: DatabaseHealth,
    recording: Recording,
}

impl<S: ContactStore + DirectoryStore + AuditLog, L: AuditLog> Server<S, L> {
    pub fn new(
        app: Arc<ContactService<S>>,
        audit: Arc<AuditService<L>>,
        access: Access,
        settings: ServerSettings,
    ) -> Self {
        Self {
            app,
            audit,
            access: Arc::new(access),
            settings,
            database: DatabaseHealth::always_up(),
            recording: Recording::none(),
        }
    }

    /// Counts every call by its RPC and its code, with its latency, in `recording`.
    pub fn with_recording(mut self, recording: Recording) -> Self {
        self.recording = recording;
        self
    }

    /// Health reports `SERVING` only while `database` is up (by default it always is).
    pub fn with_database_health(mut self, database: DatabaseHealth) -> Self {
        self.database = database;
        self
    }

    /// Serves until `shutdown` completes, then stops accepting calls and lets the calls in
    /// flight finish.
    pub async fn run(
        self,
        listener: Listener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let max_request = self.settings.max_request_bytes;
        let contacts = MessageContactServiceServer::new(ContactGrpc::new(Arc::clone(&self.app)))
            .max_decoding_message_size(max_request);
        let privacy =
            MessageContactPrivacyServiceServer::new(PrivacyGrpc::new(Arc::clone(&self.app)))
                .max_decoding_message_size(max_request);
        let directory = ResourceDirectoryServiceServer::new(DirectoryGrpc::new(self.app))
            .max_decoding_message_size(max_request);
        // Streams never end by themselves: they are told to when shutdown begins, so that the
        // graceful shutdown, which waits for every call, completes.
        let (stop_streams, stopping) = watch::channel(false);
        let streams = OpenStreams::new(self.settings.streams.clone());
        let audit =
            MessageContactAuditServiceServer::new(AuditGrpc::new(self.audit, stopping, streams))
                .max_decoding_message_size(max_request);
        let routes = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(contacts)
            .add_service(audit)
            .add_service(directory)
            .add_service(privacy)
            .prepare();
        let service = MetricsLayer::new(self.recording)
            .layer(AccessLayer::new(self.access, max_request, self.database.clone()).layer(routes));

        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(self.settings.keepalive_interval)
            .keep_alive_timeout(self.settings.keepalive_timeout)
            .max_header_list_size(self.settings.max_header_bytes)
            .max_concurrent_streams(self.settings.max_concurrent_streams)
            .max_send_buf_size(self.settings.send_buffer_bytes);

        set_status(&health_reporter, serving_status(self.database.is_up())).await;
        let health = tokio::spawn(follow_database(health_reporter.clone(), self.database));
        let (close, closing) = watch::channel(false);
        let mut connections = JoinSet::new();
        let incoming = listener.incoming();
        tokio::pin!(incoming);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = incoming.next() => match accepted {
                    Some(Ok(connection)) => {
                        connections.spawn(serve_connection(
                            http2.clone(),
                            service.clone(),
                            connection,
                            closing.clone(),
                        ));
                    }
                    Some(Err(error)) => tracing::debug!(%error, "connection not accepted"),
                    None => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // From the moment shutdown begins, balancers are told to send calls elsewhere.
        health.abort();
        set_status(&health_reporter, ServingStatus::NotServing).await;
        let _ = stop_streams.send(true);
        let _ = close.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// Serves one connection's calls until the client closes it, or, once `closing` turns true,
/// until the calls in flight have finished.
async fn serve_connection<S>(
    http2: http2::Builder<TokioExecutor>,
    service: S,
    connection: Connection,
    mut closing: watch::Receiver<bool>,
) where
    S: Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let info = connection.connect_info();
    // The layer learns whom the connection is with (address, client certificate) from each
    // request's extensions.
    let service = MapRequest::new(service, move |mut request: http::Request<_>| {
        request.extensions_mut().insert(info.clone());
        request
    });
    let served =
        http2.serve_connection(TokioIo::new(connection), TowerToHyperService::new(service));
    tokio::pin!(served);
    let closed = async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = closed => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended");
    }
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    // Both reflection versions are described by both servers, so that `list` shows them all.
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

/// Reports `SERVING` while the database is up and `NOT_SERVING` while it is not, for the
/// server as a whole and for each of its services.
async fn follow_database(reporter: HealthReporter, database: DatabaseHealth) {
    let mut answer = database.watch();
    loop {
        let up = *answer.borrow_and_update();
        set_status(&reporter, serving_status(up)).await;
        if answer.changed().await.is_err() {
            return;
        }
    }
}

fn serving_status(up: bool) -> ServingStatus {
    if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn set_status(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

//! The gRPC server: the contact, audit and resource directory services, health and reflection
//! (v1 and v1alpha, so that grpcurl 1.8 works without proto files), on a listener the caller
//! binds.

use std::sync::Arc;
use std::time::Duration;

use contactd_app::{AuditLog, AuditService, ContactService, ContactStore, DirectoryStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::audit::AuditGrpc;
use crate::directory::DirectoryGrpc;
use crate::proto::message_contact_audit_service_server::MessageContactAuditServiceServer;
use crate::proto::message_contact_service_server::MessageContactServiceServer;
use crate::proto::resource_directory_service_server::ResourceDirectoryServiceServer;
use crate::service::ContactGrpc;

const SERVICE_NAMES: [&str; 3] = [
    "resourcemanager.messagecontact.v1.MessageContactService",
    "resourcemanager.messagecontact.v1.MessageContactAuditService",
    "resourcemanager.messagecontact.v1.ResourceDirectoryService",
];

/// Transport settings of the server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The longest a call may run; a client's shorter `grpc-timeout` wins.
    pub call_timeout: Duration,
    /// The largest request accepted, in bytes.
    pub max_request_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            max_request_bytes: 1024 * 1024,
        }
    }
}

/// A configured server, ready to run on a listener.
#[derive(Debug)]
pub struct Server<S, L> {
    app: Arc<ContactService<S>>,
    audit: Arc<AuditService<L>>,
    settings: ServerSettings,
}

impl<S: ContactStore + DirectoryStore, L: AuditLog> Server<S, L> {
    pub fn new(
        app: Arc<ContactService<S>>,
        audit: Arc<AuditService<L>>,
        settings: ServerSettings,
    ) -> Self {
        Self {
            app,
            audit,
            settings,
        }
    }

    /// Serves until `shutdown` completes, then stops accepting calls and lets the calls in
    /// flight finish.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let contacts = MessageContactServiceServer::new(ContactGrpc::new(Arc::clone(&self.app)))
            .max_decoding_message_size(self.settings.max_request_bytes);
        let directory = ResourceDirectoryServiceServer::new(DirectoryGrpc::new(self.app))
            .max_decoding_message_size(self.settings.max_request_bytes);
        // Streams never end by themselves: they are told to when shutdown begins, so that the
        // graceful shutdown, which waits for every call, completes.
        let (stop_streams, stopping) = watch::channel(false);
        let audit = MessageContactAuditServiceServer::new(AuditGrpc::new(self.audit, stopping))
            .max_decoding_message_size(self.settings.max_request_bytes);
        let shutdown = async move {
            shutdown.await;
            let _ = stop_streams.send(true);
        };

        set_serving(&health_reporter).await;
        tonic::transport::Server::builder()
            .timeout(self.settings.call_timeout)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(contacts)
            .add_service(audit)
            .add_service(directory)
            // The builder's `tcp_nodelay` applies only to listeners it binds itself; without
            // NODELAY on accepted sockets, small replies wait ~40 ms for delayed ACKs.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await?;
        Ok(())
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

async fn set_serving(reporter: &HealthReporter) {
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    for name in SERVICE_NAMES {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
}

//! tonic and axum serving through the listener, with the connection's info in each request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use contactd_net::{ConnectionInfo, Listener};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::*;

/// Connects tonic's channel over our own TLS client, so that tonic needs no TLS feature.
#[derive(Clone)]
struct TlsOverTcp {
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
}

impl tonic::codegen::Service<Uri> for TlsOverTcp {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(this.addr).await?;
            let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
            let tls = TlsConnector::from(this.config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

#[tokio::test]
async fn tonic_serves_health_over_mtls_with_the_peer_in_each_request() {
    let client_ca = Ca::new("client CA");
    let server_ca = Ca::new("server CA");
    let files = ServerFiles::new(&server_ca.server(1), Some(&client_ca));
    let mut settings = settings(Some(files.files.clone()));
    settings.alpn = vec![b"h2".to_vec()];
    let listener = Listener::new(bind().await, settings).unwrap();
    let addr = listener.local_addr().unwrap();

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let seen = Arc::new(Mutex::new(Vec::<ConnectionInfo>::new()));
    let record = {
        let seen = Arc::clone(&seen);
        move |request: tonic::Request<()>| {
            let info = request
                .extensions()
                .get::<ConnectionInfo>()
                .cloned()
                .ok_or_else(|| tonic::Status::internal("no ConnectionInfo"))?;
            seen.lock().unwrap().push(info);
            Ok(request)
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(record))
            .add_service(health)
            .serve_with_incoming_shutdown(listener.incoming(), async {
                let _ = stopped.await;
            }),
    );

    let client_cert = client_ca.client(vec![uri("spiffe://corp/billing")], None);
    let mut config = client_config(server_ca.roots(), Some(&client_cert));
    config.alpn_protocols = vec![b"h2".to_vec()];
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(TlsOverTcp {
            addr,
            config: Arc::new(config),
        })
        .await
        .unwrap();
    let mut health_client = HealthClient::new(channel);
    for _ in 0..2 {
        let reply = health_client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    }

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for info in seen {
        assert_eq!(info.peer.unwrap().name, "spiffe://corp/billing");
        assert!(info.remote_addr.ip().is_loopback());
    }
    let _ = stop.send(());
    drop(health_client);
    tokio::time::timeout(PATIENCE, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn axum_serves_through_it_with_the_connection_info() {
    let listener = Listener::new(bind().await, settings(None)).unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(
            |axum::extract::ConnectInfo(info): axum::extract::ConnectInfo<ConnectionInfo>| async move {
                let _call = info.begin_call();
                format!("from {}", info.remote_addr)
            },
        ),
    );
    let serving = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<ConnectionInfo>(),
        )
        .await
    });

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, client.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let expected = format!("from {}", client.local_addr().unwrap());
    assert!(response.ends_with(&expected), "{response}");
    serving.abort();
}

/// The outside probe's connection: the HTTP/2 preface and an empty SETTINGS frame, then
/// nothing. tonic must drop it once the idle timeout passes.
#[tokio::test]
async fn tonic_drops_a_connection_that_only_sent_the_preface_and_settings() {
    let idle = std::time::Duration::from_millis(300);
    let mut settings = settings(None);
    settings.idle_timeout = idle;
    let listener = Listener::new(bind().await, settings).unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(listener.incoming(), std::future::pending()),
    );

    let started = tokio::time::Instant::now();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert!(closed_by_server(&mut client).await);
    assert!(started.elapsed() + std::time::Duration::from_millis(20) >= idle);
    serving.abort();
}

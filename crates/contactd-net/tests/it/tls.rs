//! TLS: the handshake, the files read at start and reloaded, client certificates.

use std::time::Duration;

use contactd_net::{Listener, NetError, TlsFiles};
use rustls::ClientConfig;

use crate::support::*;

#[tokio::test]
async fn a_tls_client_is_echoed_through_the_connection() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.server(1), None);
    let mut server = EchoServer::start(settings(Some(files.files.clone()))).await;

    let mut client = tls_connect(server.addr, client_config(ca.roots(), None))
        .await
        .unwrap();
    assert_eq!(echo(&mut client, b"hello").await.unwrap(), b"hello");
    let info = server.next_accepted().await;
    assert_eq!(info.peer, None);
    assert_eq!(info.remote_addr, client.get_ref().0.local_addr().unwrap());
}

#[tokio::test]
async fn tls_1_2_clients_are_served_too() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.server(1), None);
    let server = EchoServer::start(settings(Some(files.files.clone()))).await;
    let config = ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(ca.roots())
    .with_no_client_auth();

    let mut client = tls_connect(server.addr, config).await.unwrap();
    assert_eq!(echo(&mut client, b"hello").await.unwrap(), b"hello");
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn the_offered_alpn_protocol_is_chosen() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.server(1), None);
    let mut settings = settings(Some(files.files.clone()));
    settings.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let server = EchoServer::start(settings).await;
    let mut config = client_config(ca.roots(), None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let client = tls_connect(server.addr, config).await.unwrap();
    assert_eq!(client.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

fn start_error(files: TlsFiles) -> NetError {
    Listener::new(
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|tcp| {
                tcp.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(tcp)
            })
            .unwrap(),
        settings(Some(files)),
    )
    .unwrap_err()
}

#[tokio::test]
async fn unusable_files_refuse_the_start_naming_the_file() {
    let ca = Ca::new("server CA");
    let server = ca.server(1);
    let files = ServerFiles::new(&server, Some(&ca));

    let mut missing = files.files.clone();
    missing.key = missing.key.with_file_name("absent.key");
    let error = start_error(missing);
    assert!(matches!(error, NetError::Read { ref path, .. } if path.ends_with("absent.key")));
    assert!(error.to_string().contains("absent.key"), "{error}");

    write(&files.files.cert, "not a certificate");
    let error = start_error(files.files.clone());
    assert!(matches!(error, NetError::Invalid { ref path, .. } if *path == files.files.cert));

    write(&files.files.cert, &server.cert_pem);
    write(&files.files.key, &ca.server(2).key_pem);
    let error = start_error(files.files.clone());
    assert!(
        matches!(error, NetError::Invalid { ref path, .. } if *path == files.files.key),
        "{error}"
    );

    write(&files.files.key, &server.key_pem);
    let client_ca = files.files.client_ca.clone().unwrap();
    write(
        &client_ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let error = start_error(files.files.clone());
    assert!(
        matches!(error, NetError::Invalid { ref path, .. } if *path == client_ca),
        "{error}"
    );
}

#[tokio::test]
async fn rewritten_files_reach_new_connections_and_a_corrupt_rewrite_is_ignored() {
    let ca = Ca::new("server CA");
    let first = ca.server(1);
    let files = ServerFiles::new(&first, None);
    let server = EchoServer::start(settings(Some(files.files.clone()))).await;
    let presented = |client: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        client.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let before = tls_connect(server.addr, client_config(ca.roots(), None))
        .await
        .unwrap();
    assert_eq!(presented(&before), first.der);

    let second = ca.server(2);
    files.rewrite(&second);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let client = tls_connect(server.addr, client_config(ca.roots(), None))
            .await
            .unwrap();
        if presented(&client) == second.der {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection made before the reload is not disturbed.
    let mut before = before;
    assert_eq!(echo(&mut before, b"still").await.unwrap(), b"still");

    write(&files.files.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n");
    // Several reload intervals: the broken file has been seen, and ignored.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = tls_connect(server.addr, client_config(ca.roots(), None))
        .await
        .unwrap();
    assert_eq!(presented(&client), second.der);
}

/// mTLS: a listener requiring certificates of `client_ca`, with a server cert of its own CA.
async fn mtls_server(client_ca: &Ca) -> (Ca, ServerFiles, EchoServer) {
    let server_ca = Ca::new("server CA");
    let files = ServerFiles::new(&server_ca.server(1), Some(client_ca));
    let server = EchoServer::start(settings(Some(files.files.clone()))).await;
    (server_ca, files, server)
}

/// Whether the server refused the client: the handshake failed, or (TLS 1.3, where the client
/// finishes before the server has checked its certificate) the first read fails.
async fn refused(server: &EchoServer, config: ClientConfig) -> bool {
    match tls_connect(server.addr, config).await {
        Err(_) => true,
        Ok(mut client) => echo(&mut client, b"let me in").await.is_err(),
    }
}

#[tokio::test]
async fn with_a_client_ca_a_client_without_a_certificate_is_refused() {
    let client_ca = Ca::new("client CA");
    let (server_ca, _files, mut server) = mtls_server(&client_ca).await;

    assert!(refused(&server, client_config(server_ca.roots(), None)).await);
    // It never reached the server.
    assert!(server.accepted.try_recv().is_err());
}

#[tokio::test]
async fn with_a_client_ca_a_certificate_of_another_ca_is_refused() {
    let client_ca = Ca::new("client CA");
    let (server_ca, _files, mut server) = mtls_server(&client_ca).await;
    let stranger = Ca::new("another CA").client(vec![uri("spiffe://corp/billing")], None);

    assert!(refused(&server, client_config(server_ca.roots(), Some(&stranger))).await);
    assert!(server.accepted.try_recv().is_err());
}

/// The peer name the server sees for a client certificate with these names, or `None` when it
/// refuses the client.
async fn peer_name(sans: Vec<rcgen::SanType>, common_name: Option<&str>) -> Option<String> {
    let client_ca = Ca::new("client CA");
    let (server_ca, _files, mut server) = mtls_server(&client_ca).await;
    let client = client_ca.client(sans, common_name);
    let config = client_config(server_ca.roots(), Some(&client));
    let mut stream = match tls_connect(server.addr, config).await {
        Ok(stream) => stream,
        Err(_) => return None,
    };
    echo(&mut stream, b"hello").await.ok()?;
    Some(server.next_accepted().await.peer?.name)
}

#[tokio::test]
async fn a_uri_san_is_the_peer_name() {
    let name = peer_name(
        vec![dns("billing.corp"), uri("spiffe://corp/billing")],
        Some("billing"),
    )
    .await;
    assert_eq!(name.as_deref(), Some("spiffe://corp/billing"));
}

#[tokio::test]
async fn without_a_uri_san_the_dns_san_is_the_peer_name() {
    let name = peer_name(vec![dns("billing.corp")], Some("billing")).await;
    assert_eq!(name.as_deref(), Some("billing.corp"));
}

#[tokio::test]
async fn without_sans_the_common_name_is_the_peer_name() {
    let name = peer_name(vec![], Some("billing")).await;
    assert_eq!(name.as_deref(), Some("billing"));
}

#[tokio::test]
async fn a_trusted_certificate_naming_nobody_is_refused() {
    assert_eq!(peer_name(vec![], None).await, None);
}

#[tokio::test]
async fn a_rewritten_client_ca_admits_its_clients_from_then_on() {
    let old_ca = Ca::new("old client CA");
    let new_ca = Ca::new("new client CA");
    let (server_ca, files, server) = mtls_server(&old_ca).await;
    let newcomer = new_ca.client(vec![uri("spiffe://corp/newcomer")], None);
    let config = || client_config(server_ca.roots(), Some(&newcomer));
    assert!(refused(&server, config()).await);

    write(files.files.client_ca.as_ref().unwrap(), &new_ca.pem());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while refused(&server, config()).await {
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

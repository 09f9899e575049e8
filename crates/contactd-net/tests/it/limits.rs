//! The limits on connections, in total and per client address.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::*;

/// Connects until the server echoes (it has room again), or `PATIENCE` runs out.
async fn accepted_again(server: &EchoServer) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        if echo(&mut client, b"room?").await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn refuses_past(mut settings: contactd_net::ListenerSettings, limit: usize) {
    settings.idle_timeout = PATIENCE * 2;
    let mut server = EchoServer::start(settings).await;
    let mut open = Vec::new();
    for _ in 0..limit {
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(echo(&mut client, b"hi").await.unwrap(), b"hi");
        server.next_accepted().await;
        open.push(client);
    }

    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(closed_by_server(&mut extra).await);
    assert!(started.elapsed() < PATIENCE);
    assert!(server.accepted.try_recv().is_err());

    drop(open.pop());
    assert!(accepted_again(&server).await);
}

#[tokio::test]
async fn past_the_limit_per_address_a_connection_is_closed_at_once() {
    let mut settings = settings(None);
    settings.max_connections_per_ip = 2;
    refuses_past(settings, 2).await;
}

#[tokio::test]
async fn past_the_total_limit_a_connection_is_closed_at_once() {
    let mut settings = settings(None);
    settings.max_connections = 3;
    refuses_past(settings, 3).await;
}

#[tokio::test]
async fn tls_handshakes_in_progress_count() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.server(1), None);
    let mut settings = settings(Some(files.files.clone()));
    settings.max_connections = 1;
    let server = EchoServer::start(settings).await;
    // Holds the only place without ever sending a ClientHello.
    // Accepted first: the kernel hands connections out in order.
    let _silent = TcpStream::connect(server.addr).await.unwrap();

    assert!(
        tls_connect(server.addr, client_config(ca.roots(), None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dropping_the_listener_closes_the_port() {
    let server = EchoServer::start(settings(None)).await;
    let addr = server.addr;
    drop(server);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! The idle timeout and the handshake timeout.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::*;

const IDLE: Duration = Duration::from_millis(300);
/// Timers may fire a little early relative to the client's clock, never much.
const SLACK: Duration = Duration::from_millis(20);

fn idle_settings() -> contactd_net::ListenerSettings {
    let mut settings = settings(None);
    settings.idle_timeout = IDLE;
    settings
}

#[tokio::test]
async fn a_connection_that_makes_no_call_is_closed_after_the_idle_timeout() {
    let server = EchoServer::start(idle_settings()).await;
    let started = Instant::now();
    let mut client = TcpStream::connect(server.addr).await.unwrap();

    assert!(closed_by_server(&mut client).await);
    assert!(started.elapsed() + SLACK >= IDLE, "{:?}", started.elapsed());
}

#[tokio::test]
async fn bytes_are_not_activity() {
    let server = EchoServer::start(idle_settings()).await;
    let started = Instant::now();
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // Like HTTP/2 pings: traffic, but no call.
    while started.elapsed() < IDLE / 2 {
        if echo(&mut client, b"ping").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(closed_by_server(&mut client).await);
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn a_call_in_flight_keeps_the_connection_open_until_it_ends_and_the_timeout_passes() {
    let mut server = EchoServer::start(idle_settings()).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let call = server.next_accepted().await.begin_call();

    tokio::time::sleep(IDLE * 3).await;
    assert_eq!(echo(&mut client, b"alive").await.unwrap(), b"alive");

    drop(call);
    let ended = Instant::now();
    assert!(closed_by_server(&mut client).await);
    assert!(ended.elapsed() + SLACK >= IDLE, "{:?}", ended.elapsed());
}

#[tokio::test]
async fn a_tls_client_that_never_says_hello_is_dropped_after_the_handshake_timeout() {
    let ca = Ca::new("server CA");
    let files = ServerFiles::new(&ca.server(1), None);
    let mut settings = settings(Some(files.files.clone()));
    settings.handshake_timeout = Duration::from_millis(300);
    let server = EchoServer::start(settings).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();

    // Meanwhile others are served: the silent one holds up no accept.
    let mut client = tls_connect(server.addr, client_config(ca.roots(), None))
        .await
        .unwrap();
    assert_eq!(echo(&mut client, b"hello").await.unwrap(), b"hello");

    assert!(closed_by_server(&mut silent).await);
    assert!(
        started.elapsed() + SLACK >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

//! Health and life cycle: gRPC health and `/readyz` follow the database while `/livez`
//! follows the process; while the database is out of reach calls fail at once with
//! `ServiceUnavailable`, and everything recovers when it is back, with nothing acknowledged
//! lost; a shutdown ends live streams with `UNAVAILABLE` and where to resume.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use contactd::backend::Store;
use contactd::settings::{Cli, Command};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::*;

/// A TCP proxy in front of the database: cut, it refuses connections and drops those open, as
/// a database host gone from the network does; restored, it forwards again on the same port.
struct Link {
    port: u16,
    database: SocketAddr,
    forwarding: Option<JoinHandle<()>>,
}

impl Link {
    async fn to(database: SocketAddr) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut link = Self {
            port,
            database,
            forwarding: None,
        };
        link.restore().await;
        link
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the link's port");
        let database = self.database;
        self.forwarding = Some(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(database).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    fn cut(&mut self) {
        if let Some(forwarding) = self.forwarding.take() {
            forwarding.abort();
        }
    }
}

async fn status(health: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: "resourcemanager.messagecontact.v1.MessageContactService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

async fn until_health(health: &mut HealthClient<tonic::transport::Channel>, wanted: ServingStatus) {
    for _ in 0..200 {
        if status(health).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health never turned {wanted:?}");
}

async fn a_database_out_of_reach_turns_health_off_and_calls_fail_fast_until_it_is_back(db: TestDb) {
    let url = url::Url::parse(&db.url()).expect("the database's URL");
    let database = SocketAddr::new(
        url.host_str()
            .and_then(|h| h.parse().ok())
            .unwrap_or([127, 0, 0, 1].into()),
        url.port().unwrap_or(5432),
    );
    let mut link = Link::to(database).await;
    let mut proxied = url.clone();
    proxied.set_port(Some(link.port)).expect("a port");
    let Command::Migrate(settings) =
        Cli::parse_from(["contactd", "migrate", "--database-url", proxied.as_str()]).command
    else {
        unreachable!("`migrate` parses as the migrate command")
    };
    let store = Store::open(&settings, false).await.expect("the store");
    let mut server = TestServer::start_on(store, |_| {}).await;
    let mut health = HealthClient::new(server.channel.clone());
    assert_eq!(status(&mut health).await, ServingStatus::Serving);
    assert_eq!(http(server.http_addr, "GET", "/readyz").await.status, 200);
    let mut acknowledged = Vec::new();
    for name in ["Before", "Beside"] {
        acknowledged.push(add(&mut server.client, ACCOUNT, name).await.contact_id);
    }

    link.cut();
    until_health(&mut health, ServingStatus::NotServing).await;
    let ready = http(server.http_addr, "GET", "/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("database"), "{}", ready.body);
    assert_eq!(http(server.http_addr, "GET", "/livez").await.status, 200);
    // Well inside a client's deadline: nothing waits for the database.
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        get(&mut server.client, ACCOUNT, &acknowledged[0]),
    )
    .await
    .expect("answered at once")
    .expect_err("no database, no contact");
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(error_code(&refused), "ServiceUnavailable");
    assert_eq!(
        refused.message(),
        "The request has failed due to a temporary failure of the server."
    );
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        server
            .client
            .add_message_contact(as_account(ACCOUNT, add_request("During"))),
    )
    .await
    .expect("answered at once")
    .expect_err("no database, no write");
    assert_eq!(refused.code(), Code::Unavailable);

    link.restore().await;
    until_health(&mut health, ServingStatus::Serving).await;
    assert_eq!(http(server.http_addr, "GET", "/readyz").await.status, 200);
    acknowledged.push(add(&mut server.client, ACCOUNT, "After").await.contact_id);
    for contact_id in &acknowledged {
        get(&mut server.client, ACCOUNT, contact_id)
            .await
            .expect("every acknowledged write is there");
    }
    server.stop().await;
}

async fn a_shutdown_ends_live_streams_unavailable_with_where_to_resume(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    add(&mut server.client, ACCOUNT, "Streamed").await;
    let mut audit = audit_client(&server).await;
    let mut stream = open_stream(&mut audit, ACCOUNT, 0)
        .await
        .expect("the stream opens");
    let first = stream
        .message()
        .await
        .expect("an event")
        .expect("the stream is open");
    let stopped = tokio::spawn(server.stop());
    let ending = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended OK, as if it were finished"),
            Err(status) => break status,
        }
    };
    stopped.await.expect("the server stopped");
    assert_eq!(ending.code(), Code::Unavailable);
    assert_eq!(error_code(&ending), "ServiceUnavailable");
    let resume = resume_from(&ending);
    assert!(
        resume > first.global_position,
        "{resume} after {}",
        first.global_position
    );
}

postgres_only!(a_database_out_of_reach_turns_health_off_and_calls_fail_fast_until_it_is_back);
both_backends!(a_shutdown_ends_live_streams_unavailable_with_where_to_resume);

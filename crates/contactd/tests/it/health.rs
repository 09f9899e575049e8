//! Health and life cycle: gRPC health and `/readyz` follow the database while `/livez`
//! follows the process; while the database is out of reach calls fail at once with
//! `ServiceUnavailable`, and everything recovers when it is back, with nothing acknowledged
//! lost (the database cut off the network, and a cluster of the test's own crashed under load);
//! a shutdown ends live streams with `UNAVAILABLE` and where to resume.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use contactd::backend::Store;
use contactd::settings::{Cli, Command};
use contactd_testkit::PostgresCluster;
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
    let store = store_at(proxied.as_str(), false).await;
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

/// The store at `url`, opened as `serve` opens it (with `migrate`, creating the database).
async fn store_at(url: &str, migrate: bool) -> Store {
    let Command::Migrate(settings) =
        Cli::parse_from(["contactd", "migrate", "--database-url", url]).command
    else {
        unreachable!("`migrate` parses as the migrate command")
    };
    let mut settings = settings;
    settings.master_key_file = Some(test_master_key_file().to_owned());
    Store::open(&settings, migrate).await.expect("the store")
}

/// The name that carries a writer's `n`th update: names are letters only, so each decimal digit
/// is written as a letter (`17` is `Nbh`).
fn numbered_name(n: u64) -> String {
    let digits = n.to_string();
    let letters = digits.bytes().map(|d| char::from(b'a' + (d - b'0')));
    std::iter::once('N').chain(letters).collect()
}

fn number_of(name: &str) -> u64 {
    let digits: String = name
        .chars()
        .skip(1)
        .map(|c| char::from(b'0' + (c as u8 - b'a')))
        .collect();
    digits.parse().expect("a numbered name")
}

/// One contact, renamed over and over by a writer of its own: the last update acknowledged and
/// the last one tried (which may have committed without an answer).
struct Writer {
    account: String,
    contact_id: String,
    acknowledged: AtomicU64,
    tried: AtomicU64,
}

/// Renames the writer's contact with ever higher numbers until `stop`; what failed, for the
/// test to judge.
async fn keep_writing(
    mut client: Client,
    writer: Arc<Writer>,
    stop: Arc<AtomicBool>,
) -> Vec<tonic::Status> {
    let mut failures = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        writer.tried.store(n, Ordering::Relaxed);
        let mut request = update_request(&writer.contact_id);
        request.name = Some(numbered_name(n));
        match client
            .update_message_contact(as_account(&writer.account, request))
            .await
        {
            Ok(_) => writer.acknowledged.store(n, Ordering::Relaxed),
            Err(status) => {
                failures.push(status);
                // The database is out: don't spin; a client backs off too.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    failures
}

async fn until_every_writer_passes(writers: &[Arc<Writer>], counts: &[u64], what: &str) {
    until(what, Duration::from_secs(60), async || {
        writers
            .iter()
            .zip(counts)
            .all(|(w, &count)| w.acknowledged.load(Ordering::Relaxed) >= count)
            .then_some(())
    })
    .await;
}

/// PostgreSQL crashes (`pg_ctl -m immediate`) while six clients write, and starts again: health
/// turns NOT_SERVING, every failed call is the contract's `ServiceUnavailable` (no SQL, nothing
/// else), calls fail at once while it is down, and after the restart every acknowledged update
/// is there. The cluster is the test's own: the shared server is never stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crashed_under_load_turns_health_off_and_loses_nothing_acknowledged() {
    let mut cluster = PostgresCluster::start().await;
    let store = store_at(&cluster.url(), true).await;
    let mut server = TestServer::start_on(store, |_| {}).await;
    let mut health = HealthClient::new(server.channel.clone());
    assert_eq!(status(&mut health).await, ServingStatus::Serving);

    let mut writers = Vec::new();
    for i in 0..6 {
        let account = format!("55555555555555{i:02}");
        let contact = add(&mut server.client, &account, "Writer").await;
        writers.push(Arc::new(Writer {
            account,
            contact_id: contact.contact_id,
            acknowledged: AtomicU64::new(0),
            tried: AtomicU64::new(0),
        }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = JoinSet::new();
    for writer in &writers {
        load.spawn(keep_writing(
            server.client.clone(),
            writer.clone(),
            stop.clone(),
        ));
    }
    until_every_writer_passes(&writers, &[5; 6], "every writer is under way").await;

    cluster.crash().await;
    until_health(&mut health, ServingStatus::NotServing).await;
    let ready = http(server.http_addr, "GET", "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let started = tokio::time::Instant::now();
    let refused = get(
        &mut server.client,
        &writers[0].account,
        &writers[0].contact_id,
    )
    .await
    .expect_err("no database, no contact");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a call waited {:?} for a database known to be down",
        started.elapsed()
    );
    assert_eq!(error_code(&refused), "ServiceUnavailable");
    let during: Vec<u64> = writers
        .iter()
        .map(|w| w.acknowledged.load(Ordering::Relaxed))
        .collect();

    cluster.start_again().await;
    until_health(&mut health, ServingStatus::Serving).await;
    let after: Vec<u64> = during.iter().map(|n| n + 5).collect();
    until_every_writer_passes(&writers, &after, "every writer goes on after the restart").await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    while let Some(failed) = load.join_next().await {
        failures.extend(failed.expect("a writer"));
    }

    assert!(!failures.is_empty(), "the crash was never seen by a writer");
    for failure in &failures {
        assert_eq!(failure.code(), Code::Unavailable, "{failure:?}");
        assert_eq!(error_code(failure), "ServiceUnavailable", "{failure:?}");
        assert_eq!(
            failure.message(),
            "The request has failed due to a temporary failure of the server.",
        );
    }
    for writer in &writers {
        let contact = get(&mut server.client, &writer.account, &writer.contact_id)
            .await
            .expect("the contact");
        let stored = number_of(&contact.name);
        let (acknowledged, tried) = (
            writer.acknowledged.load(Ordering::Relaxed),
            writer.tried.load(Ordering::Relaxed),
        );
        assert!(
            (acknowledged..=tried).contains(&stored),
            "{}: update {stored} stored, {acknowledged} acknowledged, {tried} tried",
            writer.account
        );
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

//! What hostile or careless input gets, end to end: bytes that are not the RPC's message,
//! callers past their rate budget, requests past the size limit, live streams past their limits
//! or never read, and connections that idle or come in too many from one address. Memory is
//! read from `/proc` of a server process of its own.

use std::time::Duration;

use bytes::Bytes;
use contactd_access::RateLimits;
use contactd_grpc::proto::message_contact_audit_service_client::MessageContactAuditServiceClient;
use contactd_grpc::proto::message_contact_service_client::MessageContactServiceClient;
use contactd_grpc::proto::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Endpoint;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::raw;
use crate::support::*;

const GET_PATH: &str = "/resourcemanager.messagecontact.v1.MessageContactService/GetMessageContact";

both_backends!(
    bytes_that_do_not_decode_answer_invalid_argument_with_a_request_id_after_identity,
    a_caller_past_its_budget_is_throttled_with_when_to_retry_and_the_budget_refills,
    live_streams_are_limited_per_account_and_in_all,
    a_client_that_stops_reading_is_ended_where_it_can_resume_and_starves_no_one,
    idle_connections_are_closed_and_one_address_may_hold_only_so_many,
);

// Memory is measured on a process of its own; what a store keeps is not what is measured,
// so one store is enough. A statement stopped at the client's deadline is PostgreSQL's
// `statement_timeout`: the embedded store has none (its call's future is dropped instead).
postgres_only!(
    an_oversized_request_is_refused_while_the_servers_memory_stays_flat,
    four_hundred_streams_that_never_read_leave_the_servers_memory_near_idle,
    a_clients_deadline_stops_the_servers_statements_in_the_database,
);

/// Statements of other sessions waiting for a lock.
async fn waiting_statements(locker: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND datname = current_database() \
           AND state = 'active' AND wait_event_type = 'Lock'",
    )
    .fetch_one(locker)
    .await
    .expect("pg_stat_activity")
}

async fn a_clients_deadline_stops_the_servers_statements_in_the_database(db: TestDb) {
    use sqlx::Connection;

    let mut server = TestServer::start(&db).await;
    let contact = add(&mut server.client, ACCOUNT, "Alice").await;
    let mut locker = sqlx::PgConnection::connect(&db.url())
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .expect("lock");
    for what in ["read", "write"] {
        let started = std::time::Instant::now();
        let refused = if what == "read" {
            let mut request = as_account(
                ACCOUNT,
                GetMessageContactRequest {
                    contact_id: contact.contact_id.clone(),
                },
            );
            request.set_timeout(Duration::from_millis(500));
            server.client.get_message_contact(request).await.map(|_| ())
        } else {
            let mut update = update_request(&contact.contact_id);
            update.title = Some("CEO".to_owned());
            let mut request = as_account(ACCOUNT, update);
            request.set_timeout(Duration::from_millis(500));
            server
                .client
                .update_message_contact(request)
                .await
                .map(|_| ())
        }
        .expect_err("blocked past the deadline");
        assert!(
            matches!(
                refused.code(),
                Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable
            ),
            "{what}: {refused:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        // The database stopped the statement while the lock is still held: nothing of the
        // server waits behind it.
        until(
            "the blocked statement is cancelled",
            Duration::from_secs(5),
            async || (waiting_statements(&mut locker).await == 0).then_some(()),
        )
        .await;
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut locker)
        .await
        .expect("unlock");
    // The cancelled write left nothing: the contact is as it was, and serves again.
    let unchanged = get(&mut server.client, ACCOUNT, &contact.contact_id)
        .await
        .expect("served");
    assert_eq!(unchanged.title, contact.title);
    server.stop().await;
}

fn request_id_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("x-acs-request-id")
        .and_then(|value| value.to_str().ok())
        .expect("a request id")
        .to_owned()
}

/// Sends one gRPC request whose body is exactly `body` (a frame the test builds by hand) over
/// a fresh HTTP/2 connection; the answer's grpc-status and request id, wherever the server put
/// them (headers of a trailers-only answer, or trailers).
async fn send_frame(addr: std::net::SocketAddr, body: Vec<u8>) -> (String, Option<String>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}{GET_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-acs-account-id", ACCOUNT)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = sender.send_request(request).await.expect("a response");
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.expect("the body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let find = |name: &str| {
        headers
            .get(name)
            .or_else(|| trailers.get(name))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    (
        find("grpc-status").expect("a grpc-status"),
        find("x-acs-request-id"),
    )
}

async fn bytes_that_do_not_decode_answer_invalid_argument_with_a_request_id_after_identity(
    db: TestDb,
) {
    let server = TestServer::start(&db).await;
    // Field 1 (contact_id) as a string of bytes that are not UTF-8.
    let not_utf8 = vec![0x0a, 0x02, 0xff, 0xfe];
    let random: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(97) ^ 0x5a) as u8)
        .collect();
    for (what, bytes) in [("invalid UTF-8", not_utf8), ("random bytes", random)] {
        let refused = raw::unary(
            &server.channel,
            GET_PATH,
            as_account(ACCOUNT, bytes.clone()),
        )
        .await
        .expect_err(what);
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
        assert!(
            refused.message().contains("could not be decoded"),
            "{what}: {}",
            refused.message()
        );
        assert!(
            !refused.message().contains("prost"),
            "{what}: no library text"
        );
        assert_request_id(&request_id_of(&refused));
        // Identity comes first.
        let anonymous = raw::unary(&server.channel, GET_PATH, Request::new(bytes))
            .await
            .expect_err(what);
        assert_eq!(anonymous.code(), Code::Unauthenticated, "{what}");
    }
    // A frame shorter than it declares: 100 bytes announced, 4 sent, then the end.
    let mut short = vec![0, 0, 0, 0, 100];
    short.extend_from_slice(&[0x0a, 0x02, b'c', b'-']);
    let (status, request_id) = send_frame(server.addr, short).await;
    assert_eq!(status, "3", "INVALID_ARGUMENT");
    assert_request_id(&request_id.expect("a request id"));
    // And the server still serves.
    let mut client = server.client.clone();
    add(&mut client, ACCOUNT, "Alice").await;
    server.stop().await;
}

async fn a_caller_past_its_budget_is_throttled_with_when_to_retry_and_the_budget_refills(
    db: TestDb,
) {
    let mut server = TestServer::start_with(&db, |settings| {
        settings.security.account_rate_limits = RateLimits::parse("read=1:2").expect("limits");
        settings.security.principal_rate_limits = RateLimits::parse("off").expect("limits");
    })
    .await;
    let list = |account: &str| as_account(account, ListMessageContactsRequest::default());
    for _ in 0..2 {
        server
            .client
            .list_message_contacts(list(ACCOUNT))
            .await
            .expect("within the burst");
    }
    let throttled = server
        .client
        .list_message_contacts(list(ACCOUNT))
        .await
        .expect_err("past the budget");
    assert_error(
        &throttled,
        Code::ResourceExhausted,
        "Throttling.User",
        "Request was denied due to user flow control.",
        None,
    );
    let retry_after: u64 = throttled
        .metadata()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a retry-after in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let retry = throttled
        .get_details_retry_info()
        .expect("RetryInfo")
        .retry_delay
        .expect("a delay");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1),
        "{retry:?}"
    );
    // Another account, and another class, have budgets of their own.
    server
        .client
        .list_message_contacts(list(OTHER_ACCOUNT))
        .await
        .expect("another account");
    add(&mut server.client, ACCOUNT, "Alice").await;
    // The budget refills.
    tokio::time::sleep(retry + Duration::from_millis(100)).await;
    server
        .client
        .list_message_contacts(list(ACCOUNT))
        .await
        .expect("refilled");
    server.stop().await;
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn an_oversized_request_is_refused_while_the_servers_memory_stays_flat(db: TestDb) {
    let process = Process::start(&db);
    let mut client = process.client().await;
    add(&mut client, ACCOUNT, "Alice").await;
    let before = rss_kib(process.pid());
    let channel = Endpoint::from_shared(process.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let huge = GetMessageContactRequest {
        contact_id: "c".repeat(4 * 1024 * 1024),
    }
    .encode_to_vec();
    for _ in 0..20 {
        let refused = raw::unary(&channel, GET_PATH, as_account(ACCOUNT, huge.clone()))
            .await
            .expect_err("too large");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert_request_id(&request_id_of(&refused));
    }
    let after = rss_kib(process.pid());
    eprintln!("20 requests of 4 MiB: the server from {before} KiB to {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "20 requests of 4 MiB took the server from {before} KiB to {after} KiB"
    );
    add(&mut client, ACCOUNT, "Bob").await;
}

/// `n` events in `account`'s log: one contact updated over and over.
async fn seed_events(client: &mut Client, account: &str, n: usize) {
    let contact = add(client, account, "Seed").await;
    for i in 0..n.saturating_sub(1) {
        let mut request = update_request(&contact.contact_id);
        request.title = Some(if i % 2 == 0 { "CEO" } else { "Other" }.to_owned());
        client
            .update_message_contact(as_account(account, request))
            .await
            .expect("update");
    }
}

async fn open_stream(
    channel: &tonic::transport::Channel,
    account: &str,
    from_position: i64,
) -> Result<tonic::Streaming<Event>, tonic::Status> {
    MessageContactAuditServiceClient::new(channel.clone())
        .stream_events(as_account(account, StreamEventsRequest { from_position }))
        .await
        .map(tonic::Response::into_inner)
}

async fn live_streams_are_limited_per_account_and_in_all(db: TestDb) {
    let server = TestServer::start_with(&db, |settings| {
        settings.security.max_streams_per_account = 2;
        settings.security.max_streams = 3;
    })
    .await;
    let first = open_stream(&server.channel, ACCOUNT, 0)
        .await
        .expect("first");
    let _second = open_stream(&server.channel, ACCOUNT, 0)
        .await
        .expect("second");
    let refused = open_stream(&server.channel, ACCOUNT, 0)
        .await
        .expect_err("a third for one account");
    assert_eq!(error_code(&refused), "Throttling.User");
    assert!(refused.metadata().get("retry-after").is_some());
    let _theirs = open_stream(&server.channel, OTHER_ACCOUNT, 0)
        .await
        .expect("another account's");
    let full = open_stream(&server.channel, "5555555555555555", 0)
        .await
        .expect_err("past the total");
    assert_eq!(error_code(&full), "Throttling.User");
    drop(first);
    until(
        "a closed stream gives its place back",
        Duration::from_secs(10),
        async || open_stream(&server.channel, ACCOUNT, 0).await.ok(),
    )
    .await;
    server.stop().await;
}

async fn a_client_that_stops_reading_is_ended_where_it_can_resume_and_starves_no_one(db: TestDb) {
    let mut server = TestServer::start_with(&db, |settings| {
        settings.security.stream_stall_secs = 1;
    })
    .await;
    seed_events(&mut server.client, ACCOUNT, 120).await;
    // A connection whose windows hold little, so that not reading stops the server soon.
    let slow = Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .expect("connect");
    let mut stalled = open_stream(&slow, ACCOUNT, 0).await.expect("stream");
    // While it does not read, everyone else is served at once.
    for _ in 0..20 {
        let started = std::time::Instant::now();
        server
            .client
            .list_message_contacts(as_account(
                OTHER_ACCOUNT,
                ListMessageContactsRequest::default(),
            ))
            .await
            .expect("another caller");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut positions = Vec::new();
    let ending = loop {
        match stalled.message().await {
            Ok(Some(event)) => positions.push(event.global_position),
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ending.code(), Code::ResourceExhausted, "{ending:?}");
    let resume = resume_from(&ending);
    assert!(
        positions.len() < 120,
        "it was ended before the end of the log"
    );
    if let Some(last) = positions.last() {
        assert!(resume > *last, "resume after the last event delivered");
    }
    // Resuming gives the rest, with nothing lost in between.
    let mut resumed = open_stream(&server.channel, ACCOUNT, resume)
        .await
        .expect("resume");
    while positions.len() < 120 {
        let event = tokio::time::timeout(Duration::from_secs(10), resumed.message())
            .await
            .expect("in time")
            .expect("an event")
            .expect("an event");
        positions.push(event.global_position);
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, positions, "in log order, none twice");
    server.stop().await;
}

async fn four_hundred_streams_that_never_read_leave_the_servers_memory_near_idle(db: TestDb) {
    let process = Process::start_with(
        &db,
        &[
            "--max-streams",
            "1000",
            "--max-streams-per-account",
            "1000",
            "--stream-stall-secs",
            "1",
            // Opening 400 streams at once is past the default rate of opening them.
            "--account-rate-limits",
            "off",
            "--principal-rate-limits",
            "off",
        ],
        "warn",
    );
    let mut client = process.client().await;
    seed_events(&mut client, ACCOUNT, 100).await;
    let connect = async || {
        Endpoint::from_shared(process.endpoint())
            .expect("endpoint")
            .initial_stream_window_size(Some(4096))
            .connect()
            .await
            .expect("connect")
    };
    // Warm up: one stream read to the end of the log, so that idle includes what any stream
    // needs once.
    let warm = connect().await;
    let mut first = open_stream(&warm, ACCOUNT, 0).await.expect("stream");
    for _ in 0..100 {
        first.message().await.expect("event").expect("event");
    }
    drop(first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(process.pid());
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(connect().await);
    }
    let mut streams = Vec::new();
    for i in 0..400 {
        streams.push(
            open_stream(&channels[i % 4], ACCOUNT, 0)
                .await
                .expect("a stream"),
        );
    }
    // Past the stall timeout, the readers have let go of what they held.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = rss_kib(process.pid());
    eprintln!("idle {idle} KiB, with 400 streams that never read {held} KiB");
    assert!(
        held < idle + 12 * 1024,
        "400 streams that never read took the server from {idle} KiB to {held} KiB"
    );
    // And a caller is still served.
    add(&mut client, OTHER_ACCOUNT, "Alice").await;
    drop(streams);
}

/// Sends the HTTP/2 preface and an empty SETTINGS frame, then nothing.
async fn preface_only(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    tcp
}

/// Reads until the server closes the connection; how long that took.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 1024];
    let read_all = async {
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

async fn idle_connections_are_closed_and_one_address_may_hold_only_so_many(db: TestDb) {
    let server = TestServer::start_with(&db, |settings| {
        settings.security.idle_timeout_secs = 1;
        settings.security.max_connections_per_ip = 3;
    })
    .await;
    // The test's own client holds one of the three.
    let mut idle = preface_only(server.addr).await;
    let took = closed_within(&mut idle, Duration::from_secs(15))
        .await
        .expect("an idle connection is closed");
    assert!(
        took >= Duration::from_millis(500),
        "not before its time: {took:?}"
    );
    // By now the test server's own client connection, idle since the start, is closed too.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A connection with a call in flight (a live stream) stays open past the idle timeout.
    let busy = plaintext(server.addr).connect().await.expect("connect");
    let mut stream = open_stream(&busy, ACCOUNT, 0).await.expect("a stream");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut client = MessageContactServiceClient::new(busy.clone());
    add(&mut client, ACCOUNT, "Alice").await;
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("in time")
        .expect("the stream still works")
        .expect("an event");
    assert!(event.global_position > 0);

    // The busy connection holds one place (the test server's own client, idle since the
    // start, was closed long ago); two more fit, the next is closed at once.
    let _second = preface_only(server.addr).await;
    let _third = preface_only(server.addr).await;
    let mut fourth = preface_only(server.addr).await;
    let took = closed_within(&mut fourth, Duration::from_secs(5))
        .await
        .expect("past the limit, closed at once");
    assert!(took < Duration::from_millis(900), "{took:?}");
    drop(stream);
    server.stop().await;
}

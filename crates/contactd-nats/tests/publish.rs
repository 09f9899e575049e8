//! The publisher against a real `nats-server -js` of its own: de-duplication, the stream's
//! creation, and a broker that is down at start or goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use contactd_app::{IntegrationMessage, IntegrationPublisher, PublishError};
use contactd_nats::{NatsPublisher, NatsSettings};
use contactd_testkit::NatsServer;

const SUBJECT: &str = "contactd.acme.member.m-42.contacts";
const ALL: &str = "contactd.>";
const WAIT: Duration = Duration::from_secs(5);

fn message(id: &str) -> IntegrationMessage {
    IntegrationMessage {
        message_id: id.to_owned(),
        subject: SUBJECT.to_owned(),
        payload: serde_json::to_vec(&serde_json::json!({
            "schema": 1,
            "contact": "secret-payload",
            "id": id,
        }))
        .unwrap(),
    }
}

/// The defaults but for a short timeout, so that failures come fast.
fn settings(server: &NatsServer) -> NatsSettings {
    NatsSettings {
        timeout: Duration::from_secs(1),
        ..NatsSettings::new(server.url())
    }
}

/// Publishes until it succeeds (the client reconnects with a back-off of up to 4 s), for at
/// most 20 s, and returns the errors on the way.
async fn publish_until_it_succeeds(
    publisher: &NatsPublisher,
    message: &IntegrationMessage,
) -> Vec<PublishError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut errors = Vec::new();
    loop {
        match publisher.publish(message).await {
            Ok(()) => return errors,
            Err(error) if Instant::now() < deadline => errors.push(error),
            Err(error) => panic!("still failing after 20 s: {error} (before: {errors:?})"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stream_config(server: &NatsServer) -> stream::Config {
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream("CONTACTD_CONTACTS")
        .await
        .unwrap();
    stream.info().await.unwrap().config.clone()
}

#[tokio::test]
async fn a_message_published_twice_is_stored_once() {
    let server = NatsServer::start().await;
    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();

    publisher.publish(&message("m-1")).await.unwrap();
    publisher.publish(&message("m-1")).await.unwrap();
    publisher.publish(&message("m-2")).await.unwrap();

    let stored = server.messages(ALL, 2, WAIT).await;
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert_eq!(stored[0].subject, SUBJECT);
    assert_eq!(stored[0].message_id.as_deref(), Some("m-1"));
    assert_eq!(stored[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(stored[0].payload["id"], "m-1");
    assert_eq!(stored[0].payload["schema"], 1);
    assert_eq!(stored[1].message_id.as_deref(), Some("m-2"));
}

#[tokio::test]
async fn the_stream_is_created_if_missing_when_the_broker_first_answers() {
    let server = NatsServer::start().await;
    assert_eq!(server.all_messages(ALL).await, []);

    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();

    // Created on connecting, before any publish.
    let deadline = Instant::now() + WAIT;
    let config = loop {
        let client = async_nats::connect(server.url()).await.unwrap();
        match jetstream::new(client).get_stream("CONTACTD_CONTACTS").await {
            Ok(mut stream) => break stream.info().await.unwrap().config.clone(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no stream after {WAIT:?}: {error}"),
        }
    };
    assert_eq!(config.subjects, ["contactd.*.member.*.contacts"]);
    assert_eq!(config.storage, stream::StorageType::File);
    assert_eq!(config.duplicate_window, Duration::from_secs(120));

    publisher.publish(&message("m-1")).await.unwrap();
    assert_eq!(server.messages(ALL, 1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_stream_that_exists_is_used_as_it_is() {
    let server = NatsServer::start().await;
    let client = async_nats::connect(server.url()).await.unwrap();
    jetstream::new(client)
        .create_stream(stream::Config {
            name: "CONTACTD_CONTACTS".to_owned(),
            subjects: vec!["contactd.>".to_owned()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();

    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();
    publisher.publish(&message("m-1")).await.unwrap();

    assert_eq!(server.messages(ALL, 1, WAIT).await.len(), 1);
    let config = stream_config(&server).await;
    assert_eq!(config.subjects, ["contactd.>"]);
    assert_eq!(config.storage, stream::StorageType::Memory);
}

#[tokio::test]
async fn a_subject_no_stream_takes_fails_with_a_reason() {
    let server = NatsServer::start().await;
    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();
    let elsewhere = IntegrationMessage {
        subject: "elsewhere.contacts".to_owned(),
        ..message("m-1")
    };

    let error = publisher.publish(&elsewhere).await.unwrap_err();

    assert!(error.0.contains("no responders"), "{error}");
    assert!(!error.0.contains("secret-payload"), "{error}");
}

#[tokio::test]
async fn publishing_while_the_server_is_stopped_fails_within_the_timeout() {
    let mut server = NatsServer::start().await;
    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();
    publisher.publish(&message("m-1")).await.unwrap();

    server.stop().await;
    let started = Instant::now();
    let error = publisher.publish(&message("m-2")).await.unwrap_err();
    let took = started.elapsed();

    assert!(took < Duration::from_millis(1500), "took {took:?}: {error}");
    assert!(error.0.contains("NATS"), "{error}");
    assert!(!error.0.contains("secret-payload"), "{error}");

    // Back: the retry under the same id is stored once, even if the failed attempt, queued in
    // the client while disconnected, reached the broker on reconnecting.
    server.restart().await;
    publish_until_it_succeeds(&publisher, &message("m-2")).await;
    let stored = server.messages(ALL, 2, WAIT).await;
    let ids: Vec<_> = stored.iter().map(|m| m.message_id.as_deref()).collect();
    assert_eq!(ids, [Some("m-1"), Some("m-2")], "{stored:#?}");
}

#[tokio::test]
async fn a_publisher_made_while_the_server_is_down_publishes_once_it_is_up() {
    let mut server = NatsServer::start().await;
    server.stop().await;

    let started = Instant::now();
    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    let error = publisher.publish(&message("m-1")).await.unwrap_err();
    assert!(error.0.contains("not connected"), "{error}");
    let debug = format!("{publisher:?}");
    assert!(debug.contains("stream_ready: false"), "{debug}");

    server.restart().await;
    publish_until_it_succeeds(&publisher, &message("m-1")).await;

    let stored = server.messages(ALL, 1, WAIT).await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].message_id.as_deref(), Some("m-1"));
    assert_eq!(
        stream_config(&server).await.duplicate_window,
        Duration::from_secs(120)
    );
}

#[tokio::test]
async fn the_stream_and_its_messages_survive_a_restart() {
    let mut server = NatsServer::start().await;
    let publisher = NatsPublisher::connect(settings(&server)).await.unwrap();
    publisher.publish(&message("m-1")).await.unwrap();

    server.restart().await;

    assert_eq!(server.messages(ALL, 1, WAIT).await.len(), 1);
    // The id is still remembered: the same message again is a duplicate.
    publish_until_it_succeeds(&publisher, &message("m-1")).await;
    assert_eq!(server.messages(ALL, 1, WAIT).await.len(), 1);
}

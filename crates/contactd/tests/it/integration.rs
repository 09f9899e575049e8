//! Integration events against a real NATS server with JetStream (started by each test on a
//! free port): what each member account's notification center is told, and the asynchronous
//! delete that completes only once every removal is acknowledged.

use std::collections::BTreeMap;
use std::time::Duration;

use contactd_testkit::{NatsMessage, NatsServer};
use tonic::Code;

use crate::lifecycle_support::*;
use crate::support::*;

const EVERY_MEMBER: &str = "contactd.1234567890123456.member.*.contacts";

fn subject(member: &str) -> String {
    format!("contactd.{ACCOUNT}.member.{member}.contacts")
}

/// A server that publishes to `nats`, trying a publish for at most a second, twice for a
/// delete's removal.
async fn publishing_server(db: &TestDb, nats: &NatsServer) -> TestServer {
    let url = nats.url();
    TestServer::start_with(db, move |s| {
        s.lifecycle.nats_url = Some(url);
        s.lifecycle.publish_timeout_secs = 1;
        s.lifecycle.publish_max_attempts = 2;
        s.lifecycle.publish_retry_base_ms = 20;
    })
    .await
}

/// The messages of one type, as (member, contact) pairs.
fn of_type(messages: &[NatsMessage], kind: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = messages
        .iter()
        .filter(|m| m.payload["type"] == kind)
        .map(|m| {
            (
                m.payload["member_account_id"].as_str().unwrap().to_owned(),
                m.payload["contact"]["contact_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

fn pairs(members: &[&str], contact_id: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = members
        .iter()
        .map(|m| ((*m).to_owned(), contact_id.to_owned()))
        .collect();
    pairs.sort();
    pairs
}

async fn each_member_is_told_what_applies_to_it_on_its_own_subject(db: TestDb) {
    let nats = NatsServer::start().await;
    let mut server = publishing_server(&db, &nats).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    verify_email(client, &db, &tom, "tom@example.com").await;
    associate(client, ACCOUNT, &tom, &[&root]).await.unwrap();
    let all = [MEMBER_DEEP, MEMBER_TOP, MEMBER_ROOT];
    let messages = nats
        .messages(EVERY_MEMBER, 3, Duration::from_secs(30))
        .await;
    assert_eq!(
        of_type(&messages, "MemberContactApplied"),
        pairs(&all, &tom)
    );
    for message in &messages {
        let member = message.payload["member_account_id"].as_str().unwrap();
        assert_eq!(message.subject, subject(member));
        assert_eq!(message.payload["schema_version"], 1);
        assert_eq!(message.payload["directory_account_id"], ACCOUNT);
        assert_eq!(
            message.message_id.as_deref(),
            message.payload["message_id"].as_str(),
            "the Nats-Msg-Id is the message's id"
        );
        let contact = &message.payload["contact"];
        assert_eq!(contact["name"], "Tom");
        assert_eq!(contact["email_address"], "tom@example.com");
        assert_eq!(
            contact["message_types"],
            serde_json::json!(["AccountExpenses"])
        );
    }

    // A change of a contact that applies: every member is told.
    let mut update = update_request(&tom);
    update.message_types = vec!["FaultMessage".into()];
    client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    let messages = nats
        .messages(EVERY_MEMBER, 6, Duration::from_secs(30))
        .await;
    assert_eq!(
        of_type(&messages, "MemberContactChanged"),
        pairs(&all, &tom)
    );

    // A member moving away from a folder's contact loses it; moving back brings it again.
    let ann = add(client, ACCOUNT, "Ann").await.contact_id;
    associate(client, ACCOUNT, &ann, &[&folder("A")])
        .await
        .unwrap();
    let messages = nats
        .messages(EVERY_MEMBER, 8, Duration::from_secs(30))
        .await;
    let applied: Vec<_> = of_type(&messages, "MemberContactApplied")
        .into_iter()
        .filter(|(_, c)| *c == ann)
        .collect();
    assert_eq!(applied, pairs(&[MEMBER_DEEP, MEMBER_TOP], &ann));
    move_member(&mut directory, ACCOUNT, MEMBER_TOP, "")
        .await
        .unwrap();
    let messages = nats
        .messages(EVERY_MEMBER, 9, Duration::from_secs(30))
        .await;
    assert_eq!(
        of_type(&messages, "MemberContactRemoved"),
        pairs(&[MEMBER_TOP], &ann),
        "Tom, bound to the root, still applies: only Ann goes"
    );

    // Unbinding: the members below are told it no longer applies.
    disassociate(client, ACCOUNT, &tom, &[&root]).await.unwrap();
    let messages = nats
        .messages(EVERY_MEMBER, 12, Duration::from_secs(30))
        .await;
    let removed: Vec<_> = of_type(&messages, "MemberContactRemoved")
        .into_iter()
        .filter(|(_, c)| *c == tom)
        .collect();
    assert_eq!(removed, pairs(&all, &tom));
    assert_eq!(messages.len(), 12, "nothing else, and nothing twice");
    server.stop().await;
}

async fn an_asynchronous_delete_removes_the_contact_from_every_member_once(db: TestDb) {
    let nats = NatsServer::start().await;
    let mut server = publishing_server(&db, &nats).await;
    let mut directory = directory_client(&server).await;
    two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    associate(client, ACCOUNT, &tom, &[&folder("A"), MEMBER_ROOT])
        .await
        .unwrap();
    let all = [MEMBER_DEEP, MEMBER_TOP, MEMBER_ROOT];
    nats.messages(EVERY_MEMBER, 3, Duration::from_secs(30))
        .await;

    assert_eq!(
        delete(client, ACCOUNT, &tom, Some(false)).await.unwrap(),
        "Deleting"
    );
    until(
        "the delete completes",
        Duration::from_secs(30),
        async || {
            get(client, ACCOUNT, &tom)
                .await
                .err()
                .map(|s| error_code(&s))
        },
    )
    .await;
    let messages = nats
        .messages(EVERY_MEMBER, 6, Duration::from_secs(30))
        .await;
    assert_eq!(
        of_type(&messages, "MemberContactRemoved"),
        pairs(&all, &tom)
    );
    assert_eq!(messages.len(), 6, "each removal once");
    let removal = messages
        .iter()
        .find(|m| m.payload["type"] == "MemberContactRemoved")
        .unwrap();
    assert_eq!(
        removal.payload["contact"]["message_types"],
        serde_json::json!(["AccountExpenses"])
    );
    server.stop().await;
}

async fn with_nats_down_the_delete_fails_for_its_members_and_a_later_delete_completes(db: TestDb) {
    let mut nats = NatsServer::start().await;
    let mut server = publishing_server(&db, &nats).await;
    let mut directory = directory_client(&server).await;
    two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    associate(client, ACCOUNT, &tom, &[&folder("A")])
        .await
        .unwrap();
    nats.messages(EVERY_MEMBER, 2, Duration::from_secs(30))
        .await;
    nats.stop().await;
    // Bound while NATS is down: its message waits, and must not hold the delete's removals back.
    associate(client, ACCOUNT, &tom, &[MEMBER_ROOT])
        .await
        .unwrap();
    until_applying(client, ACCOUNT, MEMBER_ROOT, &["Tom"]).await;

    assert_eq!(
        delete(client, ACCOUNT, &tom, Some(false)).await.unwrap(),
        "Deleting"
    );
    // While it runs: Deleting, and no change allowed; deleting again answers Deleting.
    assert_eq!(get(client, ACCOUNT, &tom).await.unwrap().status, "Deleting");
    let mut update = update_request(&tom);
    update.title = Some("CEO".into());
    let refused = client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap_err();
    assert_error(
        &refused,
        Code::FailedPrecondition,
        "ContactStatusMismatchAction",
        "The status of the contact does not allow the specified operation.",
        None,
    );
    let refused = associate(client, ACCOUNT, &tom, &[MEMBER_ROOT])
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "ContactStatusMismatchAction");
    assert_eq!(
        delete(client, ACCOUNT, &tom, Some(true)).await.unwrap(),
        "Deleting"
    );

    let reasons = until(
        "the delete fails",
        Duration::from_secs(60),
        async || match deletion_status(client, ACCOUNT, &tom).await.unwrap() {
            (status, reasons) if status == "Failed" => Some(reasons),
            (status, _) => {
                assert_eq!(status, "Deleting");
                None
            }
        },
    )
    .await;
    let types = vec!["AccountExpenses".to_owned()];
    assert_eq!(
        reasons,
        [
            (MEMBER_DEEP.to_owned(), types.clone()),
            (MEMBER_TOP.to_owned(), types.clone()),
            (MEMBER_ROOT.to_owned(), types)
        ]
    );
    assert_eq!(get(client, ACCOUNT, &tom).await.unwrap().status, "Deleting");

    // Once NATS is back, a later delete completes (the publisher may take a moment to
    // reconnect: a delete that failed again is retried), and every member gets its removal.
    nats.restart().await;
    until(
        "a later delete completes",
        Duration::from_secs(60),
        async || match deletion_status(client, ACCOUNT, &tom).await {
            Err(gone) => Some(error_code(&gone)),
            Ok((status, _)) => {
                if status == "Failed" {
                    assert_eq!(
                        delete(client, ACCOUNT, &tom, Some(false)).await.unwrap(),
                        "Deleting"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
        },
    )
    .await;
    let messages = nats
        .messages(EVERY_MEMBER, 4, Duration::from_secs(30))
        .await;
    let removed: BTreeMap<String, usize> = of_type(&messages, "MemberContactRemoved")
        .into_iter()
        .fold(BTreeMap::new(), |mut m, (member, _)| {
            *m.entry(member).or_default() += 1;
            m
        });
    let members: Vec<_> = removed.keys().map(String::as_str).collect();
    assert_eq!(
        members,
        [MEMBER_DEEP, MEMBER_TOP, MEMBER_ROOT],
        "{removed:?}"
    );
    assert_eq!(
        get(client, ACCOUNT, &tom).await.unwrap_err().code(),
        Code::NotFound
    );
    server.stop().await;
}

/// Forgetting a bound contact while NATS is down (ADR 13): the messages about it still waiting
/// (they name the person) go with the forgetting, and nothing about it is published after,
/// while the other contacts' messages flow again once NATS is back.
async fn a_forgotten_contacts_waiting_messages_are_never_published(db: TestDb) {
    const NAME: &str = "Quintessa";
    let mut nats = NatsServer::start().await;
    let mut server = publishing_server(&db, &nats).await;
    let mut directory = directory_client(&server).await;
    two_levels(&mut directory, ACCOUNT).await;
    let mut privacy = contactd_grpc::proto::message_contact_privacy_service_client::MessageContactPrivacyServiceClient::new(
        server.channel.clone(),
    );
    let client = &mut server.client;
    let person = add(client, ACCOUNT, NAME).await.contact_id;
    associate(client, ACCOUNT, &person, &[&folder("A")])
        .await
        .unwrap();
    let before = nats
        .messages(EVERY_MEMBER, 2, Duration::from_secs(30))
        .await;
    assert!(before.iter().all(|m| m.payload["contact"]["name"] == NAME));

    nats.stop().await;
    let mut update = update_request(&person);
    update.message_types = vec!["FaultMessage".into()];
    client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    let waiting = "SELECT count(*) FROM lifecycle_jobs WHERE kind = 'publish' AND contact_id = $1";
    until(
        "the change's messages wait",
        Duration::from_secs(30),
        async || (db.count(waiting, &[&person]).await == 2).then_some(()),
    )
    .await;
    privacy
        .forget_message_contact(as_account(
            ACCOUNT,
            contactd_grpc::proto::ForgetMessageContactRequest {
                contact_id: person.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        db.count(waiting, &[&person]).await,
        0,
        "dropped with the forgetting"
    );

    nats.restart().await;
    let other = add(client, ACCOUNT, "Ann").await.contact_id;
    associate(client, ACCOUNT, &other, &[&folder("A")])
        .await
        .unwrap();
    let after = nats
        .messages(EVERY_MEMBER, 4, Duration::from_secs(60))
        .await;
    assert_eq!(
        after.len(),
        4,
        "nothing about the forgotten contact came late: {:#?}",
        after.iter().map(|m| &m.payload).collect::<Vec<_>>()
    );
    assert_eq!(
        of_type(&after[2..], "MemberContactApplied"),
        pairs(&[MEMBER_DEEP, MEMBER_TOP], &other),
        "only the other contact's messages came after the forgetting"
    );
    for message in &after[2..] {
        let text = message.payload.to_string();
        assert!(!text.contains(NAME) && !text.contains(&person), "{text}");
    }
    server.stop().await;
}

both_backends!(
    a_forgotten_contacts_waiting_messages_are_never_published,
    each_member_is_told_what_applies_to_it_on_its_own_subject,
    an_asynchronous_delete_removes_the_contact_from_every_member_once,
    with_nats_down_the_delete_fails_for_its_members_and_a_later_delete_completes,
);

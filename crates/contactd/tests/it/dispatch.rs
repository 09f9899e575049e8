//! The messages that carry the codes, end to end: a real SMTP server (aiosmtpd) and a real
//! HTTP server standing in for the SMS gateway, on loopback. What arrives, retries and dead
//! letters, a peer that never answers, and two servers sharing the outbox (PostgreSQL).

use std::time::Duration;

use contactd_grpc::proto::StreamEventsRequest;
use contactd_testkit::{Gateway, SilentPeer, SmtpSink, closed_port};
use tokio_stream::StreamExt;

use crate::support::*;

const MAIL_FROM: &str = "contactd <noreply@contactd.test>";
const WAIT: Duration = Duration::from_secs(30);

async fn with_smtp(db: &TestDb, smtp: &SmtpSink) -> TestServer {
    let url = smtp.url();
    TestServer::start_with(db, |s| {
        s.verification.smtp_url = Some(url);
        s.verification.mail_from = MAIL_FROM.into();
    })
    .await
}

/// One outcome recorded in a message's delivery stream.
#[derive(Debug, sqlx::FromRow)]
struct Outcome {
    kind: String,
    attempt: i64,
    caller: String,
    reason: Option<String>,
}

/// The outcomes recorded in a message's delivery stream, in order.
async fn outcomes(db: &TestDb, message_id: uuid::Uuid) -> Vec<Outcome> {
    db.fetch_all(
        "SELECT event_type AS kind, CAST(payload->>'attempt' AS BIGINT) AS attempt, caller, \
                payload->>'reason' AS reason \
         FROM events WHERE stream_id = $1 ORDER BY stream_version",
        &[&format!("delivery-{message_id}")],
    )
    .await
}

/// Waits until the message's outcome stream ends with `last`.
async fn until_outcome(db: &TestDb, message_id: uuid::Uuid, last: &str) -> Vec<Outcome> {
    until(&format!("{message_id} is {last}"), WAIT, async || {
        let outcomes = outcomes(db, message_id).await;
        outcomes
            .last()
            .is_some_and(|outcome| outcome.kind == last)
            .then_some(outcomes)
    })
    .await
}

/// Adds Tom and asks for a code for his email address; his id and the message's.
async fn tom_sent_an_email(server: &mut TestServer, db: &TestDb) -> (String, uuid::Uuid) {
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let message_id = last_event_id(db, &id, "EmailVerificationRequested").await;
    (id, message_id)
}

async fn an_email_arrives_with_its_code_and_link_and_its_code_activates_the_contact(db: TestDb) {
    let smtp = SmtpSink::start();
    let mut server = with_smtp(&db, &smtp).await;
    let id = add_with_email(&mut server.client, ACCOUNT, "张三", "zhang@example.com").await;
    send_email(&mut server.client, ACCOUNT, &id, "zhang@example.com")
        .await
        .unwrap();

    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    let message_id = last_event_id(&db, &id, "EmailVerificationRequested").await;
    assert_eq!(mail.rcpt_tos, ["zhang@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your verification code")
    );
    assert!(
        mail.header("From")
            .unwrap()
            .contains("noreply@contactd.test")
    );
    assert!(mail.header("To").unwrap().contains("zhang@example.com"));
    assert!(mail.header("Date").is_some());
    assert_eq!(
        mail.message_id(),
        Some(format!("{message_id}@contactd.test")),
        "the Message-ID names the request, the same on every attempt"
    );
    let text = mail.text();
    assert!(
        text.contains("张三"),
        "the greeting names the contact: {text}"
    );
    assert!(text.contains("expires at"), "{text}");
    assert!(text.contains(" UTC"), "{text}");
    let link = mail.link();
    assert!(
        link.starts_with(&format!("http://{}/verify/", server.http_addr)),
        "{link}"
    );
    assert_eq!(
        mail.code(),
        issued_code(&db, &id, "EmailVerificationRequested").await
    );

    confirm(
        &mut server.client,
        ACCOUNT,
        &id,
        "zhang@example.com",
        &mail.code(),
    )
    .await
    .unwrap();
    let contact = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(contact.status, "Active");
    assert_eq!(contact.active_email_address, "zhang@example.com");

    let outcomes = until_outcome(&db, message_id, "VerificationMessageSent").await;
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].caller.starts_with("dispatcher"), "{outcomes:?}");
    assert_eq!(
        contact.version, 3,
        "the delivery's events are not the contact's"
    );
    server.stop().await;
}

async fn the_delivery_is_in_the_audit_log_caused_by_the_request(db: TestDb) {
    let smtp = SmtpSink::start();
    let mut server = with_smtp(&db, &smtp).await;
    let (id, message_id) = tom_sent_an_email(&mut server, &db).await;
    until_outcome(&db, message_id, "VerificationMessageSent").await;

    let mut audit = audit_client(&server).await;
    let mut stream = open_stream(&mut audit, ACCOUNT, 0).await.unwrap();
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, stream.next()).await.unwrap() {
        let event = event.unwrap();
        let done = event.event_type == "VerificationMessageSent";
        seen.push(event);
        if done {
            break;
        }
    }
    let requested = seen
        .iter()
        .find(|e| e.event_type == "EmailVerificationRequested")
        .unwrap();
    let sent = seen.last().unwrap();
    assert_eq!(sent.stream_id, format!("delivery-{message_id}"));
    assert_eq!(sent.stream_version, 1);
    assert_eq!(sent.causation_id, message_id.to_string());
    assert_eq!(sent.correlation_id, requested.correlation_id);
    let payload: serde_json::Value = serde_json::from_str(&sent.payload_json).unwrap();
    assert_eq!(payload["contact_id"], id.as_str());
    assert_eq!(payload["channel"], "email");
    assert_eq!(payload["attempt"], 1);
    server.stop().await;
}

async fn an_sms_goes_to_the_gateway_keyed_by_the_event_that_asked_for_it(db: TestDb) {
    let gateway = Gateway::answering(200).await;
    let url = gateway.url("/sms");
    let mut server =
        TestServer::start_with(&db, |s| s.verification.sms_webhook_url = Some(url)).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut server.client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();

    let request = gateway.wait_for(1, WAIT).await.remove(0);
    let message_id = last_event_id(&db, &id, "PhoneVerificationRequested").await;
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sms")
    );
    let body = request.json();
    let mut fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["contact_id", "idempotency_key", "message", "phone_number"]
    );
    assert_eq!(body["phone_number"], "86-13912345678");
    assert_eq!(body["contact_id"], id.as_str());
    assert_eq!(body["idempotency_key"], message_id.to_string());
    assert_eq!(
        request.headers["idempotency-key"].to_str().unwrap(),
        message_id.to_string()
    );
    let message = body["message"].as_str().unwrap();
    let code = contactd_testkit::verification_code(message)
        .unwrap_or_else(|| panic!("a code in {message:?}"))
        .to_owned();

    confirm(&mut server.client, ACCOUNT, &id, "86-13912345678", &code)
        .await
        .unwrap();
    let contact = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(contact.active_phone_number, "86-13912345678");
    server.stop().await;
}

async fn a_mail_server_that_refuses_three_attempts_gets_the_message_exactly_once(db: TestDb) {
    let smtp = SmtpSink::refusing_first(3);
    let mut server = with_smtp(&db, &smtp).await;
    let (id, message_id) = tom_sent_an_email(&mut server, &db).await;

    let outcomes = until_outcome(&db, message_id, "VerificationMessageSent").await;
    let kinds: Vec<(&str, i64)> = outcomes
        .iter()
        .map(|outcome| (outcome.kind.as_str(), outcome.attempt))
        .collect();
    assert_eq!(
        kinds,
        [
            ("VerificationMessageFailed", 1),
            ("VerificationMessageFailed", 2),
            ("VerificationMessageFailed", 3),
            ("VerificationMessageSent", 4),
        ]
    );
    let received = smtp.received();
    assert_eq!(received.len(), 1, "accepted once");
    assert_eq!(
        received[0].code(),
        issued_code(&db, &id, "EmailVerificationRequested").await
    );
    let sql = format!(
        "SELECT state FROM outbox_messages WHERE {} = $1",
        db.uuid_text("message_id")
    );
    let state: String = db.scalar(&sql, &[&message_id.to_string()]).await;
    assert_eq!(state, "sent");
    server.stop().await;
    assert_eq!(smtp.received().len(), 1, "and never again");
}

async fn a_refused_recipient_is_dead_lettered_at_once_and_holds_back_no_other_message(db: TestDb) {
    let smtp = SmtpSink::start();
    let mut server = with_smtp(&db, &smtp).await;
    let refused = add_with_email(&mut server.client, ACCOUNT, "Rex", "reject@example.com").await;
    let fine = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &refused, "reject@example.com")
        .await
        .unwrap();
    send_email(&mut server.client, ACCOUNT, &fine, "tom@example.com")
        .await
        .unwrap();

    let dead = last_event_id(&db, &refused, "EmailVerificationRequested").await;
    let outcomes = until_outcome(&db, dead, "VerificationMessageDeadLettered").await;
    assert_eq!(outcomes.len(), 1, "a permanent refusal is not retried");
    assert_eq!(outcomes[0].reason.as_deref(), Some("smtp reply 550"));
    let sql = format!(
        "SELECT recipient, contact_name FROM outbox_messages WHERE {} = $1",
        db.uuid_text("message_id")
    );
    let (recipient, name): (String, String) = db.fetch_one(&sql, &[&dead.to_string()]).await;
    assert_eq!(
        (recipient.as_str(), name.as_str()),
        ("", ""),
        "nothing personal is kept"
    );

    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_tos, ["tom@example.com"]);
    server.stop().await;
}

async fn a_message_that_keeps_failing_is_dead_lettered_after_its_attempts(db: TestDb) {
    let smtp = SmtpSink::refusing_first(100);
    let url = smtp.url();
    let mut server = TestServer::start_with(&db, |s| {
        s.verification.smtp_url = Some(url);
        s.verification.dispatch_max_attempts = 3;
    })
    .await;
    let (_, message_id) = tom_sent_an_email(&mut server, &db).await;
    let outcomes = until_outcome(&db, message_id, "VerificationMessageDeadLettered").await;
    let attempts: Vec<i64> = outcomes.iter().map(|outcome| outcome.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(smtp.received().is_empty());
    server.stop().await;
}

async fn a_message_whose_code_expires_before_another_attempt_is_dead_lettered(db: TestDb) {
    let nowhere = format!("smtp://{}", closed_port());
    let mut server = TestServer::start_with(&db, |s| {
        s.verification.smtp_url = Some(nowhere);
        s.verification.code_ttl_secs = 2;
        s.verification.dispatch_retry_base_ms = 1500;
    })
    .await;
    let (_, message_id) = tom_sent_an_email(&mut server, &db).await;
    let outcomes = until_outcome(&db, message_id, "VerificationMessageDeadLettered").await;
    let reason = outcomes.last().and_then(|o| o.reason.as_deref()).unwrap();
    assert!(reason.contains("expire"), "{outcomes:?}");
    server.stop().await;
}

async fn a_mail_server_that_never_answers_delays_neither_live_streams_nor_projections(db: TestDb) {
    let silent = SilentPeer::start().await;
    let url = format!("smtp://{}", silent.addr());
    let mut server = TestServer::start_with(&db, |s| {
        s.verification.smtp_url = Some(url);
        s.verification.send_timeout_secs = 3;
        s.verification.dispatch_lease_secs = 6;
    })
    .await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    // The dispatcher is inside the SMTP call: the message is leased, nothing recorded yet.
    until("the message is being sent", WAIT, async || {
        let leased: Option<i64> = db
            .optional_scalar(
                "SELECT CAST(attempts AS BIGINT) FROM outbox_messages \
                 WHERE lease_owner IS NOT NULL AND recorded = 0",
                &[],
            )
            .await;
        leased.filter(|attempts| *attempts == 1)
    })
    .await;
    assert!(
        db.no_transaction_is_open().await,
        "no transaction is open across the SMTP call"
    );

    let mut audit = audit_client(&server).await;
    let end = db
        .count("SELECT max(global_position) + 1 FROM events", &[])
        .await;
    let mut stream = audit
        .stream_events(as_account(
            ACCOUNT,
            StreamEventsRequest { from_position: end },
        ))
        .await
        .unwrap()
        .into_inner();
    let added = add(&mut server.client, ACCOUNT, "Ann").await.contact_id;
    let live = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("the live stream goes on while the mail server hangs")
        .unwrap()
        .unwrap();
    assert_eq!(
        (live.stream_id.as_str(), live.event_type.as_str()),
        (added.as_str(), "MessageContactAdded")
    );
    until(
        "account_activity counts the new contact",
        Duration::from_secs(2),
        async || {
            let added: Option<i64> = db
                .optional_scalar(
                    "SELECT contacts_added FROM account_activity WHERE account_id = $1",
                    &[ACCOUNT],
                )
                .await;
            (added == Some(2)).then_some(())
        },
    )
    .await;
    drop(stream);
    server.stop().await;
}

async fn two_servers_on_one_database_send_each_message_once(db: TestDb) {
    let smtp = SmtpSink::start();
    let mut first = with_smtp(&db, &smtp).await;
    let mut second = with_smtp(&db, &smtp).await;
    let mut expected = Vec::new();
    for n in 0..20_u8 {
        let name = format!("Tom{}", char::from(b'a' + n));
        let email = format!("{}@example.com", name.to_lowercase());
        let client = if n % 2 == 0 {
            &mut first.client
        } else {
            &mut second.client
        };
        let id = add(client, ACCOUNT, &name).await.contact_id;
        send_email(client, ACCOUNT, &id, &email).await.unwrap();
        expected.push(email);
    }
    let mails = smtp.wait_for(20, WAIT).await;
    until_every_message_is_sent(&db).await;
    first.stop().await;
    second.stop().await;

    let mails_after = smtp.received();
    assert_eq!(mails_after.len(), mails.len(), "nothing arrived twice");
    let mut recipients: Vec<String> = mails_after
        .iter()
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    recipients.sort();
    expected.sort();
    assert_eq!(recipients, expected, "each message exactly once");
    let mut ids: Vec<_> = mails_after.iter().map(|m| m.message_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

async fn with_nothing_configured_each_message_is_a_file_of_the_data_directory(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    send_phone(&mut server.client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    let messages = server.data_dir.path().join("messages");
    let email = last_event_id(&db, &id, "EmailVerificationRequested").await;
    let sms = last_event_id(&db, &id, "PhoneVerificationRequested").await;
    let read = |name: String| {
        let path = messages.join(name);
        async move {
            until("the message is in the sink", WAIT, async || {
                std::fs::read(&path).ok()
            })
            .await
        }
    };
    let mail = contactd_testkit::ReceivedMail {
        raw: read(format!("{email}.eml")).await,
        mail_from: String::new(),
        rcpt_tos: Vec::new(),
    };
    assert_eq!(
        mail.code(),
        issued_code(&db, &id, "EmailVerificationRequested").await
    );
    assert!(mail.header("To").unwrap().contains("tom@example.com"));
    let request: serde_json::Value =
        serde_json::from_slice(&read(format!("{sms}.sms.json")).await).unwrap();
    assert_eq!(request["idempotency_key"], sms.to_string());
    assert_eq!(request["phone_number"], "86-13912345678");
    let code = issued_code(&db, &id, "PhoneVerificationRequested").await;
    assert!(request["message"].as_str().unwrap().contains(&code));
    for message in [email, sms] {
        until_outcome(&db, message, "VerificationMessageSent").await;
    }
    server.stop().await;
}

both_backends!(
    an_email_arrives_with_its_code_and_link_and_its_code_activates_the_contact,
    the_delivery_is_in_the_audit_log_caused_by_the_request,
    an_sms_goes_to_the_gateway_keyed_by_the_event_that_asked_for_it,
    a_mail_server_that_refuses_three_attempts_gets_the_message_exactly_once,
    a_refused_recipient_is_dead_lettered_at_once_and_holds_back_no_other_message,
    a_message_that_keeps_failing_is_dead_lettered_after_its_attempts,
    a_message_whose_code_expires_before_another_attempt_is_dead_lettered,
    a_mail_server_that_never_answers_delays_neither_live_streams_nor_projections,
    with_nothing_configured_each_message_is_a_file_of_the_data_directory,
);

postgres_only!(
    // Two servers on one database: SQLite's store serves one process (processes.rs shows a
    // second one refused).
    two_servers_on_one_database_send_each_message_once,
);

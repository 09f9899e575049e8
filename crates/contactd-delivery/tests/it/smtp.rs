//! Email by SMTP to scripts/smtp-sink.py: what arrives, and how each refusal is classified.

use std::time::Duration;

use contactd_app::{Delivered, DeliveryError, Notifier};
use contactd_delivery::{DeliverySettings, Senders};
use mail_parser::{MessageParser, MimeHeaders};

use contactd_testkit::{SilentPeer, SmtpSink, closed_port};

use crate::support::{self, CODE, LINK, NAME, clean_reason, email_to};

fn smtp_senders(url: String, sink_dir: &std::path::Path) -> Senders {
    Senders::new(DeliverySettings {
        smtp_url: Some(url),
        ..support::settings(sink_dir.join("messages"))
    })
    .unwrap()
}

#[tokio::test]
async fn an_email_arrives_with_its_headers_and_a_utf8_body_greeting_by_name() {
    let server = SmtpSink::start();
    let files = tempfile::tempdir().unwrap();
    let senders = smtp_senders(server.url(), files.path());
    let notification = email_to("zhang.san@example.com");

    let delivered = senders.deliver(&notification).await.unwrap();

    assert_eq!(
        delivered,
        Delivered {
            via: "smtp",
            detail: None
        }
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_tos, ["zhang.san@example.com"]);
    let mail = MessageParser::default().parse(&received[0].raw).unwrap();
    assert_eq!(mail.subject(), Some("Your verification code"));
    let from = mail.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("noreply@contacts.example.com"));
    assert_eq!(
        mail.to().unwrap().first().unwrap().address(),
        Some("zhang.san@example.com")
    );
    let sent_at = mail.date().expect("a Date header").to_timestamp();
    assert!(
        (chrono::Utc::now().timestamp() - sent_at).abs() < 300,
        "{sent_at}"
    );
    assert_eq!(
        mail.message_id(),
        Some(format!("{}@contacts.example.com", notification.message_id).as_str())
    );
    let content_type = mail.content_type().unwrap();
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("text", Some("plain"))
    );
    assert_eq!(
        content_type.attribute("charset").map(str::to_lowercase),
        Some("utf-8".to_owned())
    );
    let body = mail.body_text(0).unwrap();
    assert!(body.contains(&format!("Hello {NAME},")), "{body}");
    assert!(body.contains(&CODE.to_string()), "{body}");
    assert!(body.contains("2026-12-01 22:15 UTC"), "{body}");
    assert!(body.contains(LINK), "{body}");
    assert!(
        body.contains("If you did not expect this message, ignore it"),
        "{body}"
    );
    assert!(
        !files.path().join("messages").exists(),
        "nothing went into the sink"
    );

    // As the end-to-end tests read it.
    let mail = &received[0];
    assert_eq!(mail.text(), body.replace("\r\n", "\n"));
    assert_eq!(mail.code(), CODE.to_string());
    assert_eq!(mail.link(), LINK);
    assert_eq!(
        mail.header("subject").as_deref(),
        Some("Your verification code")
    );
    assert_eq!(
        mail.message_id(),
        Some(format!("{}@contacts.example.com", notification.message_id))
    );
}

#[tokio::test]
async fn requiring_starttls_of_a_server_that_offers_none_sends_nothing() {
    let server = SmtpSink::start();
    let files = tempfile::tempdir().unwrap();
    let senders = smtp_senders(format!("{}?tls=required", server.url()), files.path());
    let notification = email_to("zhang.san@example.com");

    let error = senders.deliver(&notification).await.unwrap_err();

    assert!(matches!(error, DeliveryError::Transient(_)), "{error:?}");
    assert_eq!(clean_reason(&error, &notification), "smtp tls failed");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn implicit_tls_to_a_plaintext_server_sends_nothing() {
    let server = SmtpSink::start();
    let files = tempfile::tempdir().unwrap();
    let senders = smtp_senders(format!("smtps://{}", server.addr()), files.path());
    let notification = email_to("zhang.san@example.com");

    let error = senders.deliver(&notification).await.unwrap_err();

    assert!(matches!(error, DeliveryError::Transient(_)), "{error:?}");
    assert_eq!(clean_reason(&error, &notification), "smtp tls failed");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_data_refused_with_451_is_transient_and_the_retry_delivers_the_same_message() {
    let server = SmtpSink::refusing_first(1);
    let files = tempfile::tempdir().unwrap();
    let senders = smtp_senders(server.url(), files.path());
    let notification = email_to("zhang.san@example.com");

    let first = senders.deliver(&notification).await.unwrap_err();
    assert_eq!(first, DeliveryError::Transient("smtp reply 451".to_owned()));
    let reason = clean_reason(&first, &notification);
    assert!(!reason.contains("try again"), "the server's text: {reason}");
    assert!(server.received().is_empty());

    let second = senders.deliver(&notification).await.unwrap();
    assert_eq!(second.via, "smtp");
    let received = server.received();
    assert_eq!(received.len(), 1);
    let mail = MessageParser::default().parse(&received[0].raw).unwrap();
    assert_eq!(
        mail.message_id(),
        Some(format!("{}@contacts.example.com", notification.message_id).as_str()),
        "a retry carries the first attempt's Message-ID"
    );
}

#[tokio::test]
async fn a_recipient_refused_with_550_is_permanent() {
    let server = SmtpSink::start();
    let files = tempfile::tempdir().unwrap();
    let senders = smtp_senders(server.url(), files.path());
    let notification = email_to("reject@example.com");

    let error = senders.deliver(&notification).await.unwrap_err();

    assert_eq!(error, DeliveryError::Permanent("smtp reply 550".to_owned()));
    let reason = clean_reason(&error, &notification);
    assert!(
        !reason.contains("mailbox unavailable"),
        "the server's text: {reason}"
    );
    assert!(server.received().is_empty());

    // The refusal spoiled nothing: the pooled connection still delivers to others.
    let other = email_to("zhang.san@example.com");
    senders.deliver(&other).await.unwrap();
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn a_server_that_is_not_there_is_transient() {
    let files = tempfile::tempdir().unwrap();
    let senders = smtp_senders(format!("smtp://{}", closed_port()), files.path());
    let notification = email_to("zhang.san@example.com");

    let error = senders.deliver(&notification).await.unwrap_err();

    assert_eq!(
        error,
        DeliveryError::Transient("smtp connection failed".to_owned())
    );
    clean_reason(&error, &notification);
}

#[tokio::test]
async fn a_server_that_never_greets_times_out_as_transient() {
    let peer = SilentPeer::start().await;
    let files = tempfile::tempdir().unwrap();
    let senders = Senders::new(DeliverySettings {
        smtp_url: Some(format!("smtp://{}", peer.addr())),
        timeout: Duration::from_millis(300),
        ..support::settings(files.path().join("messages"))
    })
    .unwrap();
    let notification = email_to("zhang.san@example.com");

    let error = senders.deliver(&notification).await.unwrap_err();

    assert_eq!(error, DeliveryError::Transient("smtp timed out".to_owned()));
    clean_reason(&error, &notification);
}

//! The development sink: a channel with no server configured writes its messages as files.

use std::fs;
use std::path::Path;

use contactd_app::{Delivered, Notifier};
use contactd_delivery::{DeliverySettings, Senders};
use mail_parser::MessageParser;

use contactd_testkit::{Gateway, SmtpSink};

use crate::support::{self, CODE, LINK, NAME, email_to, sms_to};

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn an_email_goes_into_an_eml_file_that_a_retry_replaces() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().join("data").join("messages");
    let senders = Senders::new(support::settings(dir.clone())).unwrap();
    let notification = email_to("zhang.san@example.com");

    let delivered = senders.deliver(&notification).await.unwrap();

    let path = dir.join(format!("{}.eml", notification.message_id));
    assert_eq!(
        delivered,
        Delivered {
            via: "file",
            detail: Some(path.display().to_string())
        }
    );
    let raw = fs::read(&path).unwrap();
    let mail = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(mail.subject(), Some("Your verification code"));
    assert_eq!(
        mail.to().unwrap().first().unwrap().address(),
        Some("zhang.san@example.com")
    );
    assert_eq!(
        mail.message_id(),
        Some(format!("{}@contacts.example.com", notification.message_id).as_str())
    );
    let body = mail.body_text(0).unwrap();
    assert!(body.contains(&format!("Hello {NAME},")), "{body}");
    assert!(body.contains(&CODE.to_string()), "{body}");
    assert!(body.contains(LINK), "{body}");

    // The same message again (here with another link, to tell the files apart): one file,
    // the newer.
    let mut again = notification.clone();
    again.link = "https://contacts.example.com/verify/c2Vjb25k".to_owned();
    let redelivered = senders.deliver(&again).await.unwrap();
    assert_eq!(redelivered, delivered);
    assert_eq!(
        file_names(&dir),
        [format!("{}.eml", notification.message_id)]
    );
    let raw = fs::read(&path).unwrap();
    let body = MessageParser::default()
        .parse(&raw)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    assert!(body.contains(&again.link), "{body}");
    assert!(!body.contains(LINK), "{body}");
}

#[tokio::test]
async fn an_sms_goes_into_a_json_file_holding_what_the_gateway_would_get() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().join("messages");
    let senders = Senders::new(support::settings(dir.clone())).unwrap();
    let notification = sms_to("86-13912345678");

    let delivered = senders.deliver(&notification).await.unwrap();

    let path = dir.join(format!("{}.sms.json", notification.message_id));
    assert_eq!(delivered.via, "file");
    assert_eq!(delivered.detail, Some(path.display().to_string()));
    let written = fs::read(&path).unwrap();
    let gateway = Gateway::answering(200).await;
    let to_gateway = Senders::new(DeliverySettings {
        sms_webhook_url: Some(gateway.url("/sms")),
        ..support::settings(files.path().join("unused"))
    })
    .unwrap();
    to_gateway.deliver(&notification).await.unwrap();
    assert_eq!(written, gateway.requests()[0].body, "the same bytes");
    let json: serde_json::Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(json["phone_number"], "86-13912345678");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains(&CODE.to_string())
    );

    senders.deliver(&notification).await.unwrap();
    assert_eq!(
        file_names(&dir),
        [format!("{}.sms.json", notification.message_id)]
    );
}

#[tokio::test]
async fn each_channel_goes_its_own_way() {
    let server = SmtpSink::start();
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().join("messages");
    let senders = Senders::new(DeliverySettings {
        smtp_url: Some(server.url()),
        ..support::settings(dir.clone())
    })
    .unwrap();
    let email = email_to("zhang.san@example.com");
    let sms = sms_to("86-13912345678");

    assert_eq!(senders.deliver(&email).await.unwrap().via, "smtp");
    assert_eq!(senders.deliver(&sms).await.unwrap().via, "file");

    assert_eq!(server.received().len(), 1);
    assert_eq!(file_names(&dir), [format!("{}.sms.json", sms.message_id)]);
}

//! SMS to a real HTTP server standing in for the gateway: the request it gets, and how each
//! answer is classified.

use std::time::Duration;

use contactd_app::{Delivered, DeliveryError, Notifier};
use contactd_delivery::{DeliverySettings, Senders};

use contactd_testkit::{Gateway, SilentPeer, closed_port};

use crate::support::{self, CODE, clean_reason, sms_to};

const PHONE: &str = "86-13912345678";

fn webhook_senders(url: String, sink_dir: &std::path::Path) -> Senders {
    Senders::new(DeliverySettings {
        sms_webhook_url: Some(url),
        ..support::settings(sink_dir.join("messages"))
    })
    .unwrap()
}

#[tokio::test]
async fn the_gateway_gets_a_json_post_of_exactly_the_four_fields_and_the_idempotency_key() {
    let gateway = Gateway::answering(202).await;
    let files = tempfile::tempdir().unwrap();
    let senders = webhook_senders(gateway.url("/v1/sms"), files.path());
    let notification = sms_to(PHONE);

    let delivered = senders.deliver(&notification).await.unwrap();

    assert_eq!(
        delivered,
        Delivered {
            via: "sms-webhook",
            detail: None
        }
    );
    let requests = gateway.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/sms");
    assert_eq!(request.headers["content-type"], "application/json");
    let key = notification.message_id.hyphenated().to_string();
    assert_eq!(request.headers["idempotency-key"], key.as_str());
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let message = format!("Your contactd verification code is {CODE}. It expires at 22:15 UTC.");
    assert_eq!(
        body,
        serde_json::json!({
            "phone_number": PHONE,
            "message": message,
            "contact_id": notification.contact_id.as_str(),
            "idempotency_key": key,
        })
    );
    assert!(
        !files.path().join("messages").exists(),
        "nothing went into the sink"
    );
}

#[tokio::test]
async fn throttling_and_gateway_failures_are_transient_and_refusals_permanent() {
    let gateway = Gateway::answering(503).await;
    let files = tempfile::tempdir().unwrap();
    let senders = webhook_senders(gateway.url("/sms"), files.path());
    let notification = sms_to(PHONE);

    let cases = [
        (
            503,
            DeliveryError::Transient("sms gateway answered 503".to_owned()),
        ),
        (
            500,
            DeliveryError::Transient("sms gateway answered 500".to_owned()),
        ),
        (
            429,
            DeliveryError::Transient("sms gateway answered 429".to_owned()),
        ),
        (
            425,
            DeliveryError::Transient("sms gateway answered 425".to_owned()),
        ),
        (
            408,
            DeliveryError::Transient("sms gateway answered 408".to_owned()),
        ),
        (
            400,
            DeliveryError::Permanent("sms gateway answered 400".to_owned()),
        ),
        (
            401,
            DeliveryError::Permanent("sms gateway answered 401".to_owned()),
        ),
        (
            404,
            DeliveryError::Permanent("sms gateway answered 404".to_owned()),
        ),
        // A redirect is not followed: the message would go where nobody configured.
        (
            307,
            DeliveryError::Permanent("sms gateway answered 307".to_owned()),
        ),
    ];
    for (status, expected) in &cases {
        gateway.answer(*status);
        let error = senders.deliver(&notification).await.unwrap_err();
        assert_eq!(&error, expected, "{status}");
        clean_reason(&error, &notification);
    }
    assert_eq!(gateway.requests().len(), cases.len());

    gateway.answer(200);
    assert_eq!(
        senders.deliver(&notification).await.unwrap().via,
        "sms-webhook"
    );
    let key = notification.message_id.hyphenated().to_string();
    let requests = gateway.requests();
    assert_eq!(requests.len(), cases.len() + 1);
    for request in requests {
        assert_eq!(
            request.headers["idempotency-key"],
            key.as_str(),
            "every attempt carries the same key"
        );
    }
}

#[tokio::test]
async fn a_gateway_that_is_not_there_is_transient() {
    let files = tempfile::tempdir().unwrap();
    let senders = webhook_senders(format!("http://{}/sms", closed_port()), files.path());
    let notification = sms_to(PHONE);

    let error = senders.deliver(&notification).await.unwrap_err();

    assert_eq!(
        error,
        DeliveryError::Transient("sms gateway unreachable".to_owned())
    );
    clean_reason(&error, &notification);
}

#[tokio::test]
async fn a_gateway_that_never_answers_times_out_as_transient() {
    let peer = SilentPeer::start().await;
    let files = tempfile::tempdir().unwrap();
    let senders = Senders::new(DeliverySettings {
        sms_webhook_url: Some(format!("http://{}/sms", peer.addr())),
        timeout: Duration::from_millis(300),
        ..support::settings(files.path().join("messages"))
    })
    .unwrap();
    let notification = sms_to(PHONE);

    let error = senders.deliver(&notification).await.unwrap_err();

    assert_eq!(
        error,
        DeliveryError::Transient("sms gateway timed out".to_owned())
    );
    clean_reason(&error, &notification);
}

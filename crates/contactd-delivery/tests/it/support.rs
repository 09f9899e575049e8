//! What the tests deliver, and how they check a failure's reason. The peers they deliver to
//! (the SMTP server, the SMS gateway, silent peers) are contactd-testkit's.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use contactd_app::{DeliveryError, Notification};
use contactd_delivery::DeliverySettings;
use contactd_domain::{ContactId, EmailAddress, PhoneNumber, VerificationCode, VerificationTarget};
use uuid::Uuid;

pub const NAME: &str = "张三";
pub const CODE: u32 = 123_456;
pub const LINK: &str = "https://contacts.example.com/verify/Zm9vYmFy";

pub fn expires_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 22, 15, 42).unwrap()
}

pub fn email_to(address: &str) -> Notification {
    notification(VerificationTarget::Email(
        EmailAddress::parse(address).unwrap(),
    ))
}

pub fn sms_to(phone: &str) -> Notification {
    notification(VerificationTarget::Phone(
        PhoneNumber::restore(phone).unwrap(),
    ))
}

fn notification(recipient: VerificationTarget) -> Notification {
    Notification {
        message_id: Uuid::new_v4(),
        contact_id: ContactId::generate(),
        contact_name: NAME.to_owned(),
        recipient,
        code: VerificationCode::from_number(CODE),
        expires_at: expires_at(),
        link: LINK.to_owned(),
    }
}

/// Settings with nothing configured: everything goes into `sink_dir`.
pub fn settings(sink_dir: PathBuf) -> DeliverySettings {
    DeliverySettings {
        smtp_url: None,
        mail_from: "contactd <noreply@contacts.example.com>".to_owned(),
        sms_webhook_url: None,
        sink_dir,
        timeout: Duration::from_secs(5),
        smtp_connections: 2,
    }
}

/// The reason of a failed delivery, checked to hold neither the recipient nor the code.
pub fn clean_reason(error: &DeliveryError, notification: &Notification) -> String {
    let reason = match error {
        DeliveryError::Transient(reason) | DeliveryError::Permanent(reason) => reason.clone(),
    };
    let recipient = notification.recipient.as_str();
    assert!(
        !reason.contains(recipient),
        "{reason:?} names the recipient"
    );
    let digits = recipient.split('-').next_back().unwrap_or(recipient);
    assert!(
        !reason.contains(digits),
        "{reason:?} names the phone number"
    );
    let local_part = recipient.split('@').next().unwrap_or(recipient);
    assert!(
        !reason.contains(local_part),
        "{reason:?} names the recipient"
    );
    assert!(
        !reason.contains(notification.code.expose()),
        "{reason:?} holds the code"
    );
    reason
}
